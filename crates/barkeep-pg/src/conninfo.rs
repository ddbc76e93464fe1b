//! Connection settings as libpq understands them: `key=value` strings and `postgresql://`
//! URIs, `PG*` environment variables, `pg_service.conf` services, `.pgpass` files (with
//! libpq's permission rule), and defaults. Precedence is libpq's: the string, then the
//! service, then the environment, then defaults. See PostgreSQL docs §34.1.2 (parameter
//! keywords), §34.15 (environment), §34.16 (password file), §34.17 (service file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A password that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Password {
        Password(s.into())
    }
    /// The secret itself, for authentication only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(********)")
    }
}

impl std::fmt::Display for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

/// A conninfo problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConninfoError {
    /// Malformed `key=value` or URI text.
    #[error("invalid connection string: {0}")]
    Syntax(String),
    /// A keyword libpq does not know.
    #[error("invalid connection option `{0}`")]
    UnknownKey(String),
    /// A value that does not parse.
    #[error("invalid value `{value}` for connection option `{key}`: expected {expected}")]
    Value {
        /// The keyword.
        key: String,
        /// The value (never a password).
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// `service=NAME` not found in any service file.
    #[error("definition of service `{name}` not found (looked in {files})")]
    Service {
        /// Service name.
        name: String,
        /// Files searched.
        files: String,
    },
}

/// Keywords barkeep honours (libpq's names).
pub const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "passfile",
    "dbname",
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslsni",
    "channel_binding",
    "connect_timeout",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "options",
    "replication",
    "target_session_attrs",
    "client_encoding",
    "sslcompression",
    "gssencmode",
    "krbsrvname",
    "requirepeer",
    "require_auth",
    "load_balance_hosts",
    "tcp_user_timeout",
    "sslnegotiation",
    "sslcrl",
    "sslcrldir",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

/// Environment variables and the keyword each sets (libpq §34.15).
const ENV: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGSERVICE", "service"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLSNI", "sslsni"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCLIENTENCODING", "client_encoding"),
];

/// Parses a `key=value …` string or a `postgresql://` URI into keyword → value.
pub fn parse(s: &str) -> Result<BTreeMap<String, String>, ConninfoError> {
    let t = s.trim_start();
    let map = if t.starts_with("postgresql://") || t.starts_with("postgres://") {
        parse_uri(t)?
    } else {
        parse_kv(s)?
    };
    for k in map.keys() {
        if !KEYWORDS.contains(&k.as_str()) {
            return Err(ConninfoError::UnknownKey(k.clone()));
        }
    }
    Ok(map)
}

/// One `key=value` of a keyword/value string: the decoded key and value, and where the
/// raw value is in the string (for [`redact`]).
struct KvToken {
    key: String,
    value: String,
    value_span: std::ops::Range<usize>,
}

/// The tokenizer of the keyword/value form (libpq's rules: whitespace around `=`,
/// single quotes, backslash escapes). [`parse`] and [`redact`] both use it, so what is
/// redacted is exactly what would be sent as the password.
fn kv_tokens(s: &str) -> Result<Vec<KvToken>, ConninfoError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_ws(&mut chars);
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(ConninfoError::Syntax(format!(
                "missing `=` after `{key}` in connection info string"
            )));
        }
        skip_ws(&mut chars);
        let start = chars.peek().map(|(i, _)| *i).unwrap_or(s.len());
        let mut value = String::new();
        let end;
        if chars.peek().map(|(_, c)| *c) == Some('\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(ConninfoError::Syntax(format!(
                            "unterminated quoted value for `{key}`"
                        )));
                    }
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((i, '\'')) => {
                        end = i + 1;
                        break;
                    }
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            loop {
                match chars.peek() {
                    Some(&(_, c)) if !c.is_whitespace() => {
                        chars.next();
                        if c == '\\' {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        } else {
                            value.push(c);
                        }
                    }
                    Some(&(i, _)) => {
                        end = i;
                        break;
                    }
                    None => {
                        end = s.len();
                        break;
                    }
                }
            }
        }
        out.push(KvToken {
            key,
            value,
            value_span: start..end,
        });
    }
}

fn parse_kv(s: &str) -> Result<BTreeMap<String, String>, ConninfoError> {
    Ok(kv_tokens(s)?
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect())
}

