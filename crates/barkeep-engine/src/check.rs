//! `check` and `status`, item for item as Barman 3.19 reports them (names, order, hints —
//! checked against Barman's own output), so that monitoring built on `barman check`
//! (console, `-f json`, `--nagios`) keeps working. Items that name PostgreSQL tools
//! barkeep does not need (`pg_basebackup`, `pg_receivexlog`, their `compatible` checks)
//! are reported OK with a hint saying so; hints that tell what to run name barkeep.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use barkeep_archive::lock::LockFile;
use barkeep_catalog::{BackupInfo, CatalogOps, CatalogStore, LocalCatalog, Status, WalRange};
use barkeep_pg::Connection;
use chrono::Utc;
use serde::Serialize;

use crate::backup::human_size;
use crate::{Engine, Server, server};

/// One check item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    /// Barman's name (`PostgreSQL`, `replication slot`…).
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What it found, or what to do.
    pub hint: Option<String>,
    /// Nagios performance data (bytes), for `backup minimum size` and `wal size`.
    pub perfdata: Option<u64>,
}

impl CheckItem {
    /// The JSON key Barman derives from the name: lower case, spaces and dashes to
    /// underscores, dots removed.
    pub fn key(&self) -> String {
        self.name
            .to_lowercase()
            .replace([' ', '-'], "_")
            .replace('.', "")
    }
}

/// The checks of one server.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Server.
    pub server: String,
    /// `active`.
    pub active: bool,
    /// Disabled by the configuration.
    pub disabled: bool,
    /// The items, in Barman's order.
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// Whether every item passed.
    pub fn ok(&self) -> bool {
        self.items.iter().all(|i| i.ok)
    }
    /// Whether this report makes `check` fail: a failed item on an active server.
    pub fn fails(&self) -> bool {
        self.active && !self.ok()
    }
}

/// Barman's `human_readable_timedelta`.
pub fn human_timedelta(d: chrono::Duration) -> String {
    let negative = d < chrono::Duration::zero();
    let d = if negative { -d } else { d };
    let secs = d.num_seconds();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, (rest / 60) % 60, rest % 60);
    let mut parts = Vec::new();
    for (n, unit) in [
        (days, "day"),
        (hours, "hour"),
        (minutes, "minute"),
        (seconds, "second"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    let mut human = parts.join(", ");
    if d < chrono::Duration::seconds(1) {
        human = "less than one second".into();
    }
    if negative {
        human.push_str(" ago");
    }
    human
}

/// What the server says about itself, read once for all the items that need it.
#[derive(Debug, Default)]
struct Remote {
    version: Option<u32>,
    version_text: Option<String>,
    connect_error: Option<String>,
    backup_privileges: Option<bool>,
    wal_level: Option<String>,
    in_recovery: Option<bool>,
    systemid: Option<String>,
    streaming: Option<Result<String, String>>,
    slot: Option<Option<barkeep_pg::replication::SlotState>>,
    archive_mode: Option<String>,
    archive_command: Option<String>,
    archiving: Option<bool>,
    data_directory: Option<String>,
    current_size: Option<u64>,
    current_wal: Option<String>,
    summarize_wal: Option<String>,
}

struct Items(Arc<Mutex<Vec<CheckItem>>>);

impl Items {
    fn push(&self, name: &str, ok: bool, hint: Option<String>) {
        self.push_perf(name, ok, hint, None);
    }
    fn push_perf(&self, name: &str, ok: bool, hint: Option<String>, perfdata: Option<u64>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(CheckItem {
                name: name.into(),
                ok,
                hint,
                perfdata,
            });
        }
    }
}

fn native(tool: &str) -> Option<String> {
    Some(format!(
        "barkeep's native client needs no {tool} (the replication protocol is spoken directly)"
    ))
}

