//! The native client against real PostgreSQL: authentication methods, errors, SQL and
//! replication connections, on every installed major.

mod common;
use common::rt;

use barkeep_pg::conninfo::{ProcessEnv, resolve};
use barkeep_pg::{Connection, PgError};
use barkeep_testkit::{Auth, Cluster, ClusterBuilder, HbaEntry, PgInstall};

async fn connect(conninfo: &str) -> Result<Connection, PgError> {
    let conninfo = if conninfo.starts_with("postgresql://") {
        format!("{conninfo}?sslmode=disable")
    } else {
        format!("{conninfo} sslmode=disable")
    };
    let params = resolve(&conninfo, &ProcessEnv)?;
    Connection::connect(&params).await
}

fn auth_cluster(pg: &PgInstall) -> Cluster {
    let c = ClusterBuilder::new(pg)
        .hba(HbaEntry::host("all", "md5user", Auth::Md5))
        .hba(HbaEntry::host("replication", "md5user", Auth::Md5))
        .host_auth(Auth::Scram)
        .start()
        .expect("start");
    c.create_user("md5user", "md5 pw", Auth::Md5, "REPLICATION")
        .expect("md5 user");
    c.create_user("scramuser", "scr'am", Auth::Scram, "REPLICATION")
        .expect("scram user");
    c
}

#[test]
fn trust_md5_scram_and_wrong_password() {
    for pg in barkeep_testkit::test_installs() {
        let c = auth_cluster(&pg);
        let port = c.port();
        let sock = c.socket_dir().display().to_string();
        rt().block_on(async {
            // trust over the Unix socket
            let mut conn = connect(&format!(
                "host={sock} port={port} user=postgres dbname=postgres"
            ))
            .await
            .expect("trust over socket");
            assert_eq!(
                conn.query_value("SELECT 40 + 2")
                    .await
                    .expect("query")
                    .as_deref(),
                Some("42")
            );
            assert!(conn.parameter("server_version").is_some());
            conn.close().await.expect("close");

            // md5 over TCP (URI form, password with a space)
            let mut conn = connect(&format!(
                "postgresql://md5user:md5%20pw@127.0.0.1:{port}/postgres"
            ))
            .await
            .unwrap_or_else(|e| panic!("md5 on {}: {e}", pg.version));
            assert_eq!(
                conn.query_value("SELECT current_user")
                    .await
                    .expect("q")
                    .as_deref(),
                Some("md5user")
            );

            // SCRAM over TCP (quoted password)
            let mut conn = connect(&format!(
                "host=127.0.0.1 port={port} user=scramuser dbname=postgres password='scr\\'am'"
            ))
            .await
            .unwrap_or_else(|e| panic!("scram on {}: {e}", pg.version));
            assert_eq!(
                conn.query_value("SELECT 1").await.expect("q").as_deref(),
                Some("1")
            );

            // wrong password: PostgreSQL's own message, SQLSTATE 28P01, not transient
            let err = connect(&format!(
                "host=127.0.0.1 port={port} user=scramuser dbname=postgres password=wrong"
            ))
            .await
            .expect_err("wrong password must fail");
            assert_eq!(err.sqlstate(), Some("28P01"), "{err}");
            assert!(
                err.to_string()
                    .contains("password authentication failed for user \"scramuser\""),
                "{err}"
            );
            assert!(
                err.to_string().contains(&format!("127.0.0.1:{port}")),
                "{err}"
            );
            assert!(!err.is_transient());
            assert!(
                !err.to_string().contains("wrong"),
                "password in message: {err}"
            );

            // no password at all
            let err = connect(&format!(
                "host=127.0.0.1 port={port} user=scramuser dbname=postgres passfile=/nonexistent"
            ))
            .await
            .expect_err("missing password");
            assert!(err.to_string().contains("none was given"), "{err}");
        });
    }
}

#[test]
fn server_errors_keep_fields_and_connection_survives() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    rt().block_on(async {
        let mut conn = connect(&c.tcp_conninfo("postgres", "postgres"))
            .await
            .expect("connect");
        let err = conn
            .query("SELECT * FROM no_such_table")
            .await
            .expect_err("must fail");
        assert_eq!(err.sqlstate(), Some("42P01"));
        let text = err.to_string();
        assert!(
            text.contains("relation \"no_such_table\" does not exist"),
            "{text}"
        );
        assert!(text.contains("SELECT * FROM no_such_table"), "{text}");
        assert_eq!(
            conn.query_value("SELECT 'still usable'")
                .await
                .expect("q")
                .as_deref(),
            Some("still usable")
        );
        let results = conn
            .simple_query("SELECT 1; SELECT NULL::text, 'x'")
            .await
            .expect("multi");
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].text(0, 0), None);
        assert_eq!(results[1].text(0, 1).as_deref(), Some("x"));
        let err = connect("host=127.0.0.1 port=1 user=postgres dbname=postgres")
            .await
            .expect_err("refused");
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string().contains("127.0.0.1:1") && err.to_string().contains("`postgres`"),
            "{err}"
        );
    });
}

#[test]
fn identify_system_matches_pg_controldata() {
    for pg in barkeep_testkit::test_installs() {
        let c = ClusterBuilder::new(&pg).start().expect("start");
        let port = c.port();
        let id = rt().block_on(async {
            let mut conn = connect(&format!(
                "host={} port={port} user=postgres replication=true application_name=barkeep_test",
                c.socket_dir().display()
            ))
            .await
            .expect("replication connection");
            let id = conn.identify_system().await.expect("IDENTIFY_SYSTEM");
            assert_eq!(
                conn.wal_segment_size().await.expect("SHOW").bytes(),
                16 << 20
            );
            let v = conn.server_version_num().await.expect("version");
            assert_eq!(v / 10000, pg.major);
            let err = conn
                .query("SELECT 1")
                .await
                .expect_err("SQL in physical walsender");
            assert!(
                err.to_string()
                    .contains("cannot execute SQL commands in WAL sender"),
                "{err}"
            );
            id
        });
        assert_eq!(id.timeline, 1);
        let controldata = pg.tool("pg_controldata").expect("pg_controldata");
        let mut cmd = std::process::Command::new(controldata);
        cmd.arg(c.data_dir());
        let out = barkeep_testkit::run(cmd, "pg_controldata").expect("pg_controldata runs");
        let sysid = out
            .lines()
            .find_map(|l| l.strip_prefix("Database system identifier:"))
            .map(str::trim)
            .expect("system identifier line");
        assert_eq!(id.system_id.to_string(), sysid, "PostgreSQL {}", pg.version);
    }
}
