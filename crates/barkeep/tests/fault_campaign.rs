//! The fault campaign: the real `barkeep` binary against real PostgreSQL under pgbench
//! load, with `pg_receivewal` on its own slot as the reference, through random faults —
//! SIGKILLs of receive-wal, archive-wal, backup, restore, delete and cron (retention
//! applying) at random instants,
//! PostgreSQL crashes and restarts, replication connections cut or stalled (a TCP proxy),
//! a full disk under the catalog (a loop-mounted file system), and bad files in
//! `incoming/`. After them it asserts what a user relies on:
//!
//! - every segment the reference has is in barkeep's archive, byte-identical (get-wal);
//! - no DONE backup fails `verify-backup`;
//! - a restore to the latest point starts and holds every committed row;
//! - every barkeep process started afterwards works, without a person doing anything;
//! - a full disk gives an error naming the path, leaves nothing corrupt, and work
//!   resumes when space returns.
//!
//! Short mode (CI): `BARKEEP_FAULT_TRIALS` (default 16) within `BARKEEP_FAULT_BUDGET_SECS`
//! (default 100). The seed is printed; `BARKEEP_FAULT_SEED` replays the same faults.
//! Long mode: `scripts/fault-campaign.sh --trials 200` (docs/testing.md).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barkeep_testkit::{Cluster, ClusterBuilder, Proxy, SmallFs, StopMode};
use common::{BIN, decompress, kill};
use nix::sys::signal::Signal;

/// splitmix64: a reproducible sequence from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillReceiver,
    KillArchiveWal,
    KillBackup,
    Backup,
    KillRestore,
    KillDelete,
    CrashPostgres,
    RestartPostgres,
    CutConnection,
    StallConnection,
    DiskFull,
    BadInput,
    Promote,
    CrashAtRename,
    KillCron,
    KillDaemon,
}

const FAULTS: [Fault; 16] = [
    Fault::KillReceiver,
    Fault::KillArchiveWal,
    Fault::KillBackup,
    Fault::Backup,
    Fault::KillRestore,
    Fault::KillDelete,
    Fault::CrashPostgres,
    Fault::RestartPostgres,
    Fault::CutConnection,
    Fault::StallConnection,
    Fault::DiskFull,
    Fault::BadInput,
    Fault::Promote,
    Fault::CrashAtRename,
    Fault::KillCron,
    Fault::KillDaemon,
];

struct Campaign {
    dir: tempfile::TempDir,
    config: PathBuf,
    home: PathBuf,
    reference: PathBuf,
    receiver: Child,
    reference_proc: Option<Child>,
    failures: Vec<String>,
    /// Ids of rows whose INSERT returned success.
    committed: Arc<Mutex<Vec<i64>>>,
    smallfs: Option<SmallFs>,
    /// Segments already found identical to the reference's.
    compared: std::collections::BTreeSet<String>,
    /// Marker rows written so far.
    marker: i64,
}

