//! TLS against real PostgreSQL: sslmode semantics with a test CA, host name checks,
//! client certificates, and SCRAM-SHA-256-PLUS channel binding.

mod common;
use common::rt;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use barkeep_pg::conninfo::{ProcessEnv, resolve};
use barkeep_pg::{Connection, PgError};
use barkeep_testkit::{Auth, Cluster, ClusterBuilder, HbaEntry, PgInstall, TestCa};

struct Files {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write test file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    p
}

fn setup(pg: &PgInstall) -> (Cluster, Files) {
    // The server certificate names `localhost` only: connecting to 127.0.0.1 with
    // verify-full must fail, with verify-ca succeed.
    let ca = TestCa::new(&["localhost"]).expect("test CA");
    let other = TestCa::new(&["localhost"]).expect("second CA");
    let (cc, ck) = ca.client_cert("certuser").expect("client cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Files {
        ca: write(dir.path(), "ca.pem", &ca.ca_pem),
        other_ca: write(dir.path(), "other.pem", &other.ca_pem),
        client_cert: write(dir.path(), "client.crt", &cc),
        client_key: write(dir.path(), "client.key", &ck),
        _dir: dir,
    };
    let c = ClusterBuilder::new(pg)
        .tls(&ca)
        .hba(HbaEntry::hostssl("all", "certuser", Auth::Cert))
        .hba(HbaEntry::hostssl("all", "md5user", Auth::Md5))
        .hba(HbaEntry::hostssl("all", "scramuser", Auth::Scram))
        .hba(HbaEntry::hostssl("replication", "scramuser", Auth::Scram))
        .hba(HbaEntry::host("all", "scramuser", Auth::Reject))
        .host_auth(Auth::Scram)
        .start()
        .expect("start");
    c.create_user("scramuser", "s3cret", Auth::Scram, "REPLICATION")
        .expect("scram user");
    c.create_user("md5user", "m", Auth::Md5, "")
        .expect("md5 user");
    c.create_user("certuser", "", Auth::Trust, "")
        .expect("cert user");
    (c, files)
}

async fn connect(conninfo: &str) -> Result<Connection, PgError> {
    // No ~/.postgresql defaults: every test names its files.
    let conninfo = format!("{conninfo} sslcert=/nonexistent sslkey=/nonexistent");
    Connection::connect(&resolve(&conninfo, &ProcessEnv)?).await
}

