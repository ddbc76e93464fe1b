//! Native PostgreSQL client for barkeep: a barkeep host needs no PostgreSQL client
//! installed.
//!
//! - [`codec`]: the wire format, sans I/O (encode frontend, decode backend messages);
//! - [`conninfo`]: libpq-compatible connection settings (strings, URIs, `PG*`, services,
//!   `.pgpass`), with a [`conninfo::Password`] that never prints itself;
//! - [`Connection`]: transport, startup, authentication (trust, password, md5,
//!   SCRAM-SHA-256) and the simple query protocol;
//! - [`replication`]: replication commands (`IDENTIFY_SYSTEM`, `SHOW`, slots,
//!   `TIMELINE_HISTORY`);
//! - [`sql`]: what backups and checks ask over SQL (backup start/stop per major,
//!   privileges, `pg_stat_replication`, settings, restore points…);
//! - [`walstream`]: `START_REPLICATION` as a stream of typed events;
//! - [`basebackup`]: `BASE_BACKUP` for 13/14 and 15+ as one version-independent stream;
//! - TLS with rustls (`sslmode`, `sslrootcert`, client certificates) and SCRAM channel
//!   binding.
//!
//! ```no_run
//! # async fn f() -> Result<(), barkeep_pg::PgError> {
//! let params = barkeep_pg::conninfo::resolve(
//!     "host=/var/run/postgresql user=barman replication=true",
//!     &barkeep_pg::conninfo::ProcessEnv,
//! )?;
//! let mut conn = barkeep_pg::Connection::connect(&params).await?;
//! let id = conn.identify_system().await?;
//! println!("system {} on timeline {} at {}", id.system_id, id.timeline, id.xlogpos);
//! # Ok(()) }
//! ```

pub mod basebackup;
pub mod codec;
mod conn;
pub mod conninfo;
pub mod error;
pub mod replication;
pub mod sql;
mod tls;
pub mod walstream;

pub use conn::{Connection, QueryResult};
pub use error::PgError;
