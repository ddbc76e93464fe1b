//! `barkeep-demo`: barkeep's main job on an embedded default, for a newcomer.
//!
//! Creates a throwaway PostgreSQL cluster (with the newest installed PostgreSQL) with some
//! data, writes a Barman-style configuration for it, and runs barkeep's whole job against
//! it, printing each step: `barkeep daemon` streaming WAL and taking scheduled backups,
//! its metrics, a restore drill, more writes, a point-in-time restore into a new data
//! directory, the restored server started and checked.
//! Everything lives in temporary directories that are removed at the end.
//!
//! `barkeep-demo barkeep ARGS…` runs barkeep itself (the demo starts the daemon that way,
//! as a separate process).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use barkeep_testkit::{ClusterBuilder, PgInstall};

fn step(n: u32, text: &str) {
    println!("\n==> step {n}: {text}");
}

fn barkeep(config: &Path, args: &[&str]) -> Result<()> {
    let mut argv = vec![
        "barkeep".to_string(),
        "-c".into(),
        config.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    println!("$ {}", argv.join(" "));
    let code = barkeep::run(argv);
    if code != std::process::ExitCode::SUCCESS {
        bail!("`barkeep {}` failed", args.join(" "));
    }
    Ok(())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn main() -> Result<()> {
    // Passthrough: `barkeep-demo barkeep ARGS…` is barkeep.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("barkeep") {
        let code = barkeep::run(args[1..].iter().cloned());
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }

    step(1, "find PostgreSQL");
    let pg =
        PgInstall::discover().context("barkeep-demo needs a PostgreSQL server installation")?;
    println!("using PostgreSQL {} from {}", pg.version, pg.bin.display());

    step(2, "create and start a throwaway cluster with some data");
    let cluster = ClusterBuilder::new(&pg)
        .start()
        .context("start the demo cluster")?;
    cluster.pgbench_init(1).context("load pgbench data")?;
    let rows = cluster.query_value("SELECT count(*) FROM pgbench_accounts")?;
    println!(
        "cluster running on port {} (socket in {}), pgbench_accounts has {rows} rows",
        cluster.port(),
        cluster.socket_dir().display()
    );

    step(
        3,
        "write a Barman-style configuration: barman.conf + barman.d/demo.conf",
    );
    let work = cluster.root().join("barkeep");
    std::fs::create_dir_all(work.join("barman.d"))?;
    let config = work.join("barman.conf");
    std::fs::write(
        &config,
        format!(
            "[barman]\nbarman_home = {home}\nconfiguration_files_directory = {inc}\ncompression = zstd\nretention_policy = RECOVERY WINDOW OF 7 DAYS\nminimum_redundancy = 1\nimmediate_checkpoint = true\n",
            home = work.join("home").display(),
            inc = work.join("barman.d").display(),
        ),
    )?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(
        work.join("barman.d/demo.conf"),
        format!(
            "[demo]\ndescription = \"Throwaway demo cluster (PostgreSQL {ver})\"\nconninfo = {ci}\nstreaming_conninfo = {ci}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barkeep_demo\ncreate_slot = auto\npath_prefix = {bin}\n; the daemon: a backup every 15 seconds (a demo; think `0 2 * * *`)\nbackup_schedule = */15 * * * * *\nbackup_schedule_jitter = 0\ndrill_directory = {drills}\n",
            ver = pg.version,
            ci = cluster.socket_conninfo("postgres", "postgres"),
            bin = pg.bin.display(),
            drills = cluster.root().join("drills").display(),
        ),
    )?;
    let mut global = std::fs::read_to_string(&config)?;
    global.push_str(&format!("metrics_address = 127.0.0.1:{metrics_port}\n"));
    std::fs::write(&config, global)?;
    println!("{}", std::fs::read_to_string(&config)?);
    println!(
        "{}",
        std::fs::read_to_string(work.join("barman.d/demo.conf"))?
    );

    step(4, "list the configured servers");
    barkeep(&config, &["list-servers"])?;

    step(
        5,
        "start `barkeep daemon`: it streams WAL and takes the scheduled backups",
    );
    let exe = std::env::current_exe().context("the demo's own path")?;
    println!("$ barkeep -c {} daemon &", config.display());
    let mut receiver = Command::new(&exe)
        .args(["barkeep", "-c"])
        .arg(&config)
        .arg("daemon")
        .stdin(Stdio::null())
        .spawn()
        .context("start the daemon")?;
    let streaming = work.join("home/demo/streaming");
    wait_until(
        "the receiver's first segment",
        Duration::from_secs(30),
        || std::fs::read_dir(&streaming).is_ok_and(|mut d| d.next().is_some()),
    )?;
    println!("receiving into {}", streaming.display());

    step(
        6,
        "wait for the first scheduled backup to be DONE (its WAL archived)",
    );
    let meta = work.join("home/demo/meta");
    wait_until("a scheduled backup", Duration::from_secs(120), || {
        std::fs::read_dir(&meta).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("status=DONE")))
        })
    })?;
    barkeep(&config, &["list-backups", "demo"])?;
    barkeep(&config, &["status", "demo"])?;
    barkeep(&config, &["verify-backup", "demo", "latest"])?;

    step(7, "the daemon's metrics (Prometheus text at /metrics)");
    println!("$ curl http://127.0.0.1:{metrics_port}/metrics");
    let metrics = http_get(metrics_port, "/metrics")?;
    for l in metrics.lines().filter(|l| {
        !l.starts_with('#')
            && (l.starts_with("barkeep_last_backup")
                || l.starts_with("barkeep_wal_receiver_connected")
                || l.starts_with("barkeep_wal_archived_total")
                || l.starts_with("barkeep_backups{"))
    }) {
        println!("{l}");
    }

    step(8, "a restore drill: restore, start, check, clean up");
    barkeep(&config, &["drill", "demo"])?;

    step(
        9,
        "more writes after the backup; note the time between two of them",
    );
    cluster.psql("CREATE TABLE demo_orders (id int PRIMARY KEY, note text)")?;
    cluster.psql(
        "INSERT INTO demo_orders SELECT g, 'before the target' FROM generate_series(1, 100) g",
    )?;
    std::thread::sleep(Duration::from_millis(1100));
    let target = cluster.query_value("SELECT clock_timestamp()")?;
    std::thread::sleep(Duration::from_millis(1100));
    cluster.psql("INSERT INTO demo_orders SELECT g, 'after the target (an accident)' FROM generate_series(101, 150) g")?;
    println!("target time: {target} — 100 orders before it, 50 after");
    barkeep(
        &config,
        &["switch-wal", "--archive", "--archive-timeout", "60", "demo"],
    )?;

    step(10, "restore to the target time into a new data directory");
    let mut restored = ClusterBuilder::new(&pg)
        .create()
        .context("prepare the restore target")?;
    std::fs::remove_dir_all(restored.data_dir())?;
    let dest = restored.data_dir().display().to_string();
    barkeep(
        &config,
        &[
            "restore",
            "--target-time",
            &target,
            "--target-action",
            "promote",
            "demo",
            "latest",
            &dest,
        ],
    )?;

    step(
        11,
        "start the restored server and check it stopped at the target",
    );
    restored.adopt_data_dir("")?;
    restored.start().context("start the restored server")?;
    restored.wait_for_recovery_end(Duration::from_secs(120))?;
    let count = restored.query_value("SELECT count(*) FROM demo_orders")?;
    let source = cluster.query_value("SELECT count(*) FROM demo_orders")?;
    println!(
        "restored server: {count} orders (the source has {source}); pgbench_accounts intact: {}",
        restored.query_value("SELECT count(*) FROM pgbench_accounts")?
    );
    if count != "100" {
        bail!(
            "the restore should hold exactly the 100 orders written before the target, it has {count}"
        );
    }

    println!("\n$ kill -TERM <daemon>   (it stops at a durable point)");
    stop_receiver(&mut receiver)?;
    println!("\n==> done: the clusters and their files are removed now");
    Ok(())
}

/// The body of `GET path` on the daemon's HTTP server.
fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string())
}

/// Stops the receiver (SIGTERM: it closes its segment cleanly).
fn stop_receiver(child: &mut std::process::Child) -> Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    child.wait()?;
    Ok(())
}