/// `s` with its password replaced by `********`, in its own form (keyword/value or URI),
/// using the same rules as [`parse`]: whatever [`parse`] would read as the password is
/// hidden. A string that does not parse is hidden from the first problem on.
pub fn redact(s: &str) -> String {
    const MASK: &str = "********";
    let t = s.trim_start();
    if t.starts_with("postgresql://") || t.starts_with("postgres://") {
        return redact_uri(s, MASK);
    }
    match kv_tokens(s) {
        Ok(tokens) => {
            let mut out = String::with_capacity(s.len());
            let mut at = 0;
            for tok in tokens.iter().filter(|t| t.key == "password") {
                out.push_str(&s[at..tok.value_span.start]);
                out.push_str(MASK);
                at = tok.value_span.end;
            }
            out.push_str(&s[at..]);
            out
        }
        Err(_) => {
            // Keep the keys that parse, hide the rest.
            let cut = s.find('=').map(|i| i + 1).unwrap_or(0);
            format!("{} {MASK}", s[..cut].trim_end())
        }
    }
}

fn redact_uri(s: &str, mask: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return mask.to_string();
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{mask}@{hosts}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(p) = path {
        out.push('/');
        out.push_str(p);
    }
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                // The key as parse() decodes it: `pass%77ord` is the password too.
                Some((k, _)) if percent_decode(k).map(|k| k == "password").unwrap_or(true) => {
                    format!("{k}={mask}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn percent_decode(s: &str) -> Result<String, ConninfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConninfoError::Syntax(format!("invalid percent-encoding in `{s}`"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConninfoError::Syntax("percent-encoding is not UTF-8".into()))
}

fn parse_uri(s: &str) -> Result<BTreeMap<String, String>, ConninfoError> {
    let mut out = BTreeMap::new();
    let rest = s.split_once("://").map(|x| x.1).unwrap_or_default();
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, pw) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            if !user.is_empty() {
                out.insert("user".into(), percent_decode(user)?);
            }
            if userinfo.contains(':') {
                out.insert("password".into(), percent_decode(pw)?);
            }
            hosts
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for h in hostspec.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = if let Some(r) = h.strip_prefix('[') {
            let (addr, after) = r
                .split_once(']')
                .ok_or_else(|| ConninfoError::Syntax(format!("unterminated `[` in `{h}`")))?;
            (
                addr.to_string(),
                after.strip_prefix(':').unwrap_or("").to_string(),
            )
        } else {
            let (a, p) = h.split_once(':').unwrap_or((h, ""));
            (percent_decode(a)?, p.to_string())
        };
        hosts.push(host);
        ports.push(port);
    }
    if !hosts.is_empty() {
        out.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.insert("port".into(), ports.join(","));
    }
    if !path.is_empty() {
        out.insert("dbname".into(), percent_decode(path)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            ConninfoError::Syntax(format!("missing `=` in URI parameter `{pair}`"))
        })?;
        let k = percent_decode(k)?;
        // libpq accepts `ssl=true` in URIs as `sslmode=require`.
        if k == "ssl" && v == "true" {
            out.insert("sslmode".into(), "require".into());
        } else {
            out.insert(k, percent_decode(v)?);
        }
    }
    Ok(out)
}

/// `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Cleartext first, TLS if the server requires it.
    Allow,
    /// TLS if the server offers it (libpq's default).
    Prefer,
    /// TLS, without certificate checks.
    Require,
    /// TLS, server certificate signed by `sslrootcert`.
    VerifyCa,
    /// As verify-ca, and the host name matches the certificate.
    VerifyFull,
}

/// `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Never.
    Disable,
    /// When TLS is up and the server offers SCRAM-SHA-256-PLUS (default).
    Prefer,
    /// Fail unless channel binding is used.
    Require,
}

/// One endpoint to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// TCP host name or address.
    Tcp(String),
    /// A Unix socket directory.
    Unix(PathBuf),
}

/// Fully resolved connection parameters.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Endpoints to try in order, with their ports.
    pub hosts: Vec<(Host, u16)>,
    /// Role name.
    pub user: String,
    /// Database name.
    pub dbname: String,
    /// Password from the string, `PGPASSWORD` or the password file.
    pub password: Option<Password>,
    /// TLS policy.
    pub sslmode: SslMode,
    /// CA bundle for verify-ca/verify-full (or for any mode when the file exists).
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate.
    pub sslcert: Option<PathBuf>,
    /// Client key.
    pub sslkey: Option<PathBuf>,
    /// SCRAM channel binding policy.
    pub channel_binding: ChannelBinding,
    /// Per-attempt connect timeout.
    pub connect_timeout: Option<std::time::Duration>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `options` (server `-c` settings).
    pub options: Option<String>,
    /// TCP keepalives on.
    pub keepalives: bool,
    /// `replication` startup parameter, if any.
    pub replication: Option<String>,
}