impl Server {
    async fn remote(&self) -> Remote {
        let mut r = Remote::default();
        match self.connect_sql().await {
            Ok(mut c) => {
                r.version = c.server_version_num().await.ok();
                r.version_text = c.parameter("server_version").map(str::to_string);
                r.backup_privileges = c.privileges().await.ok().map(|p| p.backup);
                r.wal_level = c.show("wal_level").await.ok();
                r.in_recovery = c.is_in_recovery().await.ok();
                r.systemid = c
                    .query_value("SELECT system_identifier FROM pg_catalog.pg_control_system()")
                    .await
                    .ok()
                    .flatten();
                if let Some(slot) = &self.typed().slot_name {
                    r.slot = c.replication_slot(slot).await.ok();
                }
                r.archive_mode = c.show("archive_mode").await.ok();
                r.archive_command = c.show("archive_command").await.ok();
                r.archiving = c
                    .query_value(
                        "SELECT last_failed_time IS NULL OR last_archived_time > last_failed_time FROM pg_catalog.pg_stat_archiver",
                    )
                    .await
                    .ok()
                    .flatten()
                    .map(|v| v == "t");
                r.data_directory = c.show("data_directory").await.ok();
                if r.version.is_some_and(|v| v >= 170000) {
                    r.summarize_wal = c.show("summarize_wal").await.ok();
                }
                r.current_size = c
                    .query_value("SELECT sum(pg_catalog.pg_database_size(oid))::bigint FROM pg_catalog.pg_database")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|v| v.parse().ok());
                if r.in_recovery == Some(false) {
                    r.current_wal = c
                        .query_value(
                            "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())",
                        )
                        .await
                        .ok()
                        .flatten();
                }
                let _ = c.close().await;
            }
            Err(e) => r.connect_error = Some(crate::render(&e)),
        }
        r.streaming = Some(match self.conn_params("streaming_conninfo", true, None) {
            Ok(p) => match Connection::connect(&p).await {
                Ok(mut c) => {
                    let id = c
                        .identify_system()
                        .await
                        .map(|i| i.system_id.to_string())
                        .map_err(|e| crate::render(&e));
                    let _ = c.close().await;
                    id
                }
                Err(e) => Err(crate::render(&e)),
            },
            Err(e) => Err(crate::render(&e)),
        });
        r
    }

    /// `check`: every item, in Barman's order, within `timeout` (`check_timeout`, or
    /// `--check-timeout`; zero = none). An item that could not run in time is reported
    /// as Barman does: `check timeout: FAILED`.
    pub async fn check(&self, timeout: Option<u64>) -> CheckReport {
        let s = self.settings();
        let items = Arc::new(Mutex::new(Vec::new()));
        let secs = timeout.unwrap_or(self.typed().check_timeout);
        let run = self.check_items(Items(items.clone()));
        let timed_out = if secs > 0 {
            tokio::time::timeout(Duration::from_secs(secs), run)
                .await
                .is_err()
        } else {
            run.await;
            false
        };
        let mut list = items.lock().map(|v| v.clone()).unwrap_or_default();
        if timed_out {
            list.push(CheckItem {
                name: "check timeout".into(),
                ok: false,
                hint: Some(format!(
                    "barkeep check timed out after {secs} s (check_timeout, or --check-timeout)"
                )),
                perfdata: None,
            });
        }
        CheckReport {
            server: s.name.clone(),
            active: s.active(),
            disabled: s.disabled(),
            items: list,
        }
    }

    async fn check_items(&self, out: Items) {
        let t = self.typed().clone();
        let name = self.name().to_string();
        let s = self.settings();
        let cat = self.catalog().ok();
        let remote = if s.active() && !s.disabled() {
            Some(self.remote().await)
        } else {
            None
        };
        // WAL archive (reported only when it fails).
        if let Some(cat) = &cat {
            let mut archived = !cat.wal_index().unwrap_or_default().is_empty()
                || cat
                    .list()
                    .unwrap_or_default()
                    .iter()
                    .any(|b| b.status == Status::WaitingForWals);
            if !archived && !s.disabled() {
                let _ = self.archive_wal_waiting(0);
                archived = !cat.wal_index().unwrap_or_default().is_empty();
            }
            if !archived && remote.as_ref().is_some_and(|r| r.version.is_some()) {
                let wait = (t.check_timeout / 3).max(1);
                let _ = self.switch_wal(false, Some(wait)).await;
                archived = !cat.wal_index().unwrap_or_default().is_empty();
            }
            if !archived {
                out.push(
                    "WAL archive",
                    false,
                    Some("please make sure WAL shipping is setup (streaming_archiver = on with `barkeep cron` or the daemon running receive-wal, or archive_command)".into()),
                );
            }
            for (dir, enabled, key) in [
                (&cat.archive.incoming, t.archiver, "archiver"),
                (
                    &cat.archive.streaming,
                    t.streaming_archiver,
                    "streaming_archiver",
                ),
            ] {
                let mut count = std::fs::read_dir(dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                            .count() as i64
                    })
                    .unwrap_or(0);
                let short = if key == "archiver" {
                    "incoming"
                } else {
                    "streaming"
                };
                if key == "streaming_archiver" {
                    count -= 1;
                }
                if !enabled {
                    if count > 0 {
                        out.push(
                            &format!("empty {short} directory"),
                            false,
                            Some(format!("'{}' must be empty when {key}=off", dir.display())),
                        );
                    }
                    continue;
                }
                if let Some(max) = t.max_incoming_wals_queue
                    && count > max as i64
                {
                    out.push(
                        &format!("{short} WALs directory"),
                        false,
                        Some(format!(
                            "there are too many WALs in queue: {count}, max {max}"
                        )),
                    );
                }
            }
        }
        if let Some(r) = &remote {
            self.check_postgres(&out, r).await;
        }
        // directories
        match &cat {
            Some(c) if !s.disabled() => match c.archive.create_directories() {
                Ok(()) => out.push("directories", true, Some(self.block_sharing().describe())),
                Err(e) => out.push("directories", false, Some(crate::render(&e))),
            },
            Some(_) => {}
            None => out.push(
                "directories",
                false,
                Some("the catalog cannot be opened".into()),
            ),
        }
        out.push("retention policy settings", true, None);
        self.check_backups(&out, cat.as_ref());
        // configuration (path conflicts and refused settings)
        if s.disabled() {
            out.push("configuration", false, Some(s.disabled_reasons.join("; ")));
        }
        // systemid coherence
        let live = remote.as_ref().and_then(|r| {
            r.streaming
                .as_ref()
                .and_then(|x| x.as_ref().ok().cloned())
                .or_else(|| r.systemid.clone())
        });
        let pg_id = remote.as_ref().and_then(|r| r.systemid.clone());
        let stream_id = remote
            .as_ref()
            .and_then(|r| r.streaming.as_ref().and_then(|x| x.as_ref().ok().cloned()));
        match (pg_id, stream_id, live) {
            (Some(a), Some(b), _) if a != b => out.push(
                "systemid coherence",
                false,
                Some("is the streaming DSN targeting the same server of the PostgreSQL connection string?".into()),
            ),
            (_, _, None) => out.push("systemid coherence", true, Some("no system Id available".into())),
            (_, _, Some(id)) => match cat.as_ref().map(|c| c.identity()) {
                Some(Ok(Some(stored))) if stored.systemid != id => out.push(
                    "systemid coherence",
                    false,
                    Some(format!(
                        "the system Id of the connected PostgreSQL server changed, stored in \"{}\"",
                        t.backup_directory.join("identity.json").display()
                    )),
                ),
                Some(Ok(Some(_))) => out.push("systemid coherence", true, None),
                _ => out.push("systemid coherence", true, Some("no system Id stored on disk".into())),
            },
        }
        // archivers
        if s.active() {
            if t.archiver
                && let Some(r) = &remote
                && let Some(mode) = &r.archive_mode
            {
                if mode == "on" || mode == "always" {
                    out.push("archive_mode", true, None);
                } else {
                    out.push(
                        "archive_mode",
                        false,
                        Some("please set it to 'on' or 'always'".into()),
                    );
                }
                match r.archive_command.as_deref() {
                    Some(c) if !c.is_empty() && c != "(disabled)" => {
                        out.push("archive_command", true, None);
                        if let Some(a) = r.archiving {
                            out.push("continuous archiving", a, None);
                        }
                    }
                    _ => out.push(
                        "archive_command",
                        false,
                        Some(format!("please set it accordingly to documentation (e.g. `barkeep wal-archive BARKEEP_HOST {name} %p`)")),
                    ),
                }
            }
            if t.streaming_archiver {
                out.push("pg_receivexlog", true, native("pg_receivewal"));
                out.push("pg_receivexlog compatible", true, native("pg_receivewal"));
                let locks = server::lock_dir(self.config());
                match LockFile::holder(&locks, &name, "receive-wal") {
                    Some(_) => out.push("receive-wal running", true, None),
                    None => out.push(
                        "receive-wal running",
                        false,
                        Some(format!("no receive-wal is running for server {name}: run `barkeep cron` every minute (it starts one), or the daemon, or `barkeep receive-wal {name}`")),
                    ),
                }
            }
        }
        // archiver errors
        let errors: Vec<String> = std::fs::read_dir(&t.errors_directory)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(
            "archiver errors",
            errors.is_empty(),
            summarise_errors(&errors),
        );
        if let (Some(r), Some(c)) = (&remote, &cat) {
            self.check_incremental(&out, r, &c.list().unwrap_or_default());
        }
    }

    async fn check_postgres(&self, out: &Items, r: &Remote) {
        let name = self.name().to_string();
        let t = self.typed();
        match r.version {
            None => out.push("PostgreSQL", false, r.connect_error.clone()),
            Some(v) if v < 130_000 => out.push(
                "PostgreSQL",
                false,
                Some(format!(
                    "unsupported version: PostgreSQL server is too old ({} < 13)",
                    r.version_text.as_deref().unwrap_or("?")
                )),
            ),
            Some(_) => out.push("PostgreSQL", true, None),
        }
        if r.version.is_some() {
            if let Some(b) = r.backup_privileges {
                out.push(
                    "superuser or standard user with backup privileges",
                    b,
                    (!b).then(|| "privileges for PostgreSQL backup functions are required (see documentation)".into()),
                );
            }
            match &r.streaming {
                Some(Ok(_)) => out.push("PostgreSQL streaming", true, None),
                Some(Err(e)) => out.push("PostgreSQL streaming", false, Some(e.clone())),
                None => {}
            }
            if let Some(level) = &r.wal_level {
                out.push(
                    "wal_level",
                    level != "minimal",
                    (level == "minimal")
                        .then(|| "please set it to a higher level than 'minimal'".into()),
                );
            }
            if t.primary_conninfo.is_some() {
                out.push(
                    "PostgreSQL server is standby",
                    r.in_recovery == Some(true),
                    (r.in_recovery != Some(true)).then(|| {
                        "conninfo should point to a standby server if primary_conninfo is set"
                            .into()
                    }),
                );
                match self.conn_params("primary_conninfo", false, None) {
                    Ok(p) => {
                        match Connection::connect(&p).await {
                            Ok(mut c) => {
                                let standby = c.is_in_recovery().await.ok();
                                let id = c
                                .query_value("SELECT system_identifier FROM pg_catalog.pg_control_system()")
                                .await
                                .ok()
                                .flatten();
                                let _ = c.close().await;
                                out.push(
                                "Primary server is not a standby",
                                standby == Some(false),
                                (standby != Some(false)).then(|| "primary_conninfo should point to a primary server, not a standby".into()),
                            );
                                out.push(
                                "Primary and standby have same system ID",
                                id.is_some() && id == r.systemid,
                                (id.is_none() || id != r.systemid).then(|| format!(
                                    "primary_conninfo and conninfo should point to primary and standby servers which share the same system identifier (primary: {}, standby: {})",
                                    id.as_deref().unwrap_or("?"),
                                    r.systemid.as_deref().unwrap_or("?")
                                )),
                            );
                            }
                            Err(e) => out.push(
                                "Primary server is not a standby",
                                false,
                                Some(crate::render(&e)),
                            ),
                        }
                    }
                    Err(e) => out.push(
                        "Primary server is not a standby",
                        false,
                        Some(crate::render(&e)),
                    ),
                }
            }
        }
        // replication slot
        if let Some(slot) = &t.slot_name {
            let state = r.slot.clone().flatten();
            if t.streaming_archiver {
                match state {
                    _ if r.version.is_none() && r.slot.is_none() => out.push(
                        "replication slot",
                        false,
                        Some(format!("cannot read replication slot '{slot}': PostgreSQL is not reachable")),
                    ),
                    None => out.push(
                        "replication slot",
                        false,
                        Some(format!(
                            "replication slot '{slot}' doesn't exist. Please execute 'barkeep receive-wal --create-slot {name}'{}",
                            if t.create_slot == "auto" { " (or start receive-wal: create_slot = auto creates it)" } else { "" }
                        )),
                    ),
                    Some(st) if st.restart_lsn.is_none() => out.push(
                        "replication slot",
                        false,
                        Some(format!("slot '{slot}' not initialised: is 'receive-wal' running?")),
                    ),
                    Some(st) if st.active == Some(false) => out.push(
                        "replication slot",
                        false,
                        Some(format!("slot '{slot}' not active: is 'receive-wal' running?")),
                    ),
                    Some(_) => out.push("replication slot", true, None),
                }
            } else if let Some(st) = state
                && st.restart_lsn.is_some()
            {
                let what = if st.active == Some(true) {
                    "active"
                } else {
                    "initialised"
                };
                out.push(
                    "replication slot",
                    true,
                    Some(format!(
                        "WARNING: slot '{slot}' is {what} but not required by the current config"
                    )),
                );
            }
        }
    }

    fn check_backups(&self, out: &Items, cat: Option<&LocalCatalog>) {
        let t = self.typed();
        let all = cat.and_then(|c| c.list().ok()).unwrap_or_default();
        let last = all.iter().rev().find(|b| b.is_usable());
        let now = Utc::now();
        // backup maximum age
        match &t.last_backup_maximum_age {
            Some(max) => {
                let limit = chrono::Duration::seconds(max.as_secs() as i64);
                let (ok, age) = match last.and_then(|b| b.end_time) {
                    Some(end) => {
                        let age = now - end.with_timezone(&Utc);
                        (age <= limit, human_timedelta(age))
                    }
                    None => (false, "No available backups".to_string()),
                };
                out.push(
                    "backup maximum age",
                    ok,
                    Some(format!(
                        "interval provided: {}, latest backup age: {age}",
                        human_timedelta(limit)
                    )),
                );
            }
            None => out.push(
                "backup maximum age",
                true,
                Some("no last_backup_maximum_age provided".into()),
            ),
        }
        // backup minimum size
        let size = last.and_then(|b| b.size).unwrap_or(0);
        match &t.last_backup_minimum_size {
            Some(min) => {
                let ok = last.is_some() && size >= min.bytes();
                out.push_perf(
                    "backup minimum size",
                    ok,
                    Some(format!(
                        "last backup size {} {} {} minimum",
                        human_size(size),
                        if ok { ">" } else { "<" },
                        human_size(min.bytes())
                    )),
                    Some(size),
                );
            }
            None => out.push_perf(
                "backup minimum size",
                true,
                Some(human_size(size)),
                Some(size),
            ),
        }
        // wal maximum age, wal size: the WAL after the last backup.
        let (wal_size, wal_last) = match (cat, last) {
            (Some(c), Some(b)) => wal_after_backup(c, b),
            _ => (0, None),
        };
        match &t.last_wal_maximum_age {
            Some(max) => {
                let limit = chrono::Duration::seconds(max.as_secs() as i64);
                match wal_last {
                    Some(ts) => {
                        let age = now - ts;
                        out.push(
                            "wal maximum age",
                            age <= limit,
                            Some(format!(
                                "interval provided: {}, latest wal age: {}",
                                human_timedelta(limit),
                                human_timedelta(age)
                            )),
                        );
                    }
                    None => out.push(
                        "wal maximum age",
                        false,
                        Some("No WAL files archived for last backup".into()),
                    ),
                }
            }
            None => out.push(
                "wal maximum age",
                true,
                Some("no last_wal_maximum_age provided".into()),
            ),
        }
        out.push_perf("wal size", true, Some(human_size(wal_size)), Some(wal_size));
        out.push("compression settings", true, None);
        let failed = all.iter().filter(|b| b.status == Status::Failed).count();
        out.push(
            "failed backups",
            failed == 0,
            Some(format!("there are {failed} failed backups")),
        );
        let full_done = all
            .iter()
            .filter(|b| b.status == Status::Done && b.parent_backup_id.is_none())
            .count() as u64;
        out.push(
            "minimum redundancy requirements",
            full_done >= t.minimum_redundancy,
            Some(format!(
                "have {full_done} non-incremental backups, expected at least {}",
                t.minimum_redundancy
            )),
        );
        out.push("pg_basebackup", true, native("pg_basebackup"));
        out.push("pg_basebackup compatible", true, native("pg_basebackup"));
        out.push(
            "pg_basebackup supports tablespaces mapping",
            true,
            native("pg_basebackup"),
        );
    }

    /// barkeep's item for PostgreSQL 17+ incremental backups, shown only where they are
    /// used (`backup_incremental` set, or incremental backups in the catalog): FAILED
    /// when the server cannot take them (`summarize_wal` off).
    fn check_incremental(&self, out: &Items, r: &Remote, all: &[BackupInfo]) {
        let wanted = self.typed().backup_incremental != "off";
        let has = all.iter().any(|b| b.parent_backup_id.is_some());
        if !(wanted || has) || r.version.is_none_or(|v| v < 170000) {
            return;
        }
        match r.summarize_wal.as_deref() {
            Some("on") => out.push("incremental backups", true, Some("summarize_wal = on".into())),
            other => out.push(
                "incremental backups",
                false,
                Some(format!(
                    "summarize_wal is {} on the server: incremental backups cannot be taken (set summarize_wal = on and reload PostgreSQL)",
                    other.unwrap_or("unknown")
                )),
            ),
        }
    }

    /// Whether this server's backups directory can share blocks between backups.
    pub fn block_sharing(&self) -> barkeep_archive::share::Sharing {
        let dir = self.typed().basebackups_directory.as_path();
        if dir.is_dir() {
            barkeep_archive::share::probe(dir)
        } else {
            barkeep_archive::share::Sharing {
                clone: false,
                fs: String::new(),
                why_not: Some(format!("`{}` does not exist yet", dir.display())),
                probed: false,
            }
        }
    }
}

