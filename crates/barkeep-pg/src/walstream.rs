//! `START_REPLICATION … PHYSICAL` as a stream of typed events (protocol reference §6):
//! WAL data (checked to be contiguous), keepalives, and the end of the stream — a timeline
//! switch with the next timeline and its start position, a stop the client asked for, or
//! the server shutting down.

use barkeep_wal::{Lsn, TimeLineId};
use bytes::Bytes;

use crate::codec::{BackendMessage, WalMessage};
use crate::conn::Connection;
use crate::error::PgError;
use crate::replication::check_slot_name;

/// Why a WAL stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The timeline being streamed ended (promotion, or a historic timeline was asked
    /// for): continue on `next_tli` from `switch_lsn`'s segment.
    TimelineEnd {
        /// The next timeline.
        next_tli: TimeLineId,
        /// Where the next timeline forks off.
        switch_lsn: Lsn,
    },
    /// The client asked to stop ([`WalStream::request_stop`]); the connection is usable.
    Stopped,
    /// The server ended the stream on its own (shutdown): reconnect.
    ServerClosed,
}

/// One event of a physical WAL stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEvent {
    /// WAL bytes from `start`.
    Data {
        /// Position of the first byte.
        start: Lsn,
        /// The server's end of WAL when it sent this.
        wal_end: Lsn,
        /// The bytes.
        data: Bytes,
    },
    /// A keepalive; answer with [`WalStream::send_status`] at once when `reply_requested`.
    Keepalive {
        /// The server's sent position.
        wal_end: Lsn,
        /// The server disconnects unless a status update follows.
        reply_requested: bool,
    },
    /// The stream is over.
    End(StreamEnd),
}

/// A running `START_REPLICATION`; borrows the connection until the stream ends.
#[derive(Debug)]
pub struct WalStream<'a> {
    conn: &'a mut Connection,
    /// Next expected `dataStart`.
    next: Option<u64>,
    sent_copy_done: bool,
    ended: Option<StreamEnd>,
}

impl Connection {
    /// `START_REPLICATION [SLOT slot] PHYSICAL start [TIMELINE tli]`. Errors the server
    /// reports before the stream starts (WAL already removed, start ahead of the flush
    /// position, slot in use…) are returned here with PostgreSQL's message and SQLSTATE.
    pub async fn start_replication(
        &mut self,
        slot: Option<&str>,
        start: Lsn,
        timeline: Option<TimeLineId>,
    ) -> Result<WalStream<'_>, PgError> {
        let mut sql = String::from("START_REPLICATION");
        if let Some(s) = slot {
            check_slot_name(s).map_err(|source| PgError::Protocol {
                target: self.target().to_string(),
                source,
            })?;
            sql.push_str(&format!(" SLOT {s}"));
        }
        sql.push_str(&format!(" PHYSICAL {start}"));
        if let Some(t) = timeline {
            sql.push_str(&format!(" TIMELINE {t}"));
        }
        tracing::debug!(target = %self.target(), "{sql}");
        self.send_query(&sql).await?;
        let mut stream = WalStream {
            conn: self,
            next: None,
            sent_copy_done: false,
            ended: None,
        };
        match stream.conn.read().await? {
            BackendMessage::CopyBothResponse(_) => Ok(stream),
            BackendMessage::ErrorResponse(fields) => {
                let e = stream.conn.server_error(fields, Some(&sql));
                Err(stream.conn.finish_with_error(e).await)
            }
            // The start point is exactly the end of the requested timeline: no COPY, the
            // next-timeline result set comes at once.
            BackendMessage::RowDescription(_) => {
                stream.sent_copy_done = true;
                let end = stream.after_copy().await?;
                stream.ended = Some(end);
                Ok(stream)
            }
            other => Err(stream.conn.unexpected("CopyBothResponse", &other)),
        }
    }
}

