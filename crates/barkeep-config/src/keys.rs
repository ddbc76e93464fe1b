//! The table of every configuration key barkeep knows: where it may appear, its grammar
//! and its default — Barman's documented keys (barman-reference.md §2) first.
//!
//! Defaults use `%(key)s` references exactly as Barman's `DEFAULTS` do, and are expanded
//! with the server's own effective values, so `backup_directory` set in a server section
//! moves `wals_directory` and friends with it.

/// Where a key may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only in the global `[barman]`/`[barkeep]` section.
    Global,
    /// Only in a server section.
    Server,
    /// In a server section, or in the global section as a default for every server.
    Both,
}

/// The grammar of a key's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Barman boolean.
    Bool,
    /// Integer in an inclusive range.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// Free text.
    Str,
    /// A libpq connection string (its password is never displayed).
    Conninfo,
    /// A path.
    Path,
    /// A path that must be absolute.
    AbsPath,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A comma-separated set of these words; the pairs exclude each other.
    List(
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    ),
    /// A retention policy.
    Retention,
    /// GFS counts: `N DAILY, N WEEKLY, N MONTHLY, N YEARLY` (barkeep).
    Gfs,
    /// An IANA time zone name (`Europe/Madrid`, `UTC`).
    TimeZone,
    /// A cron expression: 5 fields, or 6 with seconds first; `@hourly`, `@daily`, `@weekly`.
    Schedule,
    /// A delay: `auto` (5 % of the schedule's interval, at most 5 minutes), `N%` of the
    /// interval (written `N%%`: the INI dialect escapes `%`), or `N`, `Ns`, `Nm`.
    Jitter,
    /// `N HOURS|DAYS|WEEKS|MONTHS`.
    Interval,
    /// `N[k|Ki|M|Mi|G|Gi|T|Ti]`.
    Size,
    /// `low|medium|high|<int>`.
    Level,
    /// `0x…` bytes.
    Magic,
    /// A replication slot name.
    SlotName,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as written in the file (lower case).
    pub name: &'static str,
    /// Which sections accept it.
    pub scope: Scope,
    /// Its grammar.
    pub kind: Kind,
    /// Barman's default, possibly with `%(key)s` references.
    pub default: Option<&'static str>,
    /// Whether a model section may set it (models forbid paths and hooks).
    pub model: bool,
    /// Set when the key is deprecated: what to use instead.
    pub deprecated: Option<&'static str>,
}

const fn k(name: &'static str, scope: Scope, kind: Kind, default: Option<&'static str>) -> KeySpec {
    KeySpec {
        name,
        scope,
        kind,
        default,
        model: !matches!(scope, Global),
        deprecated: None,
    }
}

const fn no_model(mut spec: KeySpec) -> KeySpec {
    spec.model = false;
    spec
}

const fn deprecated(mut spec: KeySpec, instead: &'static str) -> KeySpec {
    spec.deprecated = Some(instead);
    spec
}

use Kind::*;
use Scope::{Both, Global, Server};

const INT0: Kind = Int {
    min: 0,
    max: i64::MAX,
};
const INT1: Kind = Int {
    min: 1,
    max: i64::MAX,
};

/// The six per-server directories that must not be shared between servers (Barman's
/// path-conflict check), plus `xlogdb_directory` which barkeep also checks.
pub const DIRECTORY_KEYS: [&str; 7] = [
    "backup_directory",
    "basebackups_directory",
    "errors_directory",
    "incoming_wals_directory",
    "streaming_wals_directory",
    "wals_directory",
    "xlogdb_directory",
];

/// Names that cannot be server names.
pub const RESERVED_SERVER_NAMES: [&str; 3] = ["all", "barman", "barkeep"];

/// The hook keys: `{pre,post}_{backup,archive,delete,wal_delete,recovery}_[retry_]script`.
pub const HOOK_KEYS: [&str; 20] = [
    "pre_backup_script",
    "post_backup_script",
    "pre_backup_retry_script",
    "post_backup_retry_script",
    "pre_archive_script",
    "post_archive_script",
    "pre_archive_retry_script",
    "post_archive_retry_script",
    "pre_delete_script",
    "post_delete_script",
    "pre_delete_retry_script",
    "post_delete_retry_script",
    "pre_wal_delete_script",
    "post_wal_delete_script",
    "pre_wal_delete_retry_script",
    "post_wal_delete_retry_script",
    "pre_recovery_script",
    "post_recovery_script",
    "pre_recovery_retry_script",
    "post_recovery_retry_script",
];

