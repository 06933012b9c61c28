//! Online backups and offline restores.
//!
//! A backup directory holds `index.snapshot` (every index record as of one instant) and
//! `blobs/<alg>/<2 hex>/<hex>`, exactly the blobs that snapshot records, in the store's own
//! layout. It is made while pushes go on:
//!
//! - The snapshot is taken with the index's apply lock held ([`Catalog::snapshot`]): no batch
//!   applies meanwhile, so it is one point in the apply order and every record in it is whole
//!   (sled's iterators are not snapshots, and a tree-by-tree copy could see a manifest without
//!   the blob record a later batch wrote with it). Pushes stall for as long as the records take to
//!   read and buffer into a file (no fsync under the lock); they never wait for blob copies.
//!   Chosen over `sled::Db::export` because that is not point-in-time either, and because a
//!   snapshot of the `Index` trait works for any backend.
//! - Every blob the snapshot records exists as a file: commits link the file before they record
//!   it, and GC forgets a record before it removes a file. The maintenance lock is held for the
//!   whole backup, so no collection (or quarantine) removes a file that is still to be copied.
//! - Blobs are hard-linked into the backup when it is on the same filesystem (blobs are never
//!   rewritten in place, so a link is a stable copy), else copied, hashed against their digest
//!   and fsynced. A blob already in the backup (an earlier run into the same directory) is not
//!   transferred again: backups are incremental, and an interrupted one completes when rerun.
//! - The new snapshot replaces the old one only when every blob it needs is durable in the
//!   backup (write, fsync, rename, fsync the directory), so the directory always holds one
//!   complete backup. Blobs no longer recorded are then removed from it.
//!
//! Upload sessions are not backed up (their files are not), and quarantined blobs are skipped
//! (their quarantine records are kept, so a restored registry still refuses them until pushed
//! again). Restore is offline: it builds a new data directory, verifying every blob it copies.
//!
//! A backup must never write inside the data directory: it only reads the index and blob files.

mod restore;
mod snapshot;

pub use restore::{restore, RestoreReport};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::format::INDEX_FORMAT;
use crate::index::catalog::BlobRecord;
use crate::index::codec::decode;
use crate::index::Tree;
use crate::Inner;
use snapshot::{SnapshotWriter, MAGIC};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

const SNAPSHOT: &str = "index.snapshot";
const SNAPSHOT_PARTIAL: &str = "index.snapshot.partial";
const INFO: &str = "backup.json";
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Trees a snapshot leaves out: upload sessions, whose files are not backed up.
const NOT_BACKED_UP: [Tree; 1] = [Tree::Uploads];

/// What a backup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupReport {
    pub dest: PathBuf,
    /// Index records in the snapshot.
    pub records: u64,
    /// Blobs the snapshot records (quarantined ones excluded).
    pub blobs: u64,
    /// Logical size of those blobs.
    pub bytes: u64,
    /// Blobs hard-linked into the backup by this run.
    pub blobs_linked: u64,
    /// Blobs copied (and verified) by this run.
    pub blobs_copied: u64,
    pub bytes_copied: u64,
    /// Blobs an earlier run had already put there.
    pub blobs_present: u64,
    /// Blobs left out because they are quarantined.
    pub blobs_quarantined: u64,
    /// Files of earlier backups that this snapshot no longer needs, removed.
    pub files_pruned: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// `path` with `..` refused and symlinks of its existing part resolved, so a destination can be
/// compared with the data directory before anything is created.
fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.is_absolute() {
        return Err(Error::Backup(format!("backup destination {} must be an absolute path", path.display())));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Backup(format!("backup destination {} must not contain '..'", path.display())));
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else { break };
        rest.push(name.to_os_string());
        existing.pop();
    }
    let mut out = existing.canonicalize().map_err(io_err(&existing))?;
    out.extend(rest.iter().rev());
    Ok(out)
}

