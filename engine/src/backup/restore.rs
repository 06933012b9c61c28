//! Restore: a new data directory from a backup, offline. Every blob is copied and verified
//! against its digest before the index is written, so a restored store holds only whole,
//! verified blobs. It never writes into a directory that is not empty.

use super::snapshot::read_snapshot;
use super::{copy_verified, fsync_dir, io_err, SNAPSHOT};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::catalog::BlobRecord;
use crate::index::codec::decode;
use crate::index::{Batch, Index, Tree};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Records applied per index batch on restore.
const RESTORE_BATCH: usize = 1000;

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    pub records: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Builds a new data directory `data_dir` from the backup in `src`: every blob the snapshot
/// records is copied and verified against its digest, then the index is written and flushed.
/// Refuses a `data_dir` that exists and is not empty. Offline: no server may use `data_dir`.
pub fn restore(src: &Path, data_dir: &Path) -> Result<RestoreReport> {
    if data_dir.exists() && std::fs::read_dir(data_dir).map_err(io_err(data_dir))?.next().is_some() {
        return Err(Error::Backup(format!(
            "{} is not empty; restore into a new or empty directory (never over a live data directory)",
            data_dir.display()
        )));
    }
    let snapshot = src.join(SNAPSHOT);
    // Pass over the snapshot once for the blob list (checking it whole first).
    let mut blobs: HashMap<Digest, u64> = HashMap::new();
    let mut quarantined: HashSet<Digest> = HashSet::new();
    read_snapshot(&snapshot, &mut |tree, key, value| {
        match tree {
            Tree::Blobs => {
                if let Some(d) = Digest::from_key(&key) {
                    blobs.insert(d, decode::<BlobRecord>(tree, &key, &value)?.size);
                }
            }
            Tree::Quarantine => quarantined.extend(Digest::from_key(&key)),
            _ => {}
        }
        Ok(())
    })?;
    for d in [data_dir.to_path_buf(), data_dir.join("uploads"), data_dir.join("index")] {
        crate::create_private_dir(&d).map_err(io_err(&d))?;
    }
    let mut report = RestoreReport::default();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for (digest, size) in &blobs {
        if quarantined.contains(digest) {
            continue;
        }
        let rel = digest.relative_path();
        let to = data_dir.join("blobs").join(&rel);
        let dir = to.parent().unwrap_or(data_dir).to_path_buf();
        if dirs.insert(dir.clone()) {
            crate::create_private_dir(&dir).map_err(io_err(&dir))?;
        }
        let n = copy_verified(&src.join("blobs").join(&rel), &to, digest)?;
        if n != *size {
            return Err(Error::Backup(format!("blob {digest} in the backup has {n} bytes, the index says {size}")));
        }
        report.blobs += 1;
        report.bytes += n;
    }
    // Directories deepest first, so each new entry is durable before its parent's.
    let mut all: Vec<PathBuf> = dirs.into_iter().collect();
    all.extend(all.clone().iter().filter_map(|d| d.parent().map(Path::to_path_buf)));
    all.push(data_dir.join("blobs"));
    all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    all.dedup();
    for d in all {
        fsync_dir(&d)?;
    }
    let index = crate::index::sled_index::SledIndex::open(&data_dir.join("index"), 64 << 20)?;
    let mut batch = Batch::default();
    report.records = read_snapshot(&snapshot, &mut |tree, key, value| {
        batch.put(tree, key, value);
        if batch.ops.len() >= RESTORE_BATCH {
            index.apply(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    index.apply(batch)?;
    index.flush()?;
    fsync_dir(data_dir)?;
    tracing::info!(?report, src = %src.display(), data_dir = %data_dir.display(), "restore finished");
    Ok(report)
}
