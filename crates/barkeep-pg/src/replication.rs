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
