//! Output: data on standard output (console text or one JSON document), diagnostics on
//! standard error. In JSON mode everything is collected and printed once at exit, with
//! errors and warnings under `_ERROR` and `_WARNING` as Barman's JSON writer does.
//!
//! [`Output`] is shared (`Arc`) with the engine's event sink, so lines and warnings an
//! operation reports while it runs appear as they happen; progress events become an
//! indicatif bar on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use barkeep_engine::{Event, EventSink};
use serde_json::{Map, Value};

use crate::cli::Format;

#[derive(Debug, Default)]
struct Inner {
    json: Map<String, Value>,
    errors: Vec<String>,
    warnings: Vec<String>,
    bar: Option<indicatif::ProgressBar>,
}

/// Collects what a command prints.
#[derive(Debug)]
pub struct Output {
    format: Format,
    quiet: bool,
    inner: Mutex<Inner>,
}

impl Output {
    /// A writer for `format`; `quiet` suppresses standard output.
    pub fn new(format: Format, quiet: bool) -> Arc<Output> {
        Arc::new(Output {
            format,
            quiet,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The selected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the output is JSON.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a console line (ignored in JSON mode: commands fill the JSON document).
    pub fn line(&self, text: &str) {
        if self.format == Format::Console && !self.quiet {
            let inner = self.inner();
            let print = || {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{text}");
            };
            match &inner.bar {
                Some(bar) => bar.suspend(print),
                None => print(),
            }
        }
    }

    /// Prints text to standard output whatever the format (a Nagios plugin's output).
    pub fn raw(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
    }

    /// Sets `key` of the JSON document.
    pub fn json(&self, key: impl Into<String>, value: Value) {
        self.inner().json.insert(key.into(), value);
    }

    /// Reports an error (stderr in console mode, `_ERROR` in JSON); the exit code becomes 1.
    pub fn error(&self, msg: &str) {
        tracing::debug!("error reported: {msg}");
        if self.format == Format::Console {
            eprintln!("error: {msg}");
        }
        self.inner().errors.push(msg.to_string());
    }

    /// Reports a warning (stderr in console mode, `_WARNING` in JSON).
    pub fn warning(&self, msg: &str) {
        if self.format == Format::Console {
            eprintln!("warning: {msg}");
        }
        self.inner().warnings.push(msg.to_string());
    }

    /// Whether an error was reported.
    pub fn errors_emitted(&self) -> bool {
        !self.inner().errors.is_empty()
    }

    fn progress(&self, done: u64, total: u64) {
        if self.format != Format::Console || self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let mut inner = self.inner();
        let bar = inner.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        bar.set_length(total.max(done));
        bar.set_position(done);
    }

    /// Prints the JSON document (JSON mode).
    pub fn finish(&self) {
        let mut inner = self.inner();
        if let Some(bar) = inner.bar.take() {
            bar.finish_and_clear();
        }
        if self.format != Format::Json || self.quiet {
            return;
        }
        if !inner.errors.is_empty() {
            let v = inner.errors.drain(..).map(Value::String).collect();
            inner.json.insert("_ERROR".into(), Value::Array(v));
        }
        if !inner.warnings.is_empty() {
            let v = inner.warnings.drain(..).map(Value::String).collect();
            inner.json.insert("_WARNING".into(), Value::Array(v));
        }
        let doc = Value::Object(std::mem::take(&mut inner.json));
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &doc);
        let _ = writeln!(stdout);
    }
}

/// The engine's events, drawn on this output.
#[derive(Debug, Clone)]
pub struct Sink(pub Arc<Output>);

impl EventSink for Sink {
    fn event(&self, event: &Event) {
        match event {
            Event::Step { message, .. } => {
                for l in message.lines() {
                    self.0.line(l);
                }
            }
            Event::Warning { message, .. } => self.0.warning(message),
            Event::Progress { done, total, .. } => self.0.progress(*done, *total),
            Event::WalArchived { .. } | Event::WalRejected { .. } => {}
        }
    }
}
