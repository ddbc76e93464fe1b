//! Output: data on standard output (console text or one JSON document), diagnostics on
//! standard error. In JSON mode everything is collected and printed once at exit, with
//! errors and warnings under `_ERROR` and `_WARNING` as Barman's JSON writer does.

use std::io::Write;

use serde_json::{Map, Value};

use crate::cli::Format;

/// Collects what a command prints.
#[derive(Debug)]
pub struct Output {
    format: Format,
    quiet: bool,
    json: Map<String, Value>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Output {
    /// A writer for `format`; `quiet` suppresses standard output.
    pub fn new(format: Format, quiet: bool) -> Output {
        Output {
            format,
            quiet,
            json: Map::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The selected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Prints a console line (ignored in JSON mode: commands fill [`Output::json`]).
    pub fn line(&mut self, text: &str) {
        if self.format == Format::Console && !self.quiet {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
        }
    }

    /// The JSON document under construction.
    pub fn json(&mut self) -> &mut Map<String, Value> {
        &mut self.json
    }

    /// Reports an error (stderr in console mode, `_ERROR` in JSON); the exit code becomes 1.
    pub fn error(&mut self, msg: &str) {
        tracing::debug!("error reported: {msg}");
        if self.format == Format::Console {
            eprintln!("error: {msg}");
        }
        self.errors.push(msg.to_string());
    }

    /// Reports a warning (stderr in console mode, `_WARNING` in JSON).
    pub fn warning(&mut self, msg: &str) {
        if self.format == Format::Console {
            eprintln!("warning: {msg}");
        }
        self.warnings.push(msg.to_string());
    }

    /// Whether an error was reported.
    pub fn errors_emitted(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Prints the JSON document (JSON mode).
    pub fn finish(mut self) {
        if self.format != Format::Json || self.quiet {
            return;
        }
        if !self.errors.is_empty() {
            let v = self.errors.drain(..).map(Value::String).collect();
            self.json.insert("_ERROR".into(), Value::Array(v));
        }
        if !self.warnings.is_empty() {
            let v = self.warnings.drain(..).map(Value::String).collect();
            self.json.insert("_WARNING".into(), Value::Array(v));
        }
        let doc = Value::Object(std::mem::take(&mut self.json));
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &doc);
        let _ = writeln!(stdout);
    }
}