impl Campaign {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c
    }
    fn log_file(&self, name: &str) -> Stdio {
        Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .expect("log"),
        )
    }
    fn spawn(&self, args: &[&str], log: &str) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(self.log_file(log))
            .spawn()
            .expect("spawn barkeep")
    }
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
    fn server_dir(&self) -> PathBuf {
        self.home.join("pg")
    }
    fn fail(&mut self, trial: usize, fault: Fault, what: String) {
        eprintln!("FAILURE in trial {trial} ({fault:?}): {what}");
        self.failures
            .push(format!("trial {trial} ({fault:?}): {what}"));
    }
    /// Runs a command that must succeed; a failure is recorded with its stderr.
    fn must(&mut self, args: &[&str], trial: usize, fault: Fault, what: &str) {
        let out = self.cmd(args).output().expect("run barkeep");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            self.fail(trial, fault, format!("{what}: {err}"));
        }
    }
    /// The receiver must still be running (we restart it only after killing it).
    fn receiver_alive(&mut self) -> Result<(), String> {
        match self.receiver.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => {
                let log = self.log("receiver.log");
                let tail: String = log
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                self.receiver = self.spawn(&["receive-wal", "pg"], "receiver.log");
                Err(format!(
                    "receive-wal exited by itself ({st}); it needed a person:\n{tail}"
                ))
            }
            Err(e) => Err(format!("cannot wait for receive-wal: {e}")),
        }
    }
    fn archived(&self) -> Vec<String> {
        let wals = self.server_dir().join("wals");
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&wals) {
            for d in rd.flatten().filter(|d| d.path().is_dir()) {
                for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
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
    fn reference_segments(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.reference)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 24)
            .collect();
        v.sort();
        v
    }
    /// DONE backups, newest first.
    fn done_backups(&self) -> Vec<String> {
        self.backups()
            .into_iter()
            .filter(|(_, s)| s == "DONE")
            .map(|(id, _)| id)
            .collect()
    }
    fn backups(&self) -> Vec<(String, String)> {
        let out = self
            .cmd(&["-f", "json", "list-backups", "pg"])
            .output()
            .expect("list");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["pg"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|b| {
                        (
                            b["backup_id"].as_str().unwrap_or_default().to_string(),
                            b["status"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Campaign {
    /// A failed campaign leaves no process behind.
    fn drop(&mut self) {
        let _ = self.receiver.kill();
        let _ = self.receiver.wait();
        if let Some(mut p) = self.reference_proc.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where the current primary listens (its socket directory and port): it moves when
/// the server restarts on another port or a standby is promoted.
type Target = Arc<Mutex<(PathBuf, u16)>>;

/// A client tool of `c`'s installation, connected to the current primary.
fn client(bin: &Path, target: &Target) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(lib) = bin.parent().and_then(Path::parent).map(|p| p.join("lib")) {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    let (sock, port) = target.lock().expect("target").clone();
    cmd.arg("-h")
        .arg(sock)
        .args(["-p", &port.to_string(), "-U", "postgres"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn fault_campaign() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let trials = env_u64("BARKEEP_FAULT_TRIALS", 16) as usize;
    let budget = Duration::from_secs(env_u64("BARKEEP_FAULT_BUDGET_SECS", 100));
    let seed = env_u64(
        "BARKEEP_FAULT_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    eprintln!(
        "fault campaign: seed {seed}, up to {trials} trials in {} s (replay: BARKEEP_FAULT_SEED={seed} BARKEEP_FAULT_TRIALS={trials})",
        budget.as_secs()
    );
    let mut rng = Rng(seed);
    let started = Instant::now();

    let mut c = ClusterBuilder::new(&pg)
        .setting("max_wal_size", "64MB")
        .setting("wal_keep_size", "512MB")
        .setting("checkpoint_timeout", "30s")
        .start()
        .expect("start");
    c.pgbench_init(1).expect("pgbench -i");
    c.psql("CREATE TABLE committed (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        .expect("committed table");
    let proxy = Proxy::start(c.port()).expect("proxy");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    // The catalog on a small file system that the campaign can fill.
    let smallfs = match SmallFs::mount(dir.path(), 4096) {
        Ok(fs) => Some(fs),
        Err(e) => {
            eprintln!("SKIP disk-full faults: {e}");
            None
        }
    };
    let home = match &smallfs {
        Some(fs) => fs.path().join("home"),
        None => dir.path().join("home"),
    };
    std::fs::create_dir_all(&home).expect("home");
    let config = dir.path().join("barman.conf");
    // barkeep reaches the server through the proxy; the reference connects directly.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
        proxy.port()
    );
    std::fs::write(
        &config,
        format!(
            "[barman]\nbarman_home = {}\nlog_level = INFO\n\n[pg]\ndescription = campaign\nconninfo = {conninfo}\n\
             streaming_conninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\n\
             slot_name = barkeep\ncreate_slot = auto\ncompression = gzip\nminimum_redundancy = 1\nimmediate_checkpoint = true\n",
            home.display()
        ),
    )
    .expect("config");
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).expect("reference dir");
    let target: Target = Arc::new(Mutex::new((c.socket_dir().to_path_buf(), c.port())));
    let recvwal_bin = pg.tool("pg_receivewal").expect("pg_receivewal");
    let recvwal = {
        let target = target.clone();
        move |extra: &[&str], reference: &Path| {
            let mut cmd = client(&recvwal_bin, &target);
            cmd.args(["-S", "reference", "-D"])
                .arg(reference)
                .args(extra);
            cmd
        }
    };
    barkeep_testkit::run(
        recvwal(&["--create-slot"], &reference),
        "pg_receivewal --create-slot",
    )
    .expect("reference slot");
    let ref_proc = recvwal(&[], &reference).spawn().expect("pg_receivewal");

    let mut cp = Campaign {
        dir,
        config,
        home,
        reference,
        receiver: Command::new("true").spawn().expect("placeholder"),
        reference_proc: Some(ref_proc),
        failures: Vec::new(),
        committed: Arc::new(Mutex::new(Vec::new())),
        smallfs,
        compared: Default::default(),
        marker: 0,
    };
    let _ = cp.receiver.wait();
    cp.receiver = cp.spawn(&["receive-wal", "pg"], "receiver.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cp.log("receiver.log").contains("streaming from") {
        assert!(
            Instant::now() < deadline,
            "receiver did not start: {}",
            cp.log("receiver.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first backup, before any fault.
    let out = cp
        .cmd(&["backup", "--wait", "--wait-timeout", "120", "pg"])
        .output()
        .expect("backup");
    assert!(
        out.status.success(),
        "first backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Load: numbered commits (the rows a restore must hold) and pgbench.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        let committed = cp.committed.clone();
        let psql = c.install().tool("psql").expect("psql");
        let pgbench = c.install().tool("pgbench").expect("pgbench");
        let target = target.clone();
        std::thread::spawn(move || {
            let mut next: i64 = 1;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let ok = client(&psql, &target)
                        .args(["-d", "postgres", "-XAtqc"])
                        .arg(format!("INSERT INTO committed (id) VALUES ({next})"))
                        .status()
                        .is_ok_and(|s| s.success());
                    if ok {
                        committed.lock().expect("lock").push(next);
                    }
                    // A failed INSERT may still have committed: never reuse its id.
                    next += 1;
                }
                let _ = client(&pgbench, &target)
                    .args(["-T", "1", "-c", "2", "-n", "postgres"])
                    .status();
            }
        })
    };

    let mut stats: BTreeMap<Fault, (u32, u32)> = BTreeMap::new();
    let mut restores = 0usize;
    let mut promotions = 0usize;
    let mut verified: Vec<String> = Vec::new();
    for trial in 0..trials {
        if started.elapsed() > budget {
            eprintln!("time budget reached after {trial} trials");
            break;
        }
        let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
        let fault = if fault == Fault::DiskFull && cp.smallfs.is_none() {
            Fault::CutConnection
        } else {
            fault
        };
        let before = cp.failures.len();
        let fault = if fault == Fault::Promote && promotions * 25 > trial {
            Fault::RestartPostgres
        } else {
            fault
        };
        if fault == Fault::Promote {
            promotions += 1;
        }
        eprintln!("trial {trial}: {fault:?}");
        let mut env = Env {
            c: &mut c,
            pg: &pg,
            proxy: &proxy,
            rng: &mut rng,
            restores: &mut restores,
        };
        run_fault(&mut cp, &mut env, trial, fault);
        // The primary may have moved (new port after a restart, promoted standby).
        *target.lock().expect("target") = (c.socket_dir().to_path_buf(), c.port());
        proxy.retarget(c.port());
        if fault == Fault::Promote {
            let _ = barkeep_testkit::run(
                recvwal(&["--create-slot", "--if-not-exists"], &cp.reference),
                "pg_receivewal --create-slot",
            );
            if let Some(mut p) = cp.reference_proc.take() {
                kill(&mut p, Signal::SIGINT);
            }
            forget_rows_lost_in_failover(&cp, &c);
        }
        // pg_receivewal exits after a server restart; barkeep must not need that help.
        let dead = match cp.reference_proc.as_mut() {
            Some(p) => matches!(p.try_wait(), Ok(Some(_))),
            None => true,
        };
        if dead {
            cp.reference_proc = recvwal(&[], &cp.reference).spawn().ok();
        }
        if let Err(e) = cp.receiver_alive() {
            cp.fail(trial, fault, e);
        }
        check_wal(&mut cp, trial, fault);
        check_backups(&mut cp, trial, fault, &mut verified);
        if trial % 25 == 24 {
            check_restore(&mut cp, &mut c, &pg, trial, fault);
        }
        let e = stats.entry(fault).or_default();
        e.0 += 1;
        if cp.failures.len() > before {
            e.1 += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = loader.join();

    // Final: everything committed is archived, identical to the reference; every DONE
    // backup verifies; the latest point restores with every committed row.
    final_checks(&mut cp, &mut c, &pg, &mut verified);

    eprintln!(
        "fault campaign: seed {seed}, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    eprintln!("| fault | trials | failures |");
    eprintln!("| --- | --- | --- |");
    for (f, (n, bad)) in &stats {
        eprintln!("| {f:?} | {n} | {bad} |");
    }
    kill(&mut cp.receiver, Signal::SIGTERM);
    if let Some(mut p) = cp.reference_proc.take() {
        kill(&mut p, Signal::SIGINT);
    }
    assert!(
        cp.failures.is_empty(),
        "{} failure(s) (seed {seed}):\n{}",
        cp.failures.len(),
        cp.failures.join("\n")
    );
}

/// What a fault may act on besides the campaign's own state.
struct Env<'a> {
    c: &'a mut Cluster,
    pg: &'a barkeep_testkit::PgInstall,
    proxy: &'a Proxy,
    rng: &'a mut Rng,
    restores: &'a mut usize,
}

fn run_fault(cp: &mut Campaign, env: &mut Env<'_>, trial: usize, fault: Fault) {
    let Env {
        c,
        pg,
        proxy,
        rng,
        restores,
    } = env;
    match fault {
        Fault::KillReceiver => {
            std::thread::sleep(rng.millis(2500));
            kill(&mut cp.receiver, Signal::SIGKILL);
            cp.receiver = cp.spawn(&["receive-wal", "pg"], "receiver.log");
        }
        Fault::KillArchiveWal => {
            // Work for it: the reference's newest segments pushed into incoming/.
            let segs = cp.reference_segments();
            for n in segs.iter().rev().take(3) {
                let _ = std::fs::copy(
                    cp.reference.join(n),
                    cp.server_dir().join("incoming").join(n),
                );
            }
            let mut p = cp.spawn(&["archive-wal", "pg"], "archive-wal.log");
            std::thread::sleep(rng.millis(400));
            kill(&mut p, Signal::SIGKILL);
            cp.must(
                &["archive-wal", "pg"],
                trial,
                fault,
                "archive-wal after a kill",
            );
        }
        Fault::KillBackup => {
            let mut p = cp.spawn(&["backup", "pg"], "backup.log");
            std::thread::sleep(rng.millis(3000));
            kill(&mut p, Signal::SIGKILL);
        }
        Fault::Backup => {
            cp.must(
                &["backup", "--wait", "--wait-timeout", "120", "pg"],
                trial,
                fault,
                "a backup after earlier faults failed",
            );
            // Keep the small file system from filling with backups.
            let done = cp.done_backups();
            if done.len() > 3 {
                let oldest = done.last().cloned().unwrap_or_default();
                let _ = cp.cmd(&["delete", "pg", &oldest]).output();
            }
        }
        Fault::KillRestore => {
            **restores += 1;
            let dest = cp.dir.path().join(format!("killed-restore-{restores}"));
            let d = dest.to_str().expect("utf-8").to_string();
            let mut p = cp.spawn(&["restore", "pg", "latest", &d], "restore.log");
            std::thread::sleep(rng.millis(1500));
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.id() as i32), Signal::SIGKILL);
            // Finished before the signal: a complete restore, which a second one rightly
            // refuses to overwrite. Killed: the same command finishes the job in place.
            let finished = p.wait().is_ok_and(|st| st.success());
            if !finished {
                cp.must(
                    &["restore", "pg", "latest", &d],
                    trial,
                    fault,
                    "restore again after a killed restore",
                );
            }
            if dest.join(".barkeep-restore-in-progress").exists()
                || !dest.join("global/pg_control").exists()
            {
                cp.fail(trial, fault, format!("{d} is not a finished restore"));
            }
            let _ = std::fs::remove_dir_all(&dest);
        }
        Fault::KillDelete => {
            let done = cp.done_backups();
            if done.len() >= 3 {
                let oldest = done.last().cloned().unwrap_or_default();
                let mut p = cp.spawn(&["delete", "pg", &oldest], "delete.log");
                std::thread::sleep(rng.millis(150));
                kill(&mut p, Signal::SIGKILL);
                // The next command finishes or forgets it; never a half-deleted DONE.
                if cp
                    .backups()
                    .iter()
                    .any(|(id, s)| *id == oldest && s == "DONE")
                {
                    let out = cp
                        .cmd(&["verify-backup", "pg", &oldest])
                        .output()
                        .expect("verify");
                    if !out.status.success() {
                        cp.fail(trial, fault, format!("backup {oldest} is DONE after a killed delete but does not verify: {}", String::from_utf8_lossy(&out.stderr)));
                    }
                }
            } else {
                let _ = cp.cmd(&["backup", "pg"]).output();
            }
        }
        Fault::CrashPostgres => {
            std::thread::sleep(rng.millis(1500));
            c.crash().and_then(|()| c.start()).expect("crash + start");
        }
        Fault::RestartPostgres => {
            std::thread::sleep(rng.millis(1500));
            c.stop(StopMode::Fast)
                .and_then(|()| c.start())
                .expect("restart");
        }
        Fault::CutConnection => {
            std::thread::sleep(rng.millis(1500));
            proxy.sever();
            std::thread::sleep(Duration::from_millis(500));
        }
        Fault::StallConnection => {
            proxy.stall(Duration::from_millis(1000 + rng.below(4000)));
        }
        Fault::DiskFull => disk_full(cp, trial),
        Fault::BadInput => bad_input(cp, rng, trial),
        Fault::Promote => promote_standby(cp, c, pg, trial),
        Fault::KillCron => kill_cron(cp, rng, trial),
        Fault::KillDaemon => kill_daemon(cp, rng, trial),
        Fault::CrashAtRename => crash_at_rename(cp, rng, trial),
    }
}

/// `cron` applying retention (a second configuration of the same catalog adds
/// `retention_policy = REDUNDANCY 2`; its receiver is the campaign's, so cron starts
/// none), killed at a random instant: the next cron finishes the job — the plan it then
/// shows deletes nothing — and no backup is left half-deleted.
fn kill_cron(cp: &mut Campaign, rng: &mut Rng, trial: usize) {
    let fault = Fault::KillCron;
    let cfg = cp.dir.path().join("retention.conf");
    let text = std::fs::read_to_string(&cp.config).expect("config");
    std::fs::write(
        &cfg,
        text.replace("streaming_archiver = on", "streaming_archiver = off")
            + "retention_policy = REDUNDANCY 2\n",
    )
    .expect("retention config");
    let run = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("-c").arg(&cfg).args(args).stdin(Stdio::null());
        c
    };
    if cp.done_backups().len() < 3 {
        let _ = cp
            .cmd(&["backup", "--wait", "--wait-timeout", "60", "pg"])
            .output();
    }
    let mut p = run(&["cron"])
        .stdout(Stdio::null())
        .stderr(cp.log_file("cron.log"))
        .spawn()
        .expect("cron");
    std::thread::sleep(rng.millis(600));
    kill(&mut p, Signal::SIGKILL);
    let out = run(&["cron"]).output().expect("cron");
    if !out.status.success() {
        cp.fail(
            trial,
            fault,
            format!(
                "cron after a killed cron: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
    let out = run(&["-f", "json", "retention", "pg", "--dry-run"])
        .output()
        .expect("plan");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let left = plan["pg"]["plan"]["backups"]
        .as_array()
        .map(|b| b.iter().filter(|v| v["delete"] == true).count())
        .unwrap_or(usize::MAX);
    if left != 0 {
        cp.fail(
            trial,
            fault,
            format!("the plan after cron still deletes {left} backups: {plan}"),
        );
    }
    // Every listed backup still has its data.
    for (id, status) in cp.backups() {
        if status == "DONE" && !cp.server_dir().join("base").join(&id).join("data").exists() {
            cp.fail(
                trial,
                fault,
                format!("DONE backup {id} has no data after a killed cron"),
            );
        }
    }
}

/// `barkeep daemon` taking scheduled backups (a second configuration of the same catalog:
/// a backup every 2 s; the campaign's receiver streams, so the daemon runs none),
/// SIGKILLed at a random instant: afterwards nothing is left for a person — a backup
/// works at once, and no backup stays STARTED.
fn kill_daemon(cp: &mut Campaign, rng: &mut Rng, trial: usize) {
    let fault = Fault::KillDaemon;
    let cfg = cp.dir.path().join("daemon.conf");
    let text = std::fs::read_to_string(&cp.config).expect("config");
    std::fs::write(
        &cfg,
        text.replace("streaming_archiver = on", "streaming_archiver = off")
            + "backup_schedule = */2 * * * * *\nbackup_schedule_jitter = 0\nschedule_timezone = UTC\n",
    )
    .expect("daemon config");
    let mut d = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(cp.log_file("daemon.log"))
        .spawn()
        .expect("daemon");
    std::thread::sleep(Duration::from_millis(1500) + rng.millis(4000));
    kill(&mut d, Signal::SIGKILL);
    cp.must(
        &["backup", "--wait", "--wait-timeout", "120", "pg"],
        trial,
        fault,
        "a backup after a killed daemon",
    );
    if cp
        .backups()
        .iter()
        .any(|(_, s)| s == "STARTED" || s == "EMPTY")
    {
        cp.fail(
            trial,
            fault,
            format!(
                "a backup stays STARTED after a killed daemon: {:?}",
                cp.backups()
            ),
        );
    }
    let done = cp.done_backups();
    if done.len() > 3 {
        for id in done.iter().skip(3) {
            let _ = cp.cmd(&["delete", "pg", id]).output();
        }
    }
}

/// A command that SIGKILLs itself exactly inside a durable rename (barkeep's
/// `BARKEEP_CRASH_AT` crash points): just before it, or after it and before the directory
/// fsync.
fn crash_at_rename(cp: &mut Campaign, rng: &mut Rng, trial: usize) {
    let point = if rng.below(2) == 0 {
        "before-rename"
    } else {
        "after-rename"
    };
    let n = 1 + rng.below(12);
    let plan = format!("{point}:{n}");
    let which = rng.below(3);
    let args: Vec<&str> = match which {
        0 => vec!["receive-wal", "pg"],
        1 => vec!["archive-wal", "pg"],
        _ => vec!["backup", "pg"],
    };
    eprintln!("  {} with BARKEEP_CRASH_AT={plan}", args[0]);
    if which == 0 {
        kill(&mut cp.receiver, Signal::SIGKILL);
    } else {
        for seg in cp.reference_segments().iter().rev().take(3) {
            let _ = std::fs::copy(
                cp.reference.join(seg),
                cp.server_dir().join("incoming").join(seg),
            );
        }
    }
    let mut p = cp
        .cmd(&args)
        .env("BARKEEP_CRASH_AT", &plan)
        .stdout(Stdio::null())
        .stderr(cp.log_file("crash-at.log"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(if which == 0 { 8 } else { 60 });
    while Instant::now() < deadline && matches!(p.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(&mut p, Signal::SIGKILL);
    if which == 0 {
        cp.receiver = cp.spawn(&["receive-wal", "pg"], "receiver.log");
    }
    // Whatever the instant, the same command works afterwards.
    if which == 1 {
        cp.must(
            &["archive-wal", "pg"],
            trial,
            Fault::CrashAtRename,
            &format!("archive-wal after a crash at {plan}"),
        );
    }
}

fn disk_full(cp: &mut Campaign, trial: usize) {
    let Some(fs) = cp.smallfs.take() else { return };
    fs.fill(64 * 1024).expect("fill");
    std::thread::sleep(Duration::from_millis(1500));
    let out = cp.cmd(&["backup", "pg"]).output().expect("backup");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let fs_path = fs.path().display().to_string();
    // A backup that fitted in what was left has nothing to report.
    let reported = err.contains("No space left on device") && err.contains(&fs_path);
    if !out.status.success() && !reported {
        cp.fail(
            trial,
            Fault::DiskFull,
            format!("a full disk must be reported with the path: {err}"),
        );
    }
    std::thread::sleep(Duration::from_millis(1000));
    fs.free();
    cp.smallfs = Some(fs);
    // Space is back: a backup works again; the receiver went on by itself.
    cp.must(
        &["backup", "--wait", "--wait-timeout", "120", "pg"],
        trial,
        Fault::DiskFull,
        "backup after space returned",
    );
}

fn bad_input(cp: &mut Campaign, rng: &mut Rng, trial: usize) {
    let archived = cp.archived();
    let Some(name) = archived
        .get(rng.below(archived.len() as u64) as usize)
        .cloned()
    else {
        return;
    };
    let wals = cp.server_dir().join("wals").join(&name[..16]).join(&name);
    let good = decompress(&wals);
    let incoming = cp.server_dir().join("incoming");
    let mut different = good.clone();
    let at = 8192 + rng.below((good.len() - 8192) as u64) as usize;
    different[at] ^= 0x55;
    let mut other_cluster = good.clone();
    other_cluster[8] ^= 0xff; // the system identifier of the long page header
    let seg = barkeep_wal::SegmentSize::new(good.len() as u64).expect("size");
    let parsed = seg.parse_segment_name(&name).expect("name");
    let far = seg.segment_name(parsed.tli, parsed.segno + 100_000);
    let files: Vec<(String, Vec<u8>)> = vec![
        (name.clone(), different),
        (far.clone(), other_cluster),
        (
            seg.segment_name(parsed.tli, parsed.segno + 100_001),
            good[..good.len() / 2].to_vec(),
        ),
        ("garbage.bin".into(), b"not WAL at all".to_vec()),
    ];
    for (n, data) in &files {
        std::fs::write(incoming.join(n), data).expect("bad file");
    }
    let out = cp
        .cmd(&["archive-wal", "pg"])
        .output()
        .expect("archive-wal");
    let _ = out;
    for (n, _) in &files {
        if incoming.join(n).exists() {
            cp.fail(trial, Fault::BadInput, format!("{n} stayed in incoming/"));
        }
    }
    if decompress(&wals) != good {
        cp.fail(
            trial,
            Fault::BadInput,
            format!("archived {name} was changed by a bad copy"),
        );
    }
    if cp.archived().contains(&far) {
        cp.fail(
            trial,
            Fault::BadInput,
            format!("{far} of another cluster was archived"),
        );
    }
}

/// Every complete segment the reference holds, from barkeep's first on, must reach
/// barkeep's archive (within a minute: the receiver may be in its back-off) and be
/// byte-identical there, fetched with get-wal.
fn check_wal(cp: &mut Campaign, trial: usize, fault: Fault) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ours, missing) = loop {
        let ours = cp.archived();
        let first = ours.first().cloned().unwrap_or_default();
        let missing: Vec<String> = cp
            .reference_segments()
            .into_iter()
            .filter(|n| *n >= first && ours.binary_search(n).is_err())
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (ours, missing);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    if !missing.is_empty() {
        let log = cp.log("receiver.log");
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        cp.fail(
            trial,
            fault,
            format!("WAL LOST: {missing:?} are in the reference, not in barkeep's archive; receiver log (newest first):\n{}", tail.join("\n")),
        );
    }
    let plain = cp.dir.path().join("plain");
    std::fs::create_dir_all(&plain).expect("plain");
    let todo: Vec<String> = cp
        .reference_segments()
        .into_iter()
        .filter(|n| ours.binary_search(n).is_ok() && !cp.compared.contains(n))
        .collect();
    for n in todo {
        let out = cp
            .cmd(&["get-wal", "pg", &n, "-o", plain.to_str().expect("utf-8")])
            .output()
            .expect("get-wal");
        let same = out.status.success()
            && std::fs::read(plain.join(&n)).ok() == std::fs::read(cp.reference.join(&n)).ok();
        let _ = std::fs::remove_file(plain.join(&n));
        if same {
            cp.compared.insert(n);
        } else {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            cp.fail(
                trial,
                fault,
                format!("WAL DIFFERS: {n} from get-wal is not pg_receivewal's {err}"),
            );
        }
    }
}

/// No DONE backup fails verify-backup (each checked once).
fn check_backups(cp: &mut Campaign, trial: usize, fault: Fault, verified: &mut Vec<String>) {
    for (id, status) in cp.backups() {
        if status != "DONE" || verified.contains(&id) {
            continue;
        }
        let out = cp
            .cmd(&["verify-backup", "pg", &id])
            .output()
            .expect("verify");
        if out.status.success() {
            verified.push(id);
        } else {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            cp.fail(
                trial,
                fault,
                format!("DONE backup {id} fails verify-backup: {err}"),
            );
        }
    }
}

/// A row committed now, its segment switched out and archived: every row committed
/// before it must come back from a restore to the latest point.
fn check_restore(
    cp: &mut Campaign,
    c: &mut Cluster,
    pg: &barkeep_testkit::PgInstall,
    trial: usize,
    fault: Fault,
) {
    if !c.is_running() {
        c.start().expect("start");
    }
    cp.marker += 1;
    let marker = 1_000_000_000 + cp.marker;
    c.psql(&format!("INSERT INTO committed (id) VALUES ({marker})"))
        .expect("marker row");
    let ids = {
        let mut committed = cp.committed.lock().expect("lock");
        committed.push(marker);
        committed.clone()
    };
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cp
        .archived()
        .iter()
        .any(|n| n[8..] >= last[8..] && n[..8] >= last[..8])
    {
        if Instant::now() > deadline {
            let log = cp.log("receiver.log");
            cp.fail(
                trial,
                fault,
                format!("segment {last} never archived:\n{log}"),
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut target = ClusterBuilder::new(pg).create().expect("target");
    let dest = target.data_dir().to_path_buf();
    std::fs::remove_dir_all(&dest).expect("empty target");
    let out = cp
        .cmd(&["restore", "pg", "latest", dest.to_str().expect("utf-8")])
        .output()
        .expect("restore");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        cp.fail(trial, fault, format!("restore latest: {err}"));
        return;
    }
    target.adopt_data_dir("").expect("adopt");
    if let Err(e) = target
        .start()
        .and_then(|()| target.wait_for_recovery_end(Duration::from_secs(180)))
    {
        cp.fail(
            trial,
            fault,
            format!("the restored server does not start: {e:?}"),
        );
        return;
    }
    // Compared here: an IN list of every id would not fit on a command line.
    let restored: std::collections::BTreeSet<i64> = target
        .query_rows("SELECT id FROM committed")
        .expect("rows")
        .into_iter()
        .filter_map(|r| r.first().and_then(|v| v.parse().ok()))
        .collect();
    let present = ids
        .iter()
        .filter(|id| restored.contains(id))
        .count()
        .to_string();
    if present != ids.len().to_string() {
        cp.fail(
            trial,
            fault,
            format!("restored {present} of {} committed rows", ids.len()),
        );
    } else {
        eprintln!(
            "restore to the latest point holds all {} committed rows",
            ids.len()
        );
    }
}

/// A failover can lose the primary's last commits (not barkeep's doing): rows the new
/// primary does not have are no longer expected from a restore.
fn forget_rows_lost_in_failover(cp: &Campaign, c: &Cluster) {
    let mut committed = cp.committed.lock().expect("lock");
    let have: std::collections::BTreeSet<i64> = c
        .query_rows("SELECT id FROM committed")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.first().and_then(|v| v.parse().ok()))
        .collect();
    let before = committed.len();
    committed.retain(|id| have.contains(id));
    if committed.len() != before {
        eprintln!(
            "failover lost {} commit(s) of the old primary",
            before - committed.len()
        );
    }
}

/// A real failover: a standby made with pg_basebackup -R catches up, the primary stops
/// (fast: it sends all its WAL first), the standby is promoted (timeline switch) and
/// becomes the server everyone talks to.
fn promote_standby(
    cp: &mut Campaign,
    c: &mut Cluster,
    pg: &barkeep_testkit::PgInstall,
    trial: usize,
) {
    let copy = cp.dir.path().join("standby-copy");
    let _ = std::fs::remove_dir_all(&copy);
    let mut bb = c.tool_command("pg_basebackup").expect("pg_basebackup");
    bb.arg("-h")
        .arg(c.socket_dir())
        .args([
            "-p",
            &c.port().to_string(),
            "-U",
            "postgres",
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&copy);
    barkeep_testkit::run(bb, "pg_basebackup -R").expect("standby base backup");
    let mut standby = ClusterBuilder::new(pg).create().expect("standby");
    standby
        .replace_data_dir(&copy, "hot_standby = on\n")
        .expect("standby data");
    let _ = std::fs::remove_dir_all(&copy);
    standby.start().expect("start standby");
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .query_value("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        .map(|n| n == "0")
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the standby does not stream");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A switchover done with care: barkeep has received the WAL up to now before the
    // primary goes (what it misses during the shutdown the new primary still has). WAL
    // that neither barkeep nor the standby ever received cannot be archived by anyone.
    let lsn = c.query_value("SELECT pg_current_wal_lsn()").expect("lsn");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !c
        .query_value(&format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'barman_receive_wal' AND write_lsn >= '{lsn}'"
        ))
        .is_ok_and(|n| n == "1")
    {
        if Instant::now() > deadline {
            cp.fail(trial, Fault::Promote, format!("barkeep's receiver did not reach {lsn} within 90 s"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    c.stop(StopMode::Fast).expect("stop the primary");
    standby.promote().expect("promote");
    std::mem::swap(c, &mut standby);
    drop(standby);
    eprintln!(
        "promoted a standby: now writing {}",
        c.query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
            .unwrap_or_default()
    );
}

fn final_checks(
    cp: &mut Campaign,
    c: &mut Cluster,
    pg: &barkeep_testkit::PgInstall,
    verified: &mut Vec<String>,
) {
    let t = usize::MAX;
    if let Err(e) = cp.receiver_alive() {
        cp.fail(t, Fault::KillReceiver, e);
    }
    check_restore(cp, c, pg, t, Fault::KillRestore);
    check_wal(cp, t, Fault::KillReceiver);
    check_backups(cp, t, Fault::KillBackup, verified);
    eprintln!(
        "{} segments identical to pg_receivewal's ({} archived); {} DONE backups verified",
        cp.compared.len(),
        cp.archived().len(),
        verified.len()
    );
}
