//! SQL that backups, checks and status need, on a normal (non-replication) connection, with
//! the function names of each major (13/14 `pg_start_backup`/`pg_stop_backup`, 15+
//! `pg_backup_start`/`pg_backup_stop`). Results are parsed from text; a value that does
//! not parse is a protocol error naming the query and the value.

use std::collections::BTreeMap;

use barkeep_wal::Lsn;

use crate::codec::ProtocolError;
use crate::codec::frontend::quote_literal;
use crate::conn::{Connection, QueryResult};
use crate::error::PgError;

/// What the connected role may do, as Barman's checks ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolreplication` (or superuser): may open replication connections.
    pub replication: bool,
    /// Superuser, `pg_monitor`, or both `pg_read_all_settings` and `pg_read_all_stats`
    /// (Barman's "has monitoring privileges").
    pub monitoring: bool,
    /// Superuser, or monitoring plus EXECUTE on the backup start/stop functions,
    /// `pg_switch_wal()` and `pg_create_restore_point(text)` (Barman's "superuser or
    /// standard user with backup privileges").
    pub backup: bool,
    /// Superuser, or `pg_checkpoint` on 15+ (`switch-wal --force` needs CHECKPOINT).
    pub checkpoint: bool,
}

/// `pg_backup_stop` / `pg_stop_backup(false, …)` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStop {
    /// End position.
    pub lsn: Lsn,
    /// Contents for `backup_label` in the backup copy.
    pub label_file: String,
    /// Contents for `tablespace_map` (empty without user tablespaces).
    pub tablespace_map: String,
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationClient {
    /// Walsender PID.
    pub pid: i32,
    /// Role.
    pub user: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// Client address (NULL for Unix sockets).
    pub client_addr: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: Option<String>,
    /// Positions reported by the client.
    pub sent_lsn: Option<Lsn>,
    /// Written by the client.
    pub write_lsn: Option<Lsn>,
    /// Flushed by the client.
    pub flush_lsn: Option<Lsn>,
    /// Replayed by the client.
    pub replay_lsn: Option<Lsn>,
    /// `async`, `potential`, `sync`, `quorum`.
    pub sync_state: Option<String>,
}

/// One setting from `pg_settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Value in the setting's unit, as text.
    pub value: String,
    /// Unit (`8kB`, `ms`…), if any.
    pub unit: Option<String>,
}

fn parse_lsn(conn: &Connection, what: &str, text: Option<String>) -> Result<Option<Lsn>, PgError> {
    text.map(|t| {
        t.parse::<Lsn>().map_err(|e| PgError::Protocol {
            target: conn.target().to_string(),
            source: ProtocolError(format!("{what}: {e}")),
        })
    })
    .transpose()
}

fn bool_col(r: &QueryResult, row: usize, name: &str) -> bool {
    r.get(row, name).as_deref() == Some("t")
}

