//! Timeline history files (`TTTTTTTT.history`): one line per ancestor timeline,
//! `parentTLI<TAB>switchLSN<TAB>reason`, oldest first (PostgreSQL `timeline.c`).

use crate::{Lsn, TimeLineId, WalError};

/// One ancestor: timeline `parent` ended at `switch_point`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The ancestor timeline.
    pub parent: TimeLineId,
    /// Where it forked off.
    pub switch_point: Lsn,
    /// Free text (why recovery ended).
    pub reason: String,
}

/// The history file name of timeline `tli`.
pub fn history_file_name(tli: TimeLineId) -> String {
    format!("{tli:08X}.history")
}

/// Parses a history file; blank lines and `#` comments are skipped, as PostgreSQL does.
pub fn parse_history(text: &str) -> Result<Vec<HistoryEntry>, WalError> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = |reason: String| WalError::History {
            line: idx + 1,
            reason,
        };
        let mut parts = t.splitn(3, |c: char| c.is_ascii_whitespace());
        let parent: TimeLineId = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| bad(format!("expected a timeline id at the start of `{t}`")))?;
        let lsn_text = parts
            .next()
            .map(str::trim)
            .ok_or_else(|| bad(format!("expected a switch LSN after the timeline in `{t}`")))?;
        let switch_point: Lsn = lsn_text.parse().map_err(|e: WalError| bad(e.to_string()))?;
        if let Some(prev) = out.last()
            && (parent <= prev.parent || switch_point < prev.switch_point)
        {
            return Err(bad("timelines must increase, oldest first".into()));
        }
        out.push(HistoryEntry {
            parent,
            switch_point,
            reason: parts.next().unwrap_or("").trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_output() {
        let h = parse_history(
            "1\t0/A000090\tno recovery target specified\n\n# c\n2\t0/B0000A0\tbefore 2026-01-01\n",
        )
        .expect("parses");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].parent, 1);
        assert_eq!(h[0].switch_point, Lsn(0x0A00_0090));
        assert_eq!(h[1].reason, "before 2026-01-01");
        assert_eq!(history_file_name(2), "00000002.history");
        assert!(parse_history("x\t0/1\n").is_err());
        assert!(parse_history("2\t0/5\n1\t0/6\n").is_err());
    }
}
