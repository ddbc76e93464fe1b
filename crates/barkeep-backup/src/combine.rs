//! Combining a PostgreSQL 17+ incremental chain natively — what `pg_combinebackup` does,
//! with its rules (protocol reference §5):
//!
//! - the chain is checked first, before anything is written: the first backup is full,
//!   each later one is incremental to the one before it (its `backup_label`'s
//!   `INCREMENTAL FROM LSN/TLI` equal the previous backup's start), every manifest is
//!   intact and names the same system;
//! - the newest backup's manifest lists the output's files. A file stored whole is copied
//!   from the newest backup (its CRC-32C checked against that manifest on the way); an
//!   `INCREMENTAL.<name>` file is rebuilt as `<name>`: its own blocks, then for the blocks
//!   below its truncation length the newest older backup holding them (an older
//!   incremental file's blocks, or the full file, where the search stops); blocks no
//!   backup holds are zeros. The length is the larger of the truncation length and the
//!   last block present plus one;
//! - `backup_label` is the newest one without its `INCREMENTAL FROM` lines, and a new
//!   `backup_manifest` (CRC-32C, the newest backup's WAL ranges) describes the result, so
//!   `pg_verifybackup` checks it as a full backup.
//!
//! Every file is fsynced; reads are positioned, memory is bounded by a block map per file
//! being rebuilt (at most 131072 entries: one relation segment).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{BackupError, Result};
use crate::manifest::{Hasher, Manifest};

/// PostgreSQL's block size.
const BLCKSZ: u64 = 8192;
/// Blocks in a relation segment (1 GiB of 8 KB blocks): the bound of block numbers.
const RELSEG_SIZE: u32 = 131_072;
/// The first four bytes of an `INCREMENTAL.*` file (host byte order).
const INCREMENTAL_MAGIC: u32 = 0xD3AE_1F0D;

/// One backup of a chain, as stored.
#[derive(Debug, Clone)]
pub struct ChainBackup {
    /// Its id (for messages).
    pub id: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its tablespace directories by OID.
    pub tablespaces: BTreeMap<u32, PathBuf>,
}

impl ChainBackup {
    /// Where a manifest path is in this backup.
    fn path_of(&self, mpath: &str) -> Result<PathBuf> {
        map_path(&self.data_dir, &self.tablespaces, mpath).ok_or_else(|| {
            BackupError::Catalog(format!(
                "backup {}: `{mpath}` is in a tablespace the backup does not have",
                self.id
            ))
        })
    }
}

/// Where a manifest path (`pg_tblspc/<oid>/…` for a tablespace's files) is in a backup
/// stored as a data directory and one directory per tablespace.
pub(crate) fn map_path(data: &Path, ts: &BTreeMap<u32, PathBuf>, mpath: &str) -> Option<PathBuf> {
    if let Some(rest) = mpath.strip_prefix("pg_tblspc/")
        && let Some((oid, inner)) = rest.split_once('/')
        && let Ok(oid) = oid.parse::<u32>()
    {
        return ts.get(&oid).map(|d| d.join(inner));
    }
    Some(data.join(mpath))
}

/// Where the combined backup goes.
#[derive(Debug, Clone)]
pub struct CombineTarget {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Each tablespace's directory by OID.
    pub tablespaces: BTreeMap<u32, PathBuf>,
    /// Manifest paths not written (listed in the new manifest all the same): the restore
    /// writes `global/pg_control` itself, last.
    pub skip: Vec<String>,
    /// Copy threads.
    pub jobs: usize,
    /// Called with (bytes written, bytes to write).
    pub progress: Option<crate::take::ProgressFn>,
}

/// What a combine wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Combined {
    /// Files written (copied or rebuilt).
    pub files: u64,
    /// Of which rebuilt from incremental files.
    pub reconstructed: u64,
    /// Bytes of the combined backup.
    pub bytes: u64,
}

