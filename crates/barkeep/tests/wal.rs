//! The WAL archive end to end, with the `barkeep` binary against real PostgreSQL:
//! streaming through restarts, crashes and SIGKILLs with no gap and bytes identical to
//! pg_receivewal's; timeline switches; corrupt files; archive_command and restore_command
//! through barkeep's own clients.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_archive::Codec;
use barkeep_testkit::{Cluster, ClusterBuilder, StopMode};
use barkeep_wal::SegmentSize;

const BIN: &str = env!("CARGO_BIN_EXE_barkeep");

/// A barkeep home with a Barman-style configuration for one server.
struct Home {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Home {
    fn new(c: &Cluster, extra: &str) -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        // Readable by the server's OS user (archive_command/restore_command run as it).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("mkdir");
        let config = dir.path().join("barman.conf");
        let conninfo = c.socket_conninfo("postgres", "postgres");
        std::fs::write(
            &config,
            format!(
                "[barman]\nbarman_home = {}\nlog_level = INFO\n\n[pg]\ndescription = test\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\n{extra}\n",
                home.display()
            ),
        )
        .expect("config");
        Home { dir, config }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn server_dir(&self) -> PathBuf {
        self.home().join("pg")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-c").arg(&self.config).args(args);
        c
    }
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run barkeep");
        assert!(
            out.status.success(),
            "barkeep {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn receiver(&self) -> Child {
        self.cmd(&["receive-wal", "pg"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("receiver.log"))
                    .expect("log"),
            ))
            .spawn()
            .expect("spawn receive-wal")
    }
    fn receiver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("receiver.log")).unwrap_or_default()
    }
    /// Archived segment names (not history/partial), sorted.
    fn archived(&self) -> Vec<String> {
        let wals = self.server_dir().join("wals");
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&wals) {
            for d in rd.flatten().filter(|d| d.path().is_dir()) {
                for f in std::fs::read_dir(d.path()).expect("ls").flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if n.len() == 24 {
                        v.push(n);
                    }
                }
            }
        }
        v.sort();
        v
    }
    fn archived_path(&self, name: &str) -> PathBuf {
        self.server_dir().join("wals").join(&name[..16]).join(name)
    }
}

fn decompress(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).expect("read archived");
    let mut out = Vec::new();
    Codec::detect(&data)
        .decoder(&data[..])
        .expect("decoder")
        .read_to_end(&mut out)
        .expect("decompress");
    out
}

