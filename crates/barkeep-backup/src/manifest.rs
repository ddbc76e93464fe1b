//! `backup_manifest`: parsing (never re-serialising: it is stored byte for byte) and
//! native verification of a plain backup against it — the manifest's own SHA-256, then
//! every file's presence, size and checksum.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::error::{BackupError, Result};

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path relative to the data directory (`pg_tblspc/<oid>/…` for tablespaces).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// `CRC32C`, `SHA256`… (`None` when the manifest has no checksums).
    pub algorithm: Option<String>,
    /// Lower-case hex checksum.
    pub checksum: Option<String>,
}

/// A parsed manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Files by path.
    pub files: BTreeMap<String, ManifestFile>,
    /// `Manifest-Checksum`.
    pub checksum: String,
    /// Whether the stored checksum matches the content.
    pub checksum_ok: bool,
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// The manifest checksum: SHA-256 of everything up to the last line.
fn compute_checksum(bytes: &[u8]) -> Option<String> {
    let body = bytes.strip_suffix(b"\n")?;
    let last_nl = body.iter().rposition(|b| *b == b'\n')?;
    Some(
        sha2::Sha256::digest(&bytes[..=last_nl])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl Manifest {
    /// Parses manifest bytes.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Manifest> {
        let bad = |why: String| BackupError::Verify(format!("`{}`: {why}", origin.display()));
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a backup manifest: {e}")))?;
        let checksum = v["Manifest-Checksum"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let checksum_ok = compute_checksum(bytes).is_some_and(|c| c == checksum);
        let mut files = BTreeMap::new();
        for f in v["Files"]
            .as_array()
            .ok_or_else(|| bad("no `Files` list".into()))?
        {
            let path = match (f["Path"].as_str(), f["Encoded-Path"].as_str()) {
                (Some(p), _) => p.to_string(),
                (None, Some(e)) => String::from_utf8_lossy(
                    &hex_decode(e).ok_or_else(|| bad(format!("bad Encoded-Path {e}")))?,
                )
                .into_owned(),
                _ => return Err(bad("a file entry without Path".into())),
            };
            let size = f["Size"]
                .as_u64()
                .ok_or_else(|| bad(format!("`{path}` has no Size")))?;
            files.insert(
                path.clone(),
                ManifestFile {
                    path,
                    size,
                    algorithm: f["Checksum-Algorithm"].as_str().map(str::to_string),
                    checksum: f["Checksum"].as_str().map(str::to_ascii_lowercase),
                },
            );
        }
        Ok(Manifest {
            files,
            checksum,
            checksum_ok,
        })
    }

    /// Loads `backup_manifest`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path).map_err(|e| BackupError::io("read", path, e))?;
        Manifest::parse(&bytes, path)
    }
}

/// A running file checksum of a manifest algorithm.
#[derive(Debug)]
pub enum Hasher {
    /// CRC-32C, written as the little-endian bytes in hex (the server's native order).
    Crc32c(u32),
    /// SHA-224.
    Sha224(sha2::Sha224),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// For a manifest algorithm name.
    pub fn new(algorithm: &str) -> Option<Hasher> {
        Some(match algorithm {
            "CRC32C" => Hasher::Crc32c(0),
            "SHA224" => Hasher::Sha224(sha2::Sha224::new()),
            "SHA256" => Hasher::Sha256(sha2::Sha256::new()),
            "SHA384" => Hasher::Sha384(sha2::Sha384::new()),
            "SHA512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    /// The checksum as the manifest writes it.
    pub fn finish(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Crc32c(c) => c.to_le_bytes().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Files pg_verifybackup ignores in the data directory.
const IGNORED: &[&str] = &[
    "backup_manifest",
    "postgresql.auto.conf",
    "recovery.signal",
    "standby.signal",
];

/// Verifies a plain backup: `data` is the data directory holding `backup_manifest`
/// (tablespaces reached through `pg_tblspc/<oid>` links). Returns the list of problems,
/// each naming the file; empty when the backup is intact.
pub fn verify_plain(data: &Path) -> Result<Vec<String>> {
    let manifest = Manifest::load(&data.join("backup_manifest"))?;
    let mut problems = Vec::new();
    if !manifest.checksum_ok {
        problems
            .push("backup_manifest: the manifest checksum does not match its content".to_string());
    }
    // Every file on disk must be in the manifest.
    let mut seen = std::collections::BTreeSet::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(data.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| BackupError::io("list", &dir, e))?;
        for e in rd {
            let e = e.map_err(|e| BackupError::io("list", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let relp = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if relp == "pg_wal" || (rel.is_empty() && IGNORED.contains(&name.as_str())) {
                continue;
            }
            let meta = std::fs::metadata(e.path())
                .map_err(|err| BackupError::io("stat", e.path(), err))?;
            if meta.is_dir() {
                stack.push((e.path(), relp));
            } else if !manifest.files.contains_key(&relp) {
                problems.push(format!(
                    "{relp}: present on disk but not in the backup manifest"
                ));
            } else {
                seen.insert(relp);
            }
        }
    }
    for f in manifest.files.values() {
        if IGNORED.contains(&f.path.as_str()) || f.path.starts_with("pg_wal/") {
            continue;
        }
        if !seen.contains(&f.path) {
            problems.push(format!("{}: in the backup manifest but missing", f.path));
            continue;
        }
        let path = data.join(&f.path);
        let size = std::fs::metadata(&path)
            .map_err(|e| BackupError::io("stat", &path, e))?
            .len();
        if size != f.size {
            problems.push(format!(
                "{}: size {size}, the manifest says {}",
                f.path, f.size
            ));
            continue;
        }
        if let (Some(alg), Some(want)) = (&f.algorithm, &f.checksum) {
            let Some(mut h) = Hasher::new(alg) else {
                problems.push(format!("{}: unknown checksum algorithm {alg}", f.path));
                continue;
            };
            let mut file =
                std::fs::File::open(&path).map_err(|e| BackupError::io("open", &path, e))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| BackupError::io("read", &path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let got = h.finish();
            if &got != want {
                problems.push(format!(
                    "{}: checksum mismatch ({alg} {got}, the manifest says {want})",
                    f.path
                ));
            }
        }
    }
    problems.extend(control_file_problem(data));
    Ok(problems)
}

/// `global/pg_control` against `backup_label`: a CRC-32C cannot tell two control files
/// apart (each ends with the CRC of what precedes it, so the whole file always has the
/// same CRC-32C, and a manifest check passes for any valid one), so the checkpoint it
/// records must be at least the backup's checkpoint — a control file from an older
/// backup makes PostgreSQL fail with "could not locate required checkpoint record".
/// Layout (ControlFileData, every major since 9.x): system identifier at 0, checkpoint
/// LSN at 32.
pub fn control_file_problem(data: &Path) -> Option<String> {
    let label = std::fs::read_to_string(data.join("backup_label")).ok()?;
    let control = std::fs::read(data.join("global/pg_control")).ok()?;
    if control.len() < 40 {
        return Some(format!(
            "global/pg_control: {} bytes, too short",
            control.len()
        ));
    }
    let checkpoint = u64::from_le_bytes(control[32..40].try_into().ok()?);
    let wanted = label
        .lines()
        .find_map(|l| l.strip_prefix("CHECKPOINT LOCATION: "))
        .and_then(|v| v.trim().parse::<barkeep_wal::Lsn>().ok())?;
    (checkpoint < wanted.0).then(|| {
        format!(
            "global/pg_control: its checkpoint {} is older than the backup's checkpoint {wanted} (backup_label): it is the control file of an earlier backup",
            barkeep_wal::Lsn(checkpoint)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_in_the_servers_byte_order() {
        // CRC-32C 0xFB0D613F is written "3f610dfb" (reference §4.1); check the encoding
        // with the standard check value of "123456789" (0xE3069283).
        let mut h = Hasher::new("CRC32C").expect("crc");
        h.update(b"123456789");
        assert_eq!(h.finish(), "839206e3");
    }

    #[test]
    fn manifest_checksum_covers_all_but_the_last_line() {
        let body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{ \"Path\": \"a\", \"Size\": 1, \"Last-Modified\": \"2026-11-24 16:21:43 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"00000000\" }\n],\n";
        let sum: String = sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = format!("{body}\"Manifest-Checksum\": \"{sum}\"}}\n");
        let m = Manifest::parse(text.as_bytes(), Path::new("m")).expect("parse");
        assert!(m.checksum_ok);
        assert_eq!(m.files["a"].size, 1);
        let tampered = text.replace("\"Size\": 1", "\"Size\": 2");
        assert!(
            !Manifest::parse(tampered.as_bytes(), Path::new("m"))
                .expect("parse")
                .checksum_ok
        );
    }
}
