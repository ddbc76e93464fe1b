//! `backup.info`, typed: every field Barman 3.x writes, parsed into its type when read
//! (an unparsable value is an error naming the file, the line and the key) and written
//! back as Barman writes it — `key=value` lines sorted by key, `None` for null, Python
//! `repr` for strings that may hold newlines (`backup_label`), lists and tuples. Barman
//! refuses a file with a key it does not know, so only Barman's keys are written (and a
//! key Barman 3.x does not know is refused on read, as Barman refuses it).

use std::collections::BTreeMap;
use std::path::Path;

use barkeep_wal::Lsn;
use chrono::{DateTime, FixedOffset};

use crate::error::{CatalogError, Result};

/// Backup statuses (Barman's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Created, nothing done yet.
    #[default]
    Empty,
    /// Copy in progress.
    Started,
    /// Copy done; the WAL to reach consistency is not all archived yet.
    WaitingForWals,
    /// Complete and usable.
    Done,
    /// Failed; `error` says why.
    Failed,
    /// Passive node copy in progress.
    Syncing,
}

impl Status {
    /// Barman's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Empty => "EMPTY",
            Status::Started => "STARTED",
            Status::WaitingForWals => "WAITING_FOR_WALS",
            Status::Done => "DONE",
            Status::Failed => "FAILED",
            Status::Syncing => "SYNCING",
        }
    }
    /// Parses Barman's spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "EMPTY" => Status::Empty,
            "STARTED" => Status::Started,
            "WAITING_FOR_WALS" => Status::WaitingForWals,
            "DONE" => Status::Done,
            "FAILED" => Status::Failed,
            "SYNCING" => Status::Syncing,
            _ => return None,
        })
    }
}

/// Every key Barman 3.13+ writes in backup.info.
pub const KEYS: &[&str] = &[
    "backup_label",
    "backup_name",
    "begin_offset",
    "begin_time",
    "begin_wal",
    "begin_xlog",
    "children_backup_ids",
    "cluster_size",
    "compression",
    "config_file",
    "copy_stats",
    "data_checksums",
    "deduplicated_size",
    "encryption",
    "end_offset",
    "end_time",
    "end_wal",
    "end_xlog",
    "error",
    "hba_file",
    "ident_file",
    "included_files",
    "mode",
    "parent_backup_id",
    "pgdata",
    "server_name",
    "size",
    "snapshots_info",
    "status",
    "summarize_wal",
    "systemid",
    "tablespaces",
    "timeline",
    "version",
    "xlog_segment_size",
];

/// Keys left out when null (Barman hides them).
const HIDDEN_WHEN_NULL: &[&str] = &["backup_name", "snapshots_info"];

/// One tablespace: name, oid, location.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tablespace {
    /// `spcname`.
    pub name: String,
    /// OID.
    pub oid: u32,
    /// Location on the server.
    pub location: String,
}