/// What a `backup_label` says about the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Label {
    start_lsn: String,
    start_tli: String,
    from_lsn: Option<String>,
    from_tli: Option<String>,
}

fn parse_label(text: &str) -> Label {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    Label {
        start_lsn: field("START WAL LOCATION:")
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
        start_tli: field("START TIMELINE:").unwrap_or_default(),
        from_lsn: field("INCREMENTAL FROM LSN:"),
        from_tli: field("INCREMENTAL FROM TLI:"),
    }
}

/// `backup_label` without the lines that make it an incremental backup's.
pub fn full_label(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.starts_with("INCREMENTAL FROM LSN:") && !l.starts_with("INCREMENTAL FROM TLI:")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn read_text(path: &Path, what: &str, id: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| {
        BackupError::Catalog(format!(
            "backup {id}: cannot read its {what} `{}`: {e}",
            path.display()
        ))
    })
}

/// The parsed manifests of a chain, oldest first, once the chain is known to be whole.
struct Checked {
    manifests: Vec<Manifest>,
    newest_raw: serde_json::Value,
    newest_label: String,
}

/// Checks that `chain` (oldest first) is a chain pg_combinebackup would accept, before
/// anything is written; the error names the backup and what is wrong.
pub fn check_chain(chain: &[ChainBackup]) -> Result<()> {
    check(chain).map(|_| ())
}

fn check(chain: &[ChainBackup]) -> Result<Checked> {
    let Some(newest) = chain.last() else {
        return Err(BackupError::Catalog("an empty backup chain".into()));
    };
    let mut manifests = Vec::new();
    let mut labels = Vec::new();
    let mut systems = Vec::new();
    let mut newest_raw = serde_json::Value::Null;
    let mut newest_label = String::new();
    for b in chain {
        let mpath = b.data_dir.join("backup_manifest");
        let bytes = read_text(&mpath, "manifest", &b.id)?;
        let m = Manifest::parse(&bytes, &mpath)?;
        if !m.checksum_ok {
            return Err(BackupError::Verify(format!(
                "backup {}: the checksum of `{}` does not match its content",
                b.id,
                mpath.display()
            )));
        }
        let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            BackupError::Verify(format!("`{}`: not a backup manifest: {e}", mpath.display()))
        })?;
        systems.push(raw["System-Identifier"].as_u64());
        let lpath = b.data_dir.join("backup_label");
        let label =
            String::from_utf8_lossy(&read_text(&lpath, "backup_label", &b.id)?).into_owned();
        labels.push(parse_label(&label));
        if b.id == newest.id {
            newest_raw = raw;
            newest_label = label;
        }
        manifests.push(m);
    }
    for (i, (b, l)) in chain.iter().zip(&labels).enumerate() {
        if i == 0 {
            if l.from_lsn.is_some() {
                return Err(BackupError::Catalog(format!(
                    "backup {} is incremental (its backup_label has INCREMENTAL FROM LSN {}), but it is the first of the chain: its parent is missing",
                    b.id,
                    l.from_lsn.as_deref().unwrap_or_default()
                )));
            }
            continue;
        }
        let prev = &labels[i - 1];
        let pid = &chain[i - 1].id;
        match (&l.from_lsn, &l.from_tli) {
            (Some(lsn), Some(tli)) if *lsn == prev.start_lsn && *tli == prev.start_tli => {}
            (Some(lsn), tli) => {
                return Err(BackupError::Catalog(format!(
                    "backup {} is incremental to the backup that started at {lsn} on timeline {}, but its parent {pid} started at {} on timeline {}: the chain is broken",
                    b.id,
                    tli.as_deref().unwrap_or("?"),
                    prev.start_lsn,
                    prev.start_tli
                )));
            }
            (None, _) => {
                return Err(BackupError::Catalog(format!(
                    "backup {} is a full backup (its backup_label has no INCREMENTAL FROM LSN), not an incremental one of {pid}",
                    b.id
                )));
            }
        }
        if systems[i] != systems[0] {
            return Err(BackupError::Catalog(format!(
                "backup {} is of system {:?}, but {} of system {:?}: not one chain",
                b.id, systems[i], chain[0].id, systems[0]
            )));
        }
    }
    Ok(Checked {
        manifests,
        newest_raw,
        newest_label,
    })
}

