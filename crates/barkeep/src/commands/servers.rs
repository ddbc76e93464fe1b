//! `list-servers` and `show-servers`.

use barkeep_config::{Source, Value, display_value};
use barkeep_engine::{Engine, effective_settings, settings_json};
use serde_json::{Value as Json, json};

use crate::{Failure, Output};

/// `list-servers [--minimal]`: `name - description` plus Barman's state suffixes.
pub fn list(engine: &Engine, minimal: bool, out: &Output) -> Result<(), Failure> {
    for s in &engine.config().servers {
        if out.is_json() {
            let entry = if minimal {
                json!({})
            } else {
                json!({
                    "description": s.description(),
                    "active": s.active(),
                    "disabled": s.disabled(),
                    "passive": s.passive(),
                })
            };
            out.json(s.name.clone(), entry);
            continue;
        }
        if minimal {
            out.line(&s.name);
            continue;
        }
        let mut line = format!("{} - {}", s.name, s.description().unwrap_or(""));
        if !s.active() {
            line.push_str(" (inactive)");
        }
        if s.disabled() {
            line.push_str(" (WARNING: disabled)");
        }
        if s.passive() {
            line.push_str(" (Passive)");
        }
        out.line(&line);
    }
    Ok(())
}

/// A setting as console text, as Barman prints Python values (`True`, `None`).
fn console_value(key: &str, v: Option<&Value>) -> String {
    match v {
        None => "None".into(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(other) => display_value(key, other),
    }
}

/// `show-servers SERVER…|all`.
pub fn show(
    engine: &Engine,
    rt: &tokio::runtime::Runtime,
    names: &[String],
    with_source: bool,
    out: &Output,
) -> Result<(), Failure> {
    for server in engine.servers(names)? {
        let s = server.settings();
        let mut rows = effective_settings(engine.config(), s);
        // Barman's show-servers adds what the server says about itself.
        for (k, v) in rt.block_on(server.live_values()) {
            rows.push((k, Some(Value::Str(v)), "live".into()));
        }
        // barkeep: whether backups share blocks on this file system.
        rows.push((
            "block_sharing".into(),
            Some(Value::Str(server.block_sharing().describe())),
            "live".into(),
        ));
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if out.is_json() {
            out.json(s.name.clone(), settings_json(&rows, with_source));
            continue;
        }
        out.line(&format!("Server {}:", s.name));
        for (k, v, src) in &rows {
            let value = console_value(k, v.as_ref());
            if v.is_none() && *src == Source::Unset.to_string() {
                out.line(&format!("\t{k}: {value}"));
            } else {
                out.line(&format!("\t{k}: {value}  ({src})"));
            }
        }
    }
    Ok(())
}

/// `diagnose`: JSON whatever `-f` says, as in Barman.
pub fn diagnose(engine: &Engine, with_source: bool, out: &Output) -> Result<(), Failure> {
    let doc = barkeep_engine::diagnose(engine.config(), with_source);
    if out.is_json() {
        if let Json::Object(m) = doc {
            for (k, v) in m {
                out.json(k, v);
            }
        }
    } else {
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Failure::failed(format!("cannot render the document: {e}")))?;
        out.line(&text);
    }
    Ok(())
}