/// Keys of the global section only.
pub const GLOBAL_KEYS: &[KeySpec] = &[
    k("barman_home", Global, Path, Some("/var/lib/barman")),
    k("barman_user", Global, Str, Some("barman")),
    k(
        "barman_lock_directory",
        Global,
        Path,
        Some("%(barman_home)s"),
    ),
    k("max_concurrent_backups", Global, INT1, Some("2")),
    // barkeep's daemon: Prometheus metrics and health over HTTP.
    k("metrics_address", Global, Str, None),
    k("metrics_token_file", Global, AbsPath, None),
    k("lock_directory_cleanup", Global, Bool, Some("true")),
    k(
        "config_changes_queue",
        Global,
        Path,
        Some("%(barman_home)s/cfg_changes.queue"),
    ),
    k("configuration_files_directory", Global, Path, None),
    // barkeep: the group that may read the catalog (files 0640, directories 2750) and
    // deliver WAL into `incoming/` (2770). Unset: files 0600, directories 0700.
    k("catalog_group", Global, Str, None),
    k("log_file", Global, Path, None),
    k(
        "log_level",
        Global,
        Choice(&["notset", "debug", "info", "warning", "error", "critical"]),
        Some("info"),
    ),
    k(
        "log_format",
        Global,
        Str,
        Some("%%(asctime)s [%%(process)s] %%(name)s %%(levelname)s: %%(message)s"),
    ),
];