/// A backup's metadata (`meta/<ID>-backup.info`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BackupInfo {
    /// Backup id (`YYYYMMDDTHHMMSS`), from the file name.
    pub backup_id: String,
    /// `status`.
    pub status: Status,
    /// `server_name`.
    pub server_name: Option<String>,
    /// `backup_name` (`--name`).
    pub backup_name: Option<String>,
    /// `mode` (`postgres`, `rsync-concurrent`, `snapshot-concurrent`…).
    pub mode: Option<String>,
    /// `backup_label`, decoded.
    pub backup_label: Option<String>,
    /// `begin_time`.
    pub begin_time: Option<DateTime<FixedOffset>>,
    /// `end_time`.
    pub end_time: Option<DateTime<FixedOffset>>,
    /// `begin_wal`: the first segment the backup needs.
    pub begin_wal: Option<String>,
    /// `end_wal`: the last segment the backup needs to be consistent.
    pub end_wal: Option<String>,
    /// `begin_xlog`.
    #[serde(serialize_with = "lsn_text")]
    pub begin_xlog: Option<Lsn>,
    /// `end_xlog`.
    #[serde(serialize_with = "lsn_text")]
    pub end_xlog: Option<Lsn>,
    /// `begin_offset` (within `begin_wal`).
    pub begin_offset: Option<u64>,
    /// `end_offset` (within `end_wal`).
    pub end_offset: Option<u64>,
    /// `timeline`.
    pub timeline: Option<u32>,
    /// `size`: bytes of the backup.
    pub size: Option<u64>,
    /// `deduplicated_size`: bytes it really costs on disk.
    pub deduplicated_size: Option<u64>,
    /// `cluster_size`.
    pub cluster_size: Option<u64>,
    /// `systemid`.
    pub systemid: Option<String>,
    /// `version` (`170004`).
    pub version: Option<u32>,
    /// `xlog_segment_size`.
    pub xlog_segment_size: Option<u64>,
    /// `pgdata`.
    pub pgdata: Option<String>,
    /// `config_file`.
    pub config_file: Option<String>,
    /// `hba_file`.
    pub hba_file: Option<String>,
    /// `ident_file`.
    pub ident_file: Option<String>,
    /// `included_files`.
    pub included_files: Option<Vec<String>>,
    /// `tablespaces`.
    pub tablespaces: Option<Vec<Tablespace>>,
    /// `compression` (of the backup's archives).
    pub compression: Option<String>,
    /// `encryption`.
    pub encryption: Option<String>,
    /// `error`: why it failed.
    pub error: Option<String>,
    /// `parent_backup_id` (incremental backups).
    pub parent_backup_id: Option<String>,
    /// `children_backup_ids`.
    pub children_backup_ids: Option<Vec<String>>,
    /// `data_checksums` (`on`/`off`).
    pub data_checksums: Option<String>,
    /// `summarize_wal` (`on`/`off`).
    pub summarize_wal: Option<String>,
    /// `copy_stats`, Barman's dict repr as written.
    pub copy_stats: Option<String>,
    /// `snapshots_info`, Barman's repr as written.
    pub snapshots_info: Option<String>,
}

fn lsn_text<S: serde::Serializer>(v: &Option<Lsn>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(l) => s.serialize_str(&l.to_string()),
        None => s.serialize_none(),
    }
}

/// The WAL segment size when a backup does not say (PostgreSQL's default).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

fn bad(origin: &Path, line: usize, key: &str, value: &str, want: &str) -> CatalogError {
    CatalogError::Corrupt(format!(
        "{}:{line}: `{key}` = `{value}` is not {want}",
        origin.display()
    ))
}

impl BackupInfo {
    /// A new, EMPTY backup of `server` (mode `postgres`).
    pub fn new(backup_id: &str, server: &str) -> BackupInfo {
        BackupInfo {
            backup_id: backup_id.into(),
            server_name: Some(server.into()),
            mode: Some("postgres".into()),
            ..BackupInfo::default()
        }
    }

    /// Tablespaces (none when the field is null).
    pub fn tablespaces(&self) -> &[Tablespace] {
        self.tablespaces.as_deref().unwrap_or_default()
    }

    /// Included configuration files (none when null).
    pub fn included_files(&self) -> &[String] {
        self.included_files.as_deref().unwrap_or_default()
    }

    /// The WAL segment size of the backup's server.
    pub fn segment_size(&self) -> u64 {
        self.xlog_segment_size.unwrap_or(DEFAULT_SEGMENT_SIZE)
    }

    /// PostgreSQL's major version (`17` for `170004`; `9.6` style versions give `9`).
    pub fn major(&self) -> Option<u32> {
        self.version.map(|v| v / 10000)
    }

    /// Whether it is DONE or waiting only for its WAL (Barman's default listing filter).
    pub fn is_usable(&self) -> bool {
        matches!(self.status, Status::Done | Status::WaitingForWals)
    }

