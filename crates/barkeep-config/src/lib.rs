//! Barman-compatible configuration for barkeep.
//!
//! Owns the INI dialect Barman reads (Python `configparser`: `%(name)s` interpolation,
//! case-insensitive keys, quoted values), the table of every documented key with its
//! grammar and default, and the resolution of each server's effective settings
//! (server section → global `[barman]`/`[barkeep]` section → default), with the file and
//! line each value came from. It knows nothing of PostgreSQL, the catalog or the CLI.
//!
//! ```no_run
//! let config = barkeep_config::load(std::path::Path::new("/etc/barman.conf"))?;
//! for server in &config.servers {
//!     println!("{} -> {}", server.name, server.path("wals_directory").unwrap().display());
//! }
//! # Ok::<(), barkeep_config::ConfigErrors>(())
//! ```

// Configuration errors carry file, line, section, key, value and grammar so the message is
// complete; they occur once per run, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod error;
pub mod ini;
pub mod keys;
mod load;
mod resolve;
pub mod support;
pub mod typed;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use load::{default_locations, find_config_file, load};
pub use resolve::{Setting, Source, parse_kind};
pub use typed::ServerSettings;
pub use values::{RetentionPolicy, Value};

use ini::{Origin, Section};
use keys::{KeySpec, Kind, Scope};
use resolve::{Merged, Resolver};

/// Names of the global section: Barman's `[barman]`, and barkeep's own `[barkeep]`.
pub const GLOBAL_SECTIONS: [&str; 2] = ["barman", "barkeep"];

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main configuration file.
    pub main_file: PathBuf,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
    /// Global-only settings (`barman_home`, `log_level`…).
    pub global: Settings,
    /// Servers in order of first appearance.
    pub servers: Vec<ServerConfig>,
    /// Model sections (`model = true`); applied by `config-switch`.
    pub models: Vec<ModelConfig>,
    /// Non-fatal problems (unknown keys, deprecated keys, path conflicts).
    pub warnings: Vec<ConfigWarning>,
}

/// Effective settings of one section, by key.
#[derive(Debug, Clone, Default)]
pub struct Settings(pub BTreeMap<&'static str, Setting>);

impl Settings {
    /// The typed value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).and_then(|s| s.value.as_ref())
    }
    /// A boolean key.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    /// An integer key.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// A path key.
    pub fn path(&self, key: &str) -> Option<&Path> {
        match self.get(key) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }
    /// A text key (also slot names and conninfo).
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// A choice key, in its canonical lower-case spelling.
    pub fn choice(&self, key: &str) -> Option<&'static str> {
        match self.get(key) {
            Some(Value::Choice(c)) => Some(c),
            _ => None,
        }
    }
    /// A list key (empty when unset).
    pub fn list(&self, key: &str) -> &[&'static str] {
        match self.get(key) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }
}

/// A server section after resolution.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The section name.
    pub name: String,
    /// Where its header first appears.
    pub origin: Option<Origin>,
    /// Every server key, resolved.
    pub settings: Settings,
    /// Why the server is disabled (path conflicts); empty when it is usable.
    pub disabled_reasons: Vec<String>,
}

impl std::ops::Deref for ServerConfig {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl ServerConfig {
    /// The settings barkeep acts on, typed (defaults from the key table).
    pub fn typed(&self) -> ServerSettings {
        ServerSettings::from_settings(&self.settings)
    }
    /// `active = false` servers are kept for diagnostics only.
    pub fn active(&self) -> bool {
        self.bool("active").unwrap_or(true)
    }
    /// Disabled by a configuration problem.
    pub fn disabled(&self) -> bool {
        !self.disabled_reasons.is_empty()
    }
    /// A passive node copies from another barkeep/Barman (`primary_ssh_command`).
    pub fn passive(&self) -> bool {
        self.str("primary_ssh_command").is_some()
    }
    /// The free-text description.
    pub fn description(&self) -> Option<&str> {
        self.str("description")
    }
    /// The retention policy, if any.
    pub fn retention_policy(&self) -> Option<RetentionPolicy> {
        match self.get("retention_policy") {
            Some(Value::Retention(r)) => Some(*r),
            _ => None,
        }
    }
}

/// A model section: overrides applied to servers of the same `cluster` by `config-switch`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The section name.
    pub name: String,
    /// Keys set in the model, resolved.
    pub settings: Settings,
}