/// Checks a backup destination: absolute, outside the data directory (and not containing it),
/// and either new, empty or an earlier backup. Creates it.
pub(crate) fn prepare_dest(data_dir: &Path, dest: &Path) -> Result<PathBuf> {
    let dest = resolve(dest)?;
    let data = data_dir.canonicalize().map_err(io_err(data_dir))?;
    if dest.starts_with(&data) || data.starts_with(&dest) {
        return Err(Error::Backup(format!(
            "backup destination {} must be outside the data directory {} (and not contain it); choose another directory, ideally on another disk",
            dest.display(),
            data.display()
        )));
    }
    if dest.exists() {
        let known = [SNAPSHOT, SNAPSHOT_PARTIAL, INFO, "blobs"];
        for entry in std::fs::read_dir(&dest).map_err(io_err(&dest))? {
            let name = entry.map_err(io_err(&dest))?.file_name();
            if !known.iter().any(|k| name == *k) {
                return Err(Error::Backup(format!(
                    "backup destination {} holds {} and is not a Stowage backup; choose an empty directory or an earlier backup",
                    dest.display(),
                    name.to_string_lossy()
                )));
            }
        }
    }
    crate::create_private_dir(&dest.join("blobs")).map_err(io_err(&dest))?;
    Ok(dest)
}

pub(crate) fn run(inner: &Inner, dest: &Path) -> Result<BackupReport> {
    let dest = prepare_dest(&inner.cfg.data_dir, dest)?;
    let _maintenance = inner.maintenance.lock();
    let partial_path = dest.join(SNAPSHOT_PARTIAL);
    let file = create_private_file(&partial_path)?;
    let mut w = SnapshotWriter { out: BufWriter::new(file), crc: crc32fast::Hasher::new(), records: 0 };
    w.put(MAGIC).map_err(io_err(&partial_path))?;
    w.put(&INDEX_FORMAT.to_be_bytes()).map_err(io_err(&partial_path))?;
    let trees: Vec<Tree> = Tree::ALL.iter().copied().filter(|t| !NOT_BACKED_UP.contains(t)).collect();
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    let mut quarantined: HashSet<Digest> = HashSet::new();
    inner.catalog.snapshot(&trees, &mut |tree, key, value| {
        match tree {
            Tree::Blobs => {
                if let Some(d) = Digest::from_key(key) {
                    blobs.push((d, decode::<BlobRecord>(tree, key, value)?.size));
                }
            }
            Tree::Quarantine => {
                quarantined.extend(Digest::from_key(key));
            }
            _ => {}
        }
        w.entry(tree, key, value).map_err(io_err(&partial_path))
    })?;
    let records = w.records;
    let file = w
        .finish()
        .map_err(io_err(&partial_path))?
        .into_inner()
        .map_err(|e| Error::io(&partial_path, e.into_error()))?;
    file.sync_all().map_err(io_err(&partial_path))?;

    let mut report = BackupReport { dest: dest.clone(), records, ..BackupReport::default() };
    let mut link = true;
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for (digest, size) in &blobs {
        if quarantined.contains(digest) {
            report.blobs_quarantined += 1;
            continue;
        }
        report.blobs += 1;
        report.bytes += size;
        let rel = digest.relative_path();
        let to = dest.join("blobs").join(&rel);
        keep.insert(to.clone());
        if std::fs::metadata(&to).map(|m| m.len() == *size).unwrap_or(false) {
            report.blobs_present += 1;
            continue;
        }
        let dir = to.parent().unwrap_or(&dest).to_path_buf();
        if !dirs.contains(&dir) {
            crate::create_private_dir(&dir).map_err(io_err(&dir))?;
        }
        let from = inner.blobs.path(digest);
        let _ = std::fs::remove_file(&to);
        if link {
            match std::fs::hard_link(&from, &to) {
                Ok(()) => {
                    report.blobs_linked += 1;
                    dirs.insert(dir);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Backup(format!("blob {digest} is recorded but {} is missing", from.display())))
                }
                // Another filesystem (EXDEV), or links not allowed there: copy from now on.
                Err(e) => {
                    tracing::info!(error = %e, dest = %dest.display(), "backup: cannot hard-link blobs, copying them");
                    link = false;
                }
            }
        }
        report.bytes_copied += copy_verified(&from, &to, digest)?;
        report.blobs_copied += 1;
        dirs.insert(dir);
    }
    // Each new entry, then the directories holding new directories, deepest first, up to the
    // backup's own entry in its parent.
    let mut to_sync: Vec<PathBuf> = Vec::new();
    for dir in &dirs {
        let mut d = dir.as_path();
        while d.starts_with(&dest) {
            to_sync.push(d.to_path_buf());
            let Some(p) = d.parent() else { break };
            d = p;
        }
    }
    to_sync.extend(dest.parent().map(Path::to_path_buf));
    to_sync.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    to_sync.dedup();
    for dir in &to_sync {
        fsync_dir(dir)?;
    }
    // Every blob is durable: the new snapshot may replace the old one.
    let snapshot = dest.join(SNAPSHOT);
    std::fs::rename(&partial_path, &snapshot).map_err(io_err(&snapshot))?;
    let info = serde_json::json!({
        "snapshot": SNAPSHOT,
        "index_format": INDEX_FORMAT,
        "created": crate::index::catalog::now_secs(),
        "records": report.records,
        "blobs": report.blobs,
        "bytes": report.bytes,
    });
    let info_path = dest.join(INFO);
    let mut f = create_private_file(&info_path)?;
    f.write_all(info.to_string().as_bytes()).and_then(|_| f.sync_all()).map_err(io_err(&info_path))?;
    fsync_dir(&dest)?;
    report.files_pruned = prune(&dest.join("blobs"), &keep)?;
    tracing::info!(?report, "backup finished");
    Ok(report)
}

