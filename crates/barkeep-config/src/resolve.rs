//! From merged INI sections to effective, typed settings.
//!
//! Barman resolves each server key as: the server section → the global section (for keys
//! that may be global) → the built-in default, where defaults and values may use `%(key)s`
//! references. This module does the same with one resolver that expands references
//! recursively (with loop detection) against the server's *effective* values, so
//! `%(backup_directory)s/base` follows a `backup_directory` set in the server section.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::error::{At, ConfigError};
use crate::ini::{Entry, Origin, Section};
use crate::keys::{self, KeySpec, Kind, Scope};
use crate::values::{self, Value};

/// A section after merging every file that mentions it (the last value of a key wins).
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    pub name: String,
    pub origin: Option<Origin>,
    pub entries: BTreeMap<String, Entry>,
}

impl Merged {
    pub fn absorb(&mut self, section: &Section) {
        if self.origin.is_none() {
            self.origin = Some(section.origin.clone());
            self.name = section.name.clone();
        }
        for e in &section.entries {
            self.entries.insert(e.key.clone(), e.clone());
        }
    }
}

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Written in a file, in the named section.
    File {
        /// File and line.
        origin: Origin,
        /// The section it was written in (the server's, or the global one).
        section: String,
    },
    /// Barman's built-in default.
    Default,
    /// Not set anywhere and no default.
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File { origin, section } => write!(f, "{origin} [{section}]"),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

impl Source {
    fn at(&self) -> At {
        match self {
            Source::File { origin, .. } => At::File(origin.clone()),
            _ => At::Default,
        }
    }
}

/// One effective setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The typed value; `None` when unset.
    pub value: Option<Value>,
    /// Where it came from.
    pub source: Source,
}

/// Removes one pair of matching quotes, as Barman does for every value.
pub(crate) fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

#[derive(Debug, Clone)]
struct Text {
    text: String,
    source: Source,
}