impl WalStream<'_> {
    /// The next event. After [`WalEvent::End`] every call returns the same end again.
    pub async fn next(&mut self) -> Result<WalEvent, PgError> {
        if let Some(end) = &self.ended {
            return Ok(WalEvent::End(end.clone()));
        }
        let msg = self.conn.read().await;
        self.handle(msg).await
    }

    /// As [`WalStream::next`], but returns `Ok(None)` when nothing arrives within
    /// `wait` — so the caller can send periodic status updates or notice a stop request.
    /// Only the wait for the next message is cut short (nothing is lost); the handling
    /// of a message, such as the end-of-stream exchange, always completes.
    pub async fn next_within(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<Option<WalEvent>, PgError> {
        if let Some(end) = &self.ended {
            return Ok(Some(WalEvent::End(end.clone())));
        }
        match tokio::time::timeout(wait, self.conn.read()).await {
            Err(_) => Ok(None),
            Ok(msg) => self.handle(msg).await.map(Some),
        }
    }

    async fn handle(&mut self, msg: Result<BackendMessage, PgError>) -> Result<WalEvent, PgError> {
        match msg {
            Ok(BackendMessage::CopyData(payload)) => {
                let msg = WalMessage::parse(payload).map_err(|source| PgError::Protocol {
                    target: self.conn.target().to_string(),
                    source,
                })?;
                self.event(msg)
            }
            Ok(BackendMessage::CopyDone) => {
                let end = self.after_copy().await?;
                self.ended = Some(end.clone());
                Ok(WalEvent::End(end))
            }
            // At shutdown the walsender sends CommandComplete while still in COPY mode
            // and exits.
            Ok(BackendMessage::CommandComplete(_)) | Err(PgError::Closed { .. }) => {
                self.ended = Some(StreamEnd::ServerClosed);
                Ok(WalEvent::End(StreamEnd::ServerClosed))
            }
            Ok(BackendMessage::ErrorResponse(fields)) => {
                let e = self.conn.server_error(fields, None);
                self.ended = Some(StreamEnd::ServerClosed);
                Err(self.conn.finish_with_error(e).await)
            }
            Ok(other) => Err(self.conn.unexpected("CopyData or CopyDone", &other)),
            Err(e) => Err(e),
        }
    }

    fn event(&mut self, msg: WalMessage) -> Result<WalEvent, PgError> {
        match msg {
            WalMessage::XLogData {
                start,
                wal_end,
                data,
                ..
            } => {
                if let Some(expected) = self.next
                    && expected != start
                {
                    return Err(PgError::Protocol {
                        target: self.conn.target().to_string(),
                        source: crate::codec::ProtocolError(format!(
                            "XLogData starts at {}, expected {} (the stream must be contiguous)",
                            Lsn(start),
                            Lsn(expected)
                        )),
                    });
                }
                let end =
                    start
                        .checked_add(data.len() as u64)
                        .ok_or_else(|| PgError::Protocol {
                            target: self.conn.target().to_string(),
                            source: crate::codec::ProtocolError(format!(
                                "XLogData at {} with {} bytes overflows the LSN space",
                                Lsn(start),
                                data.len()
                            )),
                        })?;
                self.next = Some(end);
                Ok(WalEvent::Data {
                    start: Lsn(start),
                    wal_end: Lsn(wal_end),
                    data,
                })
            }
            WalMessage::Keepalive {
                wal_end,
                reply_requested,
                ..
            } => Ok(WalEvent::Keepalive {
                wal_end: Lsn(wal_end),
                reply_requested,
            }),
        }
    }

    /// The server left COPY mode (or never entered it): answer CopyDone, then read the
    /// optional next-timeline row, the command completions and ReadyForQuery.
    async fn after_copy(&mut self) -> Result<StreamEnd, PgError> {
        if !self.sent_copy_done {
            self.sent_copy_done = true;
            self.conn.send_copy_done().await?;
        }
        let mut next: Option<(TimeLineId, Lsn)> = None;
        let mut error = None;
        loop {
            match self.conn.read().await? {
                BackendMessage::RowDescription(_)
                | BackendMessage::CommandComplete(_)
                | BackendMessage::CopyData(_) => {}
                BackendMessage::DataRow(row) => {
                    let text = |i: usize| {
                        row.get(i)
                            .and_then(|c| c.as_ref())
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                    };
                    let tli = text(0).and_then(|t| t.parse::<TimeLineId>().ok());
                    let lsn = text(1).and_then(|t| t.parse::<Lsn>().ok());
                    match (tli, lsn) {
                        (Some(t), Some(l)) => next = Some((t, l)),
                        _ => {
                            return Err(PgError::Protocol {
                                target: self.conn.target().to_string(),
                                source: crate::codec::ProtocolError(format!(
                                    "end of timeline: expected (next_tli, next_tli_startpos), got ({:?}, {:?})",
                                    text(0),
                                    text(1)
                                )),
                            });
                        }
                    }
                }
                BackendMessage::CopyDone => {}
                BackendMessage::ErrorResponse(fields) => {
                    error = Some(self.conn.server_error(fields, None));
                }
                BackendMessage::ReadyForQuery(_) => break,
                other => return Err(self.conn.unexpected("end of the WAL stream", &other)),
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        Ok(match next {
            Some((next_tli, switch_lsn)) => StreamEnd::TimelineEnd {
                next_tli,
                switch_lsn,
            },
            None => StreamEnd::Stopped,
        })
    }

    /// Sends a standby status update: `write` = end of what was received and written,
    /// `flush` = end of what is durable (0 when nothing should be acknowledged — with a
    /// slot, the flush position moves the slot's `restart_lsn`, so only report WAL that
    /// is safely archived).
    pub async fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        reply_requested: bool,
    ) -> Result<(), PgError> {
        if self.ended.is_some() {
            return Ok(());
        }
        self.conn
            .send_standby_status(write.0, flush.0, reply_requested)
            .await
    }

    /// Asks the server to stop streaming. Data already in flight still arrives from
    /// [`WalStream::next`], followed by `End(Stopped)` (or a timeline end that crossed).
    pub async fn request_stop(&mut self) -> Result<(), PgError> {
        if self.sent_copy_done || self.ended.is_some() {
            return Ok(());
        }
        self.sent_copy_done = true;
        self.conn.send_copy_done().await
    }

    /// The position right after the last WAL byte received.
    pub fn received_up_to(&self) -> Option<Lsn> {
        self.next.map(Lsn)
    }
}