impl ConnParams {
    /// `host:port` or socket path of the first endpoint, for messages.
    pub fn describe(&self) -> String {
        match self.hosts.first() {
            Some((h, p)) => describe_endpoint(h, *p),
            None => "(no host)".into(),
        }
    }
}

/// `host:port` or `socket/.s.PGSQL.port`.
pub fn describe_endpoint(h: &Host, port: u16) -> String {
    match h {
        Host::Tcp(name) => format!("{name}:{port}"),
        Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
    }
}

/// Where environment and files come from (injectable for tests).
pub trait Environment {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The current OS user name.
    fn os_user(&self) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    /// The name of the effective user id from the password database, as libpq does
    /// (`USER`/`LOGNAME` are not trusted: cron and systemd often leave them unset).
    fn os_user(&self) -> Option<String> {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .or_else(|| std::env::var("USER").ok().filter(|v| !v.is_empty()))
    }
}

fn service_files(env: &dyn Environment) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = env.var("PGSERVICEFILE") {
        files.push(PathBuf::from(f));
    } else if let Some(home) = env.var("HOME") {
        files.push(Path::new(&home).join(".pg_service.conf"));
    }
    let sysconf = env
        .var("PGSYSCONFDIR")
        .unwrap_or_else(|| "/etc/postgresql-common".into());
    files.push(Path::new(&sysconf).join("pg_service.conf"));
    files
}

fn lookup_service(
    name: &str,
    env: &dyn Environment,
) -> Result<BTreeMap<String, String>, ConninfoError> {
    let files = service_files(env);
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let mut in_section = false;
        let mut found = false;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(sec) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if found {
                    break;
                }
                in_section = sec == name;
                found = in_section;
                continue;
            }
            if in_section && let Some((k, v)) = l.split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        if found {
            return Ok(out);
        }
    }
    Err(ConninfoError::Service {
        name: name.to_string(),
        files: files
            .iter()
            .map(|f| format!("`{}`", f.display()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Looks a password up in a `.pgpass` file: `host:port:db:user:password`, `*` matches
/// anything, `\` escapes `:` and `\`. A file readable by group or others is ignored with a
/// warning, as libpq does. A Unix-socket host matches `localhost`.
pub fn pgpass_lookup(
    file: &Path,
    host: &Host,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<Password> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file `{}` has group or world access; permissions should be u=rw (0600) or less; ignoring it",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host_name = match host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(_) => "localhost".into(),
    };
    let port = port.to_string();
    let wanted = [host_name.as_str(), port.as_str(), dbname, user];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<String> = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        fields.last_mut()?.push(n);
                    }
                }
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields.last_mut()?.push(c),
            }
        }
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(Password(fields[4].clone()));
        }
    }
    None
}

