//! What barkeep does with each key: it **acts** on it; it **refuses** it (or some of its
//! values) because ignoring it would silently change the outcome — an encrypted archive
//! written in clear, an rsync backup that quietly becomes a streamed one, a hook that
//! never runs; or it accepts it with one warning because it has **no effect** on what
//! barkeep does. Every key of the table is classified here; a test walks the table and
//! fails on a key that is not.
//!
//! A refusal disables the server it applies to, with a reason that names the file, the
//! line, the key and what barkeep supports today: the other servers keep working, and
//! every command on that server says why it will not run.

use crate::keys::HOOK_KEYS;

/// How barkeep treats a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// barkeep does what the key says.
    Acts,
    /// barkeep does what the key says for these values; any other value is refused, with
    /// what barkeep supports instead.
    Values(&'static [&'static str], &'static str),
    /// Any value written in a file is refused: what barkeep supports instead.
    Refused(&'static str),
    /// Accepted, changes nothing barkeep does: one warning, saying why.
    NoEffect(&'static str),
}

const CLOUD: &str =
    "only matters for an object-storage catalog, which this version of barkeep does not have";
const SNAPSHOT: &str = "only used by `backup_method = snapshot`, which barkeep refuses";
const RSYNC: &str =
    "only used by rsync backups; barkeep streams backups over the replication protocol";
const PASSIVE: &str = "passive nodes (geographic redundancy) are not supported by this version of barkeep; remove `primary_ssh_command`";

/// How barkeep treats `key`; `None` for a key the table does not know.
pub fn support(key: &str) -> Option<Support> {
    use Support::*;
    if HOOK_KEYS.contains(&key) {
        return Some(Acts);
    }
    Some(match key {
        // Global.
        "barman_home"
        | "barman_lock_directory"
        | "configuration_files_directory"
        | "hook_timeout"
        | "catalog_group"
        | "log_file"
        | "log_level" => Acts,
        "barman_user" => Acts,
        "lock_directory_cleanup" => Acts,
        "config_changes_queue" => NoEffect("barkeep has no `config-update` queue"),
        "log_format" => NoEffect(
            "barkeep formats its own log lines (tracing); only `log_format = json` changes them (one JSON object per line)",
        ),
        // Servers: what every command uses.
        "active"
        | "description"
        | "cluster"
        | "model"
        | "conninfo"
        | "streaming_conninfo"
        | "primary_conninfo"
        | "streaming_archiver"
        | "streaming_archiver_name"
        | "streaming_backup_name"
        | "slot_name"
        | "create_slot"
        | "compression_level"
        | "backup_compression"
        | "backup_compression_format"
        | "backup_compression_level"
        | "backup_compression_location"
        | "backup_compression_workers"
        | "reuse_backup"
        | "backup_incremental"
        | "backup_incremental_max_chain"
        | "parallel_jobs"
        | "bandwidth_limit"
        | "immediate_checkpoint"
        | "basebackup_retry_times"
        | "basebackup_retry_sleep"
        | "minimum_redundancy"
        | "path_prefix"
        | "backup_directory"
        | "basebackups_directory"
        | "wals_directory"
        | "incoming_wals_directory"
        | "streaming_wals_directory"
        | "errors_directory"
        | "xlogdb_directory"
        | "archiver" => Acts,
        "backup_method" => Values(
            &["postgres"],
            "barkeep takes backups over the replication protocol only (`backup_method = postgres`); rsync, local-rsync and snapshot backups are not supported",
        ),
        "compression" => Values(
            &[
                "gzip", "bzip2", "pigz", "xz", "zstd", "lz4", "snappy", "pygzip", "pybzip2", "none",
            ],
            "barkeep compresses WAL with gzip, bzip2, xz, zstd, lz4 or snappy; `custom` filters are not supported",
        ),
        "encryption" => Values(
            &["none"],
            "barkeep does not encrypt yet: with `encryption = gpg` it would write WAL and backups in clear, so it refuses the server",
        ),
        "encryption_key_id" | "encryption_passphrase_command" => {
            NoEffect("only used with `encryption = gpg`, which barkeep refuses")
        }
        "recovery_options" => Values(
            &["get-wal", ""],
            "barkeep restores `get-wal` as Barman does; `delta-restore` (rsync) is not supported: restore into an empty directory",
        ),
        "retention_policy"
        | "retention_policy_mode"
        | "wal_retention_policy"
        | "retention_gfs"
        | "retention_gfs_timezone" => Acts,
        "backup_schedule"
        | "schedule_timezone"
        | "backup_schedule_jitter"
        | "retention_schedule"
        | "check_schedule"
        | "max_concurrent_backups"
        | "metrics_address"
        | "metrics_token_file"
        | "drill_schedule"
        | "drill_sql"
        | "drill_directory" => Acts,
        "last_backup_maximum_age"
        | "last_wal_maximum_age"
        | "last_backup_minimum_size"
        | "max_incoming_wals_queue"
        | "check_timeout" => Acts,
        "wal_conninfo" | "wal_streaming_conninfo" => Refused(
            "barkeep streams WAL over `streaming_conninfo` and switches WAL over `conninfo`; separate WAL connections are not supported yet: remove the key or use those",
        ),
        "primary_checkpoint_timeout" => NoEffect(
            "barkeep switches WAL on the primary (`primary_conninfo`) at the end of a standby backup without forcing a checkpoint",
        ),
        "primary_ssh_command" | "forward_config_path" => Refused(PASSIVE),
        "worm_mode" => Values(
            &["off", "false", "0", "no", "f"],
            "barkeep removes WAL and backups on `delete` and rewrites xlog.db: WORM storage is not supported",
        ),
        "backup_options" => NoEffect(
            "barkeep's streamed backups are always concurrent and save configuration files kept outside PGDATA",
        ),
        "archiver_batch_size" | "streaming_archiver_batch_size" => {
            NoEffect("barkeep archives every waiting file in one pass")
        }
        "custom_compression_filter"
        | "custom_decompression_filter"
        | "custom_compression_magic" => {
            NoEffect("only used by `compression = custom`, which barkeep refuses")
        }
        "ssh_command"
        | "tablespace_bandwidth_limit"
        | "network_compression"
        | "keepalive_interval"
        | "autogenerate_manifest"
        | "parallel_jobs_start_batch_period"
        | "parallel_jobs_start_batch_size" => NoEffect(RSYNC),
        "staging_path"
        | "staging_location"
        | "recovery_staging_path"
        | "local_staging_path"
        | "combine_mode" => NoEffect(
            "barkeep restores compressed backups straight into the destination (no staging area needed)",
        ),
        "snapshot_provider"
        | "snapshot_instance"
        | "snapshot_disks"
        | "gcp_project"
        | "gcp_zone"
        | "snapshot_gcp_project"
        | "snapshot_zone"
        | "azure_subscription_id"
        | "azure_resource_group"
        | "azure_credential"
        | "aws_region"
        | "aws_profile"
        | "aws_await_snapshots_timeout"
        | "aws_snapshot_lock_mode"
        | "aws_snapshot_lock_duration"
        | "aws_snapshot_lock_cool_off_period"
        | "aws_snapshot_lock_expiration_date" => NoEffect(SNAPSHOT),
        "aws_check_object_lock"
        | "aws_encryption"
        | "aws_read_timeout"
        | "cloud_delete_batch_size"
        | "cloud_staging_directory"
        | "cloud_staging_max_size"
        | "cloud_upload_max_archive_size"
        | "cloud_upload_min_chunk_size"
        | "cloud_wal_archive_parallel"
        | "cloud_wal_restore_parallel" => NoEffect(CLOUD),
        "warehousepg_dbid" => NoEffect("WarehousePG clusters are not supported by barkeep"),
        _ => return None,
    })
}

/// What a written value of `key` means for barkeep: `Err(why)` when it is refused,
/// `Ok(Some(why))` when it has no effect (warn once), `Ok(None)` when barkeep acts on it.
pub fn verdict(key: &str, value: &str) -> Result<Option<&'static str>, String> {
    if key == "log_format" && value.trim().eq_ignore_ascii_case("json") {
        return Ok(None);
    }
    if HOOK_KEYS.contains(&key) {
        return match hook_line_problem(value) {
            Some(why) => Err(why),
            None => Ok(None),
        };
    }
    match support(key) {
        None | Some(Support::Acts) => Ok(None),
        Some(Support::NoEffect(why)) => Ok(Some(why)),
        Some(Support::Refused(why)) => Err(why.to_string()),
        Some(Support::Values(ok, why)) => {
            let v = value.trim().to_ascii_lowercase();
            // A list value (`recovery_options = get-wal, delta-restore`): every item.
            if v.split(',').map(str::trim).all(|item| ok.contains(&item)) {
                Ok(None)
            } else {
                Err(why.to_string())
            }
        }
    }
}

