//! Retention and keep: the policy built from a server's settings, the plan (the catalog's
//! pure planner), and applying it — what `cron` and `barkeep retention` run, and what
//! `list-backups`/`show-backup` report.

use std::collections::BTreeMap;

use barkeep_catalog::retention::{self, Gfs, Plan, Policy, RetentionStatus, Rule};
use barkeep_catalog::{BackupInfo, CatalogOps, CatalogStore, KeepTarget, LocalCatalog, Status};
use barkeep_config::RetentionPolicy;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Server;
use crate::error::{EngineError, Result};

/// What `retention` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionDone {
    /// Server.
    pub server: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The plan: every backup's status and why, the WAL kept and deleted.
    pub plan: Plan,
    /// Backups removed.
    pub deleted: Vec<String>,
    /// WAL files removed.
    pub wal_removed: usize,
    /// `retention_gfs` as configured, with its zone (`7 DAILY, 12 MONTHLY in UTC`).
    pub gfs: Option<String>,
}

/// What `keep` did or found.
#[derive(Debug, Clone, Serialize)]
pub struct KeepDone {
    /// Server.
    pub server: String,
    /// Backup id.
    pub backup_id: String,
    /// The annotation now (`None`: no keep).
    pub target: Option<KeepTarget>,
}

/// What `keep` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAction {
    /// `--target full|standalone`.
    Set(KeepTarget),
    /// `--release`.
    Release,
    /// `--status`.
    Status,
}

impl Server {
    /// The retention policy of this server, from `retention_policy`, `minimum_redundancy`,
    /// `retention_gfs` and `retention_gfs_timezone`.
    pub fn retention_policy(&self) -> Policy {
        let t = self.typed();
        let rule = t.retention_policy.map(|r| match r {
            RetentionPolicy::Redundancy(n) => Rule::Redundancy(n),
            RetentionPolicy::RecoveryWindow { n, unit } => Rule::Window {
                days: n.saturating_mul(unit.days() as u32),
            },
        });
        Policy {
            rule,
            rule_text: t.retention_policy.map(|r| r.to_string()),
            minimum_redundancy: u32::try_from(t.minimum_redundancy).unwrap_or(u32::MAX),
            gfs: t.retention_gfs.map(|g| Gfs {
                daily: g.daily,
                weekly: g.weekly,
                monthly: g.monthly,
                yearly: g.yearly,
            }),
            timezone: t.retention_gfs_timezone,
        }
    }

    /// The retention plan of the catalog as it is now.
    pub(crate) fn plan_for(&self, cat: &LocalCatalog, now: DateTime<Utc>) -> Result<Plan> {
        let policy = self.retention_policy();
        let mut backups: Vec<BackupInfo> = Vec::new();
        let mut keeps = BTreeMap::new();
        for id in cat.listing()?.live {
            if let Some(b) = cat.read_info(&id)? {
                if b.status == Status::Empty {
                    continue;
                }
                if policy.enforced()
                    && let Some(k) = cat.keep(&id)?
                {
                    keeps.insert(id, k);
                }
                backups.push(b);
            }
        }
        let wal: Vec<String> = if policy.enforced() {
            cat.wal_index()?.into_iter().map(|e| e.name).collect()
        } else {
            Vec::new()
        };
        Ok(retention::plan(&backups, &keeps, &wal, now, &policy))
    }

    /// The retention status of one backup, as `show-backup` reports it.
    pub(crate) fn retention_status_of(
        &self,
        cat: &LocalCatalog,
        b: &BackupInfo,
    ) -> Result<RetentionStatus> {
        Ok(retention::status_of(
            cat,
            &self.retention_policy(),
            b,
            Utc::now(),
        )?)
    }

