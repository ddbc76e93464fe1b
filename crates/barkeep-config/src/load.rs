//! Reading configuration files: the main file, `configuration_files_directory/*.conf` in
//! sorted order, and `<barman_home>/.barman.auto.conf` last; finding the main file when
//! `-c` is not given.

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigErrors};
use crate::ini::{self, Section};
use crate::resolve::{Merged, Resolver};
use crate::{Config, GLOBAL_SECTIONS};

/// Where a configuration was looked for, in order, when `-c` is absent.
///
/// barkeep's own places come first, then Barman's, so a Barman host works unchanged.
pub fn default_locations(env: &dyn Fn(&str) -> Option<String>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let home = env("HOME").map(PathBuf::from);
    if let Some(p) = env("BARKEEP_CONFIG") {
        out.push((PathBuf::from(p), "BARKEEP_CONFIG".to_string()));
    }
    if let Some(h) = &home {
        out.push((h.join(".barkeep.conf"), String::new()));
    }
    out.push((PathBuf::from("/etc/barkeep.conf"), String::new()));
    out.push((PathBuf::from("/etc/barkeep/barkeep.conf"), String::new()));
    if let Some(p) = env("BARMAN_CONFIG_FILE") {
        out.push((PathBuf::from(p), "BARMAN_CONFIG_FILE".to_string()));
    }
    if let Some(h) = &home {
        out.push((h.join(".barman.conf"), String::new()));
    }
    out.push((PathBuf::from("/etc/barman.conf"), String::new()));
    out.push((PathBuf::from("/etc/barman/barman.conf"), String::new()));
    out
}

/// Picks the configuration file: `explicit` (from `-c`) if given, else the first existing
/// default location. A file named by `-c` or an environment variable must exist.
pub fn find_config_file(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        return Err(ConfigError::Missing {
            path: p.to_path_buf(),
            origin: "`-c`".into(),
        });
    }
    let candidates = default_locations(env);
    for (path, var) in &candidates {
        if path.exists() {
            return Ok(path.clone());
        }
        if !var.is_empty() {
            return Err(ConfigError::Missing {
                path: path.clone(),
                origin: format!("`{var}`"),
            });
        }
    }
    Err(ConfigError::NotFound {
        tried: candidates.into_iter().map(|(p, _)| p).collect(),
    })
}

fn read(path: &Path) -> Result<Vec<Section>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ini::parse(path, &text)?)
}

/// Loads the configuration rooted at `main`, with its included files.
pub fn load(main: &Path) -> Result<Config, ConfigErrors> {
    let mut files = vec![(main.to_path_buf(), read(main)?)];

    // The include directory is read from the main file's global section only.
    let mut global = Merged::default();
    let mut defaults = Merged::default();
    for s in &files[0].1 {
        if GLOBAL_SECTIONS.contains(&s.name.as_str()) {
            global.absorb(s);
        } else if s.name == "DEFAULT" {
            defaults.absorb(s);
        }
    }
    let globals = Resolver::new(None, None, &global, &defaults);
    let include_spec = crate::keys::lookup("configuration_files_directory");
    let include_dir = match include_spec {
        Some(spec) => globals.setting(spec)?.value,
        None => None,
    };
    let mut errors = Vec::new();
    if let Some(crate::Value::Path(dir)) = include_dir {
        // Relative include directories are relative to the main file, which is what a
        // reader of the file expects (Python would use the current directory).
        let dir = if dir.is_relative() {
            main.parent().unwrap_or(Path::new("/")).join(dir)
        } else {
            dir
        };
        match list_conf_files(&dir) {
            Ok(list) => {
                for path in list {
                    match read(&path) {
                        Ok(sections) => files.push((path, sections)),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    for (path, sections) in files.iter().skip(1) {
        for s in sections {
            if GLOBAL_SECTIONS.contains(&s.name.as_str()) {
                errors.push(ConfigError::GlobalInInclude {
                    origin: ini::Origin {
                        path: path.clone(),
                        line: s.origin.line,
                    },
                    section: s.name.clone(),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    // `.barman.auto.conf` (written by `config-update`) overrides everything else.
    if let Some(spec) = crate::keys::lookup("barman_home")
        && let Ok(setting) = globals.setting(spec)
        && let Some(crate::Value::Path(home)) = setting.value
    {
        let auto = home.join(".barman.auto.conf");
        if auto.is_file() {
            let sections = read(&auto)?;
            files.push((auto, sections));
        }
    }
    Config::from_files(main, files)
}

fn list_conf_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ConfigError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| ConfigError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "conf") && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
