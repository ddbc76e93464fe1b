//! `list-servers` and `show-servers`.

use barkeep_config::{Config, ServerConfig, Setting, Source, Value, display_value};
use serde_json::{Map, Value as Json, json};

use crate::cli::Format;
use crate::{Failure, Output};

/// `list-servers [--minimal]`: `name - description` plus Barman's state suffixes.
pub fn list(config: &Config, minimal: bool, out: &mut Output) -> Result<(), Failure> {
    for s in &config.servers {
        if out.format() == Format::Json {
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
            out.json().insert(s.name.clone(), entry);
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

/// The settings `show-servers` prints for a server: every key plus Barman's derived
/// fields (`name`, `barman_home`, `barman_lock_directory`, `disabled`).
pub(crate) fn effective(config: &Config, s: &ServerConfig) -> Vec<(String, Option<Value>, String)> {
    let mut rows: Vec<(String, Option<Value>, String)> = Vec::new();
    let global = |k: &str| -> (Option<Value>, String) {
        match config.global.0.get(k) {
            Some(Setting { value, source }) => (value.clone(), source.to_string()),
            None => (None, Source::Unset.to_string()),
        }
    };
    rows.push((
        "name".into(),
        Some(Value::Str(s.name.clone())),
        "section name".into(),
    ));
    for k in ["barman_home", "barman_lock_directory"] {
        let (v, src) = global(k);
        rows.push((k.into(), v, src));
    }
    rows.push((
        "disabled".into(),
        Some(Value::Bool(s.disabled())),
        if s.disabled() {
            s.disabled_reasons.join("; ")
        } else {
            "derived".into()
        },
    ));
    for (k, setting) in &s.settings.0 {
        rows.push((
            k.to_string(),
            setting.value.clone(),
            setting.source.to_string(),
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
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

/// A setting as JSON.
pub(crate) fn json_value(key: &str, v: Option<&Value>) -> Json {
    match v {
        None => Json::Null,
        Some(Value::Bool(b)) => Json::Bool(*b),
        Some(Value::Int(i)) => Json::from(*i),
        Some(other) => Json::String(display_value(key, other)),
    }
}

/// Settings as a JSON object, optionally with their sources.
pub(crate) fn settings_json(rows: &[(String, Option<Value>, String)], with_source: bool) -> Json {
    let mut map = Map::new();
    for (k, v, src) in rows {
        let value = json_value(k, v.as_ref());
        let entry = if with_source {
            json!({ "value": value, "source": src })
        } else {
            value
        };
        map.insert(k.clone(), entry);
    }
    Json::Object(map)
}

/// `show-servers SERVER…|all`.
pub fn show(
    config: &Config,
    names: &[String],
    with_source: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let servers = super::select(config, names)?;
    for s in servers {
        let rows = effective(config, s);
        if out.format() == Format::Json {
            out.json()
                .insert(s.name.clone(), settings_json(&rows, with_source));
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