/// Keys of server sections (some also accepted globally, see [`Scope`]).
pub const SERVER_KEYS: &[KeySpec] = &[
    k("active", Server, Bool, Some("true")),
    k("description", Server, Str, None),
    k("cluster", Server, Str, Some("%(name)s")),
    k("model", Server, Bool, None),
    k("conninfo", Server, Conninfo, None),
    k("streaming_conninfo", Server, Conninfo, Some("%(conninfo)s")),
    k("wal_conninfo", Server, Conninfo, None),
    k("wal_streaming_conninfo", Server, Conninfo, None),
    k("primary_conninfo", Server, Conninfo, None),
    k("primary_checkpoint_timeout", Server, INT0, Some("0")),
    k("ssh_command", Server, Str, None),
    k(
        "backup_method",
        Both,
        Choice(&["rsync", "postgres", "local-rsync", "snapshot"]),
        Some("rsync"),
    ),
    k(
        "backup_options",
        Both,
        List(
            &[
                "concurrent_backup",
                "exclusive_backup",
                "external_configuration",
            ],
            &[("concurrent_backup", "exclusive_backup")],
        ),
        Some(""),
    ),
    k("archiver", Both, Bool, Some("off")),
    k("archiver_batch_size", Both, INT0, Some("0")),
    k("streaming_archiver", Both, Bool, Some("off")),
    k("streaming_archiver_batch_size", Both, INT0, Some("0")),
    k(
        "streaming_archiver_name",
        Both,
        Str,
        Some("barman_receive_wal"),
    ),
    k(
        "streaming_backup_name",
        Both,
        Str,
        Some("barman_streaming_backup"),
    ),
    k("slot_name", Both, SlotName, None),
    k(
        "create_slot",
        Both,
        Choice(&["auto", "manual"]),
        Some("manual"),
    ),
    k(
        "compression",
        Both,
        Choice(&[
            "gzip", "bzip2", "pigz", "xz", "zstd", "lz4", "snappy", "pygzip", "pybzip2", "custom",
            "none",
        ]),
        None,
    ),
    k("compression_level", Both, Level, Some("medium")),
    deprecated(
        k("custom_compression_filter", Both, Str, None),
        "a built-in `compression` (zstd, lz4, gzip, bzip2, xz)",
    ),
    deprecated(
        k("custom_decompression_filter", Both, Str, None),
        "a built-in `compression` (zstd, lz4, gzip, bzip2, xz)",
    ),
    deprecated(
        k("custom_compression_magic", Both, Magic, None),
        "a built-in `compression` (zstd, lz4, gzip, bzip2, xz)",
    ),
    k(
        "backup_compression",
        Both,
        Choice(&["gzip", "lz4", "zstd", "none"]),
        None,
    ),
    k(
        "backup_compression_format",
        Both,
        Choice(&["plain", "tar"]),
        Some("tar"),
    ),
    k(
        "backup_compression_level",
        Both,
        Int {
            min: i64::MIN,
            max: i64::MAX,
        },
        None,
    ),
    k(
        "backup_compression_location",
        Both,
        Choice(&["client", "server"]),
        None,
    ),
    k("backup_compression_workers", Both, INT0, Some("0")),
    k("encryption", Both, Choice(&["none", "gpg"]), Some("none")),
    k("encryption_key_id", Both, Str, None),
    k("encryption_passphrase_command", Both, Str, None),
    k(
        "reuse_backup",
        Both,
        Choice(&["off", "copy", "link"]),
        // barkeep's default: plain backups hard-link unchanged files to the previous one
        // (Barman's default `off` applies to rsync backups only; streamed backups there
        // cannot deduplicate at all).
        Some("link"),
    ),
    k("parallel_jobs", Both, INT1, Some("1")),
    k("parallel_jobs_start_batch_period", Both, INT1, Some("1")),
    k("parallel_jobs_start_batch_size", Both, INT1, Some("10")),
    k("bandwidth_limit", Both, INT0, Some("0")),
    k("tablespace_bandwidth_limit", Both, Str, None),
    k("network_compression", Both, Bool, Some("false")),
    k("immediate_checkpoint", Both, Bool, Some("false")),
    // Barman's BARMAN_KEYS misspells this key, so a global value is not inherited there;
    // barkeep accepts it in the global section as documented.
    k("keepalive_interval", Both, INT0, Some("60")),
    k("basebackup_retry_times", Both, INT0, Some("0")),
    k("basebackup_retry_sleep", Both, INT0, Some("30")),
    k("check_timeout", Both, INT0, Some("30")),
    k("autogenerate_manifest", Both, Bool, Some("false")),
    k("max_incoming_wals_queue", Both, INT0, None),
    k("minimum_redundancy", Both, INT0, Some("0")),
    k("retention_policy", Both, Retention, None),
    // barkeep: grandfather-father-son retention beside `retention_policy` (Barman ignores
    // both keys, so a shared configuration stays valid for it).
    k("retention_gfs", Both, Gfs, None),
    k("retention_gfs_timezone", Both, TimeZone, Some("UTC")),
    // barkeep's daemon: when jobs run.
    k("backup_schedule", Both, Schedule, None),
    k("schedule_timezone", Both, TimeZone, None),
    k("backup_schedule_jitter", Both, Jitter, Some("auto")),
    k("retention_schedule", Both, Schedule, Some("@hourly")),
    k("check_schedule", Both, Schedule, Some("* * * * *")),
    // barkeep: PostgreSQL 17+ incremental backups by default.
    k(
        "backup_incremental",
        Both,
        Choice(&["off", "latest", "last-full"]),
        Some("off"),
    ),
    k("backup_incremental_max_chain", Both, INT1, Some("6")),
    // barkeep: restore drills.
    k("drill_schedule", Both, Schedule, None),
    k("drill_sql", Both, Str, None),
    no_model(k(
        "drill_directory",
        Both,
        Path,
        Some("%(barman_home)s/drills"),
    )),
    k(
        "retention_policy_mode",
        Both,
        Choice(&["auto"]),
        Some("auto"),
    ),
    k(
        "wal_retention_policy",
        Both,
        Choice(&["main"]),
        Some("main"),
    ),
    k("last_backup_maximum_age", Both, Interval, None),
    k("last_wal_maximum_age", Both, Interval, None),
    k("last_backup_minimum_size", Both, Size, None),
    k(
        "recovery_options",
        Both,
        List(&["get-wal", "delta-restore"], &[]),
        Some(""),
    ),
    k("staging_path", Both, AbsPath, None),
    k(
        "staging_location",
        Both,
        Choice(&["local", "remote"]),
        Some("local"),
    ),
    deprecated(
        k("recovery_staging_path", Both, AbsPath, None),
        "`staging_path` with `staging_location = remote`",
    ),
    deprecated(
        k("local_staging_path", Both, AbsPath, None),
        "`staging_path` with `staging_location = local`",
    ),
    k(
        "combine_mode",
        Both,
        Choice(&["copy", "link", "clone", "copy-file-range"]),
        Some("copy"),
    ),
    k("path_prefix", Both, Str, None),
    // barkeep: seconds a hook script may run before it is killed (0 = no limit, as in
    // Barman); a retry script killed this way is retried.
    k("hook_timeout", Both, INT0, Some("0")),
    k("primary_ssh_command", Both, Str, None),
    k("forward_config_path", Both, Bool, Some("false")),
    k("worm_mode", Both, Bool, Some("off")),
    no_model(k(
        "backup_directory",
        Server,
        Path,
        Some("%(barman_home)s/%(name)s"),
    )),
    no_model(k(
        "basebackups_directory",
        Server,
        Path,
        Some("%(backup_directory)s/base"),
    )),
    no_model(k(
        "wals_directory",
        Server,
        Path,
        Some("%(backup_directory)s/wals"),
    )),
    no_model(k(
        "incoming_wals_directory",
        Server,
        Path,
        Some("%(backup_directory)s/incoming"),
    )),
    no_model(k(
        "streaming_wals_directory",
        Server,
        Path,
        Some("%(backup_directory)s/streaming"),
    )),
    no_model(k(
        "errors_directory",
        Server,
        Path,
        Some("%(backup_directory)s/errors"),
    )),
    no_model(k(
        "xlogdb_directory",
        Both,
        Path,
        Some("%(wals_directory)s"),
    )),
    k(
        "snapshot_provider",
        Both,
        Choice(&["gcp", "azure", "aws"]),
        None,
    ),
    k("snapshot_instance", Server, Str, None),
    k("snapshot_disks", Server, Str, None),
    k("gcp_project", Both, Str, None),
    k("gcp_zone", Server, Str, None),
    deprecated(k("snapshot_gcp_project", Both, Str, None), "`gcp_project`"),
    deprecated(k("snapshot_zone", Server, Str, None), "`gcp_zone`"),
    k("azure_subscription_id", Both, Str, None),
    k("azure_resource_group", Both, Str, None),
    k(
        "azure_credential",
        Both,
        Choice(&["azure-cli", "managed-identity", "default"]),
        None,
    ),
    k("aws_region", Both, Str, None),
    k("aws_profile", Both, Str, None),
    k("aws_await_snapshots_timeout", Both, INT0, Some("3600")),
    k(
        "aws_snapshot_lock_mode",
        Both,
        Choice(&["compliance", "governance"]),
        None,
    ),
    k(
        "aws_snapshot_lock_duration",
        Both,
        Int { min: 1, max: 36500 },
        None,
    ),
    k(
        "aws_snapshot_lock_cool_off_period",
        Both,
        Int { min: 1, max: 72 },
        None,
    ),
    k("aws_snapshot_lock_expiration_date", Both, Str, None),
    // Barman 3.18+ (object storage as a server's catalog).
    k("aws_check_object_lock", Both, Bool, None),
    k("aws_encryption", Both, Str, None),
    k("aws_read_timeout", Both, INT0, None),
    k("cloud_delete_batch_size", Both, INT0, None),
    k("cloud_staging_directory", Both, Path, None),
    k("cloud_staging_max_size", Both, Size, None),
    k("cloud_upload_max_archive_size", Server, Size, None),
    k("cloud_upload_min_chunk_size", Server, Size, None),
    k("cloud_wal_archive_parallel", Both, INT0, None),
    k("cloud_wal_restore_parallel", Both, INT0, None),
    k("warehousepg_dbid", Both, INT0, None),
];