/// An `INCREMENTAL.*` file: its header, read and checked.
struct Incremental {
    file: File,
    path: PathBuf,
    header_len: u64,
    blocks: Vec<u32>,
    truncation: u32,
}

fn bad_incremental(path: &Path, why: String) -> BackupError {
    BackupError::Verify(format!(
        "`{}` is not a valid incremental file: {why}",
        path.display()
    ))
}

fn open_incremental(path: &Path) -> Result<Incremental> {
    let mut file = File::open(path).map_err(|e| BackupError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| BackupError::io("stat", path, e))?
        .len();
    let mut head = [0u8; 12];
    file.read_exact(&mut head)
        .map_err(|e| bad_incremental(path, format!("its 12-byte header cannot be read ({e})")))?;
    let word = |i: usize| u32::from_ne_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (magic, count, truncation) = (word(0), word(4), word(8));
    if magic != INCREMENTAL_MAGIC {
        return Err(bad_incremental(
            path,
            format!("magic number 0x{magic:08X}, expected 0x{INCREMENTAL_MAGIC:08X}"),
        ));
    }
    if count > RELSEG_SIZE {
        return Err(bad_incremental(
            path,
            format!("block count {count} exceeds the segment size {RELSEG_SIZE}"),
        ));
    }
    if truncation > RELSEG_SIZE {
        return Err(bad_incremental(
            path,
            format!("truncation length {truncation} exceeds the segment size {RELSEG_SIZE}"),
        ));
    }
    let mut raw = vec![0u8; count as usize * 4];
    file.read_exact(&mut raw).map_err(|e| {
        bad_incremental(
            path,
            format!("its {count} block numbers cannot be read ({e})"),
        )
    })?;
    let blocks: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(b) = blocks.iter().find(|b| **b >= RELSEG_SIZE) {
        return Err(bad_incremental(
            path,
            format!("block number {b} is beyond the segment size {RELSEG_SIZE}"),
        ));
    }
    if blocks.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad_incremental(
            path,
            "block numbers are not ascending".into(),
        ));
    }
    let mut header_len = 12 + 4 * u64::from(count);
    // Block images start at a block boundary, when there are any.
    if count > 0 && header_len % BLCKSZ != 0 {
        header_len += BLCKSZ - header_len % BLCKSZ;
    }
    let expected = header_len + u64::from(count) * BLCKSZ;
    if count > 0 && len != expected || count == 0 && len < header_len {
        return Err(bad_incremental(
            path,
            format!("{len} bytes, expected {expected} for {count} blocks"),
        ));
    }
    Ok(Incremental {
        file,
        path: path.to_path_buf(),
        header_len,
        blocks,
        truncation,
    })
}

/// Where one output block comes from: a source (index into the opened files) and offset.
#[derive(Clone, Copy)]
struct Src {
    file: u16,
    offset: u64,
}

