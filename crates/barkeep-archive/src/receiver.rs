//! `receive-wal`: the streaming archiver. Writes WAL into `streaming/` exactly as
//! `pg_receivewal` does — so the files are byte-identical to its — and never acknowledges
//! to PostgreSQL a byte that is not durable:
//!
//! - a segment is pre-filled with zeros to the segment size under a temporary name,
//!   fsynced and renamed to `NAME.partial` (directory fsynced) before the first byte is
//!   written, so a crash never leaves a short `.partial` (see [`prepare_partial`]);
//! - when the segment is complete it is fsynced and renamed to `NAME` (directory fsynced);
//! - the flush position reported to the server (which moves the slot's `restart_lsn`) is
//!   the end of what is fsynced: segment ends, plus, when the server asks for a reply or in
//!   synchronous mode, the fsynced part of the open segment;
//! - the start position is the newest of the files in `streaming/` and the archive
//!   (a `.partial` restarts its segment), else the slot's `restart_lsn` (15+), else the
//!   server's current position — always rounded down to a segment start;
//! - a timeline switch leaves the old timeline's last segment as `.partial`, stores
//!   `TTTTTTTT.history` durably, and goes on with the new timeline;
//! - after a server restart or a network error it reconnects with backoff and resumes
//!   where the durable data ends.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barkeep_pg::conninfo::ConnParams;
use barkeep_pg::walstream::{StreamEnd, WalEvent};
use barkeep_pg::{Connection, PgError};
use barkeep_wal::{Lsn, SegmentSize, TimeLineId};

use crate::archive::Identity;
use crate::durable;
use crate::error::{ArchiveError, Result};
use crate::names::WalName;

/// How `receive-wal` runs.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Server name (for messages and locks).
    pub server: String,
    /// `streaming_wals_directory`.
    pub streaming_dir: PathBuf,
    /// `wals_directory`: consulted for the start position.
    pub wals_dir: PathBuf,
    /// `errors_directory`: where a damaged `.partial` is moved aside (never deleted).
    pub errors_dir: PathBuf,
    /// `identity.json`: the system identifier the archive belongs to.
    pub identity_file: PathBuf,
    /// Replication connection (`replication=true`, `application_name` =
    /// `streaming_archiver_name`).
    pub conn: ConnParams,
    /// `slot_name`.
    pub slot: Option<String>,
    /// Create the slot when missing (`create_slot = auto`).
    pub create_slot: bool,
    /// Synchronous mode: fsync and report after every message.
    pub synchronous: bool,
    /// Status update interval (pg_receivewal's default: 10 s).
    pub status_interval: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// Why the receiver stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop.
    Requested,
}

/// The segment being written.
#[derive(Debug)]
struct OpenSegment {
    file: File,
    partial: PathBuf,
    final_name: PathBuf,
    start: Lsn,
    written: u64,
    synced: u64,
}

/// Called with the file name each time a segment (or a history file) is complete and
/// durable in the streaming directory: the place to archive it at once.
pub type OnComplete = Arc<dyn Fn(&str) + Send + Sync>;

/// Receiver state across reconnections.
pub struct Receiver {
    cfg: ReceiverConfig,
    stop: Arc<AtomicBool>,
    on_complete: Option<OnComplete>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("cfg", &self.cfg)
            .field("on_complete", &self.on_complete.is_some())
            .finish()
    }
}

impl Receiver {
    /// A receiver; set `stop` to end it cleanly (signals do so in the CLI).
    pub fn new(cfg: ReceiverConfig, stop: Arc<AtomicBool>) -> Receiver {
        Receiver {
            cfg,
            stop,
            on_complete: None,
        }
    }

    /// Calls `f` after each completed segment or history file (it must not block: hand
    /// the work to another thread).
    pub fn on_complete(mut self, f: OnComplete) -> Receiver {
        self.on_complete = Some(f);
        self
    }

    fn completed(&self, name: &str) {
        if let Some(f) = &self.on_complete {
            f(name);
        }
    }

