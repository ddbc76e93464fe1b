//! The effective settings of a server (what `show-servers` prints) and `diagnose`:
//! configuration, versions and environment as one JSON document, for bug reports and
//! support. Passwords never appear (conninfo and `PGPASSWORD` are redacted).

use barkeep_config::{Config, ServerConfig, Setting, Source, Value, display_value};
use serde_json::{Map, Value as Json, json};

/// The settings `show-servers` prints for a server — every key plus Barman's derived
/// fields (`name`, `barman_home`, `barman_lock_directory`, `disabled`) — as (key, value,
/// source), sorted by key.
pub fn effective_settings(
    config: &Config,
    s: &ServerConfig,
) -> Vec<(String, Option<Value>, String)> {
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

/// A setting as JSON (secrets redacted as in the console).
pub fn setting_json(key: &str, v: Option<&Value>) -> Json {
    match v {
        None => Json::Null,
        Some(Value::Bool(b)) => Json::Bool(*b),
        Some(Value::Int(i)) => Json::from(*i),
        Some(other) => Json::String(display_value(key, other)),
    }
}

/// Settings as a JSON object, optionally with their sources.
pub fn settings_json(rows: &[(String, Option<Value>, String)], with_source: bool) -> Json {
    let mut map = Map::new();
    for (k, v, src) in rows {
        let value = setting_json(k, v.as_ref());
        let entry = if with_source {
            json!({ "value": value, "source": src })
        } else {
            value
        };
        map.insert(k.clone(), entry);
    }
    Json::Object(map)
}

/// Environment variables worth reporting (prefixes).
const ENV_PREFIXES: [&str; 3] = ["BARKEEP_", "BARMAN_", "PG"];

fn environment() -> Json {
    let mut map = Map::new();
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            ENV_PREFIXES.iter().any(|p| k.starts_with(p)) || k == "PATH" || k == "HOME"
        })
        .collect();
    vars.sort();
    for (k, v) in vars {
        let v = if k.contains("PASS") {
            "********".to_string()
        } else {
            v
        };
        map.insert(k, Json::String(v));
    }
    Json::Object(map)
}

fn system_info() -> Json {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let os_release = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    json!({
        "barkeep_version": env!("CARGO_PKG_VERSION"),
        "barman_compatibility": "3.17 configuration, catalog and commands",
        "hostname": field(|u| u.nodename()),
        "kernel": format!("{} {}", field(|u| u.sysname()), field(|u| u.release())),
        "machine": field(|u| u.machine()),
        "os": os_release,
        "user": user,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "timestamp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "environment": environment(),
    })
}

/// The `diagnose` document.
pub fn diagnose(config: &Config, with_source: bool) -> Json {
    let mut global = Map::new();
    for (k, setting) in &config.global.0 {
        let value = setting_json(k, setting.value.as_ref());
        let entry = if with_source {
            json!({"value": value, "source": setting.source.to_string()})
        } else {
            value
        };
        global.insert(k.to_string(), entry);
    }
    let mut servers = Map::new();
    for s in &config.servers {
        servers.insert(
            s.name.clone(),
            json!({
                "config": settings_json(&effective_settings(config, s), with_source),
                "disabled_reasons": s.disabled_reasons,
            }),
        );
    }
    let mut models = Map::new();
    for m in &config.models {
        let mut map = Map::new();
        for (k, setting) in &m.settings.0 {
            map.insert(k.to_string(), setting_json(k, setting.value.as_ref()));
        }
        models.insert(m.name.clone(), Json::Object(map));
    }
    json!({
        "global": {
            "config": global,
            "config_files": config.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "warnings": config.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "system_info": system_info(),
        },
        "servers": servers,
        "models": models,
    })
}
