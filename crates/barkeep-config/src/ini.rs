//! A reader for INI text with the semantics of Python's `configparser`, which Barman uses.
//!
//! Barman reads its files with a non-strict `ConfigParser`: duplicate sections and keys are
//! allowed (the later one wins), keys are case-insensitive (lower-cased), section names are
//! case-sensitive, `#` and `;` start whole-line comments (inline comments are *not*
//! stripped: a `#` inside a conninfo password must survive), `=` or `:` separates key and
//! value, and an indented line continues the previous value. This module only splits text;
//! it records the file and line of every key so later errors can point at them.

use std::path::{Path, PathBuf};

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file that holds the line.
    pub path: PathBuf,
    /// 1-based line number of the key.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One `key = value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased key.
    pub key: String,
    /// The value as written, whitespace-trimmed; continuation lines joined with `\n`.
    pub value: String,
    /// Where the key was written.
    pub origin: Origin,
}

/// A `[section]` and its entries in file order (duplicates kept; the last one wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section name as written (case-sensitive, as in Python).
    pub name: String,
    /// Where the header was written.
    pub origin: Origin,
    /// Entries in the order they appear.
    pub entries: Vec<Entry>,
}

/// A syntax error in an INI file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` line {line}: {reason}", path.display())]
pub struct IniError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong with the line.
    pub reason: String,
}

/// Splits INI `text` (read from `path`) into sections.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Section>, IniError> {
    let mut sections: Vec<Section> = Vec::new();
    // Indentation of the key line of the entry that may receive continuation lines.
    let mut open_entry_indent: Option<usize> = None;
    let err = |line: usize, reason: String| IniError {
        path: path.to_path_buf(),
        line,
        reason,
    };

    for (idx, raw_line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();

        if trimmed.is_empty() {
            // configparser keeps empty lines inside multi-line values but strips trailing
            // ones; Barman has no multi-line keys, so an empty line simply closes the value.
            open_entry_indent = None;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(cur_indent) = open_entry_indent
            && indent > cur_indent
        {
            // A continuation line: append to the previous value.
            if let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
                if !entry.value.is_empty() {
                    entry.value.push('\n');
                }
                entry.value.push_str(trimmed);
                continue;
            }
        }
        if trimmed.starts_with('[') {
            let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
                return Err(err(lineno, format!("malformed section header `{trimmed}`")));
            };
            if name.is_empty() {
                return Err(err(lineno, "empty section name `[]`".to_string()));
            }
            sections.push(Section {
                name: name.to_string(),
                origin: Origin {
                    path: path.to_path_buf(),
                    line: lineno,
                },
                entries: Vec::new(),
            });
            open_entry_indent = None;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(err(
                lineno,
                format!("`{trimmed}` appears before any `[section]` header"),
            ));
        };
        let delim = match (trimmed.find('='), trimmed.find(':')) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => {
                return Err(err(
                    lineno,
                    format!("expected `key = value`, found `{trimmed}`"),
                ));
            }
        };
        let key = trimmed[..delim].trim().to_lowercase();
        if key.is_empty() {
            return Err(err(lineno, format!("missing key name in `{trimmed}`")));
        }
        let value = trimmed[delim + 1..].trim().to_string();
        section.entries.push(Entry {
            key,
            value,
            origin: Origin {
                path: path.to_path_buf(),
                line: lineno,
            },
        });
        open_entry_indent = Some(indent);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Section>, IniError> {
        parse(Path::new("/t.conf"), text)
    }

    #[test]
    fn sections_keys_lines() {
        let s =
            p("; comment\n[barman]\nbarman_home = /var/lib/barman\n\n[pg]\nDescription: \"PG\"\n")
                .expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "barman");
        assert_eq!(s[0].entries[0].key, "barman_home");
        assert_eq!(s[0].entries[0].origin.line, 3);
        assert_eq!(s[1].entries[0].key, "description");
        assert_eq!(s[1].entries[0].value, "\"PG\"");
    }

    #[test]
    fn inline_hash_is_kept() {
        let s = p("[pg]\nconninfo = password=a#b host=x\n").expect("parses");
        assert_eq!(s[0].entries[0].value, "password=a#b host=x");
    }

    #[test]
    fn continuation_lines_join() {
        let s = p("[pg]\npre_backup_script = a\n  b\nx = 1\n").expect("parses");
        assert_eq!(s[0].entries[0].value, "a\nb");
        assert_eq!(s[0].entries[1].key, "x");
    }

    #[test]
    fn key_before_section_is_an_error_with_line() {
        let e = p("\nfoo = bar\n").expect_err("must fail");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("before any `[section]`"), "{e}");
    }

    #[test]
    fn line_without_delimiter_is_an_error() {
        let e = p("[pg]\njust words\n").expect_err("must fail");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn crlf_is_accepted() {
        let s = p("[pg]\r\nactive = true\r\n").expect("parses");
        assert_eq!(s[0].entries[0].value, "true");
    }
}
