//! Retention as a pure planner: the backups of a catalog, their keep annotations, the
//! archived WAL, the time now and the policy go in; a [`Plan`] comes out, with the
//! retention status Barman would show for every backup, whether it is deleted, and why,
//! and the WAL files no kept backup needs. Nothing is read or written here: `cron`,
//! `barkeep retention` and `list-backups` all ask the same function, so what is shown is
//! what is done.
//!
//! Barman's policies, exactly (`barman/retention_policies.py`):
//!
//! - `REDUNDANCY n` (at least `minimum_redundancy`): walking newest to oldest over the
//!   DONE full backups, the first `n` are VALID, the older OBSOLETE; a kept backup shows
//!   KEEP:FULL / KEEP:STANDALONE instead and still counts.
//! - `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS` (a month is 31 days): walking newest to
//!   oldest, backups are VALID up to and including the first one that ended before the
//!   window's start (it is what recovery to the start replays from); older ones are
//!   OBSOLETE, except that while fewer than `minimum_redundancy` have been counted they
//!   are OBSOLETE* (potentially obsolete, kept).
//! - Incremental backups take the status of their root; other statuses than DONE show
//!   `-` and are never touched.
//!
//! barkeep adds GFS (`retention_gfs`): for each kind, the last N calendar periods
//! counted back from now, the current one included, keep the first DONE backup of each
//! (by end time), with its ancestors. A backup kept only by GFS keeps only the WAL that
//! makes it consistent, as `keep:standalone` does. Whatever the policy, the newest DONE
//! backup is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::info::{BackupInfo, Status};
use crate::store::KeepTarget;
use crate::walrange::WalRange;

/// The base rule of a retention policy (`retention_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `REDUNDANCY n`.
    Redundancy(u32),
    /// `RECOVERY WINDOW OF …`, as a number of days (a week is 7, a month 31).
    Window {
        /// Length of the window in days.
        days: u32,
    },
}

/// GFS counts (`retention_gfs`): how many of the last days, ISO weeks, calendar months
/// and calendar years keep their first backup. Zero means the kind is not used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Gfs {
    /// `N DAILY`.
    pub daily: u32,
    /// `N WEEKLY` (ISO weeks, Monday to Sunday).
    pub weekly: u32,
    /// `N MONTHLY`.
    pub monthly: u32,
    /// `N YEARLY`.
    pub yearly: u32,
}

/// What the planner applies.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `retention_policy`; `None` when unset.
    pub rule: Option<Rule>,
    /// Its text as configured (`REDUNDANCY 3`), for the plan.
    pub rule_text: Option<String>,
    /// `minimum_redundancy`.
    pub minimum_redundancy: u32,
    /// `retention_gfs`; `None` when unset.
    pub gfs: Option<Gfs>,
    /// The zone GFS periods are counted in (`retention_gfs_timezone`, default UTC).
    pub timezone: chrono_tz::Tz,
}

impl Policy {
    /// Whether anything is enforced at all (a rule or GFS).
    pub fn enforced(&self) -> bool {
        self.rule.is_some() || self.gfs.is_some()
    }
}

/// A backup's retention status, spelled as Barman spells it (plus `KEEP:GFS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RetentionStatus {
    /// Needed by the policy.
    #[serde(rename = "VALID")]
    Valid,
    /// Not needed: deleted by retention.
    #[serde(rename = "OBSOLETE")]
    Obsolete,
    /// Outside the policy but kept for `minimum_redundancy`.
    #[serde(rename = "OBSOLETE*")]
    PotentiallyObsolete,
    /// `keep --target full`.
    #[serde(rename = "KEEP:FULL")]
    KeepFull,
    /// `keep --target standalone`.
    #[serde(rename = "KEEP:STANDALONE")]
    KeepStandalone,
    /// Outside the policy, kept by `retention_gfs` (with the WAL that makes it consistent).
    #[serde(rename = "KEEP:GFS")]
    KeepGfs,
    /// Not ranked (not DONE, or no policy).
    #[serde(rename = "-")]
    None,
}

