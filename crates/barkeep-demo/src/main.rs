//! `barkeep-demo`: barkeep's main job on an embedded default, for a newcomer.
//!
//! Creates a throwaway PostgreSQL cluster (with the newest installed PostgreSQL), writes a
//! Barman-style configuration for it, and runs barkeep's commands against it, printing
//! each step. Everything lives in temporary directories that are removed at the end.
//! Later capabilities (WAL streaming, backup, point-in-time restore) join the sequence as
//! they land.

use std::path::Path;

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

fn main() -> Result<()> {
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
            "[barman]\nbarman_home = {home}\nbarman_user = {user}\nconfiguration_files_directory = {inc}\ncompression = zstd\nretention_policy = RECOVERY WINDOW OF 7 DAYS\nminimum_redundancy = 1\n",
            home = work.join("home").display(),
            user = barkeep_testkit::OsUser::for_server()?.name(),
            inc = work.join("barman.d").display(),
        ),
    )?;
    std::fs::write(
        work.join("barman.d/demo.conf"),
        format!(
            "[demo]\ndescription = \"Throwaway demo cluster (PostgreSQL {ver})\"\nconninfo = {ci}\nstreaming_conninfo = {ci}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barkeep_demo\ncreate_slot = auto\n",
            ver = pg.version,
            ci = cluster.socket_conninfo("postgres", "postgres"),
        ),
    )?;
    println!("{}", std::fs::read_to_string(&config)?);
    println!(
        "{}",
        std::fs::read_to_string(work.join("barman.d/demo.conf"))?
    );

    step(4, "list the configured servers");
    barkeep(&config, &["list-servers"])?;

    step(
        5,
        "show every effective setting of the server, and where it came from",
    );
    barkeep(&config, &["show-servers", "demo"])?;

    step(6, "the same as JSON, for scripts and monitoring");
    barkeep(&config, &["-f", "json", "list-servers"])?;

    println!("\n==> done: the cluster and its files are removed now");
    Ok(())
}