/// The WAL archived after `b`'s end: total bytes, and the time of the newest file.
fn wal_after_backup(cat: &LocalCatalog, b: &BackupInfo) -> (u64, Option<chrono::DateTime<Utc>>) {
    let Ok(Some(range)) = WalRange::from_backup(b) else {
        return (0, None);
    };
    let own = WalRange::of_backup(b).ok().flatten();
    let mut size = 0;
    let mut newest: Option<f64> = None;
    for e in cat.wal_index().unwrap_or_default() {
        if !range.contains(&e.name) {
            continue;
        }
        newest = Some(newest.map_or(e.time, |n: f64| n.max(e.time)));
        if !own.is_some_and(|o| o.contains(&e.name)) {
            size += e.size;
        }
    }
    let ts = newest.and_then(|t| {
        chrono::DateTime::<Utc>::from_timestamp(t.trunc() as i64, (t.fract() * 1e9) as u32)
    });
    (size, ts)
}

/// Barman's summary of `errors/`: `duplicates: 2, unknown: 1`.
fn summarise_errors(names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for n in names {
        let kind = if n.ends_with(".error") {
            "not relevant"
        } else if n.ends_with(".duplicate") {
            "duplicates"
        } else if n.ends_with(".unknown") {
            "unknown"
        } else {
            "unknown failure"
        };
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += 1,
            None => counts.push((kind, 1)),
        }
    }
    Some(
        counts
            .iter()
            .map(|(k, c)| format!("{k}: {c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

impl Engine {
    /// `check SERVER…|all`: the servers' checks, run concurrently, sorted by name as
    /// Barman prints them.
    pub async fn check(&self, servers: Vec<Server>, timeout: Option<u64>) -> Vec<CheckReport> {
        concurrently(servers, move |s| async move { s.check(timeout).await }).await
    }
}

/// Runs `f` for every server at once, the results sorted by server name.
async fn concurrently<T, F, Fut>(servers: Vec<Server>, f: F) -> Vec<T>
where
    F: Fn(Server) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for s in servers {
        let name = s.name().to_string();
        let fut = f(s);
        set.spawn(async move { (name, fut.await) });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedeltas_print_as_barmans() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_timedelta(d(0)), "less than one second");
        assert_eq!(human_timedelta(d(1)), "1 second");
        assert_eq!(human_timedelta(d(86_400)), "1 day");
        assert_eq!(human_timedelta(d(3600)), "1 hour");
        assert_eq!(
            human_timedelta(d(2 * 86_400 + 3 * 3600 + 61)),
            "2 days, 3 hours, 1 minute, 1 second"
        );
        assert_eq!(human_timedelta(d(-5)), "5 seconds ago");
    }

    #[test]
    fn keys_are_mangled_as_barman_does() {
        let i = CheckItem {
            name: "superuser or standard user with backup privileges".into(),
            ok: true,
            hint: None,
            perfdata: None,
        };
        assert_eq!(i.key(), "superuser_or_standard_user_with_backup_privileges");
        let i = CheckItem {
            name: "receive-wal running".into(),
            ..i
        };
        assert_eq!(i.key(), "receive_wal_running");
    }

    #[test]
    fn error_files_are_summarised() {
        let v = ["a.duplicate", "b.duplicate", "c.unknown"].map(String::from);
        assert_eq!(
            summarise_errors(&v).as_deref(),
            Some("duplicates: 2, unknown: 1")
        );
    }
}

/// One line of `status`: Barman's JSON key, its description, the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// JSON key (`pg_version`…).
    pub key: &'static str,
    /// What the console prints before the colon.
    pub description: &'static str,
    /// The value.
    pub message: String,
}

