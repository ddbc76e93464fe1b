//! A base backup and a point-in-time restore of a real PostgreSQL cluster, through the
//! engine's API alone: stream WAL, back up, write around a noted time, restore to that
//! time, start the restored server and count the rows. CI runs it (`scripts/test.sh`).
//!
//! ```text
//! cargo run -p barkeep-engine --example backup_and_restore
//! ```
//!
//! The test harness (`barkeep-testkit`) provides the throwaway clusters; everything else
//! is what a program embedding barkeep would write.

use std::time::Duration;

use barkeep_engine::{BackupOpts, CancellationToken, Engine, RestoreOpts, Target};
use barkeep_testkit::ClusterBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(pg) = barkeep_testkit::require_pg() else {
        eprintln!("no PostgreSQL installation found: run scripts/setup-test-env.sh");
        return Ok(());
    };
    let source = ClusterBuilder::new(&pg).start()?;
    let home = tempfile::tempdir()?;
    let conninfo = source.socket_conninfo("postgres", "postgres");
    let config_file = home.path().join("barman.conf");
    std::fs::write(
        &config_file,
        format!(
            "[barman]\nbarman_home = {}\n\n[pg]\nconninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = example\ncreate_slot = auto\n",
            home.path().join("home").display()
        ),
    )?;
    let config = barkeep_config::load(&config_file)?;
    let engine = Engine::new(config).with_events(|e: &barkeep_engine::Event| {
        if let barkeep_engine::Event::Step { message, .. } = e {
            println!("  {message}");
        }
    });
    let pg_server = engine.server("pg")?;
    let rt = tokio::runtime::Runtime::new()?;

    // 1. Stream WAL in the background (a cancellable task), then take a backup.
    let stop = CancellationToken::new();
    let receiver = rt.spawn({
        let (s, stop) = (pg_server.clone(), stop.clone());
        async move { s.receive_wal(Default::default(), stop).await }
    });
    source.psql("CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)")?;
    let opts = BackupOpts {
        wait: true,
        wait_timeout: Some(120),
        ..Default::default()
    };
    let backup = rt.block_on(pg_server.backup(&opts))?;
    println!("backup {} is {}", backup.backup_id, backup.status);

    // 2. More rows, a noted time, rows after it; the WAL holding them archived.
    source.psql("INSERT INTO t SELECT generate_series(101, 150)")?;
    std::thread::sleep(Duration::from_millis(1100));
    let target = source.query_value("SELECT to_char(now(), 'YYYY-MM-DD HH24:MI:SS.US+00')")?;
    std::thread::sleep(Duration::from_millis(1100));
    source.psql("INSERT INTO t SELECT generate_series(151, 200)")?;
    rt.block_on(pg_server.switch_wal(false, Some(60)))?;
    stop.cancel();
    rt.block_on(receiver)??;

    // 3. Restore to the noted time into a fresh data directory and start it.
    let mut restored = ClusterBuilder::new(&pg).create()?;
    std::fs::remove_dir_all(restored.data_dir())?;
    let restore = RestoreOpts {
        target: Some(Target::Time(target.clone())),
        target_action: Some("promote".into()),
        ..Default::default()
    };
    let done = pg_server.restore(&backup.backup_id, restored.data_dir(), &restore)?;
    println!(
        "restored {} to {target} in {:.1} s",
        done.backup_id, done.elapsed_seconds
    );
    restored.adopt_data_dir("")?;
    restored.start()?;
    restored.wait_for_recovery_end(Duration::from_secs(120))?;
    let rows = restored.query_value("SELECT count(*) FROM t")?;
    println!("the restored server has {rows} rows (150 were written before {target})");
    if rows != "150" {
        return Err(format!("expected 150 rows at {target}, found {rows}").into());
    }
    Ok(())
}
