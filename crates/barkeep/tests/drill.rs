//! Restore drills on real PostgreSQL: a good backup passes (restored, started, consistent,
//! pg_amcheck and the `drill_sql` probe pass, the scratch copy removed, the result
//! recorded beside the backup); a deliberately damaged copy fails, saying why.

mod common;

use barkeep_testkit::ClusterBuilder;
use common::Home;

#[test]
fn a_drill_passes_on_a_good_backup_and_fails_on_a_damaged_one() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
        .expect("data");
    let rel = c
        .query_value("SELECT pg_relation_filepath('t')")
        .expect("relation path");
    let bin = pg.tool("postgres").expect("postgres");
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\npath_prefix = {}\ndrill_sql = SELECT count(*) FROM t WHERE v <> ''\n",
            bin.parent().expect("bin").display()
        ),
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let id = home
        .run(&["list-backups", "--minimal", "pg"])
        .trim()
        .to_string();

    // What a drill killed earlier left behind is removed by the next one.
    let stale = home.home().join("drills").join(format!("pg-{id}-999999"));
    std::fs::create_dir_all(stale.join("data")).expect("stale scratch");
    let out = home.run(&["drill", "pg"]);
    assert!(!stale.exists(), "the stale scratch copy is removed");
    assert!(
        out.contains(&format!("Drill of backup {id} of server pg: PASSED")),
        "{out}"
    );
    let record = home
        .server_dir()
        .join("base")
        .join(&id)
        .join("barkeep-drill.json");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("drill record")).expect("json");
    assert_eq!(v["success"], true, "{v}");
    let drills = home.home().join("drills");
    assert!(
        std::fs::read_dir(&drills).map(|d| d.count()).unwrap_or(0) == 0,
        "the scratch copy is removed"
    );

    // Damage the backup's copy of t: its first page overwritten.
    let file = home
        .server_dir()
        .join("base")
        .join(&id)
        .join("data")
        .join(&rel);
    let mut bytes = std::fs::read(&file).expect("heap file");
    for b in bytes.iter_mut().take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).expect("damage");
    let out = home.cmd(&["drill", "pg", &id]).output().expect("drill");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Drill of backup {id} of server pg: FAILED: ")),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("drill record")).expect("json");
    assert_eq!(v["success"], false);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(
        std::fs::read_dir(&drills).map(|d| d.count()).unwrap_or(0) == 0,
        "the scratch copy is removed after a failed drill too"
    );
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
}
