//! Online garbage collection: mark from the index, sweep blobs nobody can reach, while pushes go on.
//!
//! Referrers first: a manifest whose subject is no longer a manifest of its repository, that no
//! tag and no other manifest of the repository holds, and that is older than the grace window,
//! is deleted (repeatedly, so referrers of referrers follow). Its blobs are then ordinary
//! candidates: collected only if nothing else holds them.
//!
//! Mark: every blob linked to a repository, and every digest a stored manifest references (config,
//! layers, child manifests; not its subject: a signature does not keep an image alive). Keep as
//! well anything younger than the grace window, which covers blobs committed but not yet
//! referenced by the manifest push that follows.
//!
//! Sweep, one group of candidates at a time: under the exclusive side of `gc_lock` (which commits,
//! mounts and manifest pushes hold shared while they check and apply), re-check each candidate and
//! apply one batch forgetting those still unreferenced; release the lock; wait for the group
//! flush that makes the forget durable; only then remove the files. The lock is never held across
//! an fsync, so pushes stall at most for one group's re-checks. Until a file is removed its digest
//! sits in `gc_deleting`, so a commit of the same bytes waits instead of linking a file about to go.
//! A crash before the removal leaves an orphan file (swept below), never a record without its file.
//!
//! Upload files are not blobs and are never swept here; idle uploads expire separately. Files
//! under `blobs/` that have no index record (a crash between link and index write) are removed
//! once older than the grace window.

use crate::digest::Digest;
use crate::error::Result;
use crate::index::catalog::{now_secs, BlobRecord, ManifestRecord};
use crate::index::Tree;
use crate::Inner;
use std::collections::HashSet;

/// Takes digests out of `gc_deleting` and wakes the commits waiting on them, also when the sweep
/// of a group fails half-way.
struct Deleting<'a> {
    inner: &'a Inner,
    digests: Vec<Digest>,
}

impl Drop for Deleting<'_> {
    fn drop(&mut self) {
        let mut set = self.inner.gc_deleting.lock();
        for d in &self.digests {
            set.remove(d);
        }
        self.inner.gc_deleted.notify_all();
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub blobs_scanned: u64,
    pub blobs_marked: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    pub orphan_files_deleted: u64,
}

/// Candidates are re-checked and forgotten in groups of this many per hold of the exclusive lock
/// (one index batch, one flush), so pushes wait at most for one group's re-checks.
const SWEEP_GROUP: usize = 64;

/// At most this many rounds of orphaned-referrer deletion (a chain of referrers of referrers
/// deeper than this is finished by the next collection).
const REFERRER_ROUNDS: usize = 8;

/// Deletes orphaned referrers (see the module comment). Returns how many.
fn delete_orphan_referrers(inner: &Inner, cutoff: i64) -> Result<u64> {
    let cat = &inner.catalog;
    let mut deleted = 0;
    for _ in 0..REFERRER_ROUNDS {
        let mut candidates: Vec<(u64, Digest)> = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = cat.scan::<ManifestRecord>(Tree::Manifests, b"", after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, m) in page {
                let (Some(subject), Some(repo), Some(d)) = (
                    m.subject.as_ref(),
                    k.get(..8).and_then(|r| <[u8; 8]>::try_from(r).ok()).map(u64::from_be_bytes),
                    k.get(8..).and_then(Digest::from_key),
                ) else {
                    continue;
                };
                if m.created < cutoff && cat.manifest(repo, subject)?.is_none() {
                    candidates.push((repo, d));
                }
            }
        }
        let mut round = 0;
        for (repo, d) in candidates {
            // Exclusive against manifest pushes and mounts (which check links and apply under
            // the shared side), never across the flush.
            let (refs, pending) = {
                let _x = inner.gc_lock.write();
                cat.delete_orphan_referrer_pending(repo, &d, cutoff)?
            };
            cat.wait(pending)?;
            let Some(refs) = refs else { continue };
            round += 1;
            for r in refs {
                let pending = {
                    let _x = inner.gc_lock.write();
                    cat.unlink_unreferenced_pending(repo, &r)?.1
                };
                cat.wait(pending)?;
            }
        }
        deleted += round;
        if round == 0 {
            break;
        }
    }
    Ok(deleted)
}

pub(crate) fn run(inner: &Inner) -> Result<GcReport> {
    let cat = &inner.catalog;
    let idx = cat.index();
    let grace_cutoff = now_secs() - inner.cfg.gc_grace.as_secs() as i64;
    let referrers_deleted = delete_orphan_referrers(inner, grace_cutoff)?;
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
        }
    }
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
        let (forgotten, pending) = {
            let _x = inner.gc_lock.write();
            let mut doomed = Vec::new();
            for d in group {
                // Re-check under the lock: a mount or push may have linked it since the mark.
                if cat.blob_is_linked_anywhere(d)? || cat.blob_is_referenced(d)? {
                    continue;
                }
                let Some(rec) = cat.blob(d)? else { continue };
                if rec.created >= grace_cutoff {
                    continue;
                }
                doomed.push(d.clone());
            }
            if doomed.is_empty() {
                continue;
            }
            let (forgotten, pending) = cat.forget_blobs_pending(&doomed)?;
            inner.gc_deleting.lock().extend(forgotten.iter().map(|(d, _)| d.clone()));
            (forgotten, pending)
        };
        let _deleting = Deleting { inner, digests: forgotten.iter().map(|(d, _)| d.clone()).collect() };
        // Forget durably first: a crash after this leaves an orphan file (swept later), never a
        // record pointing at a missing file.
        cat.wait(pending)?;
        for (d, size) in &forgotten {
            inner.blobs.remove(inner.io.as_ref(), d)?;
            report.blobs_deleted += 1;
            report.bytes_freed += size;
        }
    }
    let mut orphans = Vec::new();
    let grace = inner.cfg.gc_grace;
    inner.blobs.walk(&mut |d, mtime| {
        if mtime.elapsed().map(|age| age > grace).unwrap_or(false) {
            orphans.push(d);
        }
    })?;
    for group in orphans.chunks(SWEEP_GROUP) {
        // No record, so no flush: checking and removing under the lock is short.
        let _x = inner.gc_lock.write();
        for d in group {
            if cat.blob(d)?.is_none() {
                inner.blobs.remove(inner.io.as_ref(), d)?;
                report.orphan_files_deleted += 1;
            }
        }
    }
    tracing::info!(?report, referrers_deleted, "garbage collection finished");
    Ok(report)
}