impl RetentionStatus {
    /// Barman's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionStatus::Valid => "VALID",
            RetentionStatus::Obsolete => "OBSOLETE",
            RetentionStatus::PotentiallyObsolete => "OBSOLETE*",
            RetentionStatus::KeepFull => "KEEP:FULL",
            RetentionStatus::KeepStandalone => "KEEP:STANDALONE",
            RetentionStatus::KeepGfs => "KEEP:GFS",
            RetentionStatus::None => "-",
        }
    }

    fn of_keep(k: KeepTarget) -> RetentionStatus {
        match k {
            KeepTarget::Full => RetentionStatus::KeepFull,
            KeepTarget::Standalone => RetentionStatus::KeepStandalone,
        }
    }
}

/// What the plan says about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The backup.
    pub backup_id: String,
    /// Its catalog status.
    pub backup_status: Status,
    /// Its retention status.
    pub status: RetentionStatus,
    /// Whether retention deletes it.
    pub delete: bool,
    /// Why it is kept or deleted, one line each.
    pub reasons: Vec<String>,
}

/// What the plan says about the WAL archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WalPlan {
    /// WAL from this segment on is kept whole (the oldest backup kept for point-in-time
    /// recovery begins there); `None` when no backup is (then no WAL is deleted).
    pub kept_whole_from: Option<String>,
    /// Backups whose WAL is kept only from their begin to their end segment.
    pub kept_consistent_only: Vec<String>,
    /// WAL files deleted.
    pub delete: Vec<String>,
}

/// A retention plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Whether a policy is enforced; when false nothing is deleted.
    pub enforced: bool,
    /// The policy, as configured.
    pub policy: Option<String>,
    /// `minimum_redundancy`.
    pub minimum_redundancy: u32,
    /// GFS counts, when set.
    pub gfs: Option<Gfs>,
    /// The time the plan was made for.
    pub now: DateTime<Utc>,
    /// Every backup, oldest first.
    pub backups: Vec<Verdict>,
    /// The WAL.
    pub wal: WalPlan,
}

impl Plan {
    /// The backups deleted, newest first (children before their parents).
    pub fn deleted(&self) -> impl Iterator<Item = &Verdict> {
        self.backups.iter().rev().filter(|v| v.delete)
    }

    /// The verdict on one backup.
    pub fn verdict(&self, id: &str) -> Option<&Verdict> {
        self.backups.iter().find(|v| v.backup_id == id)
    }

    /// Whether applying it changes nothing.
    pub fn is_noop(&self) -> bool {
        self.deleted().next().is_none() && self.wal.delete.is_empty()
    }
}

/// Barman's ranking of full DONE backups, fed newest first: what [`plan`] runs over a
/// whole catalog, and what `show-backup` runs only until the backup it shows.
#[derive(Debug, Clone)]
pub struct Ranker {
    rule: Rule,
    label: String,
    minimum_redundancy: u32,
    point_of_recoverability: DateTime<Utc>,
    /// Redundancy: DONE full backups seen. Window: backups counted as valid.
    counted: u32,
    /// Window: a backup older than the window's start was seen.
    found: bool,
}

/// One ranked backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rank {
    /// Its retention status.
    pub status: RetentionStatus,
    /// Why.
    pub reason: String,
    /// Whether its incremental children are inside the policy (Barman propagates VALID
    /// to the children of a kept root only while the root is inside it).
    pub children_within: bool,
    /// Whether the policy itself needs it (it would be VALID or OBSOLETE* without a keep
    /// annotation): then it keeps the WAL after it even when kept standalone.
    pub in_policy: bool,
}

impl Ranker {
    /// A ranker for `rule` (written `label` in the configuration) at `now`.
    pub fn new(rule: Rule, label: &str, minimum_redundancy: u32, now: DateTime<Utc>) -> Ranker {
        let days = match rule {
            Rule::Window { days, .. } => days,
            Rule::Redundancy(_) => 0,
        };
        Ranker {
            rule,
            label: label.to_string(),
            minimum_redundancy,
            point_of_recoverability: now - Duration::days(i64::from(days)),
            counted: 0,
            found: false,
        }
    }

