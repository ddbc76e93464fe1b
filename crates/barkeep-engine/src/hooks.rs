//! Hook scripts, as Barman runs them (`barman/hooks.py`): for each event (`backup`,
//! `archive`, `delete`, `wal_delete`, `recovery`) the standard pre script, the retry pre
//! script, the operation, the retry post script, the standard post script; the same
//! `BARMAN_*` environment; a standard script's exit code is only logged; a retry script
//! runs again until it exits 0 (success), 62 (stop retrying, go on) or 63 (stop; before
//! the operation, the operation is aborted), sleeping 3 s between attempts and 60 s
//! after every 5 failed ones.
//!
//! Unlike Barman, no shell: the configured line is split into words with the shell's
//! quoting rules and run as argv (lines that need a shell are refused when the
//! configuration is loaded); and a hook may have a time limit (`hook_timeout`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_catalog::{BackupInfo, CatalogOps, LocalCatalog};

use crate::Server;
use crate::error::{EngineError, Result};

/// The Barman version whose hook interface barkeep implements: what `BARMAN_VERSION`
/// says, so that scripts comparing it keep working. `BARKEEP_VERSION` has barkeep's.
pub const BARMAN_COMPAT_VERSION: &str = "3.19.0";

/// Exit codes of retry scripts.
const EXIT_SUCCESS: i32 = 0;
const EXIT_ABORT_CONTINUE: i32 = 62;
const EXIT_ABORT_STOP: i32 = 63;
const ATTEMPTS_BEFORE_NAP: u32 = 5;

/// Pauses of the retry loop (Barman's: 3 s, and 60 s after every 5 failures). Tests may
/// shorten them with `BARKEEP_HOOK_RETRY_PAUSES_MS=<break>,<nap>`.
fn pauses() -> (Duration, Duration) {
    if let Ok(v) = std::env::var("BARKEEP_HOOK_RETRY_PAUSES_MS")
        && let Some((a, b)) = v.split_once(',')
        && let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse())
    {
        return (Duration::from_millis(a), Duration::from_millis(b));
    }
    (Duration::from_secs(3), Duration::from_secs(60))
}

/// Before or after the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `pre`.
    Pre,
    /// `post`.
    Post,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// The hook environment of one event, without the variables that depend on the script
/// (`BARMAN_HOOK`, `BARMAN_PHASE`, `BARMAN_RETRY`).
pub(crate) type Env = BTreeMap<&'static str, String>;

/// One run of a hook, as reported.
#[derive(Debug, Clone)]
struct Ran {
    status: Option<i32>,
    output: String,
    timed_out: bool,
}

impl Server {
    fn hook_line(&self, key: &str) -> Option<Vec<String>> {
        let line = self.settings().str(key)?;
        // The configuration refused lines that need a shell; what is left splits.
        shell_words::split(line).ok().filter(|w| !w.is_empty())
    }

    /// Whether any script is configured for `event`.
    pub(crate) fn has_hooks(&self, event: &str) -> bool {
        ["pre", "post"].iter().any(|p| {
            self.settings()
                .str(&format!("{p}_{event}_script"))
                .is_some()
                || self
                    .settings()
                    .str(&format!("{p}_{event}_retry_script"))
                    .is_some()
        })
    }

    /// Runs the scripts of `event` for `phase`: before the operation the standard one
    /// then the retry one; after it the retry one then the standard one. `Err` only when
    /// a pre retry script asks to stop (63): the operation must not run.
    pub(crate) fn run_hooks(
        &self,
        event: &str,
        phase: Phase,
        env: &Env,
        standard_env: Option<&Env>,
    ) -> Result<()> {
        let standard = || {
            self.run_standard(event, phase, standard_env.unwrap_or(env));
        };
        if phase == Phase::Pre {
            standard();
        }
        let retry = self.run_retry(event, phase, env);
        if phase == Phase::Post {
            standard();
        }
        retry
    }

