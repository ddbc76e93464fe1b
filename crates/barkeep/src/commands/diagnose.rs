//! `diagnose`: configuration, versions and environment as one JSON document, for bug
//! reports and support. Passwords never appear (conninfo and `PGPASSWORD` are redacted).

use barkeep_config::Config;
use serde_json::{Map, Value as Json, json};

use super::servers::{effective, settings_json};
use crate::{Failure, Output};

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

/// Runs `diagnose`.
pub fn run(config: &Config, with_source: bool, out: &mut Output) -> Result<(), Failure> {
    let mut global = Map::new();
    for (k, setting) in &config.global.0 {
        let value = super::servers::json_value(k, setting.value.as_ref());
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
                "config": settings_json(&effective(config, s), with_source),
                "disabled_reasons": s.disabled_reasons,
            }),
        );
    }
    let mut models = Map::new();
    for m in &config.models {
        let mut map = Map::new();
        for (k, setting) in &m.settings.0 {
            map.insert(
                k.to_string(),
                super::servers::json_value(k, setting.value.as_ref()),
            );
        }
        models.insert(m.name.clone(), Json::Object(map));
    }
    let doc = json!({
        "global": {
            "config": global,
            "config_files": config.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "warnings": config.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "system_info": system_info(),
        },
        "servers": servers,
        "models": models,
    });
    // `diagnose` is JSON whatever `-f` says, as in Barman.
    match out.format() {
        crate::cli::Format::Json => {
            if let Json::Object(m) = doc {
                out.json().extend(m);
            }
        }
        crate::cli::Format::Console => {
            let text = serde_json::to_string_pretty(&doc).map_err(Failure::from)?;
            out.line(&text);
        }
    }
    Ok(())
}
