//! `barkeep daemon`: the service that runs all the time. Per usable server, a supervised
//! set of tasks scheduling engine operations — it reimplements none of them:
//!
//! - the WAL receiver (`streaming_archiver = on`), restarted at once with back-off when it
//!   ends (never two: it holds the server's `receive-wal` lock, also across a restart of
//!   the daemon); it archives each segment as it completes and promotes waiting backups;
//! - `archive-wal` for `incoming/` (`archiver = on`) as files arrive;
//! - scheduled base backups (`backup_schedule`, in `schedule_timezone`, with
//!   `backup_schedule_jitter`), at most `max_concurrent_backups` host-wide; one that finds
//!   a backup running for its server skips with a log line;
//! - retention (`retention_schedule`) and `check` (`check_schedule`).
//!
//! Inactive servers and servers with a refused setting are reported and left alone.
//! SIGTERM/SIGINT stop it: receivers stop at a durable point, a backup still running is
//! abandoned and marked FAILED; SIGHUP re-reads the configuration: servers added start,
//! removed stop, changed restart, the others run on untouched, and a configuration that
//! does not load is rejected with its errors while the old one stays in force. What it is
//! doing is in a state file `barkeep status` reads (`barkeep_engine::running_daemon`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barkeep_archive::lock::LockFile;
use barkeep_config::Config;
use barkeep_engine::{
    BackupOpts, CancellationToken, DAEMON_LOCK, DaemonState, Engine, EngineError, EventSink,
    ReceiveOpts, Server, ServerState,
};
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

mod metrics;
mod schedule;

pub use schedule::{Schedule, jitter_for};

/// How long stopping may take before running tasks are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Shared by every task.
#[derive(Clone)]
struct Shared {
    backups: Arc<Semaphore>,
    counters: Arc<metrics::Counters>,
    state: Arc<Mutex<DaemonState>>,
    config: Arc<Mutex<Arc<Config>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("daemon state")
    }
}

impl Shared {
    /// Changes one server's state and writes the state file.
    fn update(&self, server: &str, f: impl FnOnce(&mut ServerState)) {
        let snapshot = match self.state.lock() {
            Ok(mut st) => {
                f(st.servers.entry(server.to_string()).or_default());
                st.clone()
            }
            Err(_) => return,
        };
        let config = self.config.lock().map(|c| c.clone());
        if let Ok(config) = config
            && let Err(e) = barkeep_engine::write_daemon_state(&config, &snapshot)
        {
            tracing::warn!(
                "cannot write the daemon's state file: {}",
                barkeep_engine::render(&e)
            );
        }
    }
}

/// The tasks of one server.
struct Jobs {
    token: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    fingerprint: String,
}

/// What identifies a server's configuration: its effective values (not where they were
/// written), so that editing another section changes nothing here.
fn fingerprint(s: &Server) -> String {
    let values: Vec<String> = s
        .settings()
        .settings
        .0
        .iter()
        .map(|(k, v)| format!("{k}={:?}", v.value))
        .collect();
    format!(
        "{}|{}",
        values.join(";"),
        s.settings().disabled_reasons.join(";")
    )
}