/// Removes files under a backup's `blobs/` that the current snapshot does not need (blobs of
/// earlier snapshots since collected, partial copies of interrupted runs).
fn prune(root: &Path, keep: &HashSet<PathBuf>) -> Result<u64> {
    fn walk(dir: &Path, depth: u32, keep: &HashSet<PathBuf>, n: &mut u64) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let path = entry.path();
            // `<alg>/<2 hex>/<hex>`: directories two levels down, files at the third.
            if depth < 2 && path.is_dir() {
                walk(&path, depth + 1, keep, n)?;
            } else if !keep.contains(&path) && !path.is_dir() {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                *n += 1;
            }
        }
        Ok(())
    }
    let mut n = 0;
    walk(root, 0, keep, &mut n)?;
    Ok(n)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn create_private_file(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::FILE_MODE)
        .open(path)
        .map_err(io_err(path))
}

/// Copies `from` to `to` through `to.partial`, checking the bytes hash to `digest`, fsynced. The
/// caller fsyncs `to`'s directory. Returns the bytes copied.
fn copy_verified(from: &Path, to: &Path, digest: &Digest) -> Result<u64> {
    let partial = to.with_extension("partial");
    let mut src = File::open(from).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Backup(format!("blob {digest} is recorded but {} is missing", from.display()))
        }
        _ => Error::io(from, e),
    })?;
    let mut dst = create_private_file(&partial)?;
    let mut hasher = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; COPY_CHUNK_BYTES];
    let mut n_total = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io_err(from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io_err(&partial))?;
        n_total += n as u64;
    }
    let computed = hasher.finish();
    if &computed != digest {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Backup(format!(
            "blob {digest} at {} is damaged (its content hashes to {computed}); run a scrub to quarantine it, then back up again",
            from.display()
        )));
    }
    dst.sync_all().map_err(io_err(&partial))?;
    std::fs::rename(&partial, to).map_err(io_err(to))?;
    Ok(n_total)
}
