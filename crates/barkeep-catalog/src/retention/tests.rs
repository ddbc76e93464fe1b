use super::*;
use chrono::{FixedOffset, TimeZone};
use proptest::prelude::*;

const SEG: u64 = 16 << 20;

fn seg_name(segno: u64) -> String {
    format!("00000001{:08X}{:08X}", segno / 256, segno % 256)
}

/// A DONE backup that ended at `t`, its WAL from segment `segno` to `segno + 1`.
fn backup(t: DateTime<Utc>, segno: u64) -> BackupInfo {
    let mut b = BackupInfo::new(&t.format("%Y%m%dT%H%M%S").to_string(), "pg");
    b.status = Status::Done;
    b.begin_time = Some(
        (t - Duration::minutes(5))
            .with_timezone(&FixedOffset::east_opt(0).expect("synthetic catalog")),
    );
    b.end_time = Some(t.with_timezone(&FixedOffset::east_opt(0).expect("synthetic catalog")));
    b.begin_wal = Some(seg_name(segno));
    b.end_wal = Some(seg_name(segno + 1));
    b.xlog_segment_size = Some(SEG);
    b.timeline = Some(1);
    b
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("synthetic catalog")
}

fn policy(rule: Option<Rule>, min: u32, gfs: Option<Gfs>) -> Policy {
    Policy {
        rule,
        rule_text: rule.map(|r| match r {
            Rule::Redundancy(n) => format!("REDUNDANCY {n}"),
            Rule::Window { days } => format!("RECOVERY WINDOW OF {days} DAYS"),
        }),
        minimum_redundancy: min,
        gfs,
        timezone: chrono_tz::UTC,
    }
}

fn statuses(p: &Plan) -> Vec<&'static str> {
    p.backups.iter().map(|v| v.status.as_str()).collect()
}

/// Daily backups at 01:00 from `start`, `n` of them; WAL: 4 segments a day.
fn daily(start: DateTime<Utc>, n: usize) -> (Vec<BackupInfo>, Vec<String>) {
    let backups: Vec<BackupInfo> = (0..n)
        .map(|i| backup(start + Duration::days(i as i64), 10 + 4 * i as u64))
        .collect();
    let wal = (0..(10 + 4 * n as u64 + 4)).map(seg_name).collect();
    (backups, wal)
}

#[test]
fn redundancy_keeps_the_newest_n_and_kept_backups_count() {
    let (bs, wal) = daily(utc(2026, 11, 1, 1), 5);
    let mut keeps = BTreeMap::new();
    let p = plan(
        &bs,
        &keeps,
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(2)), 0, None),
    );
    assert_eq!(
        statuses(&p),
        ["OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "VALID"]
    );
    assert_eq!(p.deleted().count(), 3);
    // WAL before the oldest VALID backup goes.
    assert_eq!(
        p.wal.kept_whole_from.as_deref(),
        Some(seg_name(22).as_str())
    );
    assert_eq!(p.wal.delete, (0..22).map(seg_name).collect::<Vec<_>>());

    // A kept backup counts toward the redundancy (Barman's `i` counts it).
    keeps.insert(bs[4].backup_id.clone(), KeepTarget::Full);
    let p = plan(
        &bs,
        &keeps,
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(2)), 0, None),
    );
    assert_eq!(
        statuses(&p),
        ["OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "KEEP:FULL"]
    );

    // minimum_redundancy raises a lower redundancy.
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(1)), 3, None),
    );
    assert_eq!(
        statuses(&p),
        ["OBSOLETE", "OBSOLETE", "VALID", "VALID", "VALID"]
    );
}

#[test]
fn recovery_window_keeps_the_window_and_the_newest_backup_before_it() {
    let (bs, wal) = daily(utc(2026, 11, 1, 1), 6);
    let window = Some(Rule::Window { days: 2 });
    // Now: Nov 7 00:00, window start Nov 5 00:00; backups end Nov 1..6 at 01:00. Nov 5
    // and 6 are inside; Nov 4 is the newest before the start; older are obsolete.
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 7, 0),
        &policy(window, 0, None),
    );
    assert_eq!(
        statuses(&p),
        [
            "OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "VALID", "VALID"
        ]
    );
    // minimum_redundancy 5: two more are potentially obsolete (kept).
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 7, 0),
        &policy(window, 5, None),
    );
    assert_eq!(
        statuses(&p),
        [
            "OBSOLETE",
            "OBSOLETE*",
            "OBSOLETE*",
            "VALID",
            "VALID",
            "VALID"
        ]
    );
    assert_eq!(p.deleted().count(), 1);
    assert_eq!(p.wal.kept_whole_from, bs[1].begin_wal);
}

