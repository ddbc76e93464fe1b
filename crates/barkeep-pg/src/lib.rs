//! Native PostgreSQL client for barkeep: a barkeep host needs no PostgreSQL client
//! installed.
//!
//! - [`codec`]: the wire format, sans I/O (encode frontend, decode backend messages);
//! - [`conninfo`]: libpq-compatible connection settings (strings, URIs, `PG*`, services,
//!   `.pgpass`), with a [`conninfo::Password`] that never prints itself;
//! - [`Connection`]: transport, startup, authentication (trust, password, md5,
//!   SCRAM-SHA-256) and the simple query protocol;
//! - [`replication`]: replication commands (`IDENTIFY_SYSTEM`, `SHOW`…).
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

pub mod codec;
mod conn;
pub mod conninfo;
pub mod error;
pub mod replication;
mod tls;

pub use conn::{Connection, QueryResult};
pub use error::PgError;