impl Connection {
    fn one_value(&self, r: &QueryResult, sql: &str) -> Result<String, PgError> {
        r.text(0, 0).ok_or_else(|| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!("`{sql}` returned no value")),
        })
    }

    fn major_or_error(&self) -> Result<u32, PgError> {
        self.server_major().ok_or_else(|| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError("the server did not report server_version".into()),
        })
    }

    async fn lsn_query(&mut self, sql: &str) -> Result<Lsn, PgError> {
        let r = self.query(sql).await?;
        let v = self.one_value(&r, sql)?;
        parse_lsn(self, sql, Some(v)).map(|l| l.unwrap_or_default())
    }

    /// `pg_is_in_recovery()`: true on a standby.
    pub async fn is_in_recovery(&mut self) -> Result<bool, PgError> {
        let sql = "SELECT pg_catalog.pg_is_in_recovery()";
        let r = self.query(sql).await?;
        Ok(self.one_value(&r, sql)? == "t")
    }

    /// `pg_current_wal_lsn()` (a primary's write position; an error on a standby).
    pub async fn current_wal_lsn(&mut self) -> Result<Lsn, PgError> {
        self.lsn_query("SELECT pg_catalog.pg_current_wal_lsn()")
            .await
    }

    /// `pg_switch_wal()`: closes the current segment; returns the end of the switched
    /// segment's WAL (the start of the current segment when nothing was written since the
    /// last switch: no switch happened).
    pub async fn switch_wal(&mut self) -> Result<Lsn, PgError> {
        self.lsn_query("SELECT pg_catalog.pg_switch_wal()").await
    }

    /// `CHECKPOINT`.
    pub async fn checkpoint(&mut self) -> Result<(), PgError> {
        self.simple_query("CHECKPOINT").await.map(|_| ())
    }

    /// `pg_create_restore_point(name)`: returns its position.
    pub async fn create_restore_point(&mut self, name: &str) -> Result<Lsn, PgError> {
        self.lsn_query(&format!(
            "SELECT pg_catalog.pg_create_restore_point({})",
            quote_literal(name)
        ))
        .await
    }

    /// Starts a non-exclusive backup (`pg_backup_start` on 15+, `pg_start_backup(…,
    /// false)` on 13/14); this session must stay open until [`Connection::backup_stop`].
    pub async fn backup_start(&mut self, label: &str, fast: bool) -> Result<Lsn, PgError> {
        let major = self.major_or_error()?;
        let sql = if major >= 15 {
            format!(
                "SELECT pg_catalog.pg_backup_start({}, {fast})",
                quote_literal(label)
            )
        } else {
            format!(
                "SELECT pg_catalog.pg_start_backup({}, {fast}, false)",
                quote_literal(label)
            )
        };
        self.lsn_query(&sql).await
    }

    /// Stops the non-exclusive backup started in this session; with `wait_for_archive`
    /// the server waits until the last needed segment is archived.
    pub async fn backup_stop(&mut self, wait_for_archive: bool) -> Result<BackupStop, PgError> {
        let major = self.major_or_error()?;
        let sql = if major >= 15 {
            format!(
                "SELECT lsn, labelfile, spcmapfile FROM pg_catalog.pg_backup_stop({wait_for_archive})"
            )
        } else {
            format!(
                "SELECT lsn, labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(false, {wait_for_archive})"
            )
        };
        let r = self.query(&sql).await?;
        let lsn = parse_lsn(self, &sql, r.get(0, "lsn"))?.ok_or_else(|| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!("`{sql}` returned no stop position")),
        })?;
        Ok(BackupStop {
            lsn,
            label_file: r.get(0, "labelfile").unwrap_or_default(),
            tablespace_map: r.get(0, "spcmapfile").unwrap_or_default(),
        })
    }

    /// `pg_read_binary_file(path)` (relative to the data directory, or absolute with the
    /// right privileges).
    pub async fn read_binary_file(&mut self, path: &str) -> Result<Vec<u8>, PgError> {
        let sql = format!(
            "SELECT pg_catalog.pg_read_binary_file({})",
            quote_literal(path)
        );
        let r = self.query(&sql).await?;
        let hex = self.one_value(&r, &sql)?;
        decode_bytea_hex(&hex).ok_or_else(|| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!(
                "`{sql}`: expected bytea in hex format (\\x…), got {} characters that are not",
                hex.len()
            )),
        })
    }

    /// Settings from `pg_settings` (names not found are absent from the map).
    pub async fn settings(&mut self, names: &[&str]) -> Result<BTreeMap<String, Setting>, PgError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
        let r = self
            .query(&format!(
                "SELECT name, setting, unit FROM pg_catalog.pg_settings WHERE name IN ({})",
                list.join(", ")
            ))
            .await?;
        Ok((0..r.rows.len())
            .filter_map(|i| {
                Some((
                    r.get(i, "name")?,
                    Setting {
                        value: r.get(i, "setting").unwrap_or_default(),
                        unit: r.get(i, "unit"),
                    },
                ))
            })
            .collect())
    }

    /// `pg_stat_replication` (rows other than the role's own are visible with monitoring
    /// privileges only).
    pub async fn stat_replication(&mut self) -> Result<Vec<ReplicationClient>, PgError> {
        let sql = "SELECT pid, usename, application_name, client_addr, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, sync_state FROM pg_catalog.pg_stat_replication ORDER BY pid";
        let r = self.query(sql).await?;
        let mut out = Vec::with_capacity(r.rows.len());
        for i in 0..r.rows.len() {
            out.push(ReplicationClient {
                pid: r.get(i, "pid").and_then(|p| p.parse().ok()).unwrap_or(0),
                user: r.get(i, "usename"),
                application_name: r.get(i, "application_name"),
                client_addr: r.get(i, "client_addr"),
                state: r.get(i, "state"),
                sent_lsn: parse_lsn(self, "sent_lsn", r.get(i, "sent_lsn"))?,
                write_lsn: parse_lsn(self, "write_lsn", r.get(i, "write_lsn"))?,
                flush_lsn: parse_lsn(self, "flush_lsn", r.get(i, "flush_lsn"))?,
                replay_lsn: parse_lsn(self, "replay_lsn", r.get(i, "replay_lsn"))?,
                sync_state: r.get(i, "sync_state"),
            });
        }
        Ok(out)
    }

    /// The connected role's privileges (one query; function signatures of this major).
    pub async fn privileges(&mut self) -> Result<Privileges, PgError> {
        let major = self.major_or_error()?;
        let (start, stop) = if major >= 15 {
            ("pg_backup_start(text, boolean)", "pg_backup_stop(boolean)")
        } else {
            (
                "pg_start_backup(text, boolean, boolean)",
                "pg_stop_backup(boolean, boolean)",
            )
        };
        let checkpoint = if major >= 15 {
            "pg_has_role(current_user, 'pg_checkpoint', 'MEMBER')"
        } else {
            "false"
        };
        let sql = format!(
            "SELECT r.rolsuper AS superuser, \
                    r.rolsuper OR r.rolreplication AS replication, \
                    r.rolsuper OR pg_has_role(current_user, 'pg_monitor', 'MEMBER') \
                      OR (pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER') \
                          AND pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')) AS monitoring, \
                    has_function_privilege(current_user, 'pg_catalog.{start}', 'EXECUTE') \
                      AND has_function_privilege(current_user, 'pg_catalog.{stop}', 'EXECUTE') \
                      AND has_function_privilege(current_user, 'pg_catalog.pg_switch_wal()', 'EXECUTE') \
                      AND has_function_privilege(current_user, 'pg_catalog.pg_create_restore_point(text)', 'EXECUTE') AS backup_functions, \
                    r.rolsuper OR {checkpoint} AS checkpoint \
             FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
        );
        let r = self.query(&sql).await?;
        if r.rows.is_empty() {
            return Err(PgError::Protocol {
                target: self.target().to_string(),
                source: ProtocolError("the current role is not in pg_roles".into()),
            });
        }
        let superuser = bool_col(&r, 0, "superuser");
        let monitoring = bool_col(&r, 0, "monitoring");
        Ok(Privileges {
            superuser,
            replication: bool_col(&r, 0, "replication"),
            monitoring,
            backup: superuser || (monitoring && bool_col(&r, 0, "backup_functions")),
            checkpoint: bool_col(&r, 0, "checkpoint"),
        })
    }
}

/// Decodes bytea's hex output format (`\x0a1b…`).
pub fn decode_bytea_hex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    hex.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bytea_hex() {
        assert_eq!(decode_bytea_hex("\\x"), Some(vec![]));
        assert_eq!(decode_bytea_hex("\\x00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_bytea_hex("\\x0"), None);
        assert_eq!(decode_bytea_hex("00"), None);
        assert_eq!(decode_bytea_hex("\\xzz"), None);
    }

    proptest! {
        #[test]
        fn bytea_round_trip(data: Vec<u8>) {
            let text: String = std::iter::once("\\x".to_string())
                .chain(data.iter().map(|b| format!("{b:02x}")))
                .collect();
            prop_assert_eq!(decode_bytea_hex(&text), Some(data));
        }
    }
}