#[test]
fn standalone_keeps_only_its_own_wal_and_failed_backups_are_not_touched() {
    let (mut bs, wal) = daily(utc(2026, 11, 1, 1), 5);
    bs[2].status = Status::Failed;
    let mut keeps = BTreeMap::new();
    keeps.insert(bs[0].backup_id.clone(), KeepTarget::Standalone);
    let p = plan(
        &bs,
        &keeps,
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(1)), 0, None),
    );
    assert_eq!(
        statuses(&p),
        ["KEEP:STANDALONE", "OBSOLETE", "-", "OBSOLETE", "VALID"]
    );
    assert_eq!(p.wal.kept_consistent_only, [bs[0].backup_id.clone()]);
    // Segments 10 and 11 (its begin..end) stay; 0..9 and 12..25 go.
    let kept: Vec<String> = wal
        .iter()
        .filter(|n| !p.wal.delete.contains(n))
        .cloned()
        .collect();
    assert!(kept.contains(&seg_name(10)) && kept.contains(&seg_name(11)));
    assert!(!kept.contains(&seg_name(12)) && !kept.contains(&seg_name(9)));
    assert_eq!(p.wal.kept_whole_from, bs[4].begin_wal);
}

#[test]
fn history_files_and_later_timelines_are_never_deleted() {
    let (bs, mut wal) = daily(utc(2026, 11, 1, 1), 3);
    wal.push("00000002.history".into());
    wal.push("000000020000000000000003".into());
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(1)), 0, None),
    );
    assert!(
        !p.wal
            .delete
            .iter()
            .any(|n| n.contains("history") || n.starts_with("00000002"))
    );
}

#[test]
fn no_policy_deletes_nothing() {
    let (bs, wal) = daily(utc(2026, 11, 1, 1), 3);
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 6, 0),
        &policy(None, 0, None),
    );
    assert!(!p.enforced && p.is_noop());
    assert_eq!(statuses(&p), ["-", "-", "-"]);
}

#[test]
fn gfs_keeps_the_first_backup_of_each_period_with_only_its_wal() {
    // Daily backups for 90 days from Sep 1 2026; now Nov 29 2026 (a Sunday), REDUNDANCY 3,
    // GFS 7 DAILY, 4 WEEKLY, 3 MONTHLY.
    let (bs, wal) = daily(utc(2026, 9, 1, 1), 90);
    let gfs = Gfs {
        daily: 7,
        weekly: 4,
        monthly: 3,
        yearly: 0,
    };
    let now = utc(2026, 11, 29, 12);
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        now,
        &policy(Some(Rule::Redundancy(3)), 0, Some(gfs)),
    );
    let kept: Vec<String> = p
        .backups
        .iter()
        .filter(|v| !v.delete)
        .map(|v| v.backup_id[..8].to_string())
        .collect();
    // Days Nov 23..29; ISO weeks 45..48 start Mon Nov 2, 9, 16, 23; months Sep, Oct, Nov
    // start on the 1st.
    let want = [
        "20260901", "20261001", "20261101", "20261102", "20261109", "20261116", "20261123",
        "20261124", "20261125", "20261126", "20261127", "20261128", "20261129",
    ];
    assert_eq!(kept, want);
    let sep1 = p.verdict(&bs[0].backup_id).expect("synthetic catalog");
    assert_eq!(sep1.status, RetentionStatus::KeepGfs);
    assert!(
        sep1.reasons.iter().any(|r| r.contains("month 2026-09")),
        "{sep1:?}"
    );
    // Its WAL is only its own two segments.
    assert!(!p.wal.delete.contains(&seg_name(10)) && !p.wal.delete.contains(&seg_name(11)));
    assert!(p.wal.delete.contains(&seg_name(12)));
}

#[test]
fn gfs_weeks_cross_years_and_week_53() {
    // 2026-12-28 is Monday of ISO week 2026-W53; 2027-01-04 starts 2027-W01.
    let start = utc(2026, 12, 20, 1);
    let (bs, wal) = daily(start, 20);
    let gfs = Gfs {
        weekly: 3,
        yearly: 2,
        ..Gfs::default()
    };
    let now = utc(2027, 1, 8, 12);
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        now,
        &policy(Some(Rule::Redundancy(1)), 0, Some(gfs)),
    );
    let kept: Vec<String> = p
        .backups
        .iter()
        .filter(|v| !v.delete)
        .map(|v| v.backup_id[..8].to_string())
        .collect();
    // Weeks: 2027-W01 (Jan 4), 2026-W53 (Dec 28), 2026-W52 (Dec 21); years: 2027 (Jan 1),
    // 2026 (Dec 20); the newest (Jan 8).
    assert_eq!(
        kept,
        [
            "20261220", "20261221", "20261228", "20270101", "20270104", "20270108"
        ]
    );
    let w53 = p
        .backups
        .iter()
        .find(|v| v.backup_id.starts_with("20261228"))
        .expect("synthetic catalog");
    assert!(
        w53.reasons.iter().any(|r| r.contains("2026-W53")),
        "{w53:?}"
    );
}