async fn ssl_in_use(conn: &mut Connection) -> String {
    conn.query_value("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .expect("pg_stat_ssl")
        .unwrap_or_default()
}

/// Connects with `conninfo`, checks the server sees the session as encrypted, closes.
async fn connects_encrypted(conninfo: &str, what: &str) {
    let mut conn = connect(conninfo)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(conn.is_tls(), "{what}");
    assert_eq!(ssl_in_use(&mut conn).await, "t", "{what}");
    conn.close().await.expect("close");
}

#[test]
fn sslmodes_certificates_and_channel_binding() {
    for pg in barkeep_testkit::test_installs() {
        let (c, f) = setup(&pg);
        let port = c.port();
        let ca = f.ca.display().to_string();
        let base = format!("port={port} user=scramuser password=s3cret dbname=postgres");
        rt().block_on(async {
            // verify-full against the certificate's name, with channel binding required.
            let mut conn = connect(&format!(
                "host=localhost {base} sslmode=verify-full sslrootcert={ca} channel_binding=require"
            ))
            .await
            .unwrap_or_else(|e| panic!("PG {}: verify-full: {e:#}", pg.major));
            assert!(conn.is_tls());
            assert_eq!(ssl_in_use(&mut conn).await, "t");
            conn.close().await.expect("close");

            // verify-full with a host name the certificate does not carry.
            let err = connect(&format!(
                "host=127.0.0.1 {base} sslmode=verify-full sslrootcert={ca}"
            ))
            .await
            .expect_err("wrong host name must fail");
            let msg = format!("{err}");
            assert!(matches!(err, PgError::Tls { .. }), "{msg}");
            assert!(msg.contains("127.0.0.1"), "{msg}");
            assert!(msg.to_lowercase().contains("not valid for name"), "{msg}");

            // verify-ca does not check the name.
            connects_encrypted(
                &format!("host=127.0.0.1 {base} sslmode=verify-ca sslrootcert={ca}"),
                "verify-ca",
            )
            .await;

            // A certificate from another CA is refused.
            let err = connect(&format!(
                "host=localhost {base} sslmode=verify-full sslrootcert={}",
                f.other_ca.display()
            ))
            .await
            .expect_err("unknown issuer must fail");
            assert!(matches!(err, PgError::Tls { .. }), "{err}");

            // require without a root certificate: encrypted, nothing checked.
            connects_encrypted(
                &format!("host=127.0.0.1 {base} sslmode=require sslrootcert=/nonexistent/root.crt"),
                "require",
            )
            .await;

            // prefer (the default) encrypts when the server offers TLS.
            connects_encrypted(
                &format!("host=127.0.0.1 {base} sslrootcert=/nonexistent/root.crt"),
                "prefer",
            )
            .await;

            // allow starts in cleartext, which pg_hba rejects for this user, then TLS.
            connects_encrypted(
                &format!("host=127.0.0.1 {base} sslmode=allow sslrootcert=/nonexistent/root.crt"),
                "allow falls back to TLS",
            )
            .await;

            // disable: cleartext, rejected by the hostnossl-equivalent line.
            let err = connect(&format!("host=127.0.0.1 {base} sslmode=disable"))
                .await
                .expect_err("cleartext is rejected for this user");
            assert_eq!(err.sqlstate(), Some("28000"), "{err}");

            // Channel binding cannot be had without TLS, nor with md5.
            let sock = c.socket_dir().display().to_string();
            let err = connect(&format!(
                "host={sock} port={port} user=postgres dbname=postgres channel_binding=require"
            ))
            .await
            .expect_err("no TLS on a Unix socket");
            assert!(format!("{err}").contains("not encrypted"), "{err}");
            let err = connect(&format!(
                "host=localhost port={port} user=md5user password=m dbname=postgres sslmode=verify-full sslrootcert={ca} channel_binding=require"
            ))
            .await
            .expect_err("md5 has no channel binding");
            assert!(format!("{err}").contains("md5 authentication"), "{err}");
            // ...while md5 over TLS is fine without the requirement.
            connect(&format!(
                "host=localhost port={port} user=md5user password=m dbname=postgres sslmode=verify-full sslrootcert={ca}"
            ))
            .await
            .expect("md5 over TLS")
            .close()
            .await
            .expect("close");

            // SCRAM over TLS with channel binding switched off still works.
            connect(&format!(
                "host=localhost {base} sslmode=require channel_binding=disable"
            ))
            .await
            .expect("scram without binding")
            .close()
            .await
            .expect("close");

            // Client certificate authentication (`cert` method: CN = role).
            let mut conn = Connection::connect(
                &resolve(
                    &format!(
                        "host=localhost port={port} user=certuser dbname=postgres sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
                        f.client_cert.display(),
                        f.client_key.display()
                    ),
                    &ProcessEnv,
                )
                .expect("conninfo"),
            )
            .await
            .expect("client certificate");
            assert_eq!(
                conn.query_value("SELECT current_user").await.expect("current_user").as_deref(),
                Some("certuser")
            );
            conn.close().await.expect("close");
            // The key file's permissions are checked as libpq does.
            std::fs::set_permissions(&f.client_key, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
            let err = Connection::connect(
                &resolve(
                    &format!(
                        "host=localhost port={port} user=certuser dbname=postgres sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
                        f.client_cert.display(),
                        f.client_key.display()
                    ),
                    &ProcessEnv,
                )
                .expect("conninfo"),
            )
            .await
            .expect_err("group-readable key");
            assert!(format!("{err}").contains("group or world access"), "{err}");

            // A replication connection over TLS with channel binding.
            let mut repl = connect(&format!(
                "host=localhost {base} sslmode=verify-full sslrootcert={ca} channel_binding=require replication=true"
            ))
            .await
            .expect("replication over TLS");
            let id = repl.identify_system().await.expect("IDENTIFY_SYSTEM");
            assert!(id.system_id > 0);
            repl.close().await.expect("close");
        });
    }
}

#[test]
fn tls_required_but_server_has_none() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let port = c.port();
    rt().block_on(async {
        let err = connect(&format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require"
        ))
        .await
        .expect_err("no TLS on the server");
        let msg = format!("{err}");
        assert!(msg.contains("does not support SSL"), "{msg}");
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        // prefer falls back to cleartext.
        connect(&format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=prefer"
        ))
        .await
        .expect("prefer without server TLS")
        .close()
        .await
        .expect("close");
    });
}
