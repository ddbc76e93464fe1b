//! Typed server settings: one field per key barkeep acts on, built from a server's
//! resolved [`Settings`](crate::Settings). The struct has no defaults of its own — a
//! field that is not an `Option` takes its value from the key table's default (a test
//! checks that every such key has one), so a default is declared exactly once, in
//! [`keys`](crate::keys).
//!
//! Adding a key barkeep acts on means adding a field here; a test fails on an acting
//! server key without one.

use std::path::PathBuf;

use crate::Settings;
use crate::keys::Kind;
use crate::values::{CompressionLevel, GfsCounts, RetentionPolicy, Size, TimeInterval, Value};

/// A Rust type a setting can be read into.
pub trait FromValue: Sized {
    /// The value, or `None` when the setting is unset or of another grammar (neither
    /// happens for a field whose key has a default of its kind — checked by the tests).
    fn from_value(value: Option<&Value>) -> Option<Self>;
    /// Whether a key of this grammar can be read into this type.
    fn accepts(kind: Kind) -> bool;
}

impl FromValue for bool {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Bool)
    }
}

impl FromValue for u64 {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Int { min, .. } if min >= 0)
    }
}

impl FromValue for i64 {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Int { .. })
    }
}

impl FromValue for String {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::Str | Kind::Conninfo | Kind::SlotName | Kind::Schedule | Kind::Jitter
        )
    }
}

impl FromValue for PathBuf {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Path(p) => Some(p.clone()),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Path | Kind::AbsPath)
    }
}

impl FromValue for &'static str {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Choice(c) => Some(c),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Choice(_))
    }
}

impl FromValue for Vec<&'static str> {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::List(l) => Some(l.clone()),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::List(..))
    }
}

impl FromValue for RetentionPolicy {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Retention(r) => Some(*r),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Retention)
    }
}

impl FromValue for GfsCounts {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Gfs(g) => Some(*g),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Gfs)
    }
}

impl FromValue for chrono_tz::Tz {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::TimeZone(z) => Some(*z),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::TimeZone)
    }
}

impl FromValue for TimeInterval {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Interval(i) => Some(*i),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Interval)
    }
}

impl FromValue for Size {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Size(s) => Some(*s),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Size)
    }
}

impl FromValue for CompressionLevel {
    fn from_value(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Level(l) => Some(*l),
            _ => None,
        }
    }
    fn accepts(kind: Kind) -> bool {
        matches!(kind, Kind::Level)
    }
}

/// A field's type: a plain type (its key must have a default) or an `Option` of one.
pub trait Field: Sized {
    /// The value type.
    type Inner: FromValue;
    /// Whether the key must have a default in the table.
    const REQUIRED: bool;
    /// Builds the field; a required one falls back to the type's zero value only when
    /// the table's default is missing, which the tests rule out.
    fn build(value: Option<&Value>) -> Self;
}

macro_rules! plain_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            type Inner = $t;
            const REQUIRED: bool = true;
            fn build(value: Option<&Value>) -> Self {
                <$t as FromValue>::from_value(value).unwrap_or_default()
            }
        }
    )*};
}
plain_field!(bool, u64, i64, String, PathBuf, Vec<&'static str>);

impl Field for &'static str {
    type Inner = &'static str;
    const REQUIRED: bool = true;
    fn build(value: Option<&Value>) -> Self {
        <&'static str as FromValue>::from_value(value).unwrap_or("")
    }
}

impl Field for chrono_tz::Tz {
    type Inner = chrono_tz::Tz;
    const REQUIRED: bool = true;
    fn build(value: Option<&Value>) -> Self {
        <chrono_tz::Tz as FromValue>::from_value(value).unwrap_or(chrono_tz::UTC)
    }
}

impl Field for CompressionLevel {
    type Inner = CompressionLevel;
    const REQUIRED: bool = true;
    fn build(value: Option<&Value>) -> Self {
        <CompressionLevel as FromValue>::from_value(value).unwrap_or(CompressionLevel::Medium)
    }
}

impl<T: FromValue> Field for Option<T> {
    type Inner = T;
    const REQUIRED: bool = false;
    fn build(value: Option<&Value>) -> Self {
        T::from_value(value)
    }
}

/// A field of the typed struct, for the tests: its key, whether the key needs a
/// default, and whether the key's grammar fits the field's type.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The configuration key.
    pub key: &'static str,
    /// The field's type is not an `Option`: the key must have a default.
    pub required: bool,
    /// Whether a key of this grammar can be read into the field.
    pub accepts: fn(Kind) -> bool,
}

macro_rules! typed_settings {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// Every field: its key, whether it needs a default, its grammar check.
            pub const FIELDS: &'static [FieldSpec] = &[$(FieldSpec {
                key: $key,
                required: <$ty as Field>::REQUIRED,
                accepts: <<$ty as Field>::Inner as FromValue>::accepts,
            },)*];

            /// Reads every field from resolved settings.
            pub fn from_settings(s: &Settings) -> Self {
                Self { $($field: <$ty as Field>::build(s.get($key)),)* }
            }
        }
    };
}

