//! Native PostgreSQL client for barkeep.
//!
//! - [`codec`]: the wire format, sans I/O (encode frontend, decode backend messages).
//!
//! A barkeep host needs no PostgreSQL client installed: connections, authentication and
//! the replication protocol are implemented here.

pub mod codec;
pub mod conninfo;