/// Why a hook line cannot be run as Barman would run it, if it cannot. barkeep runs a
/// hook without a shell — the line split into words with the shell's quoting rules, the
/// first word the program — so a line that needs a shell (operators, redirections,
/// variables, globs, `~`, comments, `VAR=value` prefixes) would silently do something
/// else: it is refused, with what to do instead.
pub fn hook_line_problem(line: &str) -> Option<String> {
    const FIX: &str = "barkeep runs hook scripts without a shell (the line is split into words, the first is the program); put the commands in a script and name the script here";
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word_start = true;
    let mut first_word = String::new();
    let mut in_first = true;
    for c in line.chars() {
        if escaped {
            escaped = false;
            word_start = false;
            continue;
        }
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                }
                continue;
            }
            Some('"') => {
                match c {
                    '"' => quote = None,
                    '\\' => escaped = true,
                    '$' | '`' => {
                        return Some(format!(
                            "`{c}` inside double quotes is expanded by a shell; {FIX}"
                        ));
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        match c {
            '\\' => escaped = true,
            '\'' | '"' => quote = Some(c),
            ' ' | '\t' => {
                word_start = true;
                if !first_word.is_empty() {
                    in_first = false;
                }
                continue;
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '\n' => {
                return Some(format!("`{c}` needs a shell; {FIX}"));
            }
            '~' if word_start => return Some(format!("`~` needs a shell; {FIX}")),
            '#' if word_start => {
                return Some(format!("a `#` comment needs a shell; {FIX}"));
            }
            _ => {}
        }
        if in_first {
            first_word.push(c);
        }
        word_start = false;
    }
    if quote.is_some() || escaped {
        return Some("the line has an unterminated quote".into());
    }
    if first_word.contains('=') {
        return Some(format!(
            "`{first_word}` sets a variable, which needs a shell; {FIX}"
        ));
    }
    if first_word.is_empty() {
        return Some("the line is empty".into());
    }
    None
}

/// Where an object-storage URL is refused (basebackups_directory, wals_directory…).
pub fn is_object_store_url(value: &str) -> bool {
    ["s3://", "gs://", "azure://", "https://", "http://"]
        .iter()
        .any(|p| value.trim().to_ascii_lowercase().starts_with(p))
}
