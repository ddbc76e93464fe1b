//! Helpers shared by the barkeep binary's integration tests: a barkeep home with a
//! Barman-style configuration for one server, and small process utilities.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_archive::Codec;
use barkeep_testkit::Cluster;
use barkeep_wal::SegmentSize;
use chrono::{DateTime, Duration as Days, Utc};

pub const BIN: &str = env!("CARGO_BIN_EXE_barkeep");

/// A barkeep home with a Barman-style configuration for one server.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Home {
    pub fn new(c: &Cluster, extra: &str) -> Home {
        let h = Home::empty();
        h.configure(&c.socket_conninfo("postgres", "postgres"), extra);
        h
    }
    /// A home whose WAL the server's OS user may read (`catalog_group = <its group>`):
    /// for a `restore_command`/`archive_command` running as that user.
    pub fn shared(c: &Cluster, extra: &str) -> Home {
        let h = Home::empty();
        h.configure_full(
            &c.socket_conninfo("postgres", "postgres"),
            &format!("catalog_group = {}\n", c.os_user().group_name()),
            extra,
        );
        h
    }
    /// The directories, without a configuration yet.
    pub fn empty() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        // Readable by the server's OS user (archive_command/restore_command run as it).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::create_dir(dir.path().join("home")).expect("mkdir");
        let config = dir.path().join("barman.conf");
        Home { dir, config }
    }
    pub fn configure(&self, conninfo: &str, extra: &str) {
        self.configure_full(conninfo, "", extra)
    }
    /// With `global` lines in the `[barman]` section.
    pub fn configure_full(&self, conninfo: &str, global: &str, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "[barman]\nbarman_home = {}\nlog_level = INFO\n{global}\n[pg]\ndescription = test\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\n{extra}\n",
                self.home().display()
            ),
        )
        .expect("config");
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn server_dir(&self) -> PathBuf {
        self.home().join("pg")
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-c").arg(&self.config).args(args);
        c
    }
    pub fn run(&self, args: &[&str]) -> String {
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
    pub fn receiver(&self) -> Child {
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
    /// A receiver, once it streams.
    pub fn streaming_receiver(&self) -> Child {
        let r = self.receiver();
        wait_for(self, "the receiver", Duration::from_secs(30), || {
            self.receiver_log().contains("streaming from")
        });
        r
    }
    pub fn receiver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("receiver.log")).unwrap_or_default()
    }
    /// Archived segment names (not history/partial), sorted.
    pub fn archived(&self) -> Vec<String> {
        self.archived_of("pg")
    }
    /// Archived segment names of `server` (not history/partial), sorted.
    pub fn archived_of(&self, server: &str) -> Vec<String> {
        let wals = self.home().join(server).join("wals");
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
    pub fn archived_path(&self, name: &str) -> PathBuf {
        self.server_dir().join("wals").join(&name[..16]).join(name)
    }
}

pub fn decompress(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).expect("read archived");
    let mut out = Vec::new();
    Codec::detect(&data)
        .decoder(&data[..])
        .expect("decoder")
        .read_to_end(&mut out)
        .expect("decompress");
    out
}

/// Writes a WAL record (so there is a segment to switch out), switches the server's WAL
/// and waits until the segment switched out is archived; returns its name.
pub fn switch_and_archive(home: &Home, c: &Cluster) -> String {
    c.psql("SELECT pg_logical_emit_message(false, 'barkeep-test', 'switch')")
        .expect("a WAL record");
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        home,
        "the last segment archived",
        Duration::from_secs(60),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            home.archived().iter().any(|n| *n >= last)
        },
    );
    last
}

/// `restore OPTIONS… pg ID <dest>` into a new cluster's data directory, which is then
/// started and left out of recovery: the restored server.
pub fn restore_and_start(
    home: &Home,
    pg: &barkeep_testkit::PgInstall,
    options: &[&str],
    id: &str,
) -> Cluster {
    let mut r = barkeep_testkit::ClusterBuilder::new(pg)
        .create()
        .expect("target cluster");
    std::fs::remove_dir_all(r.data_dir()).expect("empty the target");
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    let mut args = vec!["restore"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["pg", id, &dest]);
    let out = home.run(&args);
    assert!(out.contains("successfully prepared for recovery"), "{out}");
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("restored cluster starts");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery ends");
    r
}

