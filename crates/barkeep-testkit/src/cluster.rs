//! A PostgreSQL cluster owned by one test: created from a cached `initdb` template, run as
//! an unprivileged user when the test runs as root, on a free port and a short socket
//! directory, stopped and removed on drop (also when the test panics).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::install::PgInstall;
use crate::{HarnessError, OsUser};

/// How to stop a server (`pg_ctl stop -m …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect (SIGTERM).
    Smart,
    /// Roll back and disconnect clients, then checkpoint (SIGINT).
    Fast,
    /// Crash: no checkpoint, recovery on next start (SIGQUIT).
    Immediate,
}

/// Client authentication method for `pg_hba.conf` and `initdb --auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No password.
    Trust,
    /// MD5 challenge.
    Md5,
    /// SCRAM-SHA-256.
    Scram,
    /// Always refuse.
    Reject,
    /// TLS client certificate whose common name is the role (`hostssl` lines only).
    Cert,
}

impl Auth {
    fn word(self) -> &'static str {
        match self {
            Auth::Trust => "trust",
            Auth::Md5 => "md5",
            Auth::Scram => "scram-sha-256",
            Auth::Reject => "reject",
            Auth::Cert => "cert",
        }
    }
}

/// One `pg_hba.conf` line, written before the defaults (first match wins).
#[derive(Debug, Clone)]
pub struct HbaEntry {
    /// `local`, `host`, `hostssl`, `hostnossl`.
    pub kind: String,
    /// Database (`all`, `replication`, a name).
    pub database: String,
    /// Role (`all` or a name).
    pub user: String,
    /// Address for host lines (`127.0.0.1/32`); ignored for `local`.
    pub address: String,
    /// Method.
    pub auth: Auth,
}

impl HbaEntry {
    /// A TCP line from 127.0.0.1.
    pub fn host(database: &str, user: &str, auth: Auth) -> HbaEntry {
        HbaEntry {
            kind: "host".into(),
            database: database.into(),
            user: user.into(),
            address: "127.0.0.1/32".into(),
            auth,
        }
    }
    /// A TLS-only TCP line from 127.0.0.1.
    pub fn hostssl(database: &str, user: &str, auth: Auth) -> HbaEntry {
        HbaEntry {
            kind: "hostssl".into(),
            ..HbaEntry::host(database, user, auth)
        }
    }
    /// A Unix-socket line.
    pub fn local(database: &str, user: &str, auth: Auth) -> HbaEntry {
        HbaEntry {
            kind: "local".into(),
            database: database.into(),
            user: user.into(),
            address: String::new(),
            auth,
        }
    }
    fn line(&self) -> String {
        if self.kind == "local" {
            format!("local {} {} {}", self.database, self.user, self.auth.word())
        } else {
            format!(
                "{} {} {} {} {}",
                self.kind,
                self.database,
                self.user,
                self.address,
                self.auth.word()
            )
        }
    }
}

/// Builds a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    install: PgInstall,
    settings: Vec<(String, String)>,
    hba: Vec<HbaEntry>,
    default_auth: Auth,
    data_checksums: Option<bool>,
    files: Vec<(String, Vec<u8>)>,
}

/// Settings every test cluster starts with (tests may override any of them).
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "replica"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("shared_buffers", "32MB"),
    ("fsync", "off"),
    ("full_page_writes", "on"),
    ("log_min_messages", "warning"),
    ("log_line_prefix", "'%m [%p] '"),
    ("lc_messages", "'C'"),
    ("wal_keep_size", "0"),
];

impl ClusterBuilder {
    /// A cluster of `install` with the base settings.
    pub fn new(install: &PgInstall) -> ClusterBuilder {
        ClusterBuilder {
            install: install.clone(),
            settings: Vec::new(),
            hba: Vec::new(),
            default_auth: Auth::Trust,
            data_checksums: None,
            files: Vec::new(),
        }
    }
    /// Adds `key = value` to `postgresql.conf` (value written as given: quote strings).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }
    /// Adds a `pg_hba.conf` line ahead of the defaults.
    pub fn hba(mut self, entry: HbaEntry) -> Self {
        self.hba.push(entry);
        self
    }
    /// Method of the default `host` lines (127.0.0.1, all databases and replication).
    pub fn host_auth(mut self, auth: Auth) -> Self {
        self.default_auth = auth;
        self
    }
    /// `initdb --data-checksums` (or `--no-data-checksums` on 18+ when false).
    pub fn data_checksums(mut self, on: bool) -> Self {
        self.data_checksums = Some(on);
        self
    }
    /// Writes a file into the data directory before the first start (certificates…).
    pub fn file(mut self, name: &str, contents: &[u8]) -> Self {
        self.files.push((name.to_string(), contents.to_vec()));
        self
    }

