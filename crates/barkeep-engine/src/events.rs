//! Progress events: what an operation is doing while it runs. The engine never prints; it
//! sends events to the [`EventSink`] the front end gave it. The CLI turns them into the
//! lines Barman prints and indicatif bars; the daemon will keep them for metrics and logs.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// Something an operation reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step of an operation, as one line a person reads ("Starting backup using postgres
    /// method for server pg").
    Step {
        /// Server.
        server: String,
        /// What is happening.
        message: String,
    },
    /// Something the operator should know that does not stop the operation (a retry, a
    /// skipped server, a WAL file moved to errors/).
    Warning {
        /// Server.
        server: String,
        /// What happened.
        message: String,
    },
    /// Bytes copied so far by a long operation.
    Progress {
        /// Server.
        server: String,
        /// `backup`, `restore`…
        operation: &'static str,
        /// Bytes done.
        done: u64,
        /// Bytes expected (an estimate; may grow).
        total: u64,
    },
    /// A WAL file reached the archive.
    WalArchived {
        /// Server.
        server: String,
        /// File name.
        name: String,
        /// Bytes stored (after compression).
        bytes: u64,
    },
    /// A file was rejected and moved aside.
    WalRejected {
        /// Server.
        server: String,
        /// File name.
        name: String,
        /// Why.
        reason: String,
        /// Where it went.
        moved_to: PathBuf,
    },
}

/// Where events go. Must be cheap and never block: it is called from the operation's own
/// task or thread.
pub trait EventSink: Send + Sync {
    /// Receives one event.
    fn event(&self, event: &Event);
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl EventSink for Discard {
    fn event(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// A shareable handle on a sink.
#[derive(Clone)]
pub struct Events(pub(crate) Arc<dyn EventSink>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Wraps a sink.
    pub fn new(sink: impl EventSink + 'static) -> Events {
        Events(Arc::new(sink))
    }

    pub(crate) fn emit(&self, e: Event) {
        self.0.event(&e);
    }

    pub(crate) fn step(&self, server: &str, message: impl Into<String>) {
        self.emit(Event::Step {
            server: server.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn warning(&self, server: &str, message: impl Into<String>) {
        self.emit(Event::Warning {
            server: server.to_string(),
            message: message.into(),
        });
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::new(Discard)
    }
}