/// `status` of one server.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Server.
    pub server: String,
    /// The rows, in Barman's order.
    pub rows: Vec<StatusRow>,
}

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.into()
}

impl Server {
    /// `status`: what Barman's `status` shows, plus the receiver barkeep runs.
    pub async fn status(&self) -> StatusReport {
        let s = self.settings();
        let t = self.typed().clone();
        let mut rows = Vec::new();
        let mut row = |key: &'static str, description: &'static str, message: String| {
            rows.push(StatusRow {
                key,
                description,
                message,
            })
        };
        row(
            "description",
            "Description",
            s.description().unwrap_or("None").to_string(),
        );
        row("active", "Active", py_bool(s.active()));
        row("disabled", "Disabled", py_bool(s.disabled()));
        row("active_model", "Active configuration model", "None".into());
        if s.active() && !s.disabled() {
            let r = self.remote().await;
            match r.version_text {
                Some(v) => {
                    row("pg_version", "PostgreSQL version", v);
                    if let Some(rec) = r.in_recovery {
                        row(
                            "is_in_recovery",
                            "Cluster state",
                            if rec {
                                "in archive recovery"
                            } else {
                                "in production"
                            }
                            .into(),
                        );
                    }
                    if let Some(size) = r.current_size {
                        row("current_size", "Current data size", human_size(size));
                    }
                    if let Some(d) = r.data_directory {
                        row("data_directory", "PostgreSQL Data directory", d);
                    }
                    if let Some(w) = r.current_wal {
                        row("current_xlog", "Current WAL segment", w);
                    }
                    if t.archiver {
                        row(
                            "archive_command",
                            "PostgreSQL 'archive_command' setting",
                            r.archive_command
                                .filter(|c| !c.is_empty())
                                .unwrap_or_else(|| {
                                    "FAILED (please set it accordingly to documentation)".into()
                                }),
                        );
                    }
                }
                None => row(
                    "pg_version",
                    "PostgreSQL version",
                    format!("FAILED ({})", r.connect_error.unwrap_or_default()),
                ),
            }
        }
        row("passive_node", "Passive node", py_bool(false));
        let policy = self.retention_policy();
        let retention = if policy.enforced() {
            let mut text = format!(
                "enforced (mode: auto, retention: {}, WAL retention: MAIN",
                policy.rule_text.as_deref().unwrap_or("none")
            );
            if let Some(g) = t.retention_gfs {
                text.push_str(&format!(
                    ", GFS: {g} in {}",
                    t.retention_gfs_timezone.name()
                ));
            }
            text.push(')');
            text
        } else {
            "not enforced".into()
        };
        row("retention_policies", "Retention policies", retention);
        let all = self
            .catalog()
            .ok()
            .and_then(|c| c.list().ok())
            .unwrap_or_default();
        let usable: Vec<&BackupInfo> = all.iter().filter(|b| b.is_usable()).collect();
        row(
            "backups_number",
            "No. of available backups",
            usable.len().to_string(),
        );
        row(
            "first_backup",
            "First available backup",
            usable
                .first()
                .map_or("None".into(), |b| b.backup_id.clone()),
        );
        row(
            "last_backup",
            "Last available backup",
            usable.last().map_or("None".into(), |b| b.backup_id.clone()),
        );
        let full = all
            .iter()
            .filter(|b| b.status == Status::Done && b.parent_backup_id.is_none())
            .count() as u64;
        row(
            "minimum_redundancy",
            "Minimum redundancy requirements",
            format!(
                "{} ({full}/{})",
                if full >= t.minimum_redundancy {
                    "satisfied"
                } else {
                    "FAILED"
                },
                t.minimum_redundancy
            ),
        );
        if let Some(d) = crate::running_daemon(self.config()) {
            row("daemon", "Daemon", format!("running (PID {})", d.pid));
            if let Some(st) = d.servers.get(self.name()) {
                let when = |t: Option<chrono::DateTime<Utc>>| {
                    t.map_or("not scheduled".to_string(), |t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S %Z")
                            .to_string()
                    })
                };
                row("next_backup", "Next scheduled backup", when(st.next_backup));
                row("next_retention", "Next retention", when(st.next_retention));
                row("next_check", "Next check", when(st.next_check));
                if st.next_drill.is_some() {
                    row("next_drill", "Next restore drill", when(st.next_drill));
                }
                if let Some(b) = &st.last_backup {
                    row("last_scheduled_backup", "Last scheduled backup", b.clone());
                }
            }
        }
        if t.streaming_archiver {
            let locks = server::lock_dir(self.config());
            row(
                "receive_wal",
                "Receive-wal",
                match LockFile::holder(&locks, self.name(), "receive-wal") {
                    Some(pid) if pid > 0 => format!("running (PID {pid})"),
                    Some(_) => "running".into(),
                    None => "not running".into(),
                },
            );
        }
        StatusReport {
            server: self.name().to_string(),
            rows,
        }
    }
}

