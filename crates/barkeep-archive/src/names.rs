//! Names of files in a WAL archive (Barman's pattern):
//! `^[0-9A-F]{8}([0-9A-F]{8}[0-9A-F]{8}(\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$`.

/// What a file name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalName {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`.
    Segment(String),
    /// `….partial`: the incomplete last segment of a timeline, or one being received.
    Partial(String),
    /// `….OOOOOOOO.backup`: backup history file.
    BackupLabel(String),
    /// `TTTTTTTT.history`.
    History(String),
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl WalName {
    /// Classifies a file name; `None` when it is not a WAL archive name.
    pub fn parse(name: &str) -> Option<WalName> {
        if name.len() == 24 && is_hex(name) {
            return Some(WalName::Segment(name.into()));
        }
        if let Some(seg) = name.strip_suffix(".partial")
            && seg.len() == 24
            && is_hex(seg)
        {
            return Some(WalName::Partial(name.into()));
        }
        if let Some(rest) = name.strip_suffix(".backup")
            && rest.len() == 33
            && rest.as_bytes()[24] == b'.'
            && is_hex(&rest[..24])
            && is_hex(&rest[25..])
        {
            return Some(WalName::BackupLabel(name.into()));
        }
        if let Some(tli) = name.strip_suffix(".history")
            && tli.len() == 8
            && is_hex(tli)
        {
            return Some(WalName::History(name.into()));
        }
        None
    }

    /// The full file name.
    pub fn name(&self) -> &str {
        match self {
            WalName::Segment(n)
            | WalName::Partial(n)
            | WalName::BackupLabel(n)
            | WalName::History(n) => n,
        }
    }

    /// The 24-character segment part (`None` for history files).
    pub fn segment(&self) -> Option<&str> {
        match self {
            WalName::History(_) => None,
            other => Some(&other.name()[..24]),
        }
    }

    /// The directory under `wals/`: `TTTTTTTTLLLLLLLL` for segment files, none (top level)
    /// for history files.
    pub fn hash_dir(&self) -> Option<&str> {
        self.segment().map(|s| &s[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barman_patterns() {
        assert_eq!(
            WalName::parse("000000010000000000000002"),
            Some(WalName::Segment("000000010000000000000002".into()))
        );
        let p = WalName::parse("000000010000000A000000FF.partial").expect("partial");
        assert_eq!(p.hash_dir(), Some("000000010000000A"));
        let b = WalName::parse("000000010000000000000002.00000028.backup").expect("backup");
        assert_eq!(b.segment(), Some("000000010000000000000002"));
        let h = WalName::parse("00000002.history").expect("history");
        assert_eq!(h.hash_dir(), None);
        for bad in [
            "00000001000000000000000",
            "000000010000000000000002.tmp",
            "00000001000000000000000g",
            "000000010000000000000002.partial.tmp",
            "0000000x.history",
            "000000010000000000000002.0000002.backup",
            "",
        ] {
            assert_eq!(WalName::parse(bad), None, "{bad}");
        }
    }
}