/// Resolves keys for one section: a server (with the global section behind it) or the
/// global section itself.
pub(crate) struct Resolver<'a> {
    /// Server name, `None` for the global section.
    pub name: Option<&'a str>,
    /// The server's own section (absent for the global resolver).
    pub section: Option<&'a Merged>,
    /// The global section.
    pub global: &'a Merged,
    /// Python's `[DEFAULT]` section, visible everywhere.
    pub defaults: &'a Merged,
    memo: RefCell<HashMap<String, Option<Text>>>,
    stack: RefCell<Vec<String>>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        name: Option<&'a str>,
        section: Option<&'a Merged>,
        global: &'a Merged,
        defaults: &'a Merged,
    ) -> Self {
        Resolver {
            name,
            section,
            global,
            defaults,
            memo: RefCell::new(HashMap::new()),
            stack: RefCell::new(Vec::new()),
        }
    }

    fn section_name(&self) -> String {
        match (self.section, self.name) {
            (Some(s), _) => s.name.clone(),
            (None, Some(n)) => n.to_string(),
            (None, None) => self.global.name.clone(),
        }
    }

    /// The raw (expanded, unquoted) text of `key` and its source, or `None` when unset.
    fn text(&self, key: &str) -> Result<Option<Text>, ConfigError> {
        if let Some(hit) = self.memo.borrow().get(key) {
            return Ok(hit.clone());
        }
        if self.stack.borrow().iter().any(|k| k == key) {
            let chain = self.stack.borrow().join(" -> ");
            return Err(ConfigError::Interpolation {
                at: At::Default,
                section: self.section_name(),
                key: key.to_string(),
                reason: format!("reference loop: {chain} -> {key}"),
            });
        }
        self.stack.borrow_mut().push(key.to_string());
        let out = self.text_uncached(key);
        self.stack.borrow_mut().pop();
        let out = out?;
        self.memo.borrow_mut().insert(key.to_string(), out.clone());
        Ok(out)
    }

    fn text_uncached(&self, key: &str) -> Result<Option<Text>, ConfigError> {
        let spec = keys::lookup(key);
        let in_server = self.name.is_some();
        // Global-only keys are never read from a server section.
        let server_may_set = !matches!(spec.map(|s| s.scope), Some(Scope::Global));
        let global_may_set = !in_server || !matches!(spec.map(|s| s.scope), Some(Scope::Server));

        let mut candidates: Vec<(&Merged, bool)> = Vec::new();
        if let Some(section) = self.section
            && server_may_set
        {
            candidates.push((section, true));
        }
        if global_may_set {
            candidates.push((self.global, false));
        }
        candidates.push((self.defaults, false));

        for (section, is_own) in candidates {
            let Some(entry) = section.entries.get(key) else {
                continue;
            };
            let source = Source::File {
                origin: entry.origin.clone(),
                section: section.name.clone(),
            };
            let raw = unquote(&entry.value);
            if raw.is_empty() || raw == "None" {
                // Empty or `None` means unset; in the server's own section it also stops
                // inheritance from the global section (Barman's rule). The built-in
                // default still applies.
                if is_own || !in_server {
                    return self.default_text(spec, Some(source));
                }
                continue;
            }
            let Some(text) = self.expand(raw, key, &source)? else {
                return Err(self.unset_reference(raw, key, &source));
            };
            return Ok(Some(Text { text, source }));
        }
        self.default_text(spec, None)
    }

    fn default_text(
        &self,
        spec: Option<&KeySpec>,
        blocked_by: Option<Source>,
    ) -> Result<Option<Text>, ConfigError> {
        let Some(default) = spec.and_then(|s| s.default) else {
            return Ok(blocked_by.map(|source| Text {
                text: String::new(),
                source,
            }));
        };
        let key = spec.map(|s| s.name).unwrap_or_default();
        // A default that refers to an unset key (`streaming_conninfo = %(conninfo)s`
        // without `conninfo`) leaves the key unset.
        Ok(self
            .expand(default, key, &Source::Default)?
            .map(|text| Text {
                text,
                source: Source::Default,
            }))
    }

    fn unset_reference(&self, raw: &str, key: &str, source: &Source) -> ConfigError {
        let mut missing = String::new();
        let mut rest = raw;
        while let Some(pos) = rest.find("%(") {
            let r = &rest[pos + 2..];
            let Some(close) = r.find(")s") else { break };
            let name = r[..close].to_lowercase();
            if matches!(self.reference(&name), Ok(None)) {
                missing = name;
                break;
            }
            rest = &r[close + 2..];
        }
        ConfigError::Interpolation {
            at: source.at(),
            section: self.section_name(),
            key: key.to_string(),
            reason: format!("`%({missing})s` refers to `{missing}`, which is not set"),
        }
    }

    /// Expands `%(name)s` and `%%` like Python's `BasicInterpolation`; `None` when a
    /// reference names an unset key.
    fn expand(&self, raw: &str, key: &str, source: &Source) -> Result<Option<String>, ConfigError> {
        let fail = |reason: String| ConfigError::Interpolation {
            at: source.at(),
            section: self.section_name(),
            key: key.to_string(),
            reason,
        };
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('%') {
                out.push('%');
                rest = r;
            } else if let Some(r) = after.strip_prefix('(') {
                let Some(close) = r.find(")s") else {
                    return Err(fail(format!(
                        "`%(` must be closed by `)s` in `{raw}` (write `%%` for a literal `%`)"
                    )));
                };
                let name = r[..close].to_lowercase();
                let value = self.reference(&name).map_err(|e| match e {
                    ConfigError::Interpolation { reason, .. } => fail(reason),
                    other => other,
                })?;
                match value {
                    Some(v) => out.push_str(&v),
                    None => return Ok(None),
                }
                rest = &r[close + 2..];
            } else {
                return Err(fail(format!(
                    "a `%` must be followed by `%` or `(name)s` in `{raw}`"
                )));
            }
        }
        out.push_str(rest);
        Ok(Some(out))
    }

    fn reference(&self, name: &str) -> Result<Option<String>, ConfigError> {
        if name == "name"
            && let Some(n) = self.name
        {
            return Ok(Some(n.to_string()));
        }
        // A server reference to a global-only key (barman_home…) is read from the global
        // section, by a resolver for it.
        if self.name.is_some() && matches!(keys::lookup(name).map(|s| s.scope), Some(Scope::Global))
        {
            let global = Resolver::new(None, None, self.global, self.defaults);
            return Ok(global.text(name)?.map(|t| t.text));
        }
        Ok(self.text(name)?.map(|t| t.text))
    }

    /// The typed, validated setting for `spec`.
    pub fn setting(&self, spec: &KeySpec) -> Result<Setting, ConfigError> {
        let Some(text) = self.text(spec.name)? else {
            return Ok(Setting {
                value: None,
                source: Source::Unset,
            });
        };
        if text.text.is_empty() {
            // An empty list is a value (no options), not an absence.
            let value = matches!(spec.kind, Kind::List(..)).then(|| Value::List(Vec::new()));
            return Ok(Setting {
                value,
                source: text.source,
            });
        }
        let section = match &text.source {
            Source::File { section, .. } => section.clone(),
            _ => self.section_name(),
        };
        let value = parse_kind(spec.kind, &text.text).map_err(|accepted| ConfigError::Invalid {
            at: text.source.at(),
            section,
            key: spec.name.to_string(),
            value: text.text.clone(),
            accepted,
        })?;
        Ok(Setting {
            value: Some(value),
            source: text.source,
        })
    }
}

/// Parses `text` by the key's grammar; the error says what is accepted.
pub fn parse_kind(kind: Kind, text: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::Bool => Value::Bool(values::parse_bool(text)?),
        Kind::Int { min, max } => Value::Int(values::parse_int(text, min, max)?),
        Kind::Str | Kind::Conninfo => Value::Str(text.to_string()),
        Kind::Path => Value::Path(PathBuf::from(text)),
        Kind::AbsPath => {
            let p = PathBuf::from(text);
            if !p.is_absolute() {
                return Err("an absolute path".into());
            }
            Value::Path(p)
        }
        Kind::Choice(choices) => Value::Choice(values::parse_choice(text, choices)?),
        Kind::List(choices, conflicts) => {
            Value::List(values::parse_list(text, choices, conflicts)?)
        }
        Kind::Retention => Value::Retention(text.parse()?),
        Kind::Gfs => Value::Gfs(text.parse()?),
        Kind::TimeZone => Value::TimeZone(values::parse_timezone(text)?),
        Kind::Schedule => Value::Str(values::parse_schedule(text)?),
        Kind::Jitter => Value::Str(values::parse_jitter(text)?),
        Kind::Interval => Value::Interval(text.parse()?),
        Kind::Size => Value::Size(text.parse()?),
        Kind::Level => Value::Level(values::parse_level(text)?),
        Kind::Magic => Value::Magic(values::parse_magic(text)?),
        Kind::SlotName => Value::Str(values::parse_slot_name(text)?),
    })
}