    /// Runs until stopped: sessions with reconnection and exponential backoff. Errors that
    /// no retry can fix (the server belongs to another cluster, invalid files in the
    /// streaming directory) end it.
    pub async fn run(&mut self) -> Result<Stopped> {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Stopped::Requested);
            }
            let started = Instant::now();
            match self.session().await {
                Ok(()) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(Stopped::Requested);
                    }
                    backoff = Duration::from_secs(1);
                }
                Err(SessionError::Fatal(e)) if !e.is_disk_full() => return Err(e),
                Err(e) => {
                    let msg = match e {
                        SessionError::Retry(m) => m,
                        // Disk full: nothing was acknowledged past what is durable; the
                        // segment is streamed again from its start once space returns.
                        SessionError::Fatal(e) => crate::error::chain(&e),
                    };
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::warn!(server = %self.cfg.server, "WAL streaming interrupted: {msg}; reconnecting in {} s", backoff.as_secs());
                    let deadline = Instant::now() + backoff;
                    while Instant::now() < deadline {
                        if self.stop.load(Ordering::Relaxed) {
                            return Ok(Stopped::Requested);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                }
            }
        }
    }

    async fn session(&mut self) -> Result<(), SessionError> {
        let mut conn = Connection::connect(&self.cfg.conn).await.map_err(retry)?;
        let id = conn.identify_system().await.map_err(retry)?;
        let major = conn.server_major().unwrap_or(0);
        Identity::check_or_record(
            &self.cfg.identity_file,
            id.system_id,
            major,
            &format!("{}` at `{}", self.cfg.server, conn.target()),
            "WAL",
        )
        .map_err(SessionError::Fatal)?;
        let seg = conn.wal_segment_size().await.map_err(retry)?;
        if let Some(slot) = self.cfg.slot.clone()
            && self.cfg.create_slot
        {
            match conn.create_physical_slot(&slot, false, true).await {
                Ok(()) => {
                    tracing::info!(server = %self.cfg.server, "created replication slot `{slot}`")
                }
                Err(e) if e.sqlstate() == Some("42710") => {}
                Err(e) => return Err(retry(e)),
            }
        }
        durable::blocking_io(|| {
            durable::create_dir_all_durable(&self.cfg.streaming_dir)?;
            remove_stale_prefills(&self.cfg.streaming_dir)
        })
        .map_err(SessionError::Fatal)?;
        let (mut tli, mut start) = self
            .start_position(&mut conn, id.timeline, id.xlogpos, seg)
            .await?;
        loop {
            if tli > 1 {
                self.store_history(&mut conn, tli).await?;
            }
            tracing::info!(server = %self.cfg.server, "streaming from {start} on timeline {tli}");
            match self.stream(&mut conn, tli, start, seg).await? {
                Some((next_tli, switch)) => {
                    tracing::info!(server = %self.cfg.server, "timeline {tli} ended at {switch}; following timeline {next_tli}");
                    tli = next_tli;
                    start = switch.segment_start(seg);
                }
                None => return Ok(()),
            }
        }
    }

    /// The newest WAL we already have (streaming dir and archive), as (tli, next start).
    async fn start_position(
        &self,
        conn: &mut Connection,
        server_tli: TimeLineId,
        xlogpos: Lsn,
        seg: SegmentSize,
    ) -> Result<(TimeLineId, Lsn), SessionError> {
        let mut best: Option<(u64, TimeLineId, bool)> = None; // (segno, tli, complete)
        let mut consider = |name: &str, complete_hint: Option<bool>| {
            let Some(w) = WalName::parse(name) else {
                return;
            };
            let complete = match (&w, complete_hint) {
                (WalName::Segment(_), h) => h.unwrap_or(true),
                (WalName::Partial(_), _) => false,
                _ => return,
            };
            let Some(s) = w.segment() else { return };
            let Ok(p) = seg.parse_segment_name(s) else {
                return;
            };
            let cand = (p.segno, p.tli, complete);
            if best.is_none_or(|b| cand > b) {
                best = Some(cand);
            }
        };
        durable::blocking_io(|| {
            // The streaming directory: complete files must have the full size.
            if let Ok(rd) = std::fs::read_dir(&self.cfg.streaming_dir) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    if WalName::parse(&name).is_some_and(|w| matches!(w, WalName::Segment(_)))
                        && len != seg.bytes()
                    {
                        tracing::warn!(server = %self.cfg.server, "ignoring `{name}` in the streaming directory: {len} bytes, not a whole segment");
                        continue;
                    }
                    consider(&name, None);
                }
            }
            // The archive: the newest hash directory is enough.
            if let Ok(rd) = std::fs::read_dir(&self.cfg.wals_dir) {
                let mut dirs: Vec<String> = rd
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 16)
                    .collect();
                dirs.sort_by_key(|d| (d[8..].to_string(), d[..8].to_string()));
                for d in dirs.iter().rev().take(2) {
                    if let Ok(files) = std::fs::read_dir(self.cfg.wals_dir.join(d)) {
                        for f in files.flatten() {
                            let n = f.file_name().to_string_lossy().into_owned();
                            if WalName::parse(&n).is_some_and(|w| matches!(w, WalName::Segment(_)))
                            {
                                consider(&n, Some(true));
                            }
                        }
                    }
                }
            }
        });
        if let Some((segno, tli, complete)) = best {
            let next = if complete { segno + 1 } else { segno };
            return Ok((tli, seg.segment_start(next)));
        }
        if let Some(slot) = &self.cfg.slot
            && conn.server_major().is_some_and(|m| m >= 15)
            && let Some(state) = conn.replication_slot(slot).await.map_err(retry)?
            && let (Some(lsn), Some(tli)) = (state.restart_lsn, state.restart_tli)
        {
            return Ok((tli, lsn.segment_start(seg)));
        }
        Ok((server_tli, xlogpos.segment_start(seg)))
    }

    /// Stores `TTTTTTTT.history` in the streaming directory unless it is already there or
    /// archived.
    async fn store_history(
        &self,
        conn: &mut Connection,
        tli: TimeLineId,
    ) -> Result<(), SessionError> {
        let name = barkeep_wal::history_file_name(tli);
        if self.cfg.streaming_dir.join(&name).exists() || self.cfg.wals_dir.join(&name).exists() {
            return Ok(());
        }
        let h = conn.timeline_history(tli).await.map_err(retry)?;
        durable::blocking_io(|| {
            durable::write_file_atomic(&self.cfg.streaming_dir.join(&name), &h.content)
        })
        .map_err(SessionError::Fatal)?;
        tracing::info!(server = %self.cfg.server, "stored {name}");
        self.completed(&name);
        Ok(())
    }

    fn open_segment(&self, tli: TimeLineId, start: Lsn, seg: SegmentSize) -> Result<OpenSegment> {
        let name = seg.segment_name(tli, start.segno(seg));
        let final_name = self.cfg.streaming_dir.join(&name);
        let partial = self.cfg.streaming_dir.join(format!("{name}.partial"));
        prepare_partial(&partial, seg, &self.cfg.errors_dir, &self.cfg.server)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(|e| ArchiveError::io("open", &partial, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ArchiveError::io("seek", &partial, e))?;
        Ok(OpenSegment {
            file,
            partial,
            final_name,
            start,
            written: 0,
            synced: 0,
        })
    }

    /// One START_REPLICATION; `Some(next timeline)` at a timeline end, `None` when the
    /// stream ended otherwise (stop requested).
    async fn stream(
        &self,
        conn: &mut Connection,
        tli: TimeLineId,
        start: Lsn,
        seg: SegmentSize,
    ) -> Result<Option<(TimeLineId, Lsn)>, SessionError> {
        let slot = self.cfg.slot.as_deref();
        let mut stream = conn
            .start_replication(slot, start, Some(tli))
            .await
            .map_err(|e| {
                if e.sqlstate() == Some("58P01") {
                    // Retried: a standby being promoted or a restored pg_wal may still
                    // bring it back; meanwhile every attempt says what is at stake.
                    SessionError::Retry(format!(
                        "{}: the server no longer has the WAL from {start} on timeline {tli}, which the archive needs next; until it is found (another server of the cluster, a restored pg_wal) the archive cannot go on without a gap, and backups after it need new WAL",
                        crate::error::chain(&e)
                    ))
                } else {
                    retry(e)
                }
            })?;
        let mut current: Option<OpenSegment> = None;
        let mut received = start;
        let mut flushed = start;
        let mut last_status = Instant::now();
        let mut stopping = false;
        let report_flush = slot.is_some() || self.cfg.synchronous;
        loop {
            if self.stop.load(Ordering::Relaxed) && !stopping {
                stopping = true;
                stream.request_stop().await.map_err(retry)?;
            }
            let ev = stream
                .next_within(Duration::from_millis(500))
                .await
                .map_err(retry)?;
            let mut reply_now = false;
            match ev {
                None => {}
                Some(WalEvent::Data {
                    start: at, data, ..
                }) => {
                    if at != received {
                        return Err(SessionError::Retry(format!(
                            "WAL arrived at {at}, expected {received}"
                        )));
                    }
                    let mut rest = &data[..];
                    let mut pos = at;
                    while !rest.is_empty() {
                        if current.is_none() {
                            if pos.segment_offset(seg) != 0 {
                                return Err(SessionError::Retry(format!(
                                    "a new segment must start at offset 0, the stream is at {pos}"
                                )));
                            }
                            current = Some(
                                durable::blocking_io(|| self.open_segment(tli, pos, seg))
                                    .map_err(SessionError::Fatal)?,
                            );
                        }
                        let Some(cur) = current.as_mut() else { break };
                        let room = (seg.bytes() - cur.written) as usize;
                        let n = room.min(rest.len());
                        durable::blocking_io(|| cur.file.write_all(&rest[..n])).map_err(|e| {
                            SessionError::Fatal(ArchiveError::io("write", &cur.partial, e))
                        })?;
                        cur.written += n as u64;
                        rest = &rest[n..];
                        pos = Lsn(pos.0 + n as u64);
                        if cur.written == seg.bytes() {
                            let done = current
                                .take()
                                .ok_or_else(|| SessionError::Retry("no segment".into()))?;
                            durable::blocking_io(|| self.complete(done))
                                .map_err(SessionError::Fatal)?;
                            flushed = pos;
                            reply_now = report_flush;
                        }
                    }
                    received = pos;
                    if self.cfg.synchronous {
                        if let Some(cur) = current.as_mut() {
                            durable::blocking_io(|| sync(cur)).map_err(SessionError::Fatal)?;
                        }
                        flushed = received;
                        reply_now = true;
                    }
                }
                Some(WalEvent::Keepalive {
                    reply_requested: true,
                    ..
                }) => {
                    if report_flush && let Some(cur) = current.as_mut() {
                        durable::blocking_io(|| sync(cur)).map_err(SessionError::Fatal)?;
                        flushed = received;
                    }
                    reply_now = true;
                }
                Some(WalEvent::Keepalive { .. }) => {}
                Some(WalEvent::End(end)) => {
                    if let Some(mut cur) = current.take() {
                        // Left as .partial, as pg_receivewal does.
                        durable::blocking_io(|| sync(&mut cur)).map_err(SessionError::Fatal)?;
                    }
                    return match end {
                        StreamEnd::TimelineEnd {
                            next_tli,
                            switch_lsn,
                        } => {
                            if next_tli <= tli || switch_lsn > received {
                                return Err(SessionError::Retry(format!(
                                    "server ended timeline {tli} with next timeline {next_tli} at {switch_lsn}, but WAL was received up to {received}"
                                )));
                            }
                            Ok(Some((next_tli, switch_lsn)))
                        }
                        StreamEnd::Stopped => Ok(None),
                        StreamEnd::ServerClosed => Err(SessionError::Retry(
                            "the server ended the stream (shutdown?)".into(),
                        )),
                    };
                }
            }
            if reply_now || last_status.elapsed() >= self.cfg.status_interval {
                let f = if report_flush { flushed } else { Lsn::INVALID };
                stream
                    .send_status(received, f, false)
                    .await
                    .map_err(retry)?;
                last_status = Instant::now();
            }
        }
    }

    /// fsync, rename `.partial` → final name, fsync the directory.
    fn complete(&self, mut cur: OpenSegment) -> Result<()> {
        sync(&mut cur)?;
        drop(cur.file);
        durable::rename_durable(&cur.partial, &cur.final_name)?;
        tracing::debug!(server = %self.cfg.server, "segment {} complete (from {})", cur.final_name.display(), cur.start);
        if let Some(n) = cur.final_name.file_name() {
            self.completed(&n.to_string_lossy());
        }
        Ok(())
    }
}