/// Runs the daemon on the configuration at `path` until SIGTERM or SIGINT.
pub async fn run(path: PathBuf, sink: impl EventSink + Clone + 'static) -> Result<(), EngineError> {
    let config = load(&path)?;
    let lock_dir = config
        .global
        .path("barman_lock_directory")
        .unwrap_or_else(|| config.barman_home())
        .to_path_buf();
    let _lock = match LockFile::try_acquire_global(&lock_dir, DAEMON_LOCK) {
        Ok(l) => l,
        Err(barkeep_archive::ArchiveError::Locked { pid, .. }) => {
            return Err(EngineError::Refused(format!(
                "another barkeep daemon is running for this configuration{} (lock {})",
                pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
                lock_dir.join(format!(".{DAEMON_LOCK}.lock")).display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    barkeep_engine::catalog_group(&config)?;
    let counters = Arc::new(metrics::Counters::default());
    let sink = metrics::CountingSink {
        inner: sink,
        counters: counters.clone(),
    };
    let shared = Shared {
        backups: Arc::new(Semaphore::new(max_backups(&config))),
        counters: counters.clone(),
        state: Arc::new(Mutex::new(DaemonState {
            pid: std::process::id(),
            started: Some(Utc::now()),
            servers: BTreeMap::new(),
        })),
        config: Arc::new(Mutex::new(Arc::new(config.clone()))),
    };
    let mut engine = Engine::new(config).with_events(sink.clone());
    let current = Arc::new(Mutex::new(engine.clone()));
    let mut running: BTreeMap<String, Jobs> = BTreeMap::new();
    apply(&engine, &mut running, &shared);
    // Metrics and health over HTTP, when asked for.
    let http_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http = match engine.config().global.str("metrics_address") {
        Some(addr) => {
            let token = match engine.config().global.path("metrics_token_file") {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| EngineError::io("read metrics_token_file", p, e))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            Some(
                metrics::serve(
                    addr,
                    token,
                    current.clone(),
                    counters.clone(),
                    tokio::runtime::Handle::current(),
                    http_stop.clone(),
                )
                .map_err(EngineError::Usage)?,
            )
        }
        None => None,
    };
    tracing::info!(
        "barkeep daemon running (PID {}) for {} server(s)",
        std::process::id(),
        running.len()
    );

    // systemd (`Type=notify`): ready now; the watchdog pinged at half its period by the
    // runtime itself, so a wedged runtime is restarted.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|period| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period / 2).await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    });

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| EngineError::Failed(format!("cannot listen for SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| EngineError::Failed(format!("cannot listen for SIGINT: {e}")))?;
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| EngineError::Failed(format!("cannot listen for SIGHUP: {e}")))?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                match load(&path) {
                    Ok(new) => {
                        tracing::info!("SIGHUP: configuration {} re-read", path.display());
                        if let Err(e) = barkeep_engine::catalog_group(&new) {
                            tracing::error!("the new configuration is rejected: {}", barkeep_engine::render(&e));
                            continue;
                        }
                        if let Ok(mut c) = shared.config.lock() {
                            *c = Arc::new(new.clone());
                        }
                        engine = Engine::new(new).with_events(sink.clone());
                        if let Ok(mut c) = current.lock() {
                            *c = engine.clone();
                        }
                        apply(&engine, &mut running, &shared);
                    }
                    Err(e) => tracing::error!(
                        "SIGHUP: the new configuration is rejected, the old one stays in force: {}",
                        barkeep_engine::render(&e)
                    ),
                }
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    http_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    stop_all(&engine, running).await;
    if let Some(h) = http {
        let _ = h.join();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = std::fs::remove_file(barkeep_engine::daemon_state_path(engine.config()));
    Ok(())
}

fn load(path: &Path) -> Result<Config, EngineError> {
    barkeep_config::load(path).map_err(|e| EngineError::Usage(e.to_string()))
}

fn max_backups(config: &Config) -> usize {
    config
        .global
        .int("max_concurrent_backups")
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(2)
        .max(1)
}

/// Starts, stops and restarts servers so that what runs matches `engine`'s configuration.
fn apply(engine: &Engine, running: &mut BTreeMap<String, Jobs>, shared: &Shared) {
    let wanted: BTreeMap<String, Server> = engine
        .all_servers()
        .into_iter()
        .map(|s| (s.name().to_string(), s))
        .collect();
    let names: Vec<String> = running.keys().cloned().collect();
    for name in names {
        let keep = wanted.get(&name).is_some_and(|s| {
            running
                .get(&name)
                .is_some_and(|j| j.fingerprint == fingerprint(s))
        });
        if !keep && let Some(jobs) = running.remove(&name) {
            tracing::info!(server = %name, "configuration changed or server removed: stopping its tasks");
            jobs.token.cancel();
            if let Ok(mut st) = shared.state.lock() {
                st.servers.remove(&name);
            }
            // Its receiver stops at a durable point by itself; nothing waits for it here.
        }
    }
    for (name, s) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        let cfg = s.settings();
        if cfg.disabled() || !cfg.active() {
            let why = if cfg.disabled() {
                format!("disabled: {}", cfg.disabled_reasons.join("; "))
            } else {
                "inactive (active = false)".to_string()
            };
            tracing::warn!(server = %name, "left alone: {why}");
            shared.update(&name, |st| st.left_alone = Some(why.clone()));
            continue;
        }
        if cfg.passive() {
            continue;
        }
        let jobs = start(&s, shared);
        running.insert(name, jobs);
    }
}

fn start(s: &Server, shared: &Shared) -> Jobs {
    let token = CancellationToken::new();
    let mut handles = Vec::new();
    let t = s.typed().clone();
    let name = s.name().to_string();
    shared.update(&name, |st| *st = ServerState::default());
    if t.streaming_archiver {
        handles.push(tokio::spawn(receiver(
            s.clone(),
            token.clone(),
            shared.clone(),
        )));
    } else {
        shared.update(&name, |st| {
            st.receiver = "off (streaming_archiver = off)".into()
        });
    }
    if t.archiver {
        handles.push(tokio::spawn(incoming(s.clone(), token.clone())));
    }
    let tz = t.schedule_timezone;
    if let Some(b) = &t.backup_schedule {
        match Schedule::parse(b, tz) {
            Ok(sched) => handles.push(tokio::spawn(scheduled(
                s.clone(),
                token.clone(),
                shared.clone(),
                Job::Backup,
                sched,
                t.backup_schedule_jitter.clone(),
            ))),
            Err(e) => tracing::error!(server = %name, "backup_schedule = {b}: {e}"),
        }
    }
    if let Some(d) = &t.drill_schedule {
        match Schedule::parse(d, tz) {
            Ok(sched) => handles.push(tokio::spawn(scheduled(
                s.clone(),
                token.clone(),
                shared.clone(),
                Job::Drill,
                sched,
                "0".into(),
            ))),
            Err(e) => tracing::error!(server = %name, "drill_schedule = {d}: {e}"),
        }
    }
    for (job, text) in [
        (Job::Retention, &t.retention_schedule),
        (Job::Check, &t.check_schedule),
    ] {
        match Schedule::parse(text, tz) {
            Ok(sched) => handles.push(tokio::spawn(scheduled(
                s.clone(),
                token.clone(),
                shared.clone(),
                job,
                sched,
                "0".into(),
            ))),
            Err(e) => tracing::error!(server = %name, "{} = {text}: {e}", job.key()),
        }
    }
    Jobs {
        token,
        handles,
        fingerprint: fingerprint(s),
    }
}

/// Stops everything: tokens cancelled, tasks given [`STOP_GRACE`] to end, the rest
/// abandoned; a backup abandoned that way is then marked FAILED.
async fn stop_all(engine: &Engine, running: BTreeMap<String, Jobs>) {
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    let mut abandoned = Vec::new();
    for (_, jobs) in running.iter() {
        jobs.token.cancel();
    }
    for (name, jobs) in running {
        for h in jobs.handles {
            let mut h = h;
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                h.abort();
                let _ = h.await;
                if !abandoned.contains(&name) {
                    abandoned.push(name.clone());
                }
            }
        }
    }
    for name in abandoned {
        if let Ok(s) = engine.server(&name) {
            match s.recover_interrupted() {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(server = %name, "stopping: backup(s) {} did not finish and are FAILED", ids.join(", "))
                }
                Ok(_) => {}
                Err(e) => tracing::error!(server = %name, "{}", barkeep_engine::render(&e)),
            }
        }
    }
}

/// The WAL receiver, restarted with back-off (1 s doubling to 60 s; back to 1 s after a
/// minute of streaming) until cancelled.
async fn receiver(s: Server, token: CancellationToken, shared: Shared) {
    let name = s.name().to_string();
    let mut backoff = Duration::from_secs(1);
    loop {
        if token.is_cancelled() {
            break;
        }
        shared.update(&name, |st| st.receiver = "running".into());
        let started = Instant::now();
        let r = s
            .receive_wal(ReceiveOpts::default(), token.child_token())
            .await;
        if token.is_cancelled() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        let why = match r {
            Ok(_) => "it ended".to_string(),
            Err(e) if e.is_locked() => {
                "another receive-wal holds the server's lock (a `barkeep receive-wal` or `cron` started it)".to_string()
            }
            Err(e) => barkeep_engine::render(&e),
        };
        tracing::warn!(server = %name, "receive-wal: {why}; restarting in {} s", backoff.as_secs());
        shared.update(&name, |st| {
            st.receiver = format!("restarting in {} s ({why})", backoff.as_secs())
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = token.cancelled() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
    shared.update(&name, |st| st.receiver = "stopped".into());
}

/// `archive-wal` for `incoming/` whenever files are there (checked every 2 s).
async fn incoming(s: Server, token: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = token.cancelled() => break,
        }
        if !s.incoming_waiting() {
            continue;
        }
        let srv = s.clone();
        match tokio::task::spawn_blocking(move || srv.archive_wal()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.is_locked() => {}
            Ok(Err(e)) => {
                tracing::warn!(server = %s.name(), "archive-wal: {}", barkeep_engine::render(&e))
            }
            Err(e) => tracing::error!(server = %s.name(), "archive-wal task: {e}"),
        }
    }
}

/// A scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Backup,
    Retention,
    Check,
    Drill,
}

impl Job {
    fn key(self) -> &'static str {
        match self {
            Job::Backup => "backup_schedule",
            Job::Retention => "retention_schedule",
            Job::Check => "check_schedule",
            Job::Drill => "drill_schedule",
        }
    }
}

async fn scheduled(
    s: Server,
    token: CancellationToken,
    shared: Shared,
    job: Job,
    sched: Schedule,
    jitter: String,
) {
    let name = s.name().to_string();
    loop {
        let now = Utc::now();
        let Some(next) = sched.next_after(now) else {
            tracing::warn!(server = %name, "{}: no future occurrence; the job stops", job.key());
            break;
        };
        let delay = jitter_for(&jitter, &sched, next);
        let at = next + chrono::Duration::from_std(delay).unwrap_or_default();
        shared.update(&name, |st| match job {
            Job::Backup => st.next_backup = Some(at),
            Job::Retention => st.next_retention = Some(at),
            Job::Check => st.next_check = Some(at),
            Job::Drill => st.next_drill = Some(at),
        });
        let wait = (at - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = token.cancelled() => break,
        }
        match job {
            Job::Backup => run_backup(&s, &shared, &token).await,
            Job::Retention => {
                let srv = s.clone();
                match tokio::task::spawn_blocking(move || srv.retention(false)).await {
                    Ok(Ok(d)) if !d.deleted.is_empty() || d.wal_removed > 0 => tracing::info!(
                        server = %name,
                        "retention: removed {} backup(s) and {} WAL file(s)",
                        d.deleted.len(),
                        d.wal_removed
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if e.is_locked() => {
                        tracing::info!(server = %name, "retention: a backup or delete is running; next time")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(server = %name, "retention: {}", barkeep_engine::render(&e))
                    }
                    Err(e) => tracing::error!(server = %name, "retention task: {e}"),
                }
            }
            Job::Drill => match s.drill("latest").await {
                Ok(r) if r.success => tracing::info!(
                    server = %name,
                    "drill of backup {} passed in {:.1} s",
                    r.backup_id,
                    r.duration_seconds
                ),
                Ok(r) => tracing::error!(
                    server = %name,
                    "drill of backup {} FAILED: {}",
                    r.backup_id,
                    r.error.as_deref().unwrap_or("")
                ),
                Err(e) => tracing::error!(server = %name, "drill: {}", barkeep_engine::render(&e)),
            },
            Job::Check => {
                let report = s.check(None).await;
                let failed: Vec<String> = report
                    .items
                    .iter()
                    .filter(|i| !i.ok)
                    .map(|i| i.name.clone())
                    .collect();
                if !failed.is_empty() {
                    tracing::warn!(server = %name, "check: FAILED {}", failed.join(", "));
                }
                shared.update(&name, |st| st.last_check_failed = Some(failed));
                shared.counters.checked(report);
            }
        }
    }
}

async fn run_backup(s: &Server, shared: &Shared, token: &CancellationToken) {
    let name = s.name().to_string();
    if s.backup_running() {
        tracing::info!(server = %name, "scheduled backup skipped: a backup of this server is running");
        return;
    }
    let permit = tokio::select! {
        p = shared.backups.clone().acquire_owned() => p,
        _ = token.cancelled() => return,
    };
    let Ok(_permit) = permit else {
        return;
    };
    tracing::info!(server = %name, "scheduled backup starting");
    let opts = BackupOpts::default();
    let result = tokio::select! {
        r = s.backup(&opts) => r,
        _ = token.cancelled() => {
            tracing::warn!(server = %name, "stopping: the running backup is abandoned");
            let _ = s.recover_interrupted();
            return;
        }
    };
    let text = match result {
        Ok(d) => {
            tracing::info!(server = %name, "scheduled backup {} is {}", d.backup_id, d.status);
            format!("{} {} at {}", d.backup_id, d.status, fmt(Utc::now()))
        }
        Err(e) => {
            let e = barkeep_engine::render(&e);
            tracing::error!(server = %name, "scheduled backup failed: {e}");
            format!("FAILED at {}: {e}", fmt(Utc::now()))
        }
    };
    shared.update(&name, |st| st.last_backup = Some(text));
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