    fn base_env(&self, hook: &str, phase: Phase, retry: bool, env: &Env) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        e.push(("BARMAN_VERSION".into(), BARMAN_COMPAT_VERSION.into()));
        e.push(("BARKEEP_VERSION".into(), env!("CARGO_PKG_VERSION").into()));
        e.push(("BARMAN_SERVER".into(), self.name().into()));
        e.push((
            "BARMAN_CONFIGURATION".into(),
            self.config().main_file.display().to_string(),
        ));
        e.push(("BARMAN_HOOK".into(), hook.into()));
        e.push(("BARMAN_PHASE".into(), phase.word().into()));
        e.push(("BARMAN_RETRY".into(), if retry { "1" } else { "0" }.into()));
        e
    }

    fn run_standard(&self, event: &str, phase: Phase, env: &Env) {
        let key = format!("{}_{event}_script", phase.word());
        let Some(argv) = self.hook_line(&key) else {
            return;
        };
        let hook = format!("{event}_script");
        let ran = self.run_once(&key, &argv, self.base_env(&hook, phase, false, env));
        self.report(&key, &argv, &ran);
    }

    fn run_retry(&self, event: &str, phase: Phase, env: &Env) -> Result<()> {
        let key = format!("{}_{event}_retry_script", phase.word());
        let Some(argv) = self.hook_line(&key) else {
            return Ok(());
        };
        let hook = format!("{event}_retry_script");
        let vars = self.base_env(&hook, phase, true, env);
        let (pause, nap) = pauses();
        let mut attempts = 1;
        let status = loop {
            let ran = self.run_once(&key, &argv, vars.clone());
            match ran.status {
                Some(s @ (EXIT_SUCCESS | EXIT_ABORT_CONTINUE | EXIT_ABORT_STOP)) => {
                    if s == EXIT_SUCCESS {
                        tracing::debug!(server = %self.name(), "{key} returned 0");
                    }
                    break s;
                }
                _ => {
                    self.report(&key, &argv, &ran);
                    let wait = if attempts <= ATTEMPTS_BEFORE_NAP {
                        attempts += 1;
                        pause
                    } else {
                        attempts = 1;
                        nap
                    };
                    tracing::info!(server = %self.name(), "{key}: retrying in {} s", wait.as_secs_f64());
                    std::thread::sleep(wait);
                }
            }
        };
        let line = argv.join(" ");
        match (status, phase) {
            (EXIT_ABORT_CONTINUE, _) => {
                self.events.warning(
                    self.name(),
                    format!("{line} was aborted (got exit status 62, barkeep resumes)"),
                );
                Ok(())
            }
            (EXIT_ABORT_STOP, Phase::Pre) => Err(EngineError::Refused(format!(
                "{line} was aborted (got exit status 63, barkeep requested to stop): the {} of server `{}` did not run",
                event.replace('_', "-"),
                self.name()
            ))),
            (EXIT_ABORT_STOP, Phase::Post) => {
                self.events.warning(
                    self.name(),
                    format!(
                        "Ignoring stop request after receiving abort (exit code 63) from post-{} retry hook script: {line}",
                        event.replace('_', "-")
                    ),
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Runs a hook once: argv, the hook environment on top of this process's, `PATH`
    /// with `path_prefix` first, stdin closed, output captured; killed after
    /// `hook_timeout` seconds when set.
    fn run_once(&self, key: &str, argv: &[String], env: Vec<(String, String)>) -> Ran {
        let timeout = self.typed().hook_timeout;
        barkeep_archive::durable::blocking_io(|| {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(prefix) = &self.typed().path_prefix {
                let path = std::env::var("PATH").unwrap_or_default();
                cmd.env("PATH", format!("{prefix}:{path}"));
            }
            // Its own process group, so that a timeout stops what it started too.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            tracing::debug!(server = %self.name(), "running {key}: {argv:?}");
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    return Ran {
                        status: None,
                        output: format!("cannot run `{}`: {e}", argv[0]),
                        timed_out: false,
                    };
                }
            };
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let mut readers = 0;
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let tx = tx.clone();
                readers += 1;
                std::thread::spawn(move || {
                    let mut pipe = pipe;
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    let _ = tx.send(buf);
                });
            }
            drop(tx);
            let started = Instant::now();
            let mut timed_out = false;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break s.code(),
                    Ok(None) => {}
                    Err(_) => break None,
                }
                if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout) {
                    if let Ok(pid) = i32::try_from(child.id()) {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    timed_out = true;
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            // The output, unless something the hook left running keeps its pipes open.
            let mut output = String::new();
            for _ in 0..readers {
                match rx.recv_timeout(Duration::from_secs(2)) {
                    Ok(buf) => output.push_str(&String::from_utf8_lossy(&buf)),
                    Err(_) => break,
                }
            }
            Ran {
                status,
                output,
                timed_out,
            }
        })
    }

    /// Logs a run; a failure is shown as a warning with the script's output.
    fn report(&self, key: &str, argv: &[String], ran: &Ran) {
        let line = argv.join(" ");
        match (ran.status, ran.timed_out) {
            (Some(0), _) => {
                tracing::debug!(server = %self.name(), "{key}: {line} returned 0");
            }
            (_, true) => self.events.warning(
                self.name(),
                format!(
                    "{key}: {line} was killed after hook_timeout = {} s\nOutput details:\n{}",
                    self.typed().hook_timeout,
                    ran.output
                ),
            ),
            (Some(code), _) => self.events.warning(
                self.name(),
                format!(
                    "{key}: {line} returned {code}\nOutput details:\n{}",
                    ran.output
                ),
            ),
            (None, _) => self
                .events
                .warning(self.name(), format!("{key}: {line} failed: {}", ran.output)),
        }
    }

    /// `env_from_backup_info`: the backup's directory, metadata file, id, neighbours
    /// (DONE or WAITING_FOR_WALS), status and error.
    pub(crate) fn backup_env(&self, cat: &LocalCatalog, b: &BackupInfo) -> Env {
        let mut previous = String::new();
        let mut next = String::new();
        if let Ok(all) = cat.list() {
            let pos = all.iter().position(|x| x.backup_id == b.backup_id);
            let (before, after) = match pos {
                Some(p) => (&all[..p], &all[p + 1..]),
                None => {
                    let p = all.partition_point(|x| x.backup_id < b.backup_id);
                    (&all[..p], &all[p..])
                }
            };
            if let Some(x) = before.iter().rev().find(|x| x.is_usable()) {
                previous = x.backup_id.clone();
            }
            if let Some(x) = after.iter().find(|x| x.is_usable()) {
                next = x.backup_id.clone();
            }
        }
        let mut env = Env::new();
        env.insert(
            "BARMAN_BACKUP_DIR",
            cat.backup_root(&b.backup_id).display().to_string(),
        );
        env.insert(
            "BARMAN_BACKUP_INFO_PATH",
            cat.info_path(&b.backup_id).display().to_string(),
        );
        env.insert("BARMAN_BACKUP_ID", b.backup_id.clone());
        env.insert("BARMAN_PREVIOUS_ID", previous);
        env.insert("BARMAN_NEXT_ID", next);
        env.insert("BARMAN_STATUS", b.status.as_str().to_string());
        env.insert("BARMAN_ERROR", b.error.clone().unwrap_or_default());
        env
    }
}