    /// Turns on TLS with `ca`'s server certificate (`server.crt`/`server.key`) and its CA
    /// as `ssl_ca_file` (`root.crt`), so `hostssl … cert` lines work too.
    pub fn tls(self, ca: &crate::TestCa) -> Self {
        self.file("server.crt", ca.server_cert_pem.as_bytes())
            .file("server.key", ca.server_key_pem.as_bytes())
            .file("root.crt", ca.ca_pem.as_bytes())
            .setting("ssl", "on")
            .setting("ssl_cert_file", "'server.crt'")
            .setting("ssl_key_file", "'server.key'")
            .setting("ssl_ca_file", "'root.crt'")
    }

    /// Creates the cluster and starts it.
    pub fn start(self) -> Result<Cluster, HarnessError> {
        let mut c = self.create()?;
        c.start()?;
        Ok(c)
    }

    /// Creates the cluster without starting it.
    pub fn create(self) -> Result<Cluster, HarnessError> {
        crate::sweep_stale_clusters();
        let user = OsUser::for_server()?;
        let template = crate::template::template(&self.install, self.data_checksums, &user)?;
        let root = tempfile::Builder::new()
            .prefix("bkt-")
            .tempdir_in("/tmp")
            .map_err(|e| HarnessError::io("create a cluster directory under /tmp".into(), e))?
            .keep();
        // Mark the directory as ours so a later run can clean it if we die.
        fs::write(root.join("owner.pid"), std::process::id().to_string())
            .map_err(|e| HarnessError::io(format!("write `{}/owner.pid`", root.display()), e))?;
        set_mode(&root, 0o755)?;
        let data = root.join("data");
        let sock = root.join("s");
        crate::template::copy_tree(&template, &data)?;
        fs::create_dir(&sock)
            .map_err(|e| HarnessError::io(format!("mkdir `{}`", sock.display()), e))?;
        for (name, contents) in &self.files {
            let p = data.join(name);
            fs::write(&p, contents)
                .map_err(|e| HarnessError::io(format!("write `{}`", p.display()), e))?;
            set_mode(&p, 0o600)?;
        }
        user.chown_tree(&data)?;
        user.chown_tree(&sock)?;
        set_mode(&data, 0o700)?;

        let mut hba = String::from("# written by barkeep-testkit: test entries first\n");
        for e in &self.hba {
            hba.push_str(&e.line());
            hba.push('\n');
        }
        let a = self.default_auth.word();
        hba.push_str(&format!(
            "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 {a}\nhost replication all 127.0.0.1/32 {a}\n"
        ));
        write_as(&data.join("pg_hba.conf"), hba.as_bytes(), &user)?;

        let mut conf = String::from("\n# barkeep-testkit\nlisten_addresses = '127.0.0.1'\n");
        conf.push_str(&format!("unix_socket_directories = '{}'\n", sock.display()));
        for (k, v) in BASE_SETTINGS {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        for (k, v) in &self.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        append(&data.join("postgresql.conf"), &conf)?;

        Ok(Cluster {
            install: self.install,
            root,
            data,
            sock,
            port: 0,
            user,
            child: None,
        })
    }
}

/// A running (or stopped) PostgreSQL cluster owned by one test.
#[derive(Debug)]
pub struct Cluster {
    install: PgInstall,
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
    user: OsUser,
    child: Option<Child>,
}

/// Adds the library directory of a relocatable tree (`bin/../lib`) to the loader path:
/// the downloaded PostgreSQL builds need it, Debian's don't (harmless there).
pub(crate) fn library_path(cmd: &mut Command, bin: &Path) {
    if let Some(lib) = bin.parent().map(|p| p.join("lib"))
        && lib.join("libpq.so.5").exists()
    {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
}

impl Cluster {
    /// The installation the cluster runs.
    pub fn install(&self) -> &PgInstall {
        &self.install
    }
    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
    /// A scratch directory beside the data directory, removed with the cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The Unix socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }
    /// The TCP port (0 before the first start).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }
    /// The OS user the server runs as.
    pub fn os_user(&self) -> &OsUser {
        &self.user
    }
    /// A libpq conninfo for TCP on 127.0.0.1.
    pub fn tcp_conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname}",
            self.port
        )
    }
    /// A libpq conninfo for the Unix socket.
    pub fn socket_conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={dbname}",
            self.sock.display(),
            self.port
        )
    }
    /// Whether the postmaster is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The tail of the server log, for error messages.
    pub fn log_tail(&self, bytes: u64) -> String {
        let mut out = String::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
            let _ = f.read_to_string(&mut out);
        }
        out
    }

    /// A command run as the server's OS user, with the installation's libraries.
    pub fn server_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        self.user.apply(&mut cmd);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", &self.root);
        library_path(&mut cmd, &self.install.bin);
        cmd
    }

    /// Starts the server; picks a new free port when the chosen one is taken.
    pub fn start(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            return Ok(());
        }
        let mut last_err = None;
        for attempt in 0..8 {
            if self.port == 0 || attempt > 0 {
                self.port = free_port()?;
            }
            match self.try_start() {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.to_string().contains("could not bind")
                        || e.to_string().contains("Address already in use") =>
                {
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| HarnessError::new("could not find a free port".into())))
    }

    fn try_start(&mut self) -> Result<(), HarnessError> {
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| HarnessError::io(format!("open `{}`", log_path.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .map_err(|e| HarnessError::io("clone log handle".into(), e))?;
        let mut cmd = self.server_command(&self.install.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(|e| {
            HarnessError::io(
                format!("start `{}`", self.install.bin.join("postgres").display()),
                e,
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        let pidfile = self.data.join("postmaster.pid");
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let mut log = String::new();
                if let Ok(mut f) = File::open(&log_path) {
                    let _ = f.seek(SeekFrom::Start(log_start));
                    let _ = f.read_to_string(&mut log);
                }
                return Err(HarnessError::new(format!(
                    "postgres on port {} exited during start-up ({status}); log:\n{log}",
                    self.port
                )));
            }
            // postmaster.pid line 8 is the status pg_ctl waits for: "ready" or "standby".
            if let Ok(text) = fs::read_to_string(&pidfile) {
                let status = text.lines().nth(7).unwrap_or("").trim();
                let pid_ok = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<u32>().ok())
                    == self.child.as_ref().map(Child::id);
                if pid_ok && (status == "ready" || status == "standby") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = self.stop(StopMode::Immediate);
                return Err(HarnessError::new(format!(
                    "postgres on port {} not ready after 90 s; log:\n{}",
                    self.port,
                    self.log_tail(4000)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits for the postmaster to exit.
    pub fn stop(&mut self, mode: StopMode) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sig = match mode {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, sig);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HarnessError::new(format!(
                        "postgres on port {} did not stop within 60 s ({mode:?}); killed",
                        self.port
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(HarnessError::io("wait for postgres".into(), e)),
            }
        }
    }

    /// Crashes the server (`pg_ctl stop -m immediate`).
    pub fn crash(&mut self) -> Result<(), HarnessError> {
        self.stop(StopMode::Immediate)
    }

    /// Fast stop, then start on the same port.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop(StopMode::Fast)?;
        self.start()
    }

    /// Reloads the configuration (SIGHUP).
    pub fn reload(&mut self) -> Result<(), HarnessError> {
        if let Some(child) = &self.child {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            kill(pid, Signal::SIGHUP).map_err(|e| HarnessError::new(format!("SIGHUP: {e}")))?;
        }
        Ok(())
    }

    /// Appends `key = value` to `postgresql.conf` (takes effect on reload or restart).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), HarnessError> {
        append(
            &self.data.join("postgresql.conf"),
            &format!("{key} = {value}\n"),
        )
    }

    /// Promotes a standby (as `pg_ctl promote` does) and waits until it accepts writes.
    pub fn promote(&mut self) -> Result<(), HarnessError> {
        let Some(child) = &self.child else {
            return Err(HarnessError::new(
                "promote: the server is not running".into(),
            ));
        };
        write_as(&self.data.join("promote"), b"", &self.user)?;
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        kill(pid, Signal::SIGUSR1).map_err(|e| HarnessError::new(format!("SIGUSR1: {e}")))?;
        self.wait_for_recovery_end(Duration::from_secs(60))
    }

    /// Waits until `pg_is_in_recovery()` is false.
    pub fn wait_for_recovery_end(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(v) = self.query_value("SELECT pg_is_in_recovery()")
                && v == "f"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::new(format!(
                    "server on port {} still in recovery after {timeout:?}; log:\n{}",
                    self.port,
                    self.log_tail(4000)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self, tool: &str) -> Result<Command, HarnessError> {
        let path = self.install.tool(tool).ok_or_else(|| {
            HarnessError::new(format!(
                "no `{tool}` in `{}` or any other installation",
                self.install.bin.display()
            ))
        })?;
        let mut cmd = Command::new(&path);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(&k);
            }
        }
        if let Some(bin) = path.parent() {
            library_path(&mut cmd, bin);
        }
        cmd.env("PGCONNECT_TIMEOUT", "10");
        Ok(cmd)
    }

    /// Runs SQL with `psql` over the Unix socket as `postgres` on database `postgres`;
    /// returns the unaligned output (`|`-separated columns, one row per line).
    pub fn psql(&self, sql: &str) -> Result<String, HarnessError> {
        self.psql_as(sql, "postgres", "postgres", None, false)
    }

    /// Runs SQL with `psql` as `user` on `dbname`, over TCP when `tcp`, else the socket.
    pub fn psql_as(
        &self,
        sql: &str,
        user: &str,
        dbname: &str,
        password: Option<&str>,
        tcp: bool,
    ) -> Result<String, HarnessError> {
        let mut cmd = self.client("psql")?;
        let host = if tcp {
            "127.0.0.1".to_string()
        } else {
            self.sock.display().to_string()
        };
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(host)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", dbname, "-c", sql]);
        if let Some(pw) = password {
            cmd.env("PGPASSWORD", pw);
        } else {
            cmd.arg("-w");
        }
        run(cmd, &format!("psql on port {}: {sql}", self.port))
    }

    /// The first column of the first row of `sql`.
    pub fn query_value(&self, sql: &str) -> Result<String, HarnessError> {
        let out = self.psql(sql)?;
        Ok(out.lines().next().unwrap_or("").to_string())
    }

    /// Rows of `sql`, each a vector of column texts.
    pub fn query_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, HarnessError> {
        let out = self.psql(sql)?;
        Ok(out
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect())
    }

    /// Creates a login role with `password` hashed as `auth` asks (md5 or SCRAM).
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        auth: Auth,
        attributes: &str,
    ) -> Result<(), HarnessError> {
        let enc = if auth == Auth::Md5 {
            "md5"
        } else {
            "scram-sha-256"
        };
        self.psql(&format!(
            "SET password_encryption = '{enc}'; CREATE ROLE \"{name}\" LOGIN {attributes} PASSWORD '{}'",
            password.replace('\'', "''")
        ))
        .map(|_| ())
    }

    /// `pgbench -i -s scale` on database `postgres`.
    pub fn pgbench_init(&self, scale: u32) -> Result<String, HarnessError> {
        let mut cmd = self.pgbench()?;
        cmd.arg("-i")
            .arg("-q")
            .arg("-s")
            .arg(scale.to_string())
            .arg("postgres");
        run(cmd, &format!("pgbench -i on port {}", self.port))
    }

    /// Runs pgbench for `seconds` with `clients` clients; `extra` arguments go before the
    /// database name.
    pub fn pgbench_run(
        &self,
        seconds: u32,
        clients: u32,
        extra: &[&str],
    ) -> Result<String, HarnessError> {
        let cmd = self.pgbench_command(seconds, clients, extra)?;
        run(cmd, &format!("pgbench on port {}", self.port))
    }

    /// The pgbench command, to spawn in the background.
    pub fn pgbench_command(
        &self,
        seconds: u32,
        clients: u32,
        extra: &[&str],
    ) -> Result<Command, HarnessError> {
        let mut cmd = self.pgbench()?;
        cmd.arg("-n")
            .arg("-T")
            .arg(seconds.to_string())
            .arg("-c")
            .arg(clients.to_string())
            .args(extra)
            .arg("postgres");
        Ok(cmd)
    }

    /// `pgbench` connected to this cluster's socket as `postgres`.
    fn pgbench(&self) -> Result<Command, HarnessError> {
        let mut cmd = self.client("pgbench")?;
        cmd.arg("-h")
            .arg(&self.sock)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres"]);
        Ok(cmd)
    }

    /// Takes over a data directory that a restore wrote in place of this (never started)
    /// cluster's: appends this cluster's socket directory and listen address (and
    /// `extra_conf`), gives the files to the server's OS user, mode 0700.
    pub fn adopt_data_dir(&mut self, extra_conf: &str) -> Result<(), HarnessError> {
        let _ = fs::remove_file(self.data.join("postmaster.pid"));
        append(
            &self.data.join("postgresql.conf"),
            &format!(
                "\n# barkeep-testkit (restored)\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n{extra_conf}\n",
                self.sock.display()
            ),
        )?;
        self.user.chown_tree(&self.data)?;
        set_mode(&self.data, 0o700)
    }

    /// Replaces the (stopped) cluster's data directory with a copy of `src` — a restored
    /// backup — keeping this cluster's socket directory and listen address, so that the
    /// copy can start beside its origin. Extra `postgresql.conf` lines (recovery
    /// settings…) are appended.
    pub fn replace_data_dir(&mut self, src: &Path, extra_conf: &str) -> Result<(), HarnessError> {
        if self.is_running() {
            self.stop(StopMode::Immediate)?;
        }
        fs::remove_dir_all(&self.data)
            .map_err(|e| HarnessError::io(format!("remove `{}`", self.data.display()), e))?;
        crate::template::copy_tree(src, &self.data)?;
        let _ = fs::remove_file(self.data.join("postmaster.pid"));
        append(
            &self.data.join("postgresql.conf"),
            &format!(
                "\n# barkeep-testkit (restored copy)\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n{extra_conf}\n",
                self.sock.display()
            ),
        )?;
        self.user.chown_tree(&self.data)?;
        set_mode(&self.data, 0o700)
    }

    /// Collects WAL with this installation's `pg_receivewal` into `dir`: from segment
    /// `first` (an empty `.partial` tells pg_receivewal where to start, on every major)
    /// until `endpos`. Returns the complete segments' names, sorted. Some WAL must exist
    /// past `endpos`, or pg_receivewal waits for it.
    pub fn receive_segments(
        &self,
        dir: &Path,
        first: &str,
        endpos: &str,
    ) -> Result<Vec<String>, HarnessError> {
        fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("mkdir `{}`", dir.display()), e))?;
        let seed = dir.join(format!("{first}.partial"));
        fs::write(&seed, b"")
            .map_err(|e| HarnessError::io(format!("write `{}`", seed.display()), e))?;
        let mut cmd = self.tool_command("pg_receivewal")?;
        cmd.arg("-h")
            .arg(&self.sock)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "--no-loop",
                "-D",
            ])
            .arg(dir)
            .arg(format!("--endpos={endpos}"));
        run(cmd, "pg_receivewal")?;
        let mut names: Vec<String> = fs::read_dir(dir)
            .map_err(|e| HarnessError::io(format!("list `{}`", dir.display()), e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 24)
            .collect();
        names.sort();
        Ok(names)
    }

    /// A client tool of the installation, with the environment cleaned of `PG*`.
    pub fn tool_command(&self, tool: &str) -> Result<Command, HarnessError> {
        self.client(tool)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop(StopMode::Immediate);
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
pub fn run(mut cmd: Command, what: &str) -> Result<String, HarnessError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io(format!("run {what}"), e))?;
    if !out.status.success() {
        return Err(HarnessError::new(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// A free TCP port on 127.0.0.1 (the start retries if another process takes it first).
pub fn free_port() -> Result<u16, HarnessError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0".into(), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::io("read local address".into(), e))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), HarnessError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| HarnessError::io(format!("chmod {mode:o} `{}`", path.display()), e))
}

fn append(path: &Path, text: &str) -> Result<(), HarnessError> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| HarnessError::io(format!("open `{}`", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| HarnessError::io(format!("write `{}`", path.display()), e))
}

fn write_as(path: &Path, contents: &[u8], user: &OsUser) -> Result<(), HarnessError> {
    fs::write(path, contents)
        .map_err(|e| HarnessError::io(format!("write `{}`", path.display()), e))?;
    if let Some((uid, gid)) = user.ids() {
        chown(path, Some(uid), Some(gid))
            .map_err(|e| HarnessError::io(format!("chown `{}`", path.display()), e))?;
    }
    Ok(())
}
