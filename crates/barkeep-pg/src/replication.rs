//! Replication commands on a `replication=true` connection (walsender), with the syntax
//! of each major (13–18). See the protocol reference §2.

use barkeep_wal::{Lsn, SegmentSize, TimeLineId};

use crate::codec::ProtocolError;
use crate::codec::frontend::quote_ident;
use crate::conn::{Connection, QueryResult};
use crate::error::PgError;

/// `IDENTIFY_SYSTEM` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's system identifier (as `pg_controldata` prints it).
    pub system_id: u64,
    /// Current timeline.
    pub timeline: TimeLineId,
    /// Current flush position (replay/receive position on a standby).
    pub xlogpos: Lsn,
}

fn field<T: std::str::FromStr>(
    conn: &Connection,
    r: &QueryResult,
    name: &str,
    what: &str,
) -> Result<T, PgError> {
    let text = r.get(0, name).ok_or_else(|| PgError::Protocol {
        target: conn.target().to_string(),
        source: ProtocolError(format!("{what}: no `{name}` column in the result")),
    })?;
    text.parse().map_err(|_| PgError::Protocol {
        target: conn.target().to_string(),
        source: ProtocolError(format!("{what}: cannot parse `{name}` = `{text}`")),
    })
}

impl Connection {
    /// `IDENTIFY_SYSTEM`.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity, PgError> {
        let r = self.query("IDENTIFY_SYSTEM").await?;
        let xlogpos: String = field(self, &r, "xlogpos", "IDENTIFY_SYSTEM")?;
        Ok(SystemIdentity {
            system_id: field(self, &r, "systemid", "IDENTIFY_SYSTEM")?,
            // int4 on 13–15, int8 from 16: parse the text either way.
            timeline: field(self, &r, "timeline", "IDENTIFY_SYSTEM")?,
            xlogpos: xlogpos
                .parse()
                .map_err(|e: barkeep_wal::WalError| PgError::Protocol {
                    target: self.target().to_string(),
                    source: ProtocolError(format!("IDENTIFY_SYSTEM: {e}")),
                })?,
        })
    }

    /// `SHOW name` (works in walsender mode on 10+ and on SQL connections).
    pub async fn show(&mut self, name: &str) -> Result<String, PgError> {
        let sql = format!("SHOW {}", quote_ident(name));
        self.query_value(&sql)
            .await?
            .ok_or_else(|| PgError::Protocol {
                target: self.target().to_string(),
                source: ProtocolError(format!("`{sql}` returned no value")),
            })
    }

    /// `server_version_num` (e.g. 150018).
    pub async fn server_version_num(&mut self) -> Result<u32, PgError> {
        let v = self.show("server_version_num").await?;
        v.parse().map_err(|_| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!("server_version_num `{v}` is not a number")),
        })
    }

    /// `wal_segment_size`.
    pub async fn wal_segment_size(&mut self) -> Result<SegmentSize, PgError> {
        let v = self.show("wal_segment_size").await?;
        SegmentSize::from_setting(&v).map_err(|e| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!("wal_segment_size `{v}`: {e}")),
        })
    }
}