/// Shows a setting for humans and JSON: conninfo passwords are replaced by `********`.
pub fn display_value(key: &str, value: &Value) -> String {
    match (keys::lookup(key).map(|s| s.kind), value) {
        (Some(Kind::Conninfo), Value::Str(s)) => redact_conninfo(s),
        _ => value.to_string(),
    }
}

/// Replaces the password in a libpq `key=value` string or a `postgresql://` URI — with
/// the client's own parser (`barkeep_pg::conninfo`), so that what is hidden is exactly
/// what would be sent as the password.
pub fn redact_conninfo(s: &str) -> String {
    barkeep_pg::conninfo::redact(s)
}

impl Config {
    /// The global `barman_home`.
    pub fn barman_home(&self) -> &Path {
        self.global
            .path("barman_home")
            .unwrap_or(Path::new("/var/lib/barman"))
    }

    /// A server by name.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Builds the configuration from already-split files (the first is the main file).
    pub fn from_files(
        main: &Path,
        files: Vec<(PathBuf, Vec<Section>)>,
    ) -> Result<Config, ConfigErrors> {
        let mut global = Merged {
            name: "barman".into(),
            ..Merged::default()
        };
        let mut defaults = Merged {
            name: "DEFAULT".into(),
            ..Merged::default()
        };
        let mut others: Vec<Merged> = Vec::new();
        for (_, sections) in &files {
            for s in sections {
                if GLOBAL_SECTIONS.contains(&s.name.as_str()) {
                    global.absorb(s);
                } else if s.name == "DEFAULT" {
                    defaults.absorb(s);
                } else if let Some(m) = others.iter_mut().find(|m| m.name == s.name) {
                    m.absorb(s);
                } else {
                    let mut m = Merged::default();
                    m.absorb(s);
                    others.push(m);
                }
            }
        }

        let mut errors: Vec<ConfigError> = Vec::new();
        let mut warnings: Vec<ConfigWarning> = Vec::new();

        // Global section.
        let gres = Resolver::new(None, None, &global, &defaults);
        let mut gsettings = Settings::default();
        for spec in keys::GLOBAL_KEYS {
            match gres.setting(spec) {
                Ok(s) => {
                    gsettings.0.insert(spec.name, s);
                }
                Err(e) => errors.push(e),
            }
        }
        for entry in global.entries.values() {
            match keys::lookup(&entry.key) {
                None => warnings.push(unknown_key(entry, &global.name)),
                Some(spec) if spec.scope == Scope::Server => warnings.push(ConfigWarning {
                    at: entry.origin.to_string(),
                    message: format!(
                        "`{}` is a server key and is ignored in [{}]; set it in each server section",
                        entry.key, global.name
                    ),
                }),
                Some(spec) => {
                    warn_deprecated(spec, entry, &global.name, &mut warnings);
                    // Validate global defaults at their own line, once, unless they use
                    // server references that only make sense per server.
                    if spec.scope == Scope::Both
                        && !entry.value.contains("%(")
                        && let Err(e) = gres.setting(spec)
                    {
                        errors.push(e);
                    }
                }
            }
        }

        // Servers and models.
        let mut servers = Vec::new();
        let mut models = Vec::new();
        for section in &others {
            let origin = section.origin.clone();
            if let Some(reason) = bad_server_name(&section.name) {
                errors.push(ConfigError::BadServerName {
                    origin: origin.clone().unwrap_or_else(|| Origin {
                        path: main.to_path_buf(),
                        line: 0,
                    }),
                    name: section.name.clone(),
                    reason,
                });
                continue;
            }
            let res = Resolver::new(Some(&section.name), Some(section), &global, &defaults);
            let is_model = match keys::lookup("model").map(|spec| res.setting(spec)) {
                Some(Ok(s)) => matches!(s.value, Some(Value::Bool(true))),
                Some(Err(e)) => {
                    errors.push(e);
                    continue;
                }
                None => false,
            };
            for entry in section.entries.values() {
                match keys::lookup(&entry.key) {
                    None => warnings.push(unknown_key(entry, &section.name)),
                    Some(spec) if spec.scope == Scope::Global => warnings.push(ConfigWarning {
                        at: entry.origin.to_string(),
                        message: format!(
                            "`{}` is a global key and is ignored in [{}]; set it in the [barman] section",
                            entry.key, section.name
                        ),
                    }),
                    Some(spec) if is_model && !spec.model && spec.name != "model" => {
                        warnings.push(ConfigWarning {
                            at: entry.origin.to_string(),
                            message: format!(
                                "`{}` is not allowed in model [{}] (models cannot set paths or hooks) and is ignored",
                                entry.key, section.name
                            ),
                        })
                    }
                    Some(spec) => warn_deprecated(spec, entry, &section.name, &mut warnings),
                }
            }
            if section.entries.contains_key("disabled") {
                warnings.push(ConfigWarning {
                    at: section.entries["disabled"].origin.to_string(),
                    message: format!(
                        "`disabled` is set by barkeep itself and is ignored in [{}]; use `active = false`",
                        section.name
                    ),
                });
            }
            let mut settings = Settings::default();
            if is_model {
                for entry in section.entries.values() {
                    if let Some(spec) = keys::lookup(&entry.key)
                        && (spec.model || spec.name == "model")
                    {
                        match res.setting(spec) {
                            Ok(s) => {
                                settings.0.insert(spec.name, s);
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                }
                models.push(ModelConfig {
                    name: section.name.clone(),
                    settings,
                });
                continue;
            }
            for spec in keys::server_keys() {
                match res.setting(spec) {
                    Ok(s) => {
                        settings.0.insert(spec.name, s);
                    }
                    Err(e) => errors.push(e),
                }
            }
            servers.push(ServerConfig {
                name: section.name.clone(),
                origin,
                settings,
                disabled_reasons: Vec::new(),
            });
        }

        if !errors.is_empty() {
            // The same inherited bad value is reported once, not once per server.
            let mut seen = BTreeSet::new();
            errors.retain(|e| seen.insert(e.to_string()));
            return Err(ConfigErrors(errors));
        }

        check_support(&gsettings, &mut servers, &mut warnings);
        check_path_conflicts(&mut servers, &mut warnings);

        Ok(Config {
            main_file: main.to_path_buf(),
            files: files.into_iter().map(|(p, _)| p).collect(),
            global: gsettings,
            servers,
            models,
            warnings,
        })
    }
}

/// Applies [`support::verdict`] to every value written in a file: refused values disable
/// their server (with file, line, key and what barkeep supports), values with no effect
/// warn once per line.
fn check_support(
    global: &Settings,
    servers: &mut [ServerConfig],
    warnings: &mut Vec<ConfigWarning>,
) {
    let mut warned: BTreeSet<String> = BTreeSet::new();
    let mut disabled: Vec<ConfigWarning> = Vec::new();
    let mut warn = |origin: &Origin, key: &str, value: &str, why: &str| {
        let at = origin.to_string();
        if warned.insert(format!("{at} {key}")) {
            warnings.push(ConfigWarning {
                at,
                message: format!("`{key} = {value}` has no effect in barkeep: {why}"),
            });
        }
    };
    for (key, setting) in &global.0 {
        if let (Source::File { origin, .. }, Some(v)) = (&setting.source, &setting.value)
            && let Ok(Some(why)) = support::verdict(key, &display_value(key, v))
        {
            warn(origin, key, &display_value(key, v), why);
        }
    }
    for server in servers.iter_mut() {
        let mut reasons = Vec::new();
        for (key, setting) in &server.settings.0 {
            let (Source::File { origin, .. }, Some(v)) = (&setting.source, &setting.value) else {
                continue;
            };
            let text = display_value(key, v);
            match support::verdict(key, &text) {
                Ok(None) => {}
                Ok(Some(why)) => warn(origin, key, &text, why),
                Err(why) => reasons.push(format!("{origin}: `{key} = {text}`: {why}")),
            }
            if keys::DIRECTORY_KEYS.contains(key) && support::is_object_store_url(&text) {
                reasons.push(format!(
                    "{origin}: `{key} = {text}`: object storage as a server's catalog is not supported by this version of barkeep; use a local directory"
                ));
            }
        }
        for msg in reasons {
            disabled.push(ConfigWarning {
                at: String::new(),
                message: format!("server `{}` disabled: {msg}", server.name),
            });
            server.disabled_reasons.push(msg);
        }
    }
    warnings.extend(disabled);
}

fn unknown_key(entry: &ini::Entry, section: &str) -> ConfigWarning {
    ConfigWarning {
        at: entry.origin.to_string(),
        message: format!(
            "unknown configuration key `{}` in [{section}] (ignored)",
            entry.key
        ),
    }
}

fn warn_deprecated(
    spec: &KeySpec,
    entry: &ini::Entry,
    section: &str,
    warnings: &mut Vec<ConfigWarning>,
) {
    if let Some(instead) = spec.deprecated {
        warnings.push(ConfigWarning {
            at: entry.origin.to_string(),
            message: format!(
                "`{}` in [{section}] is deprecated; use {instead}",
                entry.key
            ),
        });
    }
}

fn bad_server_name(name: &str) -> Option<String> {
    if keys::RESERVED_SERVER_NAMES.contains(&name) {
        return Some("the name is reserved".into());
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Some("it must be usable as a directory name (no `/`, not `.` or `..`)".into());
    }
    if name.trim() != name || name.is_empty() {
        return Some("leading or trailing spaces are not allowed".into());
    }
    None
}

/// Lexically normalises a path (`.`/`..`), then resolves symlinks of the longest
/// existing prefix, so `/a/b/../c` and a symlinked alias compare equal.
fn normalise(p: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.clone();
    let mut tail = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(n) => tail.push(n.to_os_string()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for n in tail.into_iter().rev() {
        out.push(n);
    }
    out
}

/// Barman's path-conflict check: no two directory keys, in one server or across servers,
/// may name the same directory. A conflicting server is disabled (not fatal for others).
fn check_path_conflicts(servers: &mut [ServerConfig], warnings: &mut Vec<ConfigWarning>) {
    let mut seen: BTreeMap<PathBuf, (usize, &'static str)> = BTreeMap::new();
    let mut reasons: Vec<(usize, String)> = Vec::new();
    for (idx, server) in servers.iter().enumerate() {
        for key in keys::DIRECTORY_KEYS {
            let Some(path) = server.path(key) else {
                continue;
            };
            // `xlogdb_directory` defaults to `wals_directory`: that sharing is intended.
            if key == "xlogdb_directory" && server.path("wals_directory") == Some(path) {
                continue;
            }
            let norm = normalise(path);
            match seen.get(&norm) {
                Some((other, other_key)) => {
                    let other_name = &servers[*other].name;
                    let msg = format!(
                        "conflicting path: `{key}` = `{}` of server `{}` is also `{other_key}` of server `{other_name}`",
                        path.display(),
                        server.name
                    );
                    reasons.push((idx, msg.clone()));
                    if *other != idx {
                        reasons.push((*other, msg));
                    }
                }
                None => {
                    seen.insert(norm, (idx, key));
                }
            }
        }
    }
    for (idx, msg) in reasons {
        let server = &mut servers[idx];
        if !server.disabled_reasons.contains(&msg) {
            warnings.push(ConfigWarning {
                at: server
                    .origin
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                message: format!("server `{}` disabled: {msg}", server.name),
            });
            server.disabled_reasons.push(msg);
        }
    }
}

#[cfg(test)]
mod tests;