impl Engine {
    /// `status SERVER…|all`, concurrently, sorted by name.
    pub async fn status(&self, servers: Vec<Server>) -> Vec<StatusReport> {
        concurrently(servers, |s| async move { s.status().await }).await
    }
}

impl Server {
    /// What `show-servers` adds to the settings, as Barman does: the live values read from
    /// PostgreSQL (at most 10 s; a server that does not answer shows `connection_error`).
    pub async fn live_values(&self) -> Vec<(String, String)> {
        let s = self.settings();
        if !s.active() || s.disabled() {
            return Vec::new();
        }
        let r = match tokio::time::timeout(Duration::from_secs(10), self.remote()).await {
            Ok(r) => r,
            Err(_) => {
                return vec![(
                    "connection_error".into(),
                    "PostgreSQL did not answer within 10 s".into(),
                )];
            }
        };
        let mut v: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, val: Option<String>| {
            v.push((k.to_string(), val.unwrap_or_else(|| "None".into())));
        };
        put("connection_error", r.connect_error.clone());
        if r.version.is_none() {
            return v;
        }
        put("server_txt_version", r.version_text.clone());
        put("is_in_recovery", r.in_recovery.map(py_bool));
        put("data_directory", r.data_directory.clone());
        put("current_size", r.current_size.map(|s| s.to_string()));
        put("current_xlog", r.current_wal.clone());
        put("wal_level", r.wal_level.clone());
        put("postgres_systemid", r.systemid.clone());
        put("has_backup_privileges", r.backup_privileges.map(py_bool));
        put("archive_mode", r.archive_mode.clone());
        put("archive_command", r.archive_command.clone());
        match &r.streaming {
            Some(Ok(id)) => {
                put("streaming", Some("True".into()));
                put("streaming_systemid", Some(id.clone()));
            }
            Some(Err(e)) => {
                put("streaming", Some("False".into()));
                put("streaming_error", Some(e.clone()));
            }
            None => {}
        }
        if let Some(slot) = &self.typed().slot_name {
            put(
                "replication_slot",
                Some(match r.slot.clone().flatten() {
                    Some(st) => format!(
                        "Record(slot_name='{slot}', active={}, restart_lsn={})",
                        st.active.map_or("None".into(), py_bool),
                        st.restart_lsn.map_or("None".into(), |l| format!("'{l}'"))
                    ),
                    None => "None".into(),
                }),
            );
        }
        v
    }
}

