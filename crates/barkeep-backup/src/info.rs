//! `backup.info`, as Barman writes it: `key=value` lines sorted by key, `None` for null,
//! Python `repr` for strings that may hold newlines (`backup_label`), lists and dicts.
//! Barman refuses a file with a key it does not know, so only Barman's keys are written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{BackupError, Result};

/// Backup statuses (Barman's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Created, nothing done yet.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// `spcname`.
    pub name: String,
    /// OID.
    pub oid: u32,
    /// Location on the server.
    pub location: String,
}

/// A backup's metadata. Values are kept as Barman's text (`None` = null); typed
/// accessors parse them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupInfo {
    /// Backup id (`YYYYMMDDTHHMMSS`), from the file name.
    pub backup_id: String,
    values: BTreeMap<String, Option<String>>,
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
pub fn format_time(t: &chrono::DateTime<chrono::Local>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
}

/// Parses Barman's time format (with or without microseconds).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z").ok()
}

impl BackupInfo {
    /// A new, EMPTY backup.
    pub fn new(backup_id: &str, server: &str) -> BackupInfo {
        let mut b = BackupInfo {
            backup_id: backup_id.into(),
            values: KEYS.iter().map(|k| (k.to_string(), None)).collect(),
        };
        b.set("server_name", server);
        b.set("status", Status::Empty.as_str());
        b.set("mode", "postgres");
        b
    }

    /// The raw text of `key` (`None` when null).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.as_deref())
    }

    /// Sets `key` (must be one of [`KEYS`]).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        debug_assert!(KEYS.contains(&key), "{key} is not a backup.info key");
        self.values.insert(key.into(), Some(value.into()));
    }

    /// Sets `key` to null.
    pub fn clear(&mut self, key: &str) {
        self.values.insert(key.into(), None);
    }

    /// An integer field.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }

    /// `status`.
    pub fn status(&self) -> Status {
        self.get("status")
            .and_then(Status::parse)
            .unwrap_or(Status::Empty)
    }

    /// Sets `status`.
    pub fn set_status(&mut self, s: Status) {
        self.set("status", s.as_str());
    }

    /// `backup_label` decoded from its Python repr.
    pub fn backup_label(&self) -> Option<String> {
        py_unrepr(self.get("backup_label")?).map(|(v, _)| v)
    }

    /// `tablespaces`.
    pub fn tablespaces(&self) -> Vec<Tablespace> {
        self.get("tablespaces")
            .and_then(parse_tablespaces)
            .unwrap_or_default()
    }

    /// `included_files`.
    pub fn included_files(&self) -> Vec<String> {
        self.get("included_files")
            .and_then(parse_str_list)
            .unwrap_or_default()
    }

    /// `begin_time`/`end_time`.
    pub fn time(&self, key: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        parse_time(self.get(key)?)
    }

    /// The text of the file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.values {
            match v {
                None if HIDDEN_WHEN_NULL.contains(&k.as_str()) => {}
                None => out.push_str(&format!("{k}=None\n")),
                Some(v) => out.push_str(&format!("{k}={v}\n")),
            }
        }
        out
    }

    /// Parses the file text; an unknown key is an error, as in Barman.
    pub fn parse(backup_id: &str, text: &str, origin: &Path) -> Result<BackupInfo> {
        let mut b = BackupInfo {
            backup_id: backup_id.into(),
            values: KEYS.iter().map(|k| (k.to_string(), None)).collect(),
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(BackupError::Catalog(format!(
                    "{}:{}: not a `key=value` line",
                    origin.display(),
                    i + 1
                )));
            };
            if !KEYS.contains(&k) {
                // barkeep's own extra keys never go here; a newer Barman's might.
                return Err(BackupError::Catalog(format!(
                    "{}:{}: unknown key `{k}` (backup was created with a newer version of Barman or barkeep)",
                    origin.display(),
                    i + 1
                )));
            }
            let v = (v != "None").then(|| v.to_string());
            b.values.insert(k.into(), v);
        }
        Ok(b)
    }

    /// Loads a backup.info file.
    pub fn load(path: &Path, backup_id: &str) -> Result<BackupInfo> {
        let text = std::fs::read_to_string(path).map_err(|e| BackupError::io("read", path, e))?;
        BackupInfo::parse(backup_id, &text, path)
    }

    /// Writes it atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            barkeep_archive::durable::create_dir_all_durable(parent)?;
        }
        barkeep_archive::durable::write_file_atomic(path, self.to_text().as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn barman_text_round_trips() {
        let mut b = BackupInfo::new("20261124T101500", "pg");
        b.set(
            "backup_label",
            py_repr("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: it's\n"),
        );
        b.set(
            "tablespaces",
            tablespaces_repr(&[Tablespace {
                name: "ts1".into(),
                oid: 16387,
                location: "/srv/ts 1".into(),
            }]),
        );
        b.set(
            "included_files",
            str_list_repr(&["/etc/pg/conf.d/a.conf".into()]),
        );
        b.set_status(Status::Done);
        let text = b.to_text();
        assert!(text.contains("backup_label=\"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\nLABEL: it's\\n\"\n"), "{text}");
        assert!(text.contains("tablespaces=[('ts1', 16387, '/srv/ts 1')]\n"));
        assert!(text.contains("error=None\n"));
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
            back.backup_label()
                .expect("label")
                .contains("LABEL: it's\n")
        );
        assert_eq!(
            back.included_files(),
            vec!["/etc/pg/conf.d/a.conf".to_string()]
        );
        assert_eq!(back.status(), Status::Done);
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
