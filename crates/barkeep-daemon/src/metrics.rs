//! Metrics and health over HTTP (`metrics_address`): Prometheus text at `/metrics`, the
//! `check` result as JSON at `/health` (200 when every active server passes, 503
//! otherwise), optionally behind a bearer token (`metrics_token_file`). Values are read
//! when scraped — from the catalog, from PostgreSQL, from the daemon's own counters — so
//! they are never older than the scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barkeep_engine::{CheckReport, Engine, Event, EventSink, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the daemon counts itself.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Per server: WAL files and bytes archived since the daemon started.
    wal: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Per server: the last check.
    checks: Mutex<BTreeMap<String, CheckReport>>,
}

impl Counters {
    pub(crate) fn checked(&self, report: CheckReport) {
        if let Ok(mut m) = self.checks.lock() {
            m.insert(report.server.clone(), report);
        }
    }
}

/// Forwards events and counts archived WAL.
#[derive(Clone)]
pub(crate) struct CountingSink<S> {
    pub(crate) inner: S,
    pub(crate) counters: Arc<Counters>,
}

impl<S> std::fmt::Debug for CountingSink<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("counting sink")
    }
}

impl<S: EventSink> EventSink for CountingSink<S> {
    fn event(&self, event: &Event) {
        if let Event::WalArchived { server, bytes, .. } = event
            && let Ok(mut m) = self.counters.wal.lock()
        {
            let e = m.entry(server.clone()).or_default();
            e.0 += 1;
            e.1 += bytes;
        }
        self.inner.event(event);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    server: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    server: String,
    check: String,
}

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The Prometheus text of every server of `engine`.
pub(crate) async fn render(engine: &Engine, counters: &Counters) -> String {
    let up = Family::<ServerLabel, Gauge>::default();
    let age = Family::<ServerLabel, F64Gauge>::default();
    let duration = Family::<ServerLabel, F64Gauge>::default();
    let size = Family::<ServerLabel, Gauge>::default();
    let backups = Family::<StatusLabel, Gauge>::default();
    let connected = Family::<ServerLabel, Gauge>::default();
    let archived = Family::<ServerLabel, Counter>::default();
    let archived_bytes = Family::<ServerLabel, Counter>::default();
    let lag = Family::<ServerLabel, Gauge>::default();
    let retained = Family::<ServerLabel, Gauge>::default();
    let check_ok = Family::<CheckLabel, Gauge>::default();
    let free = Family::<ServerLabel, Gauge>::default();
    let drill = Family::<ServerLabel, Gauge>::default();
    let wal = counters.wal.lock().map(|m| m.clone()).unwrap_or_default();
    let checks = counters
        .checks
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for s in engine.all_servers() {
        let l = ServerLabel {
            server: s.name().to_string(),
        };
        let usable = s.settings().active() && !s.settings().disabled();
        up.get_or_create(&l).set(i64::from(usable));
        if !usable {
            continue;
        }
        let rows = s.list_backups().unwrap_or_default();
        let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
        for st in [
            Status::Done,
            Status::WaitingForWals,
            Status::Failed,
            Status::Started,
        ] {
            by_status.insert(st.as_str().to_string(), 0);
        }
        for r in &rows {
            *by_status.entry(r.status.clone()).or_default() += 1;
        }
        for (st, n) in by_status {
            backups
                .get_or_create(&StatusLabel {
                    server: l.server.clone(),
                    status: st,
                })
                .set(n);
        }
        // The newest drill recorded beside any backup.
        if let Some(r) = rows
            .iter()
            .filter_map(|r| s.last_drill(&r.backup_id))
            .max_by(|a, b| a.started.cmp(&b.started))
        {
            drill.get_or_create(&l).set(i64::from(r.success));
        }
        if let Some(newest) = rows.iter().find(|r| r.status == "DONE")
            && let Ok(d) = s.show_backup(&newest.backup_id)
        {
            if let Some(end) = d.info.end_time {
                age.get_or_create(&l).set(
                    (chrono::Utc::now() - end.with_timezone(&chrono::Utc)).num_milliseconds()
                        as f64
                        / 1000.0,
                );
                if let Some(begin) = d.info.begin_time {
                    duration
                        .get_or_create(&l)
                        .set((end - begin).num_milliseconds() as f64 / 1000.0);
                }
            }
            size.get_or_create(&l).set(d.size_bytes as i64);
        }
        let (files, bytes) = wal.get(&l.server).copied().unwrap_or_default();
        archived.get_or_create(&l).inc_by(files);
        archived_bytes.get_or_create(&l).inc_by(bytes);
        match tokio::time::timeout(Duration::from_secs(5), s.receiver_metrics()).await {
            Ok(Some(m)) => {
                connected.get_or_create(&l).set(i64::from(m.connected));
                if let Some(v) = m.lag_bytes {
                    lag.get_or_create(&l).set(v as i64);
                }
                if let Some(v) = m.slot_retained_bytes {
                    retained.get_or_create(&l).set(v as i64);
                }
            }
            _ => {
                connected.get_or_create(&l).set(0);
            }
        }
        if let Some(r) = checks.get(&l.server) {
            for i in &r.items {
                check_ok
                    .get_or_create(&CheckLabel {
                        server: l.server.clone(),
                        check: i.key(),
                    })
                    .set(i64::from(i.ok));
            }
        }
        if let Some(f) = s.catalog_free_bytes() {
            free.get_or_create(&l).set(f as i64);
        }
    }
    let mut reg = Registry::default();
    reg.register(
        "barkeep_up",
        "1 when the daemon serves the server (active, not disabled)",
        up,
    );
    reg.register(
        "barkeep_last_backup_age_seconds",
        "Seconds since the newest DONE backup ended",
        age,
    );
    reg.register(
        "barkeep_last_backup_duration_seconds",
        "How long the newest DONE backup took",
        duration,
    );
    reg.register(
        "barkeep_last_backup_size_bytes",
        "Size of the newest DONE backup",
        size,
    );
    reg.register("barkeep_backups", "Backups by status", backups);
    reg.register(
        "barkeep_wal_receiver_connected",
        "1 when the WAL receiver is connected (as PostgreSQL sees it)",
        connected,
    );
    reg.register(
        "barkeep_wal_archived",
        "WAL files archived since the daemon started",
        archived,
    );
    reg.register(
        "barkeep_wal_archived_bytes",
        "Bytes of WAL archived since the daemon started",
        archived_bytes,
    );
    reg.register(
        "barkeep_wal_lag_bytes",
        "The server's WAL position minus what is durable here",
        lag,
    );
    reg.register(
        "barkeep_slot_retained_bytes",
        "WAL the server keeps for the replication slot",
        retained,
    );
    reg.register(
        "barkeep_check_ok",
        "1 when the check item passed at the last check",
        check_ok,
    );
    reg.register(
        "barkeep_catalog_free_bytes",
        "Free bytes on the catalog's file system",
        free,
    );
    reg.register(
        "barkeep_last_drill_success",
        "1 when the newest restore drill passed",
        drill,
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

/// `/health`: every server's check now, as `check -f json` prints it; healthy when no
/// active server fails.
pub(crate) async fn health(engine: &Engine) -> (bool, String) {
    let reports = engine.check(engine.all_servers(), Some(10)).await;
    // Sorted keys, as `check -f json` prints them.
    let doc: BTreeMap<&str, BTreeMap<String, serde_json::Value>> = reports
        .iter()
        .map(|r| {
            let items = r
                .items
                .iter()
                .map(|i| {
                    (
                        i.key(),
                        serde_json::json!({
                            "hint": i.hint.clone().unwrap_or_default(),
                            "status": if i.ok { "OK" } else { "FAILED" },
                        }),
                    )
                })
                .collect();
            (r.server.as_str(), items)
        })
        .collect();
    let text = serde_json::to_string(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    (reports.iter().all(|r| !r.fails()), text)
}

/// The HTTP server, on a thread of its own, until `stop`.
pub(crate) fn serve(
    address: &str,
    token: Option<String>,
    engine: Arc<Mutex<Engine>>,
    counters: Arc<Counters>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let server = tiny_http::Server::http(address)
        .map_err(|e| format!("metrics_address = {address}: cannot listen: {e}"))?;
    tracing::info!("metrics and health on http://{address}/metrics and /health");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                if let Some(t) = &token {
                    let want = format!("Bearer {t}");
                    let ok = req
                        .headers()
                        .iter()
                        .any(|h| h.field.equiv("Authorization") && h.value.as_str() == want);
                    if !ok {
                        let _ = req.respond(
                            tiny_http::Response::from_string("unauthorized\n")
                                .with_status_code(401),
                        );
                        continue;
                    }
                }
                let Ok(e) = engine.lock().map(|e| e.clone()) else {
                    continue;
                };
                let (code, body, kind) = match req.url() {
                    "/metrics" => (
                        200,
                        rt.block_on(render(&e, &counters)),
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                    "/health" => {
                        let (ok, doc) = rt.block_on(health(&e));
                        (if ok { 200 } else { 503 }, doc, "application/json")
                    }
                    _ => (
                        404,
                        "not found: /metrics or /health\n".to_string(),
                        "text/plain",
                    ),
                };
                let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes());
                let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                if let Ok(h) = header {
                    resp = resp.with_header(h);
                }
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}