#[test]
fn gfs_periods_follow_the_configured_zone() {
    // A backup ending 2026-11-30 23:30 UTC is on Dec 1 in Europe/Madrid.
    let b1 = backup(utc(2026, 11, 30, 23) + Duration::minutes(30), 10);
    let b2 = backup(utc(2026, 12, 1, 10), 14);
    let wal: Vec<String> = (0..20).map(seg_name).collect();
    let gfs = Gfs {
        monthly: 1,
        ..Gfs::default()
    };
    let mut pol = policy(Some(Rule::Redundancy(1)), 0, Some(gfs));
    let now = utc(2026, 12, 2, 0);
    let p = plan(&[b1.clone(), b2.clone()], &BTreeMap::new(), &wal, now, &pol);
    assert_eq!(
        statuses(&p),
        ["OBSOLETE", "VALID"],
        "UTC: b1 is in November"
    );
    pol.timezone = chrono_tz::Europe::Madrid;
    let p = plan(&[b1, b2], &BTreeMap::new(), &wal, now, &pol);
    assert_eq!(
        statuses(&p),
        ["KEEP:GFS", "VALID"],
        "Madrid: b1 is the first of December"
    );
}

#[test]
fn incremental_backups_take_their_roots_status_and_gfs_keeps_ancestors() {
    let (mut bs, wal) = daily(utc(2026, 11, 1, 1), 4);
    // 0 full, 1 child of 0, 2 full, 3 full.
    bs[1].parent_backup_id = Some(bs[0].backup_id.clone());
    bs[0].children_backup_ids = Some(vec![bs[1].backup_id.clone()]);
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 5, 0),
        &policy(Some(Rule::Redundancy(2)), 0, None),
    );
    assert_eq!(statuses(&p), ["OBSOLETE", "OBSOLETE", "VALID", "VALID"]);
    // GFS picks the incremental (first of day 2): its root is kept too.
    let gfs = Gfs {
        daily: 4,
        ..Gfs::default()
    };
    let mut bs2 = bs.clone();
    bs2.remove(0);
    bs2.insert(0, {
        let mut b = bs[0].clone();
        b.end_time = Some(b.end_time.expect("synthetic catalog") - Duration::days(1));
        b
    });
    let p = plan(
        &bs2,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 4, 12),
        &policy(Some(Rule::Redundancy(2)), 0, Some(gfs)),
    );
    assert_eq!(statuses(&p), ["KEEP:GFS", "KEEP:GFS", "VALID", "VALID"]);
    assert!(p.backups[0].reasons.iter().any(|r| r.contains("ancestor")));
}

#[test]
fn the_newest_done_backup_is_kept_even_by_redundancy_0() {
    let (bs, wal) = daily(utc(2026, 11, 1, 1), 3);
    let p = plan(
        &bs,
        &BTreeMap::new(),
        &wal,
        utc(2026, 11, 6, 0),
        &policy(Some(Rule::Redundancy(0)), 0, None),
    );
    assert_eq!(statuses(&p), ["OBSOLETE", "OBSOLETE", "VALID"]);
}

#[test]
fn ranker_settles_as_soon_as_older_backups_can_only_be_obsolete() {
    let (bs, _) = daily(utc(2026, 11, 1, 1), 5);
    let mut r = Ranker::new(Rule::Redundancy(2), "REDUNDANCY 2", 0, utc(2026, 11, 6, 0));
    r.push(&bs[4], None);
    assert!(!r.settled());
    r.push(&bs[3], None);
    assert!(r.settled());
    assert_eq!(r.push(&bs[2], None).status, RetentionStatus::Obsolete);
}

// ---- properties over synthetic catalogs spanning years ----

#[derive(Debug, Clone)]
struct Catalog {
    backups: Vec<BackupInfo>,
    keeps: BTreeMap<String, KeepTarget>,
    wal: Vec<String>,
    now: DateTime<Utc>,
}