/// What the daemon's metrics read from PostgreSQL about the WAL receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReceiverMetrics {
    /// The receiver is connected (a walsender with its `application_name`).
    pub connected: bool,
    /// The server's current WAL position minus what the receiver reported durable.
    pub lag_bytes: Option<u64>,
    /// WAL the server keeps for the slot.
    pub slot_retained_bytes: Option<u64>,
}

impl Server {
    /// The receiver as PostgreSQL sees it (`None` when PostgreSQL does not answer).
    pub async fn receiver_metrics(&self) -> Option<ReceiverMetrics> {
        let mut c = self.connect_sql().await.ok()?;
        let app = barkeep_pg::codec::frontend::quote_literal(&self.typed().streaming_archiver_name);
        let here = "CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn() ELSE pg_catalog.pg_current_wal_lsn() END";
        let lag = c
            .query_value(&format!(
                "SELECT pg_catalog.pg_wal_lsn_diff({here}, flush_lsn)::bigint FROM pg_catalog.pg_stat_replication WHERE application_name = {app} ORDER BY flush_lsn DESC NULLS LAST LIMIT 1"
            ))
            .await;
        let connected = matches!(&lag, Ok(Some(_)));
        let lag_bytes = lag
            .ok()
            .flatten()
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64);
        let slot_retained_bytes = match &self.typed().slot_name {
            Some(slot) => c
                .query_value(&format!(
                    "SELECT pg_catalog.pg_wal_lsn_diff({here}, restart_lsn)::bigint FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
                    barkeep_pg::codec::frontend::quote_literal(slot)
                ))
                .await
                .ok()
                .flatten()
                .and_then(|v| v.parse::<i64>().ok())
                .map(|v| v.max(0) as u64),
            None => None,
        };
        let _ = c.close().await;
        Some(ReceiverMetrics {
            connected,
            lag_bytes,
            slot_retained_bytes,
        })
    }

    /// Free bytes on the file system of the server's catalog.
    pub fn catalog_free_bytes(&self) -> Option<u64> {
        let dir = &self.typed().backup_directory;
        let probe = if dir.exists() {
            dir.as_path()
        } else {
            self.config().barman_home()
        };
        nix::sys::statvfs::statvfs(probe)
            .ok()
            .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
    }
}