/// The name a segment is pre-filled under before it becomes `NAME.partial`. It starts
/// with a dot and ends in `.tmp`, so `archive-wal` (and Barman's) never take it for WAL.
fn prefill_path(partial: &Path) -> PathBuf {
    let name = partial
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    partial.with_file_name(format!(".{name}.prefill.tmp"))
}

/// Removes pre-fill files left by a receiver that was killed while preparing a segment.
/// They hold only zeros (WAL is written after the rename to `.partial`), so nothing of
/// value goes.
fn remove_stale_prefills(dir: &Path) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ArchiveError::io("list", dir, e)),
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') && n.ends_with(".partial.prefill.tmp") {
            tracing::info!(
                "removing `{}`: a segment pre-fill interrupted by a crash",
                e.path().display()
            );
            durable::remove_durable(&e.path())?;
        }
    }
    Ok(())
}

/// Makes `partial` a segment-sized file ready to receive WAL, whatever a crash left:
///
/// - a full-size `.partial` is reused as it is (its segment is streamed again from the
///   start, overwriting the same bytes);
/// - otherwise the segment is pre-filled with zeros under a temporary name, fsynced and
///   renamed to `.partial` (directory fsynced), so a crash never leaves a short `.partial`;
/// - a short `.partial` (written by an older barkeep or another tool) that holds only
///   zeros holds no WAL and is replaced; one with data is moved to `errors/` — never
///   deleted — and the segment is streamed again from the server.
pub fn prepare_partial(
    partial: &Path,
    seg: SegmentSize,
    errors_dir: &Path,
    server: &str,
) -> Result<()> {
    match std::fs::metadata(partial) {
        Ok(m) if m.len() == seg.bytes() => {
            return durable::fsync_file(partial);
        }
        Ok(m) => {
            let len = m.len();
            if holds_only_zeros(partial)? {
                tracing::warn!(server = %server, "`{}` is {len} bytes of zeros (a pre-fill cut short by a crash): it holds no WAL; preparing it again", partial.display());
                durable::remove_durable(partial)?;
            } else {
                durable::create_dir_all_durable(errors_dir)?;
                let name = partial
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dest = errors_dir.join(format!("{name}.{}.short", crate::archive::timestamp()));
                tracing::error!(server = %server, "`{}` is {len} bytes, not a whole segment, and holds data: moved to `{}`; the segment is streamed again from the server", partial.display(), dest.display());
                durable::rename_durable(partial, &dest)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ArchiveError::io("stat", partial, e)),
    }
    let tmp = prefill_path(partial);
    let result = (|| {
        let mut file = durable::create_private(&tmp)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = seg.bytes();
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])
                .map_err(|e| ArchiveError::io("pre-fill", &tmp, e))?;
            left -= n as u64;
        }
        file.sync_all()
            .map_err(|e| ArchiveError::io("fsync", &tmp, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    durable::rename_durable(&tmp, partial)
}

fn holds_only_zeros(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| ArchiveError::io("open", path, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n =
            std::io::Read::read(&mut f, &mut buf).map_err(|e| ArchiveError::io("read", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

fn sync(cur: &mut OpenSegment) -> Result<()> {
    if cur.synced < cur.written {
        cur.file
            .sync_data()
            .map_err(|e| ArchiveError::io("fsync", &cur.partial, e))?;
        cur.synced = cur.written;
    }
    Ok(())
}

/// How a session ended badly.
#[derive(Debug)]
enum SessionError {
    /// Reconnect and resume.
    Retry(String),
    /// Stop: retrying cannot help.
    Fatal(ArchiveError),
}

fn retry(e: PgError) -> SessionError {
    SessionError::Retry(crate::error::chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_partial_recovers_from_every_crash_state() {
        let d = tempfile::tempdir().expect("tempdir");
        let seg = SegmentSize::new(1 << 20).expect("1 MiB segments");
        let errors = d.path().join("errors");
        let p = d.path().join("000000010000000000000003.partial");
        // Nothing there: prepared under a temporary name, renamed whole.
        prepare_partial(&p, seg, &errors, "pg").expect("fresh");
        assert_eq!(std::fs::metadata(&p).expect("stat").len(), seg.bytes());
        assert!(!prefill_path(&p).exists());
        // A whole partial with WAL in it is kept as it is.
        std::fs::write(&p, vec![7u8; seg.bytes() as usize]).expect("w");
        prepare_partial(&p, seg, &errors, "pg").expect("whole");
        assert_eq!(std::fs::read(&p).expect("r")[0], 7);
        // Half a pre-fill (zeros): no WAL, prepared again.
        std::fs::write(&p, vec![0u8; 4096]).expect("w");
        prepare_partial(&p, seg, &errors, "pg").expect("zeros");
        assert_eq!(std::fs::metadata(&p).expect("stat").len(), seg.bytes());
        assert!(!errors.exists());
        // A short file with data: moved aside, never deleted.
        std::fs::write(&p, vec![1u8; 4096]).expect("w");
        prepare_partial(&p, seg, &errors, "pg").expect("data");
        let kept: Vec<_> = std::fs::read_dir(&errors)
            .expect("errors")
            .flatten()
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(kept[0].path()).expect("r"), vec![1u8; 4096]);
        assert!(kept[0].file_name().to_string_lossy().ends_with(".short"));
        // A pre-fill interrupted by a crash is removed at the next start.
        std::fs::write(prefill_path(&p), vec![0u8; 10]).expect("w");
        remove_stale_prefills(d.path()).expect("sweep");
        assert!(!prefill_path(&p).exists());
        assert!(p.exists());
    }
}