fn wait_for(home: &Home, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; receiver log:\n{}",
            home.receiver_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kill(child: &mut Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
    let _ = child.wait();
}

fn segment_size(c: &Cluster) -> SegmentSize {
    let v = c.query_value("SHOW wal_segment_size").expect("segsize");
    SegmentSize::from_setting(&v).expect("segment size")
}

#[test]
fn streaming_survives_restarts_crashes_and_kills_with_no_gap() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let mut c = ClusterBuilder::new(&pg)
        .setting("max_wal_size", "64MB")
        .start()
        .expect("start");
    c.pgbench_init(1).expect("pgbench -i");
    let home = Home::new(
        &c,
        "slot_name = barkeep\ncreate_slot = auto\ncompression = zstd\n",
    );
    let seg = segment_size(&c);

    // pg_receivewal on its own slot, alongside, as the reference.
    let reference = home.dir.path().join("reference");
    std::fs::create_dir(&reference).expect("mkdir");
    let sock = c.socket_dir().to_path_buf();
    let port = c.port().to_string();
    let recvwal_bin = pg.tool("pg_receivewal").expect("pg_receivewal");
    let recvwal = |extra: &[&str]| {
        let mut cmd = Command::new(&recvwal_bin);
        if let Some(lib) = recvwal_bin
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("lib"))
        {
            cmd.env("LD_LIBRARY_PATH", lib);
        }
        cmd.args(["-h"])
            .arg(&sock)
            .args(["-p", &port, "-U", "postgres", "-S", "reference", "-D"])
            .arg(&reference)
            .args(extra);
        cmd
    };
    barkeep_testkit::run(recvwal(&["--create-slot"]), "pg_receivewal --create-slot").expect("slot");
    // The reference must start no later than barkeep: both begin at the current segment.
    let mut receiver = home.receiver();
    let spawn_ref = || {
        recvwal(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pg_receivewal")
    };
    let mut reference_proc = spawn_ref();
    wait_for(
        &home,
        "the receiver's first partial segment",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(home.server_dir().join("streaming"))
                .map(|rd| rd.flatten().count() > 0)
                .unwrap_or(false)
        },
    );

    // Load with disruptions: fast restarts, crashes, and SIGKILLed receivers.
    let events = [
        "kill", "restart", "kill", "crash", "kill", "restart", "crash", "kill",
    ];
    for (i, ev) in events.iter().enumerate() {
        let _ = c.pgbench_run(4, 2, &[]);
        match *ev {
            "kill" => {
                kill(&mut receiver, nix::sys::signal::Signal::SIGKILL);
                receiver = home.receiver();
            }
            "restart" => c
                .stop(StopMode::Fast)
                .and_then(|()| c.start())
                .expect("restart"),
            _ => c.crash().and_then(|()| c.start()).expect("crash + start"),
        }
        if i % 2 == 1 {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
        }
        // pg_receivewal exits after a server restart (it loops only on its own terms).
        if let Ok(Some(_)) = reference_proc.try_wait() {
            reference_proc = spawn_ref();
        }
    }
    let _ = c.pgbench_run(3, 2, &[]);

    // Close the last segment; wait for both sides to have it complete.
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "barkeep to archive the last segment",
        Duration::from_secs(90),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            if let Ok(Some(_)) = receiver.try_wait() {
                receiver = home.receiver();
            }
            home.archived().last().is_some_and(|l| *l >= last)
        },
    );
    wait_for(
        &home,
        "pg_receivewal to complete the last segment",
        Duration::from_secs(90),
        || {
            if let Ok(Some(_)) = reference_proc.try_wait() {
                reference_proc = spawn_ref();
            }
            reference.join(&last).exists()
        },
    );
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    kill(&mut reference_proc, nix::sys::signal::Signal::SIGINT);
    home.run(&["archive-wal", "pg"]);

    // No gap, from the first archived segment to the last.
    let archived = home.archived();
    let log = home.receiver_log();
    assert!(
        archived.len() >= 4,
        "only {} segments archived\n{log}",
        archived.len()
    );
    let segnos: Vec<u64> = archived
        .iter()
        .map(|n| seg.parse_segment_name(n).expect("name").segno)
        .collect();
    for w in segnos.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap after {}\n{log}",
            seg.segment_name(1, w[0])
        );
    }
    // Byte-identical to pg_receivewal's files, decompressed.
    let mut compared = 0;
    for name in &archived {
        let theirs = reference.join(name);
        if !theirs.exists() {
            continue;
        }
        let ours = decompress(&home.archived_path(name));
        assert!(
            ours == std::fs::read(&theirs).expect("reference"),
            "{name} differs from pg_receivewal's"
        );
        compared += 1;
    }
    assert!(
        compared + 1 >= archived.len(),
        "compared {compared} of {}",
        archived.len()
    );
    eprintln!(
        "{} segments archived without a gap ({} .. {}), {compared} identical to pg_receivewal's",
        archived.len(),
        archived[0],
        archived[archived.len() - 1]
    );
    // The catalog lists them, compressed with zstd.
    let xlogdb =
        std::fs::read_to_string(home.server_dir().join("wals/pg-xlog.db")).expect("xlog.db");
    for name in &archived {
        assert!(
            xlogdb.contains(&format!("{name}\t")),
            "{name} not in xlog.db"
        );
    }
    assert!(
        xlogdb.lines().all(|l| l.split('\t').nth(3) == Some("zstd")),
        "{xlogdb}"
    );

    // pg_waldump reads across the whole range (decompressed by get-wal).
    let plain = home.dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    for name in &archived {
        home.run(&["get-wal", "pg", name, "-o", plain.to_str().expect("utf-8")]);
    }
    let mut waldump = c.tool_command("pg_waldump").expect("pg_waldump");
    waldump
        .arg("-p")
        .arg(&plain)
        .arg("--stats")
        .arg(&archived[0])
        .arg(archived.last().expect("last"));
    let out = waldump.output().expect("pg_waldump");
    assert!(
        out.status.success(),
        "pg_waldump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
