//! Rendering the WAL commands: `receive-wal`, `archive-wal`, `get-wal`, `put-wal`,
//! `switch-wal`, `replication-status`, `rebuild-xlogdb`, and the database-host clients
//! `wal-archive` / `wal-restore`.

use barkeep_engine::{
    CancellationToken, Engine, GetWalOpts, ReceiveOpts, ReceiveWalDone, Server, WalClientDone,
};
use serde_json::json;

use crate::cli::{RemoteArgs, WalClientArgs, WalRestoreArgs};
use crate::{Failure, Output};

/// `receive-wal SERVER`: streams until SIGTERM/SIGINT.
pub fn receive_wal(
    s: &Server,
    o: ReceiveOpts,
    rt: &tokio::runtime::Runtime,
    out: &Output,
) -> Result<(), Failure> {
    let cancel = CancellationToken::new();
    let done = rt.block_on(async {
        let run = s.receive_wal(o, cancel.clone());
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r,
            _ = barkeep_engine::shutdown_signal() => {
                cancel.cancel();
                run.await
            }
        }
    })?;
    match done {
        ReceiveWalDone::Streamed => {}
        ReceiveWalDone::Stopped { pid } => out.line(&format!("Stopped process receive-wal({pid})")),
        ReceiveWalDone::Reset { removed } => out.line(&format!(
            "Resetting receive-wal directory status for server '{}' ({removed} partial file(s) removed)",
            s.name()
        )),
        ReceiveWalDone::SlotCreated { slot, existed } => out.line(&if existed {
            format!("Replication slot '{slot}' already exists")
        } else {
            format!("Replication slot '{slot}' created")
        }),
        ReceiveWalDone::SlotDropped { slot } => {
            out.line(&format!("Replication slot '{slot}' dropped"))
        }
    }
    Ok(())
}

/// `archive-wal SERVER`.
pub fn archive_wal(s: &Server, out: &Output) -> Result<(), Failure> {
    let r = s.archive_wal()?;
    if out.is_json() {
        out.json(r.server.clone(), json!({ "archived": r.archived }));
    } else if !r.archived.is_empty() {
        out.line(&format!("Processing xlog segments for {}", r.server));
        for a in &r.archived {
            out.line(&format!("\t{a}"));
        }
    }
    Ok(())
}