/// `pg_amcheck --heapallindexed` on database `postgres` of a restored server must pass.
pub fn amcheck(r: &Cluster) {
    let mut cmd = r.tool_command("pg_amcheck").expect("pg_amcheck");
    cmd.arg("-h").arg(r.socket_dir()).args([
        "-p",
        &r.port().to_string(),
        "-U",
        "postgres",
        "--install-missing",
        "--heapallindexed",
        "postgres",
    ]);
    barkeep_testkit::run(cmd, "pg_amcheck").expect("pg_amcheck passes on the restored cluster");
}

/// Options restoring to a backup's consistency point, then promoting.
pub const AT_BACKUP: &[&str] = &["--target-immediate", "--target-action", "promote"];

pub fn wait_for(home: &Home, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
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

pub fn kill(child: &mut Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
    let _ = child.wait();
}

pub fn segment_size(c: &Cluster) -> SegmentSize {
    let v = c.query_value("SHOW wal_segment_size").expect("segsize");
    SegmentSize::from_setting(&v).expect("segment size")
}

// ---- a crafted catalog, as Barman would have written it ----

pub const SEG: u64 = 16 << 20;

pub fn seg_name(segno: u64) -> String {
    format!("00000001{:08X}{:08X}", segno / 256, segno % 256)
}

/// Writes a DONE backup as Barman would have: `meta/<id>-backup.info` and a data
/// directory; its WAL is segments `segno` and `segno + 1`.
pub fn put_backup(server_dir: &Path, end: DateTime<Utc>, segno: u64) -> String {
    let begin = end - Days::minutes(10);
    let id = begin.format("%Y%m%dT%H%M%S").to_string();
    let t = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string();
    let info = format!(
        "backup_label=None\nbackup_name=None\nbegin_offset=40\nbegin_time={}\nbegin_wal={}\nbegin_xlog=0/{:X}\nchildren_backup_ids=None\ncluster_size=1048576\ncompression=None\nconfig_file=/pg/postgresql.conf\ncopy_stats=None\ndata_checksums=on\ndeduplicated_size=1048576\nencryption=None\nend_offset=312\nend_time={}\nend_wal={}\nend_xlog=0/{:X}\nerror=None\nhba_file=/pg/pg_hba.conf\nident_file=/pg/pg_ident.conf\nincluded_files=None\nmode=postgres\nparent_backup_id=None\npgdata=/pg\nserver_name=pg\nsize=1048576\nstatus=DONE\nsummarize_wal=off\nsystemid=7000000000000000001\ntablespaces=None\ntimeline=1\nversion=170002\nxlog_segment_size={SEG}\n",
        t(begin),
        seg_name(segno),
        segno * SEG + 40,
        t(end),
        seg_name(segno + 1),
        (segno + 1) * SEG + 312,
    );
    let meta = server_dir.join("meta");
    std::fs::create_dir_all(&meta).expect("meta");
    std::fs::write(meta.join(format!("{id}-backup.info")), info).expect("backup.info");
    let data = server_dir.join("base").join(&id).join("data");
    std::fs::create_dir_all(data.join("global")).expect("data");
    std::fs::write(data.join("PG_VERSION"), "17\n").expect("PG_VERSION");
    id
}

/// Archives segments `0..n` (any bytes: retention never reads them) and a history file.
pub fn put_wal(server_dir: &Path, n: u64) {
    let wals = server_dir.join("wals");
    let mut db = String::new();
    for segno in 0..n {
        let name = seg_name(segno);
        let dir = wals.join(&name[..16]);
        std::fs::create_dir_all(&dir).expect("hash dir");
        std::fs::write(dir.join(&name), b"wal").expect("segment");
        db.push_str(&format!("{name}\t3\t1700000000.0\tNone\tNone\n"));
    }
    std::fs::write(
        wals.join("00000002.history"),
        "1\t0/5000000\tno recovery target specified\n",
    )
    .expect("history");
    db.push_str("00000002.history\t40\t1700000000.0\tNone\tNone\n");
    std::fs::write(wals.join("pg-xlog.db"), db).expect("xlog.db");
}
