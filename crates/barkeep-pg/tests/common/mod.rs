//! Helpers shared by the integration tests of the client.
#![allow(dead_code)]

use barkeep_pg::Connection;
use barkeep_pg::conninfo::{ProcessEnv, resolve};
use barkeep_testkit::Cluster;

/// A single-threaded runtime for one test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connects to `c` over its Unix socket as `user` to database `postgres`, with `extra`
/// conninfo settings (`replication=true`, `application_name=…`).
pub async fn connect_socket(c: &Cluster, user: &str, extra: &str) -> Connection {
    let ci = format!("{} {extra}", c.socket_conninfo(user, "postgres"));
    Connection::connect(&resolve(&ci, &ProcessEnv).expect("conninfo"))
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}