/// `get-wal SERVER WAL`.
pub fn get_wal(
    s: &Server,
    wal: &str,
    peek: Option<usize>,
    test: bool,
    o: &GetWalOpts,
    out: &Output,
) -> Result<(), Failure> {
    if test {
        s.get_wal_ready()?;
        out.line(&format!(
            "Ready to retrieve WAL files from the server {}",
            s.name()
        ));
        return Ok(());
    }
    if let Some(n) = peek {
        for w in s.peek_wal(wal, n)? {
            out.line(&w);
        }
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    s.get_wal(wal, o, &mut stdout)?;
    Ok(())
}

/// `put-wal SERVER`.
pub fn put_wal(s: &Server, test: bool, out: &Output) -> Result<(), Failure> {
    if test {
        s.put_wal_ready()?;
        out.line(&format!(
            "Ready to accept WAL files for the server {}",
            s.name()
        ));
        return Ok(());
    }
    let mut stdin = std::io::stdin().lock();
    s.put_wal(&mut stdin)?;
    Ok(())
}

/// `switch-wal SERVER`.
pub async fn switch_wal(
    s: &Server,
    force: bool,
    archive_timeout: Option<u64>,
    out: &Output,
) -> Result<(), Failure> {
    let r = s.switch_wal(force, archive_timeout).await?;
    if !r.switched {
        out.line(&format!("No switch required for server '{}'", r.server));
    }
    if out.is_json() {
        let mut v = json!({"switched": r.switched});
        if let Some(w) = &r.wal {
            v["wal"] = json!(w);
        }
        out.json(r.server.clone(), v);
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `replication-status SERVER`.
pub async fn replication_status(s: &Server, minimal: bool, out: &Output) -> Result<(), Failure> {
    let r = s.replication_status().await?;
    if out.is_json() {
        out.json(
            r.server.clone(),
            json!({"current_lsn": r.current_lsn, "clients": r.clients}),
        );
        return Ok(());
    }
    if minimal {
        for c in &r.clients {
            out.line(&format!(
                "{} {} {} {} {}",
                r.server,
                c.application_name.as_deref().unwrap_or(""),
                c.state.as_deref().unwrap_or(""),
                c.sync_state.as_deref().unwrap_or(""),
                c.flush_lsn.as_deref().unwrap_or_default()
            ));
        }
        return Ok(());
    }
    out.line(&format!(
        "Status of streaming clients for server '{}':",
        r.server
    ));
    if let Some(c) = &r.current_lsn {
        out.line(&format!("  Current LSN on primary: {c}"));
    }
    if r.clients.is_empty() {
        out.line("  No streaming clients attached");
        return Ok(());
    }
    out.line(&format!(
        "  Number of streaming clients: {}",
        r.clients.len()
    ));
    for (i, c) in r.clients.iter().enumerate() {
        let kind = if c.replay_lsn.is_some() {
            "Hot standby"
        } else {
            "WAL streamer"
        };
        let sync = c.sync_state.as_deref().unwrap_or("async");
        out.line("");
        out.line(&format!("  {}. {} {kind}", i + 1, capitalise(sync)));
        out.line(&format!(
            "     Application name: {}",
            c.application_name.as_deref().unwrap_or("")
        ));
        out.line(&format!(
            "     Sync stage      : {}",
            c.state.as_deref().unwrap_or("")
        ));
        out.line(&format!(
            "     Communication   : {}",
            c.client_addr
                .as_deref()
                .map(|a| format!("TCP/IP ({a})"))
                .unwrap_or_else(|| "Unix domain socket".into())
        ));
        out.line(&format!(
            "     User name       : {}",
            c.usename.as_deref().unwrap_or("")
        ));
        out.line(&format!("     WAL sender PID  : {}", c.pid));
        for (i, (label, v)) in [
            ("Sent LSN   ", &c.sent_lsn),
            ("Write LSN  ", &c.write_lsn),
            ("Flush LSN  ", &c.flush_lsn),
            ("Replay LSN ", &c.replay_lsn),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                let diff = c.lag[i].unwrap_or(0);
                out.line(&format!("     {label}: {v} (diff: {diff} B)"));
            }
        }
    }
    Ok(())
}

/// `rebuild-xlogdb SERVER`.
pub fn rebuild_xlogdb(s: &Server, out: &Output) -> Result<(), Failure> {
    let r = s.rebuild_xlogdb()?;
    out.line(&format!(
        "Done rebuilding xlogdb for server {} (history: {}, backup_labels: {}, wal_file: {})",
        r.server, r.history, r.backup_labels, r.wal_files
    ));
    Ok(())
}

fn remote(r: &RemoteArgs) -> barkeep_engine::RemoteArgs {
    barkeep_engine::RemoteArgs {
        remote_program: r.remote_program.clone(),
        local: r.local,
        user: r.user.clone(),
        port: r.port,
        remote_config: r.remote_config.clone(),
        test: r.test,
    }
}

fn client_done(done: WalClientDone, server: &str, out: &Output) {
    match done {
        WalClientDone::Done => {}
        WalClientDone::ReadyToAccept => out.line(&format!(
            "Ready to accept WAL files for the server {server}"
        )),
        WalClientDone::ReadyToRetrieve => out.line(&format!(
            "Ready to retrieve WAL files from the server {server}"
        )),
    }
}

/// `wal-archive HOST SERVER WAL_PATH`.
pub fn wal_archive(
    a: &WalClientArgs,
    engine: Option<&Engine>,
    out: &Output,
) -> Result<(), Failure> {
    let compression = [
        (a.gzip, "gzip"),
        (a.bzip2, "bzip2"),
        (a.xz, "xz"),
        (a.snappy, "snappy"),
        (a.zstd, "zstd"),
        (a.lz4, "lz4"),
    ]
    .iter()
    .find(|(on, _)| *on)
    .map(|(_, c)| c.to_string());
    let args = barkeep_engine::WalArchiveArgs {
        remote: remote(&a.remote),
        md5: a.md5,
        compression,
        compression_level: a.compression_level,
        barman_host: a.barman_host.clone(),
        server_name: a.server_name.clone(),
        wal_path: a.wal_path.clone(),
    };
    client_done(
        barkeep_engine::wal_archive(&args, engine)?,
        &a.server_name,
        out,
    );
    Ok(())
}

/// `wal-restore HOST SERVER WAL_NAME WAL_DEST`.
pub fn wal_restore(
    a: &WalRestoreArgs,
    engine: Option<&Engine>,
    out: &Output,
) -> Result<(), Failure> {
    let args = barkeep_engine::WalRestoreArgs {
        remote: remote(&a.remote),
        partial: a.partial,
        parallel: a.parallel,
        spool_dir: a.spool_dir.clone(),
        sleep: a.sleep,
        transfer: match (a.gzip, a.bzip2, a.keep_compression) {
            (true, _, _) => Some("gzip".into()),
            (_, true, _) => Some("bzip2".into()),
            (_, _, true) => Some("keep".into()),
            _ => None,
        },
        barman_host: a.barman_host.clone(),
        server_name: a.server_name.clone(),
        wal_name: a.wal_name.clone(),
        wal_dest: a.wal_dest.clone(),
    };
    client_done(
        barkeep_engine::wal_restore(&args, engine)?,
        &a.server_name,
        out,
    );
    Ok(())
}