    /// The status of the next older DONE full backup.
    pub fn push(&mut self, b: &BackupInfo, keep: Option<KeepTarget>) -> Rank {
        let kept = keep.map(RetentionStatus::of_keep);
        match self.rule {
            Rule::Redundancy(n) => {
                let n = n.max(self.minimum_redundancy);
                let within = self.counted < n;
                self.counted += 1;
                let (status, reason) = match (kept, within) {
                    (Some(k), _) => (k, format!("keep annotation ({})", keep_word(keep))),
                    (None, true) => (
                        RetentionStatus::Valid,
                        format!("one of the {n} newest DONE backups (REDUNDANCY {n})"),
                    ),
                    (None, false) => (
                        RetentionStatus::Obsolete,
                        format!("older than the {n} newest DONE backups (REDUNDANCY {n})"),
                    ),
                };
                Rank {
                    status,
                    reason,
                    children_within: self.counted <= n,
                    in_policy: within,
                }
            }
            Rule::Window { .. } => {
                let text = &self.label;
                let por = self.point_of_recoverability;
                let ended_before = b.end_time.is_some_and(|t| t < por);
                let (status, reason);
                let in_policy = !self.found || self.counted < self.minimum_redundancy;
                if self.found {
                    if self.counted < self.minimum_redundancy {
                        self.counted += 1;
                        match kept {
                            Some(k) => {
                                status = k;
                                reason = format!("keep annotation ({})", keep_word(keep));
                            }
                            None => {
                                status = RetentionStatus::PotentiallyObsolete;
                                reason = format!(
                                    "older than the recovery window ({text}), kept for minimum_redundancy = {}",
                                    self.minimum_redundancy
                                );
                            }
                        }
                    } else {
                        match kept {
                            Some(k) => {
                                status = k;
                                reason = format!("keep annotation ({})", keep_word(keep));
                            }
                            None => {
                                status = RetentionStatus::Obsolete;
                                reason = format!(
                                    "older than the recovery window ({text}) and not needed to reach its start"
                                );
                            }
                        }
                    }
                } else {
                    self.counted += 1;
                    status = kept.unwrap_or(RetentionStatus::Valid);
                    reason = match (kept, ended_before) {
                        (Some(_), _) => format!("keep annotation ({})", keep_word(keep)),
                        (None, false) => format!("inside the recovery window ({text})"),
                        (None, true) => format!(
                            "the newest backup ended before the recovery window ({text}) starts: recovery to its start replays from it"
                        ),
                    };
                    if ended_before {
                        self.found = true;
                    }
                }
                Rank {
                    status,
                    reason,
                    children_within: !self.found,
                    in_policy,
                }
            }
        }
    }

    /// Whether every older backup is OBSOLETE (unless kept): nothing more to learn.
    pub fn settled(&self) -> bool {
        match self.rule {
            Rule::Redundancy(n) => self.counted >= n.max(self.minimum_redundancy),
            Rule::Window { .. } => self.found && self.counted >= self.minimum_redundancy,
        }
    }
}

fn keep_word(k: Option<KeepTarget>) -> &'static str {
    k.map_or("", KeepTarget::as_str)
}

/// A calendar period of GFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    /// A day.
    Day(NaiveDate),
    /// An ISO week: ISO year and week number.
    Week(i32, u32),
    /// A calendar month.
    Month(i32, u32),
    /// A calendar year.
    Year(i32),
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Day(d) => write!(f, "day {d}"),
            Period::Week(y, w) => write!(f, "week {y}-W{w:02}"),
            Period::Month(y, m) => write!(f, "month {y}-{m:02}"),
            Period::Year(y) => write!(f, "year {y}"),
        }
    }
}

/// The periods of each kind a date belongs to.
fn periods_of(d: NaiveDate) -> [Period; 4] {
    let w = d.iso_week();
    [
        Period::Day(d),
        Period::Week(w.year(), w.week()),
        Period::Month(d.year(), d.month()),
        Period::Year(d.year()),
    ]
}