fn value_err(key: &str, value: &str, expected: &str) -> ConninfoError {
    ConninfoError::Value {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// Resolves `conninfo` with the service file, the environment and defaults.
pub fn resolve(conninfo: &str, env: &dyn Environment) -> Result<ConnParams, ConninfoError> {
    let mut map = parse(conninfo)?;
    // Service entries fill what the string left unset.
    if let Some(service) = map.get("service").cloned().or_else(|| env.var("PGSERVICE")) {
        for (k, v) in lookup_service(&service, env)? {
            if !KEYWORDS.contains(&k.as_str()) {
                return Err(ConninfoError::UnknownKey(k));
            }
            map.entry(k).or_insert(v);
        }
    }
    for (var, key) in ENV {
        if let Some(v) = env.var(var) {
            map.entry((*key).to_string()).or_insert(v);
        }
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();

    let user = get("user")
        .or_else(|| env.os_user())
        .ok_or_else(|| value_err("user", "", "a role name (no PGUSER and no OS user name)"))?;
    let dbname = get("dbname").unwrap_or_else(|| user.clone());

    let default_socket = ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .unwrap_or("/tmp");
    let host_list: Vec<String> = match get("hostaddr").or_else(|| get("host")) {
        Some(h) => h.split(',').map(|s| s.trim().to_string()).collect(),
        None => vec![default_socket.to_string()],
    };
    let port_text = get("port").unwrap_or_else(|| "5432".into());
    let ports: Vec<u16> = port_text
        .split(',')
        .map(|p| {
            let p = p.trim();
            if p.is_empty() {
                Ok(5432)
            } else {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| value_err("port", p, "a port number from 1 to 65535"))
            }
        })
        .collect::<Result<_, _>>()?;
    if ports.len() != 1 && ports.len() != host_list.len() {
        return Err(value_err(
            "port",
            &port_text,
            &format!("one port, or one per host ({} hosts)", host_list.len()),
        ));
    }
    let hosts: Vec<(Host, u16)> = host_list
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = if ports.len() == 1 { ports[0] } else { ports[i] };
            let host = if h.is_empty() {
                Host::Unix(PathBuf::from(default_socket))
            } else if h.starts_with('/') || h.starts_with('@') {
                Host::Unix(PathBuf::from(h))
            } else {
                Host::Tcp(h.clone())
            };
            (host, port)
        })
        .collect();

    let sslmode = match get("sslmode").as_deref().unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(value_err(
                "sslmode",
                other,
                "disable, allow, prefer, require, verify-ca or verify-full",
            ));
        }
    };
    let channel_binding = match get("channel_binding").as_deref().unwrap_or("prefer") {
        "disable" => ChannelBinding::Disable,
        "prefer" => ChannelBinding::Prefer,
        "require" => ChannelBinding::Require,
        other => {
            return Err(value_err(
                "channel_binding",
                other,
                "disable, prefer or require",
            ));
        }
    };
    let connect_timeout = match get("connect_timeout") {
        None => None,
        Some(t) => {
            let secs: i64 = t
                .parse()
                .map_err(|_| value_err("connect_timeout", &t, "a number of seconds"))?;
            // libpq: 0 or negative = wait forever; 1 is raised to 2.
            (secs > 0).then(|| std::time::Duration::from_secs(secs.max(2) as u64))
        }
    };
    let keepalives = get("keepalives").is_none_or(|v| v != "0");
    let home = env.var("HOME");
    let path_or_home = |key: &str, default: &str| -> Option<PathBuf> {
        get(key).map(PathBuf::from).or_else(|| {
            home.as_ref()
                .map(|h| Path::new(h).join(".postgresql").join(default))
        })
    };

    let replication = get("replication");
    let mut password = map.get("password").cloned().map(Password);
    if password.is_none() {
        let passfile = get("passfile")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| Path::new(h).join(".pgpass")));
        if let Some(file) = passfile {
            // Physical replication connections match the `replication` database, as libpq
            // does for pg_basebackup and pg_receivewal.
            let db = if replication.as_deref().is_some_and(|r| r != "database") {
                "replication"
            } else {
                dbname.as_str()
            };
            let (h, p) = &hosts[0];
            password = pgpass_lookup(&file, h, *p, db, &user);
        }
    }

    Ok(ConnParams {
        hosts,
        user,
        dbname,
        password,
        sslmode,
        sslrootcert: path_or_home("sslrootcert", "root.crt"),
        sslcert: path_or_home("sslcert", "postgresql.crt"),
        sslkey: path_or_home("sslkey", "postgresql.key"),
        channel_binding,
        connect_timeout,
        application_name: get("application_name").or_else(|| get("fallback_application_name")),
        options: get("options"),
        keepalives,
        replication,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn redaction_hides_exactly_what_parse_reads_as_the_password() {
        for (text, shown) in [
            (
                "host=db password=s3cret user=x",
                "host=db password=******** user=x",
            ),
            (
                "host=db password = 'it\\'s a secret' user=x",
                "host=db password = ******** user=x",
            ),
            ("password=a\\ b host=db", "password=******** host=db"),
            (
                "postgresql://u:s3cret@db:5432/app?sslmode=require",
                "postgresql://u:********@db:5432/app?sslmode=require",
            ),
            // A percent-encoded key is still the password for the parser.
            (
                "postgresql://db/app?pass%77ord=s3cret",
                "postgresql://db/app?pass%77ord=********",
            ),
            ("host=db 'password", "host= ********"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
            if let Ok(m) = parse(text)
                && let Some(pw) = m.get("password")
            {
                assert!(!redact(text).contains(pw.as_str()), "{text}");
            }
        }
    }

    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, String>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn os_user(&self) -> Option<String> {
            Some("osuser".into())
        }
    }
    fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn key_value_strings() {
        let m = parse("host=db1 port = 5433 password='a b\\'c' dbname=x\\ y").expect("parses");
        assert_eq!(m["host"], "db1");
        assert_eq!(m["port"], "5433");
        assert_eq!(m["password"], "a b'c");
        assert_eq!(m["dbname"], "x y");
        assert!(
            matches!(parse("host=a bogus=1"), Err(ConninfoError::UnknownKey(k)) if k == "bogus")
        );
        assert!(parse("host").is_err());
        assert!(parse("password='open").is_err());
    }

    #[test]
    fn uris() {
        let m = parse("postgresql://us%40er:p%3Aw@[::1]:5433,db2:6000/my%20db?sslmode=require&application_name=bk")
            .expect("parses");
        assert_eq!(m["user"], "us@er");
        assert_eq!(m["password"], "p:w");
        assert_eq!(m["host"], "::1,db2");
        assert_eq!(m["port"], "5433,6000");
        assert_eq!(m["dbname"], "my db");
        assert_eq!(m["sslmode"], "require");
        let m = parse("postgres://%2Fvar%2Frun%2Fpostgresql/db").expect("parses");
        assert_eq!(m["host"], "/var/run/postgresql");
    }

    #[test]
    fn precedence_string_then_env_then_defaults() {
        let e = env(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
        ]);
        let p = resolve("host=strhost", &e).expect("resolves");
        assert_eq!(p.hosts, vec![(Host::Tcp("strhost".into()), 7000)]);
        assert_eq!(p.user, "envuser");
        assert_eq!(p.dbname, "envuser");
        assert_eq!(p.sslmode, SslMode::Prefer);
        let p = resolve("host=/tmp/sock user=u", &env(&[])).expect("resolves");
        assert_eq!(p.hosts, vec![(Host::Unix("/tmp/sock".into()), 5432)]);
        assert!(resolve("sslmode=sometimes", &env(&[])).is_err());
        assert!(resolve("host=a,b,c port=1,2", &env(&[])).is_err());
        let p = resolve("host=a,b port=1,2 connect_timeout=1", &env(&[])).expect("multi");
        assert_eq!(p.hosts[1], (Host::Tcp("b".into()), 2));
        assert_eq!(p.connect_timeout, Some(std::time::Duration::from_secs(2)));
    }

    #[test]
    fn pgpass_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:5432:*:u:nope\nlocalhost:5432:replication:u:repl\n*:*:*:u:any\\:thing\n",
        )
        .expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let sock = Host::Unix("/tmp".into());
        assert_eq!(
            pgpass_lookup(&f, &sock, 5432, "replication", "u").map(|p| p.0),
            Some("repl".into())
        );
        assert_eq!(
            pgpass_lookup(&f, &Host::Tcp("h".into()), 1, "db", "u").map(|p| p.0),
            Some("any:thing".into())
        );
        assert!(pgpass_lookup(&f, &sock, 5432, "db", "nobody").is_none());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            pgpass_lookup(&f, &sock, 5432, "replication", "u").is_none(),
            "world-readable file used"
        );

        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = env(&[("PGPASSFILE", f.to_str().expect("utf8"))]);
        let p = resolve("host=/tmp user=u replication=true", &e).expect("resolves");
        assert_eq!(p.password.as_ref().map(Password::expose), Some("repl"));
        assert_eq!(format!("{:?}", p.password), "Some(Password(********))");
    }

    #[test]
    fn services() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("svc.conf");
        std::fs::write(
            &f,
            "[main]\nhost=svchost\nport=6543\ndbname=svcdb\n[other]\nhost=x\n",
        )
        .expect("write");
        let e = env(&[("PGSERVICEFILE", f.to_str().expect("utf8"))]);
        let p = resolve("service=main dbname=mine", &e).expect("resolves");
        assert_eq!(p.hosts, vec![(Host::Tcp("svchost".into()), 6543)]);
        assert_eq!(p.dbname, "mine", "the string wins over the service");
        let err = resolve("service=missing", &e).expect_err("missing service");
        assert!(err.to_string().contains("`missing`"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse(&s);
        }

        #[test]
        fn quoted_values_round_trip(v in "[^\0]*") {
            let quoted = format!("password='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
            let m = parse(&quoted).expect("parses");
            proptest::prop_assert_eq!(&m["password"], &v);
        }
    }
}