/// The archive hooks of a server, called by the archiver around each file it commits
/// (from `archive-wal`, `cron` and the receiver).
#[derive(Debug)]
pub(crate) struct ArchiveHookRunner(pub(crate) Server);

fn compression_word(codec: barkeep_archive::Codec) -> Option<&'static str> {
    match codec {
        barkeep_archive::Codec::None => None,
        c => Some(c.name()),
    }
}

impl barkeep_archive::ArchiveHooks for ArchiveHookRunner {
    fn pre_archive(&self, f: &barkeep_archive::ArchivedFile) -> std::result::Result<(), String> {
        let env = wal_env(
            &f.name,
            &f.path,
            f.size,
            f.time,
            compression_word(f.codec),
            None,
        );
        self.0
            .run_hooks("archive", Phase::Pre, &env, None)
            .map_err(|e| crate::render(&e))
    }

    fn post_archive(&self, f: &barkeep_archive::ArchivedFile, error: Option<&str>) {
        let codec = compression_word(f.codec);
        let env = wal_env(&f.name, &f.path, f.size, f.time, codec, error);
        // Barman's standard post-archive script gets BARMAN_ERROR="" (its environment is
        // rebuilt without the error); the retry one gets the error.
        let standard = wal_env(&f.name, &f.path, f.size, f.time, codec, None);
        let _ = self
            .0
            .run_hooks("archive", Phase::Post, &env, Some(&standard));
    }
}

/// `env_from_wal_info`: a WAL file's name, path, size, time (seconds since the epoch, as
/// Python prints a float), compression and error.
pub(crate) fn wal_env(
    name: &str,
    path: &Path,
    size: u64,
    time: f64,
    compression: Option<&str>,
    error: Option<&str>,
) -> Env {
    let mut env = Env::new();
    env.insert("BARMAN_SEGMENT", name.to_string());
    env.insert("BARMAN_FILE", path.display().to_string());
    env.insert("BARMAN_SIZE", size.to_string());
    env.insert("BARMAN_TIMESTAMP", py_float(time));
    env.insert("BARMAN_COMPRESSION", compression.unwrap_or("").to_string());
    env.insert("BARMAN_ERROR", error.unwrap_or("").to_string());
    env
}

/// A value of Barman's `BARMAN_RECOVER_OPTIONS` / `BARMAN_TABLESPACES` JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PyVal {
    /// A string.
    Str(String),
    /// `true`.
    True,
}

/// Python's `json.dumps(d, sort_keys=True)`: `{"a": "x", "b": true}`, non-ASCII escaped.
pub(crate) fn py_json(map: &BTreeMap<String, PyVal>) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::from("{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        string(k, &mut out);
        out.push_str(": ");
        match v {
            PyVal::Str(s) => string(s, &mut out),
            PyVal::True => out.push_str("true"),
        }
    }
    out.push('}');
    out
}

/// Python's `str(float)`: the shortest text that reads back the same, with `.0` on whole
/// numbers.
pub(crate) fn py_float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn json_is_pythons() {
        use super::{PyVal, py_json};
        let mut m = std::collections::BTreeMap::new();
        m.insert(
            "target_time".to_string(),
            PyVal::Str("2026-01-01 00:00:00".into()),
        );
        m.insert("standby_mode".to_string(), PyVal::True);
        m.insert("tbs".to_string(), PyVal::Str("/d/é\"x".into()));
        assert_eq!(
            py_json(&m),
            r#"{"standby_mode": true, "target_time": "2026-01-01 00:00:00", "tbs": "/d/\u00e9\"x"}"#
        );
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        assert_eq!(py_float(1700000000.0), "1700000000.0");
        assert_eq!(py_float(1733100000.25), "1733100000.25");
    }
}