/// The GFS periods that keep a backup at `today` (in the GFS zone): the last N of each
/// kind, the current one included.
pub fn gfs_periods(gfs: &Gfs, today: NaiveDate) -> BTreeSet<Period> {
    let mut out = BTreeSet::new();
    for k in 0..gfs.daily {
        if let Some(d) = today.checked_sub_days(chrono::Days::new(u64::from(k))) {
            out.insert(Period::Day(d));
        }
    }
    for k in 0..gfs.weekly {
        if let Some(d) = today.checked_sub_days(chrono::Days::new(7 * u64::from(k))) {
            let w = d.iso_week();
            out.insert(Period::Week(w.year(), w.week()));
        }
    }
    let month_index = today.year() * 12 + today.month0() as i32;
    for k in 0..gfs.monthly as i32 {
        let m = month_index - k;
        out.insert(Period::Month(m.div_euclid(12), m.rem_euclid(12) as u32 + 1));
    }
    for k in 0..gfs.yearly as i32 {
        out.insert(Period::Year(today.year() - k));
    }
    out
}

/// The plan for a catalog: `backups` oldest first (every backup with metadata, not
/// marked for deletion), their keep annotations, the names in the WAL index.
pub fn plan(
    backups: &[BackupInfo],
    keeps: &BTreeMap<String, KeepTarget>,
    wal: &[String],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Plan {
    let mut verdicts: Vec<Verdict> = backups
        .iter()
        .map(|b| Verdict {
            backup_id: b.backup_id.clone(),
            backup_status: b.status,
            status: RetentionStatus::None,
            delete: false,
            reasons: Vec::new(),
        })
        .collect();
    let mut out = Plan {
        enforced: policy.enforced(),
        policy: policy.rule_text.clone(),
        minimum_redundancy: policy.minimum_redundancy,
        gfs: policy.gfs,
        now,
        backups: Vec::new(),
        wal: WalPlan::default(),
    };
    if !policy.enforced() {
        for v in &mut verdicts {
            v.reasons
                .push("no retention policy: nothing is deleted".into());
        }
        out.backups = verdicts;
        return out;
    }
    let index: BTreeMap<&str, usize> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| (b.backup_id.as_str(), i))
        .collect();
    // GFS alone keeps the newest backups `minimum_redundancy` asks for (at least one).
    let rule = policy
        .rule
        .unwrap_or(Rule::Redundancy(policy.minimum_redundancy.max(1)));
    let label = policy
        .rule_text
        .clone()
        .unwrap_or_else(|| format!("REDUNDANCY {}", policy.minimum_redundancy.max(1)));
    let mut ranker = Ranker::new(rule, &label, policy.minimum_redundancy, now);
    let mut children_within: BTreeMap<usize, bool> = BTreeMap::new();
    let mut in_policy = vec![false; backups.len()];
    for (i, b) in backups.iter().enumerate().rev() {
        if b.parent_backup_id.is_some() {
            continue;
        }
        if b.status != Status::Done {
            verdicts[i].reasons.push(format!(
                "{}: not ranked (only DONE backups are)",
                b.status.as_str()
            ));
            continue;
        }
        let rank = ranker.push(b, keeps.get(&b.backup_id).copied());
        verdicts[i].status = rank.status;
        verdicts[i].reasons.push(rank.reason);
        children_within.insert(i, rank.children_within);
        in_policy[i] = rank.in_policy;
    }
    // Incremental backups take their root's status (Barman's propagation).
    for (i, b) in backups.iter().enumerate() {
        if b.parent_backup_id.is_none() {
            continue;
        }
        match root_of(backups, &index, i) {
            Some(r) => {
                let root = verdicts[r].status;
                let status = match root {
                    RetentionStatus::KeepFull => RetentionStatus::Valid,
                    RetentionStatus::KeepStandalone
                        if children_within.get(&r).copied().unwrap_or(false) =>
                    {
                        RetentionStatus::Valid
                    }
                    RetentionStatus::KeepStandalone => RetentionStatus::Obsolete,
                    other => other,
                };
                verdicts[i].status = status;
                verdicts[i].reasons.push(format!(
                    "incremental: takes the status of its root {} ({})",
                    backups[r].backup_id,
                    root.as_str()
                ));
            }
            None => verdicts[i]
                .reasons
                .push("incremental whose chain is broken: not ranked, kept".into()),
        }
    }
    if policy.rule.is_none() {
        for v in &mut verdicts {
            if v.status == RetentionStatus::Valid {
                v.reasons.push(
                    "no retention_policy: with retention_gfs alone the newest backups minimum_redundancy asks for (at least one) are kept"
                        .into(),
                );
            }
        }
    }
    // The newest DONE backup is never deleted, whatever the policy says, and keeps the
    // WAL after it: it is what recovery to the present starts from.
    if let Some(i) = backups.iter().rposition(|b| b.status == Status::Done) {
        in_policy[i] = true;
        if verdicts[i].status == RetentionStatus::Obsolete {
            verdicts[i].status = RetentionStatus::Valid;
            verdicts[i]
                .reasons
                .push("the newest DONE backup is always kept".into());
        }
    }
    // Incremental backups are in the policy with their root.
    for i in 0..backups.len() {
        if backups[i].parent_backup_id.is_some()
            && let Some(r) = root_of(backups, &index, i)
        {
            in_policy[i] = in_policy[r] && verdicts[i].status != RetentionStatus::Obsolete;
        }
    }
    // GFS picks, with their ancestors.
    if let Some(gfs) = &policy.gfs {
        let today = now.with_timezone(&policy.timezone).date_naive();
        let wanted = gfs_periods(gfs, today);
        let mut done: Vec<(DateTime<Utc>, usize)> = backups
            .iter()
            .enumerate()
            .filter(|(_, b)| b.status == Status::Done)
            .filter_map(|(i, b)| b.end_time.map(|t| (t.with_timezone(&Utc), i)))
            .collect();
        done.sort();
        let mut taken: BTreeSet<Period> = BTreeSet::new();
        for (t, i) in done {
            let local = t.with_timezone(&policy.timezone).date_naive();
            for p in periods_of(local) {
                if wanted.contains(&p) && taken.insert(p) {
                    let mut chain = vec![i];
                    let mut cur = i;
                    while let Some(parent) = backups[cur]
                        .parent_backup_id
                        .as_deref()
                        .and_then(|p| index.get(p).copied())
                    {
                        chain.push(parent);
                        cur = parent;
                    }
                    for (n, &c) in chain.iter().enumerate() {
                        let v = &mut verdicts[c];
                        if v.status == RetentionStatus::Obsolete {
                            v.status = RetentionStatus::KeepGfs;
                        }
                        v.reasons.push(if n == 0 {
                            format!("retention_gfs: the first backup of {p}")
                        } else {
                            format!(
                                "retention_gfs: an ancestor of {}, the first backup of {p}",
                                backups[i].backup_id
                            )
                        });
                    }
                }
            }
        }
    }
    for v in &mut verdicts {
        v.delete = v.status == RetentionStatus::Obsolete && v.backup_status == Status::Done;
    }
    out.wal = wal_plan(backups, &verdicts, &in_policy, wal);
    out.backups = verdicts;
    out
}