/// Rebuilds `<dir>/<bare>` from the newest backup's `INCREMENTAL.<bare>` and the older
/// backups, writing `out`. Returns (size, CRC-32C).
fn reconstruct(chain: &[ChainBackup], mpath_bare: &str, out: &Path) -> Result<(u64, String)> {
    let newest = chain.len() - 1;
    let (dir, bare) = match mpath_bare.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), mpath_bare),
    };
    let inc_name = format!("{dir}INCREMENTAL.{bare}");
    let latest = open_incremental(&chain[newest].path_of(&inc_name)?)?;
    let mut length = latest.truncation;
    for b in &latest.blocks {
        length = length.max(b + 1);
    }
    let mut map: Vec<Option<Src>> = vec![None; length as usize];
    let mut files: Vec<(File, PathBuf)> = Vec::new();
    for (i, b) in latest.blocks.iter().enumerate() {
        map[*b as usize] = Some(Src {
            file: 0,
            offset: latest.header_len + i as u64 * BLCKSZ,
        });
    }
    let limit = latest.truncation;
    files.push((latest.file, latest.path));
    for sidx in (0..newest).rev() {
        let full = chain[sidx].path_of(mpath_bare)?;
        match File::open(&full) {
            Ok(f) => {
                let blocks = f
                    .metadata()
                    .map_err(|e| BackupError::io("stat", &full, e))?
                    .len()
                    / BLCKSZ;
                let fi = files.len() as u16;
                for b in 0..u64::from(limit).min(blocks) {
                    let slot = &mut map[b as usize];
                    if slot.is_none() {
                        *slot = Some(Src {
                            file: fi,
                            offset: b * BLCKSZ,
                        });
                    }
                }
                files.push((f, full));
                // A full file ends the search.
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io("open", &full, e)),
        }
        let inc_path = chain[sidx].path_of(&inc_name)?;
        if !inc_path.exists() {
            return Err(BackupError::Catalog(format!(
                "backup {} has neither `{mpath_bare}` nor `{inc_name}`, which backup {} needs to rebuild `{mpath_bare}`: the chain is damaged",
                chain[sidx].id, chain[newest].id
            )));
        }
        let inc = open_incremental(&inc_path)?;
        let fi = files.len() as u16;
        for (i, b) in inc.blocks.iter().enumerate() {
            if *b < limit {
                let slot = &mut map[*b as usize];
                if slot.is_none() {
                    *slot = Some(Src {
                        file: fi,
                        offset: inc.header_len + i as u64 * BLCKSZ,
                    });
                }
            }
        }
        files.push((inc.file, inc.path));
    }

    let f = create_output(out)?;
    let mut w = io::BufWriter::with_capacity(256 * 1024, f);
    let mut h = Hasher::new("CRC32C").ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
    let mut block = vec![0u8; BLCKSZ as usize];
    for src in &map {
        match src {
            None => block.fill(0),
            Some(s) => {
                let (f, p) = &files[s.file as usize];
                f.read_exact_at(&mut block, s.offset).map_err(|e| {
                    BackupError::io(
                        format!("read a block at offset {} of", s.offset),
                        p.clone(),
                        e,
                    )
                })?;
            }
        }
        h.update(&block);
        w.write_all(&block)
            .map_err(|e| BackupError::io("write", out, e))?;
    }
    let f = w
        .into_inner()
        .map_err(|e| BackupError::io("write", out, e.into_error()))?;
    f.sync_all().map_err(|e| BackupError::io("fsync", out, e))?;
    Ok((u64::from(length) * BLCKSZ, h.finish()))
}

fn create_output(out: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(barkeep_archive::durable::file_mode())
        .open(out)
        .map_err(|e| BackupError::io("create", out, e))
}

/// Copies a file stored whole, checking it against the manifest on the way.
fn copy_checked(
    from: &Path,
    out: &Path,
    expect: &crate::manifest::ManifestFile,
) -> Result<(u64, String)> {
    let mut src = File::open(from).map_err(|e| BackupError::io("open", from, e))?;
    let f = create_output(out)?;
    let mut w = io::BufWriter::with_capacity(256 * 1024, f);
    let mut h = Hasher::new("CRC32C").ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| BackupError::io("read", from, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        w.write_all(&buf[..n])
            .map_err(|e| BackupError::io("write", out, e))?;
        size += n as u64;
    }
    let f = w
        .into_inner()
        .map_err(|e| BackupError::io("write", out, e.into_error()))?;
    f.sync_all().map_err(|e| BackupError::io("fsync", out, e))?;
    let crc = h.finish();
    if size != expect.size
        || (expect.algorithm.as_deref() == Some("CRC32C")
            && expect.checksum.as_deref() != Some(crc.as_str()))
    {
        return Err(BackupError::Verify(format!(
            "`{}` is damaged: {size} bytes with CRC32C {crc}, its manifest says {} bytes, {:?}",
            from.display(),
            expect.size,
            expect.checksum
        )));
    }
    Ok((size, crc))
}