/// Looks a key up in both tables.
pub fn lookup(name: &str) -> Option<&'static KeySpec> {
    GLOBAL_KEYS
        .iter()
        .chain(SERVER_KEYS.iter())
        .find(|s| s.name == name)
        .or_else(|| hook_spec(name))
}

/// Hook keys are free text, accepted globally and per server, never in models.
fn hook_spec(name: &str) -> Option<&'static KeySpec> {
    const HOOK: KeySpec = no_model(k("hook", Both, Str, None));
    static HOOKS: [KeySpec; 20] = {
        let mut out = [HOOK; 20];
        let mut i = 0;
        while i < 20 {
            out[i].name = HOOK_KEYS[i];
            i += 1;
        }
        out
    };
    HOOKS.iter().find(|s| s.name == name)
}

/// Every key a server section may hold, in display order (sorted by name).
pub fn server_keys() -> Vec<&'static KeySpec> {
    let mut keys: Vec<&'static KeySpec> = SERVER_KEYS
        .iter()
        .chain(HOOK_KEYS.iter().filter_map(|h| hook_spec(h)))
        .collect();
    keys.sort_by_key(|s| s.name);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut names: Vec<&str> = GLOBAL_KEYS
            .iter()
            .chain(SERVER_KEYS.iter())
            .map(|s| s.name)
            .chain(HOOK_KEYS)
            .collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total, "duplicate key in the tables");
        assert!(names.iter().all(|n| n.chars().all(|c| !c.is_uppercase())));
    }

    #[test]
    fn hooks_are_global_and_server_but_not_model() {
        let h = lookup("pre_backup_retry_script").expect("hook key");
        assert!(matches!(h.scope, Both));
        assert!(!h.model);
        assert_eq!(
            server_keys()
                .iter()
                .filter(|s| s.name.ends_with("_script"))
                .count(),
            20
        );
    }
}
