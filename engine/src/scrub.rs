//! Scrub: re-read every stored blob (layers, configs and manifests alike), check its digest and
//! size, and quarantine what fails, so silent disk corruption is found before a client pulls it.
//!
//! Reading needs no lock: blobs are immutable. A bad blob is quarantined under the maintenance
//! lock (never during a backup or a collection) and the exclusive GC lock (no commit, mount or
//! manifest push checks the blob meanwhile): its file is renamed into `quarantine/` and a
//! quarantine record is written; the blob record stays, so manifests that reference it stay
//! valid. Reads of a quarantined blob fail with [`Error::Quarantined`]; a push of the same
//! content links a fresh file and clears the record (healing, see `Inner::commit_blob`).
//!
//! Scrub never deletes data and never runs on an async reactor thread.

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::index::catalog::{now_secs, BlobRecord, QuarantineRecord};
use crate::index::Tree;
use crate::Inner;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `meta` key of the time the last scrub finished (seconds since the epoch), so the background
/// schedule survives restarts.
const LAST_FINISHED_KEY: &[u8] = b"scrub_last_finished";

/// When the last complete scrub finished, if one ever did.
pub fn last_finished(catalog: &crate::Catalog) -> Result<Option<i64>> {
    catalog.get(Tree::Meta, LAST_FINISHED_KEY)
}

/// Bytes read per call while hashing.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What one scrub run found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrubReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Blobs this run moved to quarantine.
    pub quarantined: Vec<String>,
    /// Blobs already in quarantine, skipped.
    pub already_quarantined: u64,
}

/// Counters since start, for metrics.
#[derive(Debug, Default)]
pub struct ScrubStats {
    runs: AtomicU64,
    blobs_checked: AtomicU64,
    bytes_checked: AtomicU64,
    quarantined: AtomicU64,
}

/// A copy of [`ScrubStats`] plus the quarantine size now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubCounters {
    /// Scrub runs finished since start.
    pub runs: u64,
    /// Blobs whose digest scrub checked since start.
    pub blobs_checked: u64,
    /// Bytes scrub read and hashed since start.
    pub bytes_checked: u64,
    /// Blobs scrub moved to quarantine since start.
    pub quarantined_total: u64,
    /// Blobs in quarantine now.
    pub quarantined_now: u64,
}

impl ScrubStats {
    pub(crate) fn counters(&self, quarantined_now: u64) -> ScrubCounters {
        ScrubCounters {
            runs: self.runs.load(Ordering::Relaxed),
            blobs_checked: self.blobs_checked.load(Ordering::Relaxed),
            bytes_checked: self.bytes_checked.load(Ordering::Relaxed),
            quarantined_total: self.quarantined.load(Ordering::Relaxed),
            quarantined_now,
        }
    }
}

/// Paces reads to `bytes_per_s` (0: unlimited) by sleeping whenever reading got ahead.
struct Pace {
    bytes_per_s: u64,
    start: Instant,
    bytes: u64,
}

impl Pace {
    fn read(&mut self, n: u64) {
        self.bytes += n;
        if self.bytes_per_s == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_s as f64);
        if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// The verdict on one blob file.
enum Check {
    Good,
    /// Damaged or missing: why, and the inode that was checked (None when missing), so the
    /// quarantine step moves only that very file.
    Bad(String, Option<u64>),
}

fn check(inner: &Inner, digest: &Digest, rec: &BlobRecord, pace: &mut Pace) -> Result<Check> {
    let path = inner.blobs.path(digest);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Check::Bad("file is missing".into(), None)),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let ino = file.metadata().map_err(|e| Error::io(&path, e))?.ino();
    let mut hasher = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // An unreadable sector is damage like a flipped bit.
            Err(e) => return Ok(Check::Bad(format!("read failed after {len} bytes: {e}"), Some(ino))),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
        pace.read(n as u64);
    }
    inner.scrub_stats.bytes_checked.fetch_add(len, Ordering::Relaxed);
    if len != rec.size {
        return Ok(Check::Bad(format!("file has {len} bytes, the blob {}", rec.size), Some(ino)));
    }
    let computed = hasher.finish();
    if &computed != digest {
        return Ok(Check::Bad(format!("content hashes to {computed}"), Some(ino)));
    }
    Ok(Check::Good)
}

pub(crate) fn run(inner: &Inner, bytes_per_s: u64) -> Result<ScrubReport> {
    let cat = &inner.catalog;
    let mut report = ScrubReport::default();
    let mut pace = Pace { bytes_per_s, start: Instant::now(), bytes: 0 };
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = cat.scan::<BlobRecord>(Tree::Blobs, b"", after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (k, rec) in page {
            let Some(digest) = Digest::from_key(&k) else { continue };
            if cat.quarantined(&digest)?.is_some() {
                report.already_quarantined += 1;
                continue;
            }
            let verdict = check(inner, &digest, &rec, &mut pace)?;
            report.blobs_checked += 1;
            report.bytes_checked = pace.bytes;
            inner.scrub_stats.blobs_checked.fetch_add(1, Ordering::Relaxed);
            if let Check::Bad(reason, ino) = verdict {
                if quarantine(inner, &digest, &rec, reason, ino)? {
                    report.quarantined.push(digest.to_string());
                }
            }
        }
    }
    cat.put(Tree::Meta, LAST_FINISHED_KEY, &now_secs())?;
    inner.scrub_stats.runs.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        blobs = report.blobs_checked,
        bytes = report.bytes_checked,
        quarantined = report.quarantined.len(),
        "scrub finished"
    );
    Ok(report)
}

/// Moves a bad blob's file aside and records it. False when the situation changed since the
/// check (collected meanwhile, or a different file now), so nothing was done.
fn quarantine(inner: &Inner, digest: &Digest, rec: &BlobRecord, reason: String, ino: Option<u64>) -> Result<bool> {
    let _maintenance = inner.maintenance.lock();
    let qdir = inner.cfg.data_dir.join("quarantine");
    let pending = {
        let _x = inner.gc_lock.write();
        if inner.catalog.blob(digest)?.is_none() || inner.catalog.quarantined(digest)?.is_some() {
            return Ok(false);
        }
        let path = inner.blobs.path(digest);
        let now_ino = std::fs::metadata(&path).ok().map(|m| m.ino());
        if now_ino != ino {
            // Collected and pushed again, or healed: not the file that was checked.
            return Ok(false);
        }
        if now_ino.is_some() {
            crate::io::create_dir_durable(inner.io.as_ref(), &qdir).map_err(|e| Error::io(&qdir, e))?;
            let to = qdir.join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()));
            inner.io.rename(&path, &to).map_err(|e| Error::io(&path, e))?;
            for dir in [qdir.as_path(), path.parent().unwrap_or(&qdir)] {
                inner.io.sync_dir(dir).map_err(|e| inner.poison(dir, e))?;
            }
        }
        let q = QuarantineRecord { size: rec.size, found: now_secs(), reason: reason.clone() };
        let pending = inner.catalog.set_quarantine_pending(digest, Some(&q))?;
        inner.quarantined.fetch_add(1, Ordering::AcqRel);
        pending
    };
    inner.catalog.wait(pending)?;
    inner.scrub_stats.quarantined.fetch_add(1, Ordering::Relaxed);
    tracing::error!(%digest, reason, "scrub: blob failed its integrity check; quarantined (push it again to heal)");
    Ok(true)
}