    /// Barman's backup type: `rsync`, `snapshot`, `incremental` or `full`.
    pub fn backup_type(&self) -> &'static str {
        match self.mode.as_deref() {
            Some(m) if m.starts_with("rsync") => "rsync",
            Some(m) if m.starts_with("snapshot") => "snapshot",
            _ if self.parent_backup_id.is_some() => "incremental",
            _ => "full",
        }
    }

    /// Every key with its Barman text (`None` = null), sorted by key.
    pub fn fields(&self) -> BTreeMap<String, Option<String>> {
        let mut m: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            m.insert(k.to_string(), v);
        };
        let text = |v: &Option<String>| v.clone();
        let num = |v: Option<u64>| v.map(|n| n.to_string());
        put("backup_label", self.backup_label.as_deref().map(py_repr));
        put("backup_name", text(&self.backup_name));
        put("begin_offset", num(self.begin_offset));
        put("begin_time", self.begin_time.map(|t| format_time(&t)));
        put("begin_wal", text(&self.begin_wal));
        put("begin_xlog", self.begin_xlog.map(|l| l.to_string()));
        put(
            "children_backup_ids",
            self.children_backup_ids.as_ref().map(|v| v.join(",")),
        );
        put("cluster_size", num(self.cluster_size));
        put("compression", text(&self.compression));
        put("config_file", text(&self.config_file));
        put("copy_stats", text(&self.copy_stats));
        put("data_checksums", text(&self.data_checksums));
        put("deduplicated_size", num(self.deduplicated_size));
        put("encryption", text(&self.encryption));
        put("end_offset", num(self.end_offset));
        put("end_time", self.end_time.map(|t| format_time(&t)));
        put("end_wal", text(&self.end_wal));
        put("end_xlog", self.end_xlog.map(|l| l.to_string()));
        put("error", text(&self.error));
        put("hba_file", text(&self.hba_file));
        put("ident_file", text(&self.ident_file));
        put(
            "included_files",
            self.included_files.as_deref().map(str_list_repr),
        );
        put("mode", text(&self.mode));
        put("parent_backup_id", text(&self.parent_backup_id));
        put("pgdata", text(&self.pgdata));
        put("server_name", text(&self.server_name));
        put("size", num(self.size));
        put("snapshots_info", text(&self.snapshots_info));
        put("status", Some(self.status.as_str().to_string()));
        put("summarize_wal", text(&self.summarize_wal));
        put("systemid", text(&self.systemid));
        put(
            "tablespaces",
            self.tablespaces.as_deref().map(tablespaces_repr),
        );
        put("timeline", self.timeline.map(|t| t.to_string()));
        put("version", self.version.map(|v| v.to_string()));
        put("xlog_segment_size", num(self.xlog_segment_size));
        m
    }

    /// The text of the file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.fields() {
            match v {
                None if HIDDEN_WHEN_NULL.contains(&k.as_str()) => {}
                None => out.push_str(&format!("{k}=None\n")),
                Some(v) => out.push_str(&format!("{k}={v}\n")),
            }
        }
        out
    }

    /// Parses the file text (`origin` names it in errors). A key Barman 3.x does not write
    /// is refused, as Barman refuses it ("created with a newer version").
    pub fn parse(backup_id: &str, text: &str, origin: &Path) -> Result<BackupInfo> {
        let mut b = BackupInfo {
            backup_id: backup_id.into(),
            ..BackupInfo::default()
        };
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(CatalogError::Corrupt(format!(
                    "{}:{n}: not a `key=value` line",
                    origin.display()
                )));
            };
            if !KEYS.contains(&k) {
                return Err(CatalogError::Corrupt(format!(
                    "{}:{n}: unknown key `{k}` (backup was created with a newer version of Barman or barkeep)",
                    origin.display()
                )));
            }
            let raw = (v != "None").then(|| v.to_string());
            let Some(v) = raw else {
                continue;
            };
            let int = |want: &str| v.parse::<u64>().map_err(|_| bad(origin, n, k, &v, want));
            match k {
                "backup_label" => {
                    b.backup_label = Some(
                        py_unrepr(&v)
                            .map(|(s, _)| s)
                            .ok_or_else(|| bad(origin, n, k, &v, "a quoted string"))?,
                    )
                }
                "backup_name" => b.backup_name = Some(v),
                "begin_offset" => b.begin_offset = Some(int("a number")?),
                "begin_time" => {
                    b.begin_time =
                        Some(parse_time(&v).ok_or_else(|| bad(origin, n, k, &v, "a time"))?)
                }
                "begin_wal" => b.begin_wal = Some(v),
                "begin_xlog" => {
                    b.begin_xlog = Some(v.parse().map_err(|_| bad(origin, n, k, &v, "an LSN"))?)
                }
                "children_backup_ids" => {
                    b.children_backup_ids = Some(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "cluster_size" => b.cluster_size = Some(int("a number")?),
                "compression" => b.compression = Some(v),
                "config_file" => b.config_file = Some(v),
                "copy_stats" => b.copy_stats = Some(v),
                "data_checksums" => b.data_checksums = Some(v),
                "deduplicated_size" => b.deduplicated_size = Some(int("a number")?),
                "encryption" => b.encryption = Some(v),
                "end_offset" => b.end_offset = Some(int("a number")?),
                "end_time" => {
                    b.end_time =
                        Some(parse_time(&v).ok_or_else(|| bad(origin, n, k, &v, "a time"))?)
                }
                "end_wal" => b.end_wal = Some(v),
                "end_xlog" => {
                    b.end_xlog = Some(v.parse().map_err(|_| bad(origin, n, k, &v, "an LSN"))?)
                }
                "error" => b.error = Some(v),
                "hba_file" => b.hba_file = Some(v),
                "ident_file" => b.ident_file = Some(v),
                "included_files" => {
                    b.included_files = Some(
                        parse_str_list(&v)
                            .ok_or_else(|| bad(origin, n, k, &v, "a list of strings"))?,
                    )
                }
                "mode" => b.mode = Some(v),
                "parent_backup_id" => b.parent_backup_id = Some(v),
                "pgdata" => b.pgdata = Some(v),
                "server_name" => b.server_name = Some(v),
                "size" => b.size = Some(int("a number")?),
                "snapshots_info" => b.snapshots_info = Some(v),
                "status" => {
                    b.status = Status::parse(&v).ok_or_else(|| bad(origin, n, k, &v, "a status"))?
                }
                "summarize_wal" => b.summarize_wal = Some(v),
                "systemid" => b.systemid = Some(v),
                "tablespaces" => {
                    b.tablespaces = Some(
                        parse_tablespaces(&v)
                            .ok_or_else(|| bad(origin, n, k, &v, "a list of tablespaces"))?,
                    )
                }
                "timeline" => {
                    b.timeline = Some(v.parse().map_err(|_| bad(origin, n, k, &v, "a timeline"))?)
                }
                "version" => {
                    b.version = Some(
                        v.parse()
                            .map_err(|_| bad(origin, n, k, &v, "a version number"))?,
                    )
                }
                "xlog_segment_size" => b.xlog_segment_size = Some(int("a number")?),
                _ => unreachable!("every key of KEYS is matched above"),
            }
        }
        Ok(b)
    }
}