/// One file of the combined backup, for its manifest.
struct OutFile {
    path: String,
    size: u64,
    modified: String,
    crc: String,
}

/// Combines `chain` (oldest first: a full backup and its incrementals) into `target`.
pub fn combine(chain: &[ChainBackup], target: &CombineTarget) -> Result<Combined> {
    let checked = check(chain)?;
    let newest = chain.last().expect("checked: not empty");
    let manifest = checked.manifests.last().expect("checked: not empty");

    // Directories, as the newest backup has them (empty ones included).
    let mut dirs = vec![(newest.data_dir.clone(), target.data_dir.clone())];
    for (oid, d) in &newest.tablespaces {
        let to = target.tablespaces.get(oid).ok_or_else(|| {
            BackupError::Other(format!(
                "tablespace {oid} of backup {} has no destination",
                newest.id
            ))
        })?;
        dirs.push((d.clone(), to.clone()));
    }
    while let Some((s, d)) = dirs.pop() {
        fs::create_dir_all(&d).map_err(|e| BackupError::io("create directory", &d, e))?;
        let _ = fs::set_permissions(
            &d,
            fs::Permissions::from_mode(barkeep_archive::durable::dir_mode()),
        );
        for e in fs::read_dir(&s)
            .map_err(|e| BackupError::io("list", &s, e))?
            .flatten()
        {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((e.path(), d.join(e.file_name())));
            }
        }
    }

    // Last-Modified of each file, from the newest manifest.
    let modified: BTreeMap<String, String> = checked.newest_raw["Files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f["Path"].as_str()?.to_string(),
                f["Last-Modified"].as_str()?.to_string(),
            ))
        })
        .collect();
    let total: u64 = manifest.files.values().map(|f| f.size).sum();
    let done = std::sync::atomic::AtomicU64::new(0);
    let reconstructed = std::sync::atomic::AtomicU64::new(0);
    let work: Vec<&crate::manifest::ManifestFile> = manifest.files.values().collect();
    let one = |f: &&crate::manifest::ManifestFile| -> Result<OutFile> {
        let (dir, name) = match f.path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), f.path.as_str()),
        };
        let bare = name
            .strip_prefix("INCREMENTAL.")
            .map(|b| format!("{dir}{b}"));
        let out_path = bare.clone().unwrap_or_else(|| f.path.clone());
        let out = map_path(&target.data_dir, &target.tablespaces, &out_path).ok_or_else(|| {
            BackupError::Other(format!(
                "`{out_path}` is in a tablespace with no destination"
            ))
        })?;
        let (size, crc) = if let Some(bare) = &bare {
            reconstructed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if target.skip.contains(bare) {
                return Err(BackupError::Other(format!(
                    "`{bare}` cannot be skipped: it is incremental"
                )));
            }
            reconstruct(chain, bare, &out)?
        } else if f.path == "backup_label" {
            let text = full_label(&checked.newest_label);
            let mut file = create_output(&out)?;
            file.write_all(text.as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| BackupError::io("write", &out, e))?;
            let mut h =
                Hasher::new("CRC32C").ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
            h.update(text.as_bytes());
            (text.len() as u64, h.finish())
        } else if target.skip.contains(&f.path) {
            let crc = match (f.algorithm.as_deref(), &f.checksum) {
                (Some("CRC32C"), Some(c)) => c.clone(),
                _ => {
                    let from = newest.path_of(&f.path)?;
                    let bytes = fs::read(&from).map_err(|e| BackupError::io("read", &from, e))?;
                    let mut h = Hasher::new("CRC32C")
                        .ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
                    h.update(&bytes);
                    h.finish()
                }
            };
            (f.size, crc)
        } else {
            copy_checked(&newest.path_of(&f.path)?, &out, f)?
        };
        if let Some(p) = &target.progress {
            let now = done.fetch_add(f.size, std::sync::atomic::Ordering::Relaxed) + f.size;
            (p.0)(now, total);
        }
        Ok(OutFile {
            modified: modified.get(&f.path).cloned().unwrap_or_default(),
            path: out_path,
            size,
            crc,
        })
    };
    use rayon::prelude::*;
    let outs: Vec<OutFile> = rayon::ThreadPoolBuilder::new()
        .num_threads(target.jobs.max(1))
        .thread_name(|i| format!("combine-{i}"))
        .build()
        .map_err(|e| {
            BackupError::Other(format!("cannot start {} combine threads: {e}", target.jobs))
        })?
        .install(|| work.par_iter().map(one).collect::<Result<Vec<_>>>())?;

    write_manifest(&target.data_dir, &checked.newest_raw, &outs)?;
    crate::extract::fsync_dirs(&target.data_dir)?;
    for d in target.tablespaces.values() {
        crate::extract::fsync_dirs(d)?;
    }
    Ok(Combined {
        files: outs.len() as u64,
        reconstructed: reconstructed.into_inner(),
        bytes: outs.iter().map(|o| o.size).sum(),
    })
}

