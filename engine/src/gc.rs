//! Online garbage collection: mark from the index, sweep blobs nobody can reach, while pushes go on.
//!
//! Mark: every blob linked to a repository, and every digest a stored manifest references (config,
//! layers, child manifests, subject). Keep as well anything younger than the grace window, which
//! covers blobs committed but not yet referenced by the manifest push that follows. Sweep each
//! candidate under the exclusive side of `gc_lock` after re-checking it, so a commit, mount or
//! manifest push (which hold the shared side) can never race a deletion. Upload files are not
//! blobs and are never swept here; idle uploads expire separately. Files under `blobs/` that have no
//! index record (a crash between rename and index write) are removed once older than the grace window.

use crate::digest::Digest;
use crate::error::Result;
use crate::index::catalog::{now_secs, BlobRecord, ManifestRecord};
use crate::index::Tree;
use crate::Inner;
use std::collections::HashSet;

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub blobs_scanned: u64,
    pub blobs_marked: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    pub orphan_files_deleted: u64,
}

/// Candidates are deleted in groups of this many per hold of the exclusive lock, so pushes wait
/// at most one group's deletions.
const SWEEP_GROUP: usize = 64;

pub(crate) fn run(inner: &Inner) -> Result<GcReport> {
    let cat = &inner.catalog;
    let idx = cat.index();
    let mut marked: HashSet<Digest> = HashSet::new();
    idx.for_each_key(Tree::LinksByBlob, b"", &mut |k| {
        if let Some(d) = Digest::from_key(&k[..k.len().saturating_sub(8)]) {
            marked.insert(d);
        }
        true
    })?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = cat.scan::<ManifestRecord>(Tree::Manifests, b"", after.as_deref(), 1024)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, m) in page {
            marked.extend(m.refs);
            marked.extend(m.subject);
        }
    }
    let grace_cutoff = now_secs() - inner.cfg.gc_grace.as_secs() as i64;
    let mut report = GcReport { blobs_marked: marked.len() as u64, ..GcReport::default() };
    let mut candidates = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = cat.scan::<BlobRecord>(Tree::Blobs, b"", after.as_deref(), 1024)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (k, rec) in page {
            report.blobs_scanned += 1;
            let Some(d) = Digest::from_key(&k) else { continue };
            if !marked.contains(&d) && rec.created < grace_cutoff {
                candidates.push(d);
            }
        }
    }
    for group in candidates.chunks(SWEEP_GROUP) {
        let _x = inner.gc_lock.write();
        for d in group {
            // Re-check under the lock: a mount or push may have linked it since the mark.
            if cat.blob_is_linked_anywhere(d)? || cat.blob_is_referenced(d)? {
                continue;
            }
            let Some(rec) = cat.blob(d)? else { continue };
            if rec.created >= grace_cutoff {
                continue;
            }
            // Forget first: a crash after this leaves an orphan file (swept later), never a record
            // pointing at a missing file.
            cat.forget_blob(d)?;
            inner.blobs.remove(d)?;
            report.blobs_deleted += 1;
            report.bytes_freed += rec.size;
        }
    }
    let mut orphans = Vec::new();
    let grace = inner.cfg.gc_grace;
    inner.blobs.walk(&mut |d, mtime| {
        if mtime.elapsed().map(|age| age > grace).unwrap_or(false) {
            orphans.push(d);
        }
    })?;
    for d in orphans {
        let _x = inner.gc_lock.write();
        if cat.blob(&d)?.is_none() {
            inner.blobs.remove(&d)?;
            report.orphan_files_deleted += 1;
        }
    }
    tracing::info!(?report, "garbage collection finished");
    Ok(report)
}