/// Python `repr()` of a string, as Barman writes `backup_label`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Parses a Python string literal (`'…'` or `"…"`) at the start of `s`; returns the
/// value and the rest.
fn py_unrepr(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    let (_, quote) = chars.next()?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((out, &s[i + 1..]));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars.next()?;
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'x' => {
                let h: String = [chars.next()?.1, chars.next()?.1].iter().collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            'u' => {
                let h: String = (0..4).filter_map(|_| chars.next().map(|x| x.1)).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    None
}

/// `[('name', oid, '/path'), …]`.
pub fn tablespaces_repr(t: &[Tablespace]) -> String {
    let items: Vec<String> = t
        .iter()
        .map(|t| {
            format!(
                "({}, {}, {})",
                py_repr(&t.name),
                t.oid,
                py_repr(&t.location)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn parse_tablespaces(s: &str) -> Option<Vec<Tablespace>> {
    let mut rest = s.trim().strip_prefix('[')?.trim_start();
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(']') {
            return r.trim().is_empty().then_some(out);
        }
        rest = rest.strip_prefix('(')?.trim_start();
        let (name, r) = py_unrepr(rest)?;
        let r = r.trim_start().strip_prefix(',')?.trim_start();
        let end = r.find(',')?;
        let oid: u32 = r[..end].trim().parse().ok()?;
        let (location, r) = py_unrepr(r[end + 1..].trim_start())?;
        rest = r.trim_start().strip_prefix(')')?.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
        out.push(Tablespace {
            name,
            oid,
            location,
        });
    }
}

/// `['a', 'b']`.
pub fn str_list_repr(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| py_repr(s)).collect::<Vec<_>>().join(", ")
    )
}

fn parse_str_list(s: &str) -> Option<Vec<String>> {
    let mut rest = s.trim().strip_prefix('[')?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(']') {
            return r.trim().is_empty().then_some(out);
        }
        let (v, r) = py_unrepr(rest)?;
        out.push(v);
        rest = r.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Barman's time format: `2014-12-22 09:25:22.561207+01:00`.
pub fn format_time<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
}

/// Parses Barman's time format (with or without microseconds).
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn barman_text_round_trips() {
        let mut b = BackupInfo::new("20261124T101500", "pg");
        b.backup_label = Some(
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: it's\n".into(),
        );
        b.tablespaces = Some(vec![Tablespace {
            name: "ts1".into(),
            oid: 16387,
            location: "/srv/ts 1".into(),
        }]);
        b.included_files = Some(vec!["/etc/pg/conf.d/a.conf".into()]);
        b.begin_xlog = Some(Lsn(0x2000028));
        b.begin_time = parse_time("2014-12-22 09:25:22.561207+01:00");
        b.version = Some(170004);
        b.children_backup_ids = Some(vec!["20261125T000000".into(), "20261126T000000".into()]);
        b.status = Status::Done;
        let text = b.to_text();
        assert!(text.contains("backup_label=\"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\nLABEL: it's\\n\"\n"), "{text}");
        assert!(text.contains("tablespaces=[('ts1', 16387, '/srv/ts 1')]\n"));
        assert!(text.contains("error=None\n"));
        assert!(text.contains("begin_xlog=0/2000028\n"), "{text}");
        assert!(
            text.contains("begin_time=2014-12-22 09:25:22.561207+01:00\n"),
            "{text}"
        );
        assert!(text.contains("children_backup_ids=20261125T000000,20261126T000000\n"));
        assert!(text.contains("version=170004\n"));
        assert!(!text.contains("backup_name"), "hidden when null");
        let keys: Vec<&str> = text
            .lines()
            .map(|l| l.split('=').next().unwrap_or(""))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "sorted by key");
        let back = BackupInfo::parse("20261124T101500", &text, Path::new("x")).expect("parse");
        assert_eq!(back, b);
        assert_eq!(back.tablespaces()[0].location, "/srv/ts 1");
        assert!(
            back.backup_label
                .as_deref()
                .expect("label")
                .contains("LABEL: it's\n")
        );
        assert_eq!(
            back.included_files(),
            vec!["/etc/pg/conf.d/a.conf".to_string()]
        );
        assert_eq!(back.status, Status::Done);
        assert_eq!(back.major(), Some(17));
    }

    #[test]
    fn unknown_keys_are_refused_as_barman_does() {
        let err = BackupInfo::parse(
            "x",
            "status=DONE\nflux_capacitor=1\n",
            Path::new("/b/meta/x-backup.info"),
        )
        .expect_err("unknown");
        assert!(format!("{err}").contains("newer version"), "{err}");
    }

    #[test]
    fn a_damaged_value_names_file_line_and_key() {
        let err = BackupInfo::parse(
            "x",
            "status=DONE\nsize=lots\n",
            Path::new("/b/meta/x-backup.info"),
        )
        .expect_err("bad size");
        assert_eq!(
            err.to_string(),
            "/b/meta/x-backup.info:2: `size` = `lots` is not a number"
        );
    }

    #[test]
    fn times_in_barman_format() {
        let t = parse_time("2014-12-22 09:25:22.561207+01:00").expect("parse");
        assert_eq!(t.timestamp(), 1419236722);
        let now = chrono::Local::now();
        assert!(parse_time(&format_time(&now)).is_some());
    }

    proptest! {
        #[test]
        fn repr_round_trips(s in "\\PC{0,60}") {
            let r = py_repr(&s);
            let (back, rest) = py_unrepr(&r).expect("unrepr");
            prop_assert_eq!(back, s);
            prop_assert!(rest.is_empty());
        }
    }
}
