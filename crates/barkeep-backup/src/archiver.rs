//! Archiving as segments complete: a background thread that `receive-wal` wakes each time
//! a segment is durable in `streaming/`. It runs `archive-wal` for the server (validate,
//! compress, catalogue, remove the source) and then promotes the backups whose WAL is now
//! all archived from WAITING_FOR_WALS to DONE — so a backup is restorable as soon as its
//! end segment is streamed, with no cron and no `check-backup`.
//!
//! The receiver never waits for it: wake-ups coalesce (one pending at most), and a failure
//! here is logged and retried on the next wake-up — the segment stays in `streaming/`,
//! where `archive-wal` (or the next start) finds it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use barkeep_archive::receiver::OnComplete;
use barkeep_archive::{ArchiveError, ServerArchive};

use barkeep_catalog::{CatalogOps, LocalCatalog as Catalog};

/// Told of every file archived: its name and stored size.
pub type OnArchived = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// The background archiver of one server.
#[derive(Debug)]
pub struct BackgroundArchiver {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundArchiver {
    /// Starts the thread; it archives once at once (what a previous run left), then on
    /// every wake-up.
    pub fn start(catalog: Catalog) -> std::io::Result<BackgroundArchiver> {
        Self::start_with(catalog, None)
    }

    /// [`BackgroundArchiver::start`], telling `on_archived` of each file archived.
    pub fn start_with(
        catalog: Catalog,
        on_archived: Option<OnArchived>,
    ) -> std::io::Result<BackgroundArchiver> {
        let archive = catalog.archive.clone();
        let (wake, woken) = sync_channel::<()>(1);
        let _ = wake.try_send(());
        let thread = std::thread::Builder::new()
            .name(format!("archiver-{}", archive.server))
            .spawn(move || run(&catalog, &archive, &woken, on_archived.as_ref()))?;
        Ok(BackgroundArchiver {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// The callback to give the receiver ([`barkeep_archive::receiver::Receiver::on_complete`]).
    pub fn notifier(&self) -> OnComplete {
        let wake = self.wake.clone();
        Arc::new(move |_name: &str| {
            if let Some(w) = &wake {
                // Full: a run is already pending and will see this file too; disconnected:
                // the thread is gone (receiver stopping), the next start archives it.
                let _ = w.try_send(());
            }
        })
    }

    /// Lets the pending run finish and stops the thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(w) = self.wake.take() {
            let _ = w.try_send(());
            drop(w);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BackgroundArchiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    catalog: &Catalog,
    archive: &ServerArchive,
    woken: &Receiver<()>,
    on_archived: Option<&OnArchived>,
) {
    // Ends when every sender is gone (the receiver stopped) and no wake-up is pending.
    while woken.recv().is_ok() {
        archive_once_with(catalog, archive, on_archived);
    }
}

/// One pass: archive what is pending, then promote waiting backups. Another `archive-wal`
/// holding the lock is waited for a little (it may have listed the files before ours was
/// complete).
pub fn archive_once(catalog: &Catalog, archive: &ServerArchive) {
    archive_once_with(catalog, archive, None)
}

fn archive_once_with(catalog: &Catalog, archive: &ServerArchive, on_archived: Option<&OnArchived>) {
    for attempt in 0..20 {
        match archive.archive_wal() {
            Ok(outcomes) => {
                if !outcomes.is_empty() {
                    tracing::debug!(server = %archive.server, "{} file(s) processed", outcomes.len());
                }
                if let Some(f) = on_archived {
                    for o in &outcomes {
                        if let barkeep_archive::Outcome::Archived { name, .. } = o {
                            let size = barkeep_archive::names::WalName::parse(name)
                                .and_then(|w| std::fs::metadata(archive.archive_path(&w)).ok())
                                .map_or(0, |m| m.len());
                            f(name, size);
                        }
                    }
                }
                break;
            }
            Err(ArchiveError::Locked { .. }) if attempt < 19 => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => {
                tracing::warn!(server = %archive.server, "archiving streamed WAL: {}; retried at the next segment", barkeep_archive::error::chain(&e));
                break;
            }
        }
    }
    if let Err(e) = catalog.promote_waiting() {
        tracing::warn!(server = %archive.server, "checking waiting backups: {}", barkeep_archive::error::chain(&e));
    }
}