/// Writes `backup_manifest` for the combined backup: version 2, the system identifier
/// and WAL ranges of the newest backup, a CRC-32C per file, the SHA-256 of it all.
fn write_manifest(data: &Path, newest: &serde_json::Value, files: &[OutFile]) -> Result<()> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n");
    if let Some(sys) = newest["System-Identifier"].as_u64() {
        text.push_str(&format!("\"System-Identifier\": {sys},\n"));
    }
    text.push_str("\"Files\": [\n");
    let mut sorted: Vec<&OutFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let entries: Vec<String> = sorted
        .iter()
        .map(|f| {
            format!(
                "{{ \"Path\": {}, \"Size\": {}, \"Last-Modified\": {}, \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{}\" }}",
                q(&f.path),
                f.size,
                q(&f.modified),
                f.crc
            )
        })
        .collect();
    text.push_str(&entries.join(",\n"));
    text.push_str("\n],\n\"WAL-Ranges\": [\n");
    let ranges: Vec<String> = newest["WAL-Ranges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{{ \"Timeline\": {}, \"Start-LSN\": {}, \"End-LSN\": {} }}",
                r["Timeline"].as_u64().unwrap_or(0),
                q(r["Start-LSN"].as_str().unwrap_or_default()),
                q(r["End-LSN"].as_str().unwrap_or_default())
            )
        })
        .collect();
    text.push_str(&ranges.join(",\n"));
    text.push_str("\n],\n");
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    text.push_str(&format!("\"Manifest-Checksum\": \"{digest}\"}}\n"));
    barkeep_archive::durable::write_file_atomic(&data.join("backup_manifest"), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incremental(blocks: &[(u32, u8)], truncation: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&INCREMENTAL_MAGIC.to_ne_bytes());
        v.extend_from_slice(&(blocks.len() as u32).to_ne_bytes());
        v.extend_from_slice(&truncation.to_ne_bytes());
        for (b, _) in blocks {
            v.extend_from_slice(&b.to_ne_bytes());
        }
        if !blocks.is_empty() {
            v.resize(v.len().next_multiple_of(BLCKSZ as usize), 0);
        }
        for (_, fill) in blocks {
            v.extend(std::iter::repeat_n(*fill, BLCKSZ as usize));
        }
        v
    }

    fn full(fills: &[u8]) -> Vec<u8> {
        fills
            .iter()
            .flat_map(|f| std::iter::repeat_n(*f, BLCKSZ as usize))
            .collect()
    }

    fn backup(root: &Path, id: &str, files: &[(&str, Vec<u8>)]) -> ChainBackup {
        let data = root.join(id);
        for (p, bytes) in files {
            let f = data.join(p);
            fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            fs::write(f, bytes).expect("write");
        }
        ChainBackup {
            id: id.into(),
            data_dir: data,
            tablespaces: BTreeMap::new(),
        }
    }

    #[test]
    fn blocks_come_from_the_newest_backup_holding_them() {
        let d = tempfile::tempdir().expect("tempdir");
        // Full: 6 blocks 1..6. Incremental 1 changes block 2 and 4. Incremental 2 changes
        // block 4 again, truncates to 5 blocks and then extends to 8 (block 7 written,
        // 5 and 6 never written: zeros).
        let chain = vec![
            backup(
                d.path(),
                "f",
                &[("base/5/16384", full(&[1, 2, 3, 4, 5, 6]))],
            ),
            backup(
                d.path(),
                "i1",
                &[(
                    "base/5/INCREMENTAL.16384",
                    incremental(&[(2, 0x22), (4, 0x44)], 6),
                )],
            ),
            backup(
                d.path(),
                "i2",
                &[(
                    "base/5/INCREMENTAL.16384",
                    incremental(&[(4, 0x55), (7, 0x77)], 5),
                )],
            ),
        ];
        let out = d.path().join("out.bin");
        let (size, _) = reconstruct(&chain, "base/5/16384", &out).expect("rebuild");
        assert_eq!(size, 8 * BLCKSZ);
        assert_eq!(
            fs::read(&out).expect("read"),
            full(&[1, 2, 0x22, 4, 0x55, 0, 0, 0x77])
        );
    }

    #[test]
    fn damaged_incremental_files_are_refused_with_the_reason() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("INCREMENTAL.1");
        let mut bad = incremental(&[(1, 9)], 2);
        bad[0] ^= 0xff;
        fs::write(&p, &bad).expect("write");
        let e = open_incremental(&p).err().expect("bad magic").to_string();
        assert!(
            e.contains("magic number") && e.contains("INCREMENTAL.1"),
            "{e}"
        );
        let mut short = incremental(&[(1, 9)], 2);
        short.truncate(short.len() - 10);
        fs::write(&p, &short).expect("write");
        let e = open_incremental(&p).err().expect("short").to_string();
        assert!(e.contains("expected"), "{e}");
        fs::write(&p, incremental(&[(3, 1), (2, 1)], 4)).expect("write");
        let e = open_incremental(&p).err().expect("order").to_string();
        assert!(e.contains("ascending"), "{e}");
        fs::write(&p, incremental(&[], 7)).expect("write");
        let ok = open_incremental(&p).expect("no blocks is fine");
        assert_eq!((ok.blocks.len(), ok.truncation, ok.header_len), (0, 7, 12));
    }

    #[test]
    fn a_missing_source_names_the_backup() {
        let d = tempfile::tempdir().expect("tempdir");
        let chain = vec![
            backup(d.path(), "f", &[("base/5/1", full(&[1]))]),
            backup(
                d.path(),
                "i1",
                &[("base/5/INCREMENTAL.16384", incremental(&[(0, 2)], 1))],
            ),
        ];
        let e = reconstruct(&chain, "base/5/16384", &d.path().join("o"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("backup f has neither `base/5/16384`"), "{e}");
    }

    #[test]
    fn labels_lose_their_incremental_lines() {
        let l = "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nSTART TIMELINE: 1\nINCREMENTAL FROM LSN: 0/4000028\nINCREMENTAL FROM TLI: 1\n";
        assert_eq!(
            full_label(l),
            "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nSTART TIMELINE: 1\n"
        );
        let p = parse_label(l);
        assert_eq!(p.start_lsn, "0/6000028");
        assert_eq!(p.from_lsn.as_deref(), Some("0/4000028"));
        assert_eq!(p.from_tli.as_deref(), Some("1"));
    }
}