    /// `retention SERVER [--dry-run]`: plans retention and, unless `dry_run`, applies it
    /// — OBSOLETE backups removed (newest first), then the WAL no kept backup needs.
    /// Holds the server's backup lock: refused while a backup or a delete runs.
    pub fn retention(&self, dry_run: bool) -> Result<RetentionDone> {
        self.usable("retention")?;
        let cat = self.catalog()?;
        let name = self.name().to_string();
        let _lock = if dry_run {
            None
        } else {
            Some(cat.lock("backup").map_err(|e| {
                EngineError::from(e).context(format!(
                    "retention of server `{name}` waits: a backup or a delete is running"
                ))
            })?)
        };
        if !dry_run {
            cat.recover_interrupted()?;
        }
        let plan = self.plan_for(&cat, Utc::now())?;
        let mut done = RetentionDone {
            server: name.clone(),
            dry_run,
            plan,
            deleted: Vec::new(),
            wal_removed: 0,
            gfs: self
                .typed()
                .retention_gfs
                .map(|g| format!("{g} in {}", self.typed().retention_gfs_timezone.name())),
        };
        if dry_run || !done.plan.enforced {
            return Ok(done);
        }
        let ids: Vec<String> = done.plan.deleted().map(|v| v.backup_id.clone()).collect();
        'each: for id in ids {
            self.events.step(
                &name,
                format!("Enforcing retention policy: removing backup {id} for server {name}"),
            );
            let Some(b) = cat.read_info(&id)? else {
                continue;
            };
            // What still depends on it (a FAILED incremental child is not ranked, so not
            // planned) goes first: no backup is left with a missing parent. A usable
            // descendant the plan keeps keeps its ancestors too.
            let tree = cat.descendants(&b)?;
            if let Some(kept) = tree
                .iter()
                .find(|d| d.is_usable() && !done.plan.deleted().any(|v| v.backup_id == d.backup_id))
            {
                self.events.warning(
                    &name,
                    format!(
                        "retention keeps backup {id} of server {name}: its incremental backup {} is kept",
                        kept.backup_id
                    ),
                );
                continue 'each;
            }
            for d in tree {
                self.remove_backup(&cat, &d, false).map_err(|e| {
                    e.context(format!(
                        "removing backup {} (incremental, of {id}) of server `{name}`",
                        d.backup_id
                    ))
                })?;
            }
            self.remove_backup(&cat, &b, false)
                .map_err(|e| e.context(format!("removing backup {id} of server `{name}`")))?;
            done.deleted.push(id);
        }
        if !done.plan.wal.delete.is_empty() {
            done.wal_removed = self.remove_wal_files(&cat, &done.plan.wal.delete)?;
            self.events.step(
                &name,
                format!(
                    "Enforcing retention policy: removed {} WAL files of server {name} no kept backup needs",
                    done.wal_removed
                ),
            );
        }
        Ok(done)
    }

    /// `keep SERVER ID --target full|standalone | --release | --status`, stored as Barman
    /// stores it (`meta/<id>-keep`). Only a DONE backup can be kept, and only a full one
    /// (an incremental backup's chain is kept through its root).
    pub fn keep(&self, id: &str, action: KeepAction) -> Result<KeepDone> {
        let (cat, _, b) = self.resolve(id)?;
        let name = self.name().to_string();
        let target = match action {
            KeepAction::Status => cat.keep(&b.backup_id)?,
            KeepAction::Release => {
                cat.set_keep(&b.backup_id, None)?;
                None
            }
            KeepAction::Set(t) => {
                if b.status != Status::Done {
                    return Err(EngineError::Refused(format!(
                        "Cannot add keep to backup {} because it has status {}. Only backups with status DONE can be kept.",
                        b.backup_id,
                        b.status.as_str()
                    )));
                }
                if b.parent_backup_id.is_some() {
                    return Err(EngineError::Refused(format!(
                        "Unable to execute the keep command on backup {}: is an incremental backup.\nOnly full backups are eligible for the use of the keep command.",
                        b.backup_id
                    )));
                }
                cat.set_keep(&b.backup_id, Some(t))?;
                tracing::info!(server = %name, "keeping backup {} ({})", b.backup_id, t.as_str());
                Some(t)
            }
        };
        Ok(KeepDone {
            server: name,
            backup_id: b.backup_id,
            target,
        })
    }
}