typed_settings! {
    /// Every server key barkeep acts on (or acts on for some values), typed.
    pub struct ServerSettings {
        /// `active`.
        active: bool = "active",
        /// `description`.
        description: Option<String> = "description",
        /// `cluster` (defaults to the server name).
        cluster: String = "cluster",
        /// `model`.
        model: Option<bool> = "model",
        /// `conninfo`.
        conninfo: Option<String> = "conninfo",
        /// `streaming_conninfo` (defaults to `conninfo`).
        streaming_conninfo: Option<String> = "streaming_conninfo",
        /// `primary_conninfo`: the primary of a standby being backed up.
        primary_conninfo: Option<String> = "primary_conninfo",
        /// `backup_method`.
        backup_method: &'static str = "backup_method",
        /// `archiver`.
        archiver: bool = "archiver",
        /// `streaming_archiver`.
        streaming_archiver: bool = "streaming_archiver",
        /// `streaming_archiver_name`: the receiver's `application_name`.
        streaming_archiver_name: String = "streaming_archiver_name",
        /// `streaming_backup_name`: a backup's `application_name`.
        streaming_backup_name: String = "streaming_backup_name",
        /// `slot_name`.
        slot_name: Option<String> = "slot_name",
        /// `create_slot`.
        create_slot: &'static str = "create_slot",
        /// `compression` (WAL).
        compression: Option<&'static str> = "compression",
        /// `compression_level` (WAL).
        compression_level: CompressionLevel = "compression_level",
        /// `backup_compression`.
        backup_compression: Option<&'static str> = "backup_compression",
        /// `backup_compression_format`.
        backup_compression_format: &'static str = "backup_compression_format",
        /// `backup_compression_level`.
        backup_compression_level: Option<i64> = "backup_compression_level",
        /// `backup_compression_location`.
        backup_compression_location: Option<&'static str> = "backup_compression_location",
        /// `backup_compression_workers`.
        backup_compression_workers: u64 = "backup_compression_workers",
        /// `encryption`.
        encryption: &'static str = "encryption",
        /// `reuse_backup`.
        reuse_backup: &'static str = "reuse_backup",
        /// `backup_incremental`: what a backup is incremental to by default (`off`).
        backup_incremental: &'static str = "backup_incremental",
        /// `backup_incremental_max_chain`: incremental backups in a row before a full one.
        backup_incremental_max_chain: u64 = "backup_incremental_max_chain",
        /// `parallel_jobs`.
        parallel_jobs: u64 = "parallel_jobs",
        /// `bandwidth_limit` (kB/s; 0 = none).
        bandwidth_limit: u64 = "bandwidth_limit",
        /// `immediate_checkpoint`.
        immediate_checkpoint: bool = "immediate_checkpoint",
        /// `basebackup_retry_times`.
        basebackup_retry_times: u64 = "basebackup_retry_times",
        /// `basebackup_retry_sleep` (seconds).
        basebackup_retry_sleep: u64 = "basebackup_retry_sleep",
        /// `minimum_redundancy`.
        minimum_redundancy: u64 = "minimum_redundancy",
        /// `recovery_options`.
        recovery_options: Vec<&'static str> = "recovery_options",
        /// `path_prefix`: where to look for the optional PostgreSQL tools.
        path_prefix: Option<String> = "path_prefix",
        /// `hook_timeout` (seconds; 0 = no limit).
        hook_timeout: u64 = "hook_timeout",
        /// `worm_mode`.
        worm_mode: bool = "worm_mode",
        /// `backup_directory`.
        backup_directory: PathBuf = "backup_directory",
        /// `basebackups_directory`.
        basebackups_directory: PathBuf = "basebackups_directory",
        /// `wals_directory`.
        wals_directory: PathBuf = "wals_directory",
        /// `incoming_wals_directory`.
        incoming_wals_directory: PathBuf = "incoming_wals_directory",
        /// `streaming_wals_directory`.
        streaming_wals_directory: PathBuf = "streaming_wals_directory",
        /// `errors_directory`.
        errors_directory: PathBuf = "errors_directory",
        /// `xlogdb_directory`.
        xlogdb_directory: PathBuf = "xlogdb_directory",
        /// `retention_policy`.
        retention_policy: Option<RetentionPolicy> = "retention_policy",
        /// `retention_gfs` (barkeep).
        retention_gfs: Option<GfsCounts> = "retention_gfs",
        /// `retention_gfs_timezone` (barkeep).
        retention_gfs_timezone: chrono_tz::Tz = "retention_gfs_timezone",
        /// `backup_schedule` (daemon).
        backup_schedule: Option<String> = "backup_schedule",
        /// `schedule_timezone` (daemon; unset: the host's zone).
        schedule_timezone: Option<chrono_tz::Tz> = "schedule_timezone",
        /// `backup_schedule_jitter` (daemon).
        backup_schedule_jitter: String = "backup_schedule_jitter",
        /// `retention_schedule` (daemon).
        retention_schedule: String = "retention_schedule",
        /// `check_schedule` (daemon).
        check_schedule: String = "check_schedule",
        /// `drill_schedule` (daemon).
        drill_schedule: Option<String> = "drill_schedule",
        /// `drill_sql`: a probe run on the drilled copy.
        drill_sql: Option<String> = "drill_sql",
        /// `drill_directory`: where drills restore.
        drill_directory: PathBuf = "drill_directory",
        /// `retention_policy_mode`.
        retention_policy_mode: &'static str = "retention_policy_mode",
        /// `wal_retention_policy`.
        wal_retention_policy: &'static str = "wal_retention_policy",
        /// `last_backup_maximum_age`.
        last_backup_maximum_age: Option<TimeInterval> = "last_backup_maximum_age",
        /// `last_wal_maximum_age`.
        last_wal_maximum_age: Option<TimeInterval> = "last_wal_maximum_age",
        /// `last_backup_minimum_size`.
        last_backup_minimum_size: Option<Size> = "last_backup_minimum_size",
        /// `max_incoming_wals_queue`.
        max_incoming_wals_queue: Option<u64> = "max_incoming_wals_queue",
        /// `check_timeout` (seconds).
        check_timeout: u64 = "check_timeout",
    }
}

impl ServerSettings {
    /// A server's settings, typed.
    pub fn of(server: &crate::ServerConfig) -> Self {
        Self::from_settings(&server.settings)
    }
}