/// The retention status of one backup, reading only what it must: the backups newer
/// than it until the ranking is settled (with GFS, the whole catalog — the first backup
/// of a period depends on the older ones). What `show-backup` reports.
pub fn status_of<S: crate::CatalogStore + ?Sized>(
    store: &S,
    policy: &Policy,
    b: &BackupInfo,
    now: DateTime<Utc>,
) -> crate::Result<RetentionStatus> {
    if !policy.enforced() {
        return Ok(RetentionStatus::None);
    }
    let ids = store.listing()?.live;
    if policy.gfs.is_some() {
        let mut all = Vec::new();
        let mut keeps = BTreeMap::new();
        for id in &ids {
            if let Some(info) = store.read_info(id)? {
                if let Some(k) = store.keep(id)? {
                    keeps.insert(id.clone(), k);
                }
                all.push(info);
            }
        }
        let p = plan(&all, &keeps, &[], now, policy);
        return Ok(p
            .verdict(&b.backup_id)
            .map_or(RetentionStatus::None, |v| v.status));
    }
    // The root of an incremental chain carries the status.
    let mut root = b.clone();
    let mut hops = 0;
    while let Some(parent) = root.parent_backup_id.clone() {
        match store.read_info(&parent)? {
            Some(p) if hops <= ids.len() => root = p,
            _ => return Ok(RetentionStatus::None),
        }
        hops += 1;
    }
    if root.status != Status::Done {
        return Ok(RetentionStatus::None);
    }
    let rule = policy
        .rule
        .unwrap_or(Rule::Redundancy(policy.minimum_redundancy.max(1)));
    let mut ranker = Ranker::new(rule, "", policy.minimum_redundancy, now);
    let mut newest_done: Option<String> = None;
    let mut rank = None;
    for id in ids.iter().rev() {
        if *id == root.backup_id {
            rank = Some(ranker.push(&root, store.keep(id)?));
            break;
        }
        if ranker.settled() && newest_done.is_some() {
            let status = store
                .keep(&root.backup_id)?
                .map_or(RetentionStatus::Obsolete, RetentionStatus::of_keep);
            rank = Some(Rank {
                status,
                reason: String::new(),
                children_within: false,
                in_policy: false,
            });
            break;
        }
        let Some(info) = store.read_info(id)? else {
            continue;
        };
        if info.status != Status::Done {
            continue;
        }
        newest_done.get_or_insert_with(|| id.clone());
        if info.parent_backup_id.is_none() {
            ranker.push(&info, store.keep(id)?);
        }
    }
    let Some(rank) = rank else {
        return Ok(RetentionStatus::None);
    };
    let mut status = rank.status;
    if b.parent_backup_id.is_some() {
        status = match status {
            RetentionStatus::KeepFull => RetentionStatus::Valid,
            RetentionStatus::KeepStandalone if rank.children_within => RetentionStatus::Valid,
            RetentionStatus::KeepStandalone => RetentionStatus::Obsolete,
            other => other,
        };
    }
    let newest = newest_done.is_none_or(|n| n == b.backup_id);
    if newest && b.status == Status::Done && status == RetentionStatus::Obsolete {
        status = RetentionStatus::Valid;
    }
    Ok(status)
}