fn catalog() -> impl Strategy<Value = Catalog> {
    // Up to 60 backups, 1 to 40 days apart, some FAILED, some kept; WAL: every segment.
    (
        proptest::collection::vec((1u32..40 * 24, 0u8..10, 0u8..12), 0..60),
        0u32..(5 * 24),
    )
        .prop_map(|(steps, tail)| {
            let mut t = utc(2023, 1, 1, 0);
            let mut backups = Vec::new();
            let mut keeps = BTreeMap::new();
            let mut segno = 10u64;
            for (hours, st, k) in steps {
                t += Duration::hours(i64::from(hours));
                let mut b = backup(t, segno);
                segno += 3;
                if st == 0 {
                    b.status = Status::Failed;
                }
                if st == 1 {
                    b.status = Status::WaitingForWals;
                }
                // An incremental child of the previous backup, when that one is a DONE
                // full or incremental backup.
                let parent = backups
                    .last()
                    .filter(|p: &&BackupInfo| st == 2 && p.status == Status::Done)
                    .map(|p| p.backup_id.clone());
                if let Some(parent) = parent {
                    b.parent_backup_id = Some(parent);
                }
                match (b.status, k) {
                    _ if b.parent_backup_id.is_some() => {}
                    (Status::Done, 0) => {
                        keeps.insert(b.backup_id.clone(), KeepTarget::Full);
                    }
                    (Status::Done, 1) => {
                        keeps.insert(b.backup_id.clone(), KeepTarget::Standalone);
                    }
                    _ => {}
                }
                backups.push(b);
            }
            let wal = (0..segno + 5).map(seg_name).collect();
            Catalog {
                backups,
                keeps,
                wal,
                now: t + Duration::hours(i64::from(tail)),
            }
        })
}

fn any_policy() -> impl Strategy<Value = Policy> {
    let rule = prop_oneof![
        Just(None),
        (0u32..6).prop_map(|n| Some(Rule::Redundancy(n))),
        (1u32..60).prop_map(|d| Some(Rule::Window { days: d })),
    ];
    let gfs = prop_oneof![
        Just(None),
        (0u32..8, 0u32..6, 0u32..14, 0u32..4).prop_map(|(d, w, m, y)| Some(Gfs {
            daily: d,
            weekly: w,
            monthly: m,
            yearly: y
        })),
    ];
    (rule, 0u32..4, gfs).prop_map(|(rule, min, gfs)| policy(rule, min, gfs))
}