/// Checks a replication slot name as PostgreSQL does (`[a-z0-9_]`, 1–63 bytes), so a bad
/// name is refused here with a clear message instead of a syntax error from the server.
pub fn check_slot_name(name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() || name.len() > 63 {
        return Err(ProtocolError(format!(
            "replication slot name `{name}` must be 1 to 63 characters long"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(ProtocolError(format!(
            "replication slot name `{name}` contains `{c}`; only lower-case letters, digits and `_` are allowed"
        )));
    }
    Ok(())
}

/// What the server knows about a physical replication slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// `physical` or `logical`.
    pub slot_type: String,
    /// Oldest WAL the slot keeps (`None` until WAL is reserved).
    pub restart_lsn: Option<Lsn>,
    /// Timeline of `restart_lsn` (READ_REPLICATION_SLOT on 15+ only).
    pub restart_tli: Option<TimeLineId>,
    /// `reserved`, `extended`, `unreserved` or `lost` (SQL catalog only).
    pub wal_status: Option<String>,
    /// Whether a client is streaming from it (SQL catalog only).
    pub active: Option<bool>,
}

/// A timeline history file fetched with `TIMELINE_HISTORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistoryFile {
    /// `0000000N.history`.
    pub filename: String,
    /// The file's bytes, as stored on the server.
    pub content: Vec<u8>,
}

impl Connection {
    fn protocol_error(&self, msg: String) -> PgError {
        PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(msg),
        }
    }

    fn slot_name_ok(&self, name: &str) -> Result<(), PgError> {
        check_slot_name(name).map_err(|source| PgError::Protocol {
            target: self.target().to_string(),
            source,
        })
    }

    /// `CREATE_REPLICATION_SLOT name [TEMPORARY] PHYSICAL RESERVE_WAL` (the keyword form is
    /// accepted by 13–18). With `reserve_wal` the slot pins WAL from the last checkpoint's
    /// redo position at once; without it, only after the first feedback.
    pub async fn create_physical_slot(
        &mut self,
        name: &str,
        temporary: bool,
        reserve_wal: bool,
    ) -> Result<(), PgError> {
        self.slot_name_ok(name)?;
        let sql = format!(
            "CREATE_REPLICATION_SLOT {name}{} PHYSICAL{}",
            if temporary { " TEMPORARY" } else { "" },
            if reserve_wal { " RESERVE_WAL" } else { "" }
        );
        let r = self.query(&sql).await?;
        match r.get(0, "slot_name") {
            Some(created) if created == name => Ok(()),
            other => Err(self.protocol_error(format!(
                "CREATE_REPLICATION_SLOT: expected a row naming slot `{name}`, got {other:?}"
            ))),
        }
    }

    /// `DROP_REPLICATION_SLOT name [WAIT]`. Without `wait`, dropping a slot in use fails
    /// (SQLSTATE 55006).
    pub async fn drop_replication_slot(&mut self, name: &str, wait: bool) -> Result<(), PgError> {
        self.slot_name_ok(name)?;
        let sql = format!(
            "DROP_REPLICATION_SLOT {name}{}",
            if wait { " WAIT" } else { "" }
        );
        self.simple_query(&sql).await.map(|_| ())
    }

    /// The state of slot `name`, `None` when it does not exist. On a walsender connection
    /// of 15+ this is `READ_REPLICATION_SLOT`; on a SQL connection (any version) the
    /// `pg_replication_slots` view, which also tells `wal_status` and `active`. A 13/14
    /// walsender cannot answer: the error says to use a SQL connection.
    pub async fn replication_slot(&mut self, name: &str) -> Result<Option<SlotState>, PgError> {
        self.slot_name_ok(name)?;
        let lsn = |this: &Self, v: Option<String>| -> Result<Option<Lsn>, PgError> {
            v.map(|t| {
                t.parse::<Lsn>()
                    .map_err(|e| this.protocol_error(format!("slot `{name}`: {e}")))
            })
            .transpose()
        };
        if self.is_walsender() {
            if self.server_major().is_some_and(|m| m < 15) {
                return Err(self.protocol_error(format!(
                    "READ_REPLICATION_SLOT needs PostgreSQL 15 or later (server is {}); read slot `{name}` from pg_replication_slots over a SQL connection",
                    self.parameter("server_version").unwrap_or("?")
                )));
            }
            let r = self.query(&format!("READ_REPLICATION_SLOT {name}")).await?;
            let Some(slot_type) = r.get(0, "slot_type") else {
                // An unknown slot is one row of NULLs.
                return Ok(None);
            };
            let restart_lsn = lsn(self, r.get(0, "restart_lsn"))?;
            let restart_tli = r
                .get(0, "restart_tli")
                .map(|t| {
                    t.parse::<TimeLineId>().map_err(|_| {
                        self.protocol_error(format!("slot `{name}`: restart_tli `{t}`"))
                    })
                })
                .transpose()?;
            return Ok(Some(SlotState {
                slot_type,
                restart_lsn,
                restart_tli,
                wal_status: None,
                active: None,
            }));
        }
        let r = self
            .query(&format!(
                "SELECT slot_type, restart_lsn, wal_status, active FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
                crate::codec::frontend::quote_literal(name)
            ))
            .await?;
        if r.rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(SlotState {
            slot_type: r.get(0, "slot_type").unwrap_or_default(),
            restart_lsn: lsn(self, r.get(0, "restart_lsn"))?,
            restart_tli: None,
            wal_status: r.get(0, "wal_status"),
            active: r.get(0, "active").map(|a| a == "t"),
        }))
    }

    /// `TIMELINE_HISTORY tli` (tli ≥ 2: timeline 1 has no history file).
    pub async fn timeline_history(
        &mut self,
        tli: TimeLineId,
    ) -> Result<TimelineHistoryFile, PgError> {
        if tli < 2 {
            return Err(self.protocol_error(format!(
                "TIMELINE_HISTORY {tli}: timeline 1 has no history file; ask for timelines 2 and up"
            )));
        }
        let r = self.query(&format!("TIMELINE_HISTORY {tli}")).await?;
        let filename = r.get(0, "filename");
        let content = r
            .rows
            .first()
            .and_then(|row| row.get(1))
            .and_then(|c| c.as_ref());
        match (filename, content) {
            (Some(filename), Some(content)) => {
                let expected = barkeep_wal::history_file_name(tli);
                if filename != expected {
                    return Err(self.protocol_error(format!(
                        "TIMELINE_HISTORY {tli}: expected file `{expected}`, got `{filename}`"
                    )));
                }
                Ok(TimelineHistoryFile {
                    filename,
                    content: content.to_vec(),
                })
            }
            _ => Err(self.protocol_error(format!(
                "TIMELINE_HISTORY {tli}: expected one row (filename, content)"
            ))),
        }
    }
}