fn root_of(backups: &[BackupInfo], index: &BTreeMap<&str, usize>, mut i: usize) -> Option<usize> {
    let mut hops = 0;
    while let Some(parent) = backups[i].parent_backup_id.as_deref() {
        i = *index.get(parent)?;
        hops += 1;
        if hops > backups.len() {
            return None;
        }
    }
    Some(i)
}

fn wal_plan(
    backups: &[BackupInfo],
    verdicts: &[Verdict],
    in_policy: &[bool],
    wal: &[String],
) -> WalPlan {
    let mut plan = WalPlan::default();
    let mut whole: Option<WalRange> = None;
    let mut standalone: Vec<WalRange> = Vec::new();
    for ((b, v), &needed) in backups.iter().zip(verdicts).zip(in_policy) {
        if v.delete {
            continue;
        }
        // Kept by an annotation or by GFS only, outside what the policy needs: the WAL
        // that makes it consistent is enough.
        let consistent_only = !needed
            && matches!(
                v.status,
                RetentionStatus::KeepStandalone | RetentionStatus::KeepGfs
            );
        if consistent_only {
            if let Ok(Some(r)) = WalRange::of_backup(b) {
                standalone.push(r);
                plan.kept_consistent_only.push(b.backup_id.clone());
            }
            continue;
        }
        // A backup kept for recovery from it onwards, or one still being made or waiting
        // for its WAL: everything from its begin is kept.
        let protects = matches!(
            b.status,
            Status::Done | Status::WaitingForWals | Status::Started | Status::Syncing
        );
        if protects
            && whole.is_none()
            && let Ok(Some(r)) = WalRange::from_backup(b)
        {
            whole = Some(r);
            plan.kept_whole_from = b.begin_wal.clone();
        }
    }
    let Some(whole) = whole else {
        return plan;
    };
    plan.delete = wal
        .iter()
        .filter(|n| whole.precedes(n) && !standalone.iter().any(|r| r.contains(n)))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests;