/// Applies a plan to an in-memory copy of the catalog.
fn apply(c: &Catalog, p: &Plan) -> Catalog {
    let gone: BTreeSet<&str> = p.deleted().map(|v| v.backup_id.as_str()).collect();
    let wal_gone: BTreeSet<&String> = p.wal.delete.iter().collect();
    Catalog {
        backups: c
            .backups
            .iter()
            .filter(|b| !gone.contains(b.backup_id.as_str()))
            .cloned()
            .collect(),
        keeps: c
            .keeps
            .iter()
            .filter(|(k, _)| !gone.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        wal: c
            .wal
            .iter()
            .filter(|n| !wal_gone.contains(n))
            .cloned()
            .collect(),
        now: c.now,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plans_are_safe_and_idempotent(c in catalog(), pol in any_policy()) {
        let p = plan(&c.backups, &c.keeps, &c.wal, c.now, &pol);
        let done: Vec<&BackupInfo> = c.backups.iter().filter(|b| b.status == Status::Done).collect();
        let deleted: BTreeSet<&str> = p.deleted().map(|v| v.backup_id.as_str()).collect();
        // Never the newest DONE backup; never a kept one; never a non-DONE one.
        if let Some(newest) = done.last() {
            prop_assert!(!deleted.contains(newest.backup_id.as_str()));
        }
        for b in &c.backups {
            if deleted.contains(b.backup_id.as_str()) {
                prop_assert!(b.status == Status::Done);
                prop_assert!(!c.keeps.contains_key(&b.backup_id));
            }
        }
        // Never below minimum_redundancy.
        let remaining = done.len() - deleted.len();
        prop_assert!(remaining >= done.len().min(pol.minimum_redundancy as usize));
        // Nothing at all without a policy.
        if !pol.enforced() {
            prop_assert!(p.is_noop());
        }
        // Every kept backup's WAL survives: begin..end for all, begin onwards for those
        // kept for point-in-time recovery.
        let wal_gone: BTreeSet<&String> = p.wal.delete.iter().collect();
        for (b, v) in c.backups.iter().zip(&p.backups) {
            if v.delete || b.status == Status::Failed {
                continue;
            }
            if let Some(r) = WalRange::of_backup(b).expect("synthetic catalog") {
                for (_, names) in r.segments() {
                    prop_assert!(!wal_gone.contains(&names[0]), "{} needs {}", b.backup_id, names[0]);
                }
            }
            if matches!(v.status, RetentionStatus::Valid | RetentionStatus::PotentiallyObsolete | RetentionStatus::KeepFull) {
                let from = WalRange::from_backup(b).expect("synthetic catalog").expect("synthetic catalog");
                prop_assert!(!p.wal.delete.iter().any(|n| from.contains(n)), "{} onwards", b.backup_id);
            }
        }
        // The recovery window stays recoverable: WAL from the newest backup that ended
        // before its start onwards is all there.
        if let Some(Rule::Window { days, .. }) = pol.rule {
            let por = c.now - Duration::days(i64::from(days));
            if let Some(b) = done.iter().rev().find(|b| b.end_time.expect("synthetic catalog") < por) {
                let from = WalRange::from_backup(b).expect("synthetic catalog").expect("synthetic catalog");
                prop_assert!(!p.wal.delete.iter().any(|n| from.contains(n)));
            }
        }
        // Applied twice changes nothing.
        let after = apply(&c, &p);
        let again = plan(&after.backups, &after.keeps, &after.wal, c.now, &pol);
        prop_assert!(again.is_noop(), "second plan: {:?}", again.deleted().map(|v| &v.backup_id).collect::<Vec<_>>());
    }

    #[test]
    fn gfs_keeps_exactly_the_calendar_picks(c in catalog(), d in 0u32..10, w in 0u32..8, m in 0u32..14, y in 0u32..4) {
        // Full backups only: the picks alone decide (ancestors are checked elsewhere).
        let mut c = c;
        for b in &mut c.backups {
            b.parent_backup_id = None;
        }
        let gfs = Gfs { daily: d, weekly: w, monthly: m, yearly: y };
        let pol = policy(Some(Rule::Redundancy(1)), 0, Some(gfs));
        let p = plan(&c.backups, &BTreeMap::new(), &c.wal, c.now, &pol);
        // Recompute the picks independently: for each wanted period, the DONE backup with
        // the smallest end time in it.
        let today = c.now.date_naive();
        let mut wanted: Vec<Period> = Vec::new();
        for k in 0..d { wanted.push(Period::Day(today - chrono::Days::new(k.into()))); }
        for k in 0..w {
            let day = today - chrono::Days::new(7 * u64::from(k));
            wanted.push(Period::Week(day.iso_week().year(), day.iso_week().week()));
        }
        for k in 0..m as i32 {
            let idx = today.year() * 12 + today.month0() as i32 - k;
            wanted.push(Period::Month(idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1));
        }
        for k in 0..y as i32 { wanted.push(Period::Year(today.year() - k)); }
        let mut picks = BTreeSet::new();
        for per in &wanted {
            let first = c.backups.iter()
                .filter(|b| b.status == Status::Done)
                .filter(|b| periods_of(b.end_time.expect("synthetic catalog").with_timezone(&Utc).date_naive()).contains(per))
                .min_by_key(|b| b.end_time.expect("synthetic catalog"));
            if let Some(b) = first { picks.insert(b.backup_id.clone()); }
        }
        let newest = c.backups.iter().rev().find(|b| b.status == Status::Done).map(|b| b.backup_id.clone());
        for v in &p.backups {
            if v.backup_status != Status::Done { continue; }
            let want_kept = picks.contains(&v.backup_id) || Some(&v.backup_id) == newest.as_ref();
            prop_assert_eq!(!v.delete, want_kept, "{} {:?}", v.backup_id, v.reasons);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// What `show-backup` reads lazily is what the whole plan says.
    #[test]
    fn status_of_one_backup_matches_the_plan(c in catalog(), pol in any_policy()) {
        use crate::{CatalogStore, MemoryCatalog};
        let store = MemoryCatalog::new("pg");
        for b in &c.backups {
            store.write_info(b).expect("synthetic catalog");
        }
        for (id, k) in &c.keeps {
            store.set_keep(id, Some(*k)).expect("synthetic catalog");
        }
        let p = plan(&c.backups, &c.keeps, &[], c.now, &pol);
        for b in &c.backups {
            let lazy = status_of(&store, &pol, b, c.now).expect("synthetic catalog");
            prop_assert_eq!(lazy, p.verdict(&b.backup_id).expect("synthetic catalog").status, "{}", b.backup_id);
        }
    }
}
