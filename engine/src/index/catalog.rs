//! The registry's typed records over any [`Index`]: repositories, blobs, repository-to-blob links,
//! manifests, tags, tag history, referrers, upload sessions and stats, plus plain keyed records
//! for the access model. Written once against the trait so every backend behaves the same.
//!
//! Key layouts (all integers big-endian so keys sort numerically):
//! - `repos`: repo id (u64) -> [`RepoRecord`]; `repo_names`: name -> repo id
//! - `blobs`: digest key -> [`BlobRecord`]
//! - `links`: repo id ++ digest key -> (); `links_by_blob`: digest key ++ repo id -> ()
//! - `manifests`: repo id ++ digest key -> [`ManifestRecord`]
//! - `tags`: repo id ++ tag -> [`TagRecord`]; `history`: repo id ++ seq (u64) -> [`Commit`]
//! - `tags_by_digest`: repo id ++ digest key ++ tag -> () (the tags pointing at a manifest, so
//!   deleting it reads only those; built on open for data written before it existed)
//! - `tags_by_time`: repo id ++ push time ++ tag -> () (push time as i64 with the sign bit
//!   flipped, big-endian, so keys sort by time then tag; listings by push time in either
//!   direction read only their page); `tag_counts`: repo id -> u64 (tags of the repository).
//!   Both are written in the batch of every tag write and built on open for older data.
//! - `referrers`: repo id ++ subject key ++ manifest key -> ()
//! - `refs_by_blob`: referenced digest key ++ repo id ++ manifest key -> () (what GC re-checks)
//! - `uploads`: upload id -> [`UploadRecord`]; `meta`: counter name -> u64
//!
//! Writes are group-committed (see [`super::group`]): every write method applies its batch, then
//! blocks the calling thread until an index flush shared with concurrent writers makes it durable,
//! and only then returns. So call them from a blocking thread (`spawn_blocking`, or
//! [`crate::Engine::blocking`]), never on an async reactor thread. Reads never block on a flush.
//! Readers may see a write before its writer returns (before it is durable), as with any
//! apply-then-flush store; anything a caller acknowledges after a write of its own is covered,
//! because a flush makes every earlier write durable.
//!
//! Read-modify-write sequences take `write_lock` while they read and apply, never across the flush,
//! so one process never interleaves them and they do not queue behind each other's fsyncs. A
//! multi-node backend must replace that lock with its own transactions.

use super::codec::{decode, encode};
use super::group::{GroupCommit, Pending};
use super::{Batch, Index, Tree};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::poison::Poison;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub id: u64,
    pub name: String,
    /// First path component of the name: the owning project's id.
    pub project: String,
    pub created: i64,
    /// Sum of the sizes of the blobs linked to this repository.
    pub logical_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub media_type: String,
    pub size: u64,
    /// Config, layers and child manifests.
    pub refs: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub created: i64,
}

/// Receives each entry of [`Catalog::snapshot`]: tree, key, sealed value.
pub type SnapshotVisitor<'a> = dyn FnMut(Tree, &[u8], &[u8]) -> Result<()> + 'a;

/// A blob that scrub found damaged or missing, moved out of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Size the blob should have.
    pub size: u64,
    /// When scrub quarantined it (seconds since the epoch).
    pub found: i64,
    /// What was wrong, e.g. "content hashes to sha256:..." or "file is missing".
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: Digest,
    pub time: i64,
    pub pusher: String,
}

/// One entry of a repository's tag history. Appended, never rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub seq: u64,
    pub tag: String,
    pub digest: Digest,
    pub time: i64,
    pub pusher: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub repo: String,
    /// Bytes known durable in the upload file.
    pub offset: u64,
    pub started: i64,
    pub updated: i64,
    /// Who started the upload (a user name); only they, or an administrator, may use it.
    #[serde(default)]
    pub owner: String,
}

fn repo_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

const UNIT: &[u8] = b"";

/// In `meta`: present once `tags_by_digest` holds an entry for every tag.
const TAGS_BY_DIGEST_BUILT: &[u8] = b"index/tags_by_digest";

fn tag_by_digest_key(repo: u64, digest: &Digest, tag: &str) -> Vec<u8> {
    cat(&cat(&repo_key(repo), &digest.to_key()), tag.as_bytes())
}

/// In `meta`: present once `tags_by_time` and `tag_counts` hold every tag.
const TAGS_BY_TIME_BUILT: &[u8] = b"index/tags_by_time";

/// A push time as 8 bytes that sort like the signed number.
fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

fn tag_time_key(repo: u64, time: i64, tag: &str) -> Vec<u8> {
    cat(&cat(&repo_key(repo), &time_bytes(time)), tag.as_bytes())
}

/// The push time and tag of a `tags_by_time` key (None for a key this catalog never writes).
fn split_tag_time_key(k: &[u8]) -> Option<(i64, String)> {
    let t = <[u8; 8]>::try_from(k.get(8..16)?).ok()?;
    Some(((u64::from_be_bytes(t) ^ (1 << 63)) as i64, String::from_utf8_lossy(k.get(16..)?).into_owned()))
}

/// Where a page of tags in push-time order starts: strictly after (ascending) or before
/// (descending) this push time and tag.
pub type TimeCursor<'a> = (i64, &'a str);

fn counter_key(name: &str) -> Vec<u8> {
    cat(b"counter/", name.as_bytes())
}

pub struct Catalog {
    index: Arc<dyn Index>,
    group: GroupCommit,
    /// Held by read-modify-write sequences while they read and apply; never across a flush.
    write_lock: Mutex<()>,
    /// Bumped by every write, so callers can cache what they read and know exactly when it may
    /// be stale (any write at all, here or in the access model, invalidates).
    generation: std::sync::atomic::AtomicU64,
    /// Generations per scope (repository, access model), for caches that must survive writes
    /// elsewhere.
    scopes: super::scopes::Scopes,
}

impl Catalog {
    /// A catalog with a write gate of its own (tests, tools). The engine shares its gate with the
    /// blob side through [`Catalog::with_poison`].
    pub fn new(index: Arc<dyn Index>) -> Catalog {
        Catalog::with_poison(index, Arc::new(Poison::default()))
    }

    pub(crate) fn with_poison(index: Arc<dyn Index>, poison: Arc<Poison>) -> Catalog {
        Catalog {
            group: GroupCommit::new(index.clone(), poison),
            index,
            write_lock: Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            scopes: super::scopes::Scopes::default(),
        }
    }

    pub fn index(&self) -> &Arc<dyn Index> {
        &self.index
    }

    /// Changes whenever anything is written through the catalog. A value read while the
    /// generation was `g` is still current while `generation()` returns `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Generations scoped to what a write changed (see [`super::scopes`]).
    pub fn scopes(&self) -> &super::scopes::Scopes {
        &self.scopes
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    // ---- generic keyed records (access model and friends) ----

    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>> {
        match self.index.get(tree, key)? {
            Some(v) => Ok(Some(decode(tree, key, &v)?)),
            None => Ok(None),
        }
    }

    /// Records of `tree` under `prefix` after `after`, at most `limit`.
    pub fn scan<T: DeserializeOwned>(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        self.index
            .scan(tree, prefix, after, limit)?
            .into_iter()
            .map(|(k, v)| {
                let t = decode(tree, &k, &v)?;
                Ok((k, t))
            })
            .collect()
    }

    /// Writes one record. Durable before it returns (blocks on the group flush).
    pub fn put<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<()> {
        let mut b = Batch::default();
        b.put(tree, key, encode(value));
        self.commit(b)
    }

    /// Inserts a record only if the key is absent. Returns false if it existed. Either answer is
    /// durable before it returns.
    pub fn insert_new<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<bool> {
        let value = encode(value);
        let touched = super::scopes::Touched::of([super::scopes::scope_of_key(tree, key, false)]);
        self.bump();
        self.scopes.bump_touched(&touched);
        let res = self.group.apply_with(|idx| {
            let mut b = Batch::default();
            if idx.get(tree, key)?.is_some() {
                return Ok((b, false));
            }
            b.put(tree, key, value);
            Ok((b, true))
        });
        self.bump();
        self.scopes.bump_touched(&touched);
        let (inserted, pending) = res?;
        self.group.wait(pending)?;
        Ok(inserted)
    }

    /// Removes one record. Durable before it returns.
    pub fn remove(&self, tree: Tree, key: &[u8]) -> Result<()> {
        let mut b = Batch::default();
        b.delete(tree, key);
        self.commit(b)
    }

    /// Applies a batch and blocks until the group flush that covers it is done. An empty batch
    /// writes nothing but still waits until every write applied before it is durable.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        let pending = self.apply(batch)?;
        self.group.wait(pending)
    }

    /// Read-modify-write: runs `f` under the catalog's write lock to fill one batch (reading
    /// through this catalog's read methods as it likes), applies the batch, releases the lock and
    /// blocks until the batch is durable. Every check `f` makes holds when the batch applies. `f`
    /// must not call this catalog's write methods (the lock is not reentrant); it may call
    /// [`Catalog::next_id`] and [`Catalog::purge_repo_into`], which exist for this. Blocks the
    /// calling thread until the flush: call it off the async reactor.
    pub fn write<T>(&self, f: impl FnOnce(&mut Batch) -> Result<T>) -> Result<T> {
        let (out, pending) = self.write_pending(f)?;
        self.group.wait(pending)?;
        Ok(out)
    }

    /// [`Catalog::write`] without the wait, for callers that must release a lock of their own
    /// before blocking on the flush (GC, blob commits).
    pub(crate) fn write_pending<T>(&self, f: impl FnOnce(&mut Batch) -> Result<T>) -> Result<(T, Pending)> {
        let _g = self.write_lock.lock();
        let mut b = Batch::default();
        let out = f(&mut b)?;
        let pending = self.apply(b)?;
        Ok((out, pending))
    }

    /// Blocks until every write applied so far is durable.
    pub fn sync(&self) -> Result<()> {
        self.group.wait(self.group.barrier())
    }

    /// Blocks until `pending` is durable.
    pub(crate) fn wait(&self, pending: Pending) -> Result<()> {
        self.group.wait(pending)
    }

    /// Refuses with [`Error::Poisoned`] once a flush (index or blob) has failed.
    pub fn check_writable(&self) -> Result<()> {
        self.group.check_writable()
    }

    /// Index flushes done so far. With concurrent writers this grows slower than the number of
    /// commits: that is group commit at work.
    pub fn flushes(&self) -> u64 {
        self.group.flushes()
    }

    /// Applies a batch that becomes durable with the next flush, whoever asks for it: for
    /// markers whose loss in a crash costs only redoing work.
    pub(crate) fn apply_unwaited(&self, batch: Batch) -> Result<()> {
        self.apply(batch).map(|_not_waited| ())
    }

    fn apply(&self, batch: Batch) -> Result<Pending> {
        // Bump before and after: a reader that cached between the two sees a new generation.
        let touched = super::scopes::Touched::of(batch.ops.iter().map(super::scopes::scope_of));
        self.bump();
        self.scopes.bump_touched(&touched);
        let res = self.group.apply(batch);
        self.bump();
        self.scopes.bump_touched(&touched);
        res
    }

    /// Returns the next value of a named counter, starting at 1. Never hands out a value twice,
    /// also across a crash, and does not flush on its own: the increment is applied at once and
    /// becomes durable with the first flush after it, which is the flush that acknowledges the
    /// record using the id, since that record is applied later and a flush makes every earlier
    /// applied write durable. A crash before that flush loses the increment, but then also every
    /// record that used the id, so the id was never acknowledged to anyone. Holds only the apply
    /// lock, so it may be called inside [`Catalog::write`].
    pub fn next_id(&self, counter: &str) -> Result<u64> {
        let key = counter_key(counter);
        self.bump();
        let res = self.group.apply_with(|idx| {
            let n = match idx.get(Tree::Meta, &key)? {
                Some(v) => decode::<u64>(Tree::Meta, &key, &v)?,
                None => 0,
            };
            let mut b = Batch::default();
            b.put(Tree::Meta, key.clone(), encode(&(n + 1)));
            Ok((b, n + 1))
        });
        self.bump();
        // Not waited for, on purpose: see above.
        let (id, _not_waited) = res?;
        Ok(id)
    }

    fn counter(&self, name: &str) -> Result<u64> {
        Ok(self.get::<u64>(Tree::Meta, &counter_key(name))?.unwrap_or(0))
    }

    // ---- repositories ----

    pub fn repo_by_name(&self, name: &str) -> Result<Option<RepoRecord>> {
        match self.get::<u64>(Tree::RepoNames, name.as_bytes())? {
            Some(id) => self.repo(id),
            None => Ok(None),
        }
    }

    pub fn repo(&self, id: u64) -> Result<Option<RepoRecord>> {
        self.get(Tree::Repos, &repo_key(id))
    }

    /// Returns the repository, creating it (with an id from the shared `entity` counter) if absent.
    pub fn ensure_repo(&self, name: &str, project: &str) -> Result<(RepoRecord, bool)> {
        if let Some(r) = self.repo_by_name(name)? {
            return Ok((r, false));
        }
        self.write(|b| {
            // Re-check under the lock: another push may have created it meanwhile.
            if let Some(r) = self.repo_by_name(name)? {
                return Ok((r, false));
            }
            let id = self.next_id("entity")?;
            let rec = RepoRecord {
                id,
                name: name.to_string(),
                project: project.to_string(),
                created: now_secs(),
                logical_bytes: 0,
            };
            b.put(Tree::Repos, repo_key(id), encode(&rec));
            b.put(Tree::RepoNames, name.as_bytes(), encode(&id));
            Ok((rec, true))
        })
    }

    /// Repository names in order, after `after`, at most `limit` (the `_catalog` listing).
    pub fn list_repo_names(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, u64)>> {
        self.scan::<u64>(Tree::RepoNames, b"", after.map(str::as_bytes), limit)?
            .into_iter()
            .map(|(k, id)| Ok((String::from_utf8_lossy(&k).into_owned(), id)))
            .collect()
    }

    /// Repository names starting with `prefix` (a project's `syn<N>/`), in order, after `after`,
    /// at most `limit`: reads only those entries.
    pub fn repo_names_under(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, u64)>> {
        self.scan::<u64>(Tree::RepoNames, prefix.as_bytes(), after.map(str::as_bytes), limit)?
            .into_iter()
            .map(|(k, id)| Ok((String::from_utf8_lossy(&k).into_owned(), id)))
            .collect()
    }

    /// Removes a repository's index entries: name, record, tags, history, manifests, referrers and
    /// blob links, in one durable batch. Blobs stay for garbage collection.
    pub fn purge_repo(&self, id: u64) -> Result<()> {
        self.write(|b| self.purge_repo_into(b, id)).map(|_| ())
    }

    /// Deletes a repository's entries (tags, history, manifests, referrers, links and their
    /// reverse entries) in durable batches of at most about `batch` keys, so a repository with
    /// hundreds of thousands of tags never makes one huge write (sled degrades badly after very
    /// large batches). Before each batch, under the write lock, `still` is asked whether to go on
    /// (the repository is still in the trash, say); returns false if it said no. The name and
    /// record stay: finish with [`Catalog::purge_repo_into`], which then has little left to do.
    /// A crash part way leaves a repository partly emptied and still named, and purging again
    /// finishes it.
    pub fn purge_repo_batched(&self, id: u64, batch: usize, still: impl Fn() -> Result<bool>) -> Result<bool> {
        let rk = repo_key(id);
        let batch = batch.max(1);
        loop {
            let more = self.write(|b| {
                if !still()? {
                    return Ok(None);
                }
                let mut left = batch;
                for tree in [Tree::Tags, Tree::TagsByDigest, Tree::TagsByTime, Tree::History, Tree::Referrers] {
                    for k in self.index.scan_keys(tree, &rk, None, left)? {
                        b.delete(tree, k);
                        left -= 1;
                    }
                    if left == 0 {
                        return Ok(Some(true));
                    }
                }
                for (k, m) in self.scan::<ManifestRecord>(Tree::Manifests, &rk, None, left)? {
                    for r in m.refs.iter().chain(&m.subject) {
                        b.delete(Tree::RefsByBlob, cat(&cat(&r.to_key(), &rk), &k[8..]));
                    }
                    b.delete(Tree::Manifests, k);
                    left -= 1;
                }
                if left == 0 {
                    return Ok(Some(true));
                }
                for k in self.index.scan_keys(Tree::Links, &rk, None, left)? {
                    b.delete(Tree::LinksByBlob, cat(&k[8..], &rk));
                    b.delete(Tree::Links, k);
                    left -= 1;
                }
                Ok(Some(left == 0))
            })?;
            match more {
                None => return Ok(false),
                Some(true) => continue,
                Some(false) => return Ok(true),
            }
        }
    }

    /// Adds the deletions of [`Catalog::purge_repo`] to `b`, so a caller can purge a repository
    /// together with records of its own (ACLs, trash, entities) in one batch. Call it inside
    /// [`Catalog::write`], which holds the lock that keeps the list of entries current. Returns
    /// false if the repository has no record (then only keyed entries such as an external
    /// repository's commit history are deleted).
    pub fn purge_repo_into(&self, b: &mut Batch, id: u64) -> Result<bool> {
        // An external repository has no record but may have a commit history: its entries go too.
        let rec = self.repo(id)?;
        let rk = repo_key(id);
        for (k, m) in self.scan::<ManifestRecord>(Tree::Manifests, &rk, None, usize::MAX)? {
            for r in m.refs.iter().chain(&m.subject) {
                b.delete(Tree::RefsByBlob, cat(&cat(&r.to_key(), &rk), &k[8..]));
            }
        }
        for tree in [Tree::Tags, Tree::TagsByDigest, Tree::TagsByTime, Tree::History, Tree::Manifests, Tree::Referrers]
        {
            self.index.for_each_key(tree, &rk, &mut |k| {
                b.delete(tree, k.to_vec());
                true
            })?;
        }
        self.index.for_each_key(Tree::Links, &rk, &mut |k| {
            b.delete(Tree::Links, k.to_vec());
            b.delete(Tree::LinksByBlob, cat(&k[8..], &rk));
            true
        })?;
        b.delete(Tree::TagCounts, rk);
        let Some(rec) = rec else { return Ok(false) };
        b.delete(Tree::RepoNames, rec.name.as_bytes());
        b.delete(Tree::Repos, rk);
        Ok(true)
    }

    // ---- blobs and links ----

    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
        self.get(Tree::Blobs, &digest.to_key())
    }

    /// Records a committed blob (if new) and links it to `repo` (if given) in one durable batch.
    /// Returns true if the blob record is new.
    pub fn record_blob(&self, digest: &Digest, size: u64, repo: Option<u64>) -> Result<bool> {
        let (new, pending) = self.record_blob_pending(digest, size, repo)?;
        self.group.wait(pending)?;
        Ok(new)
    }

    /// [`Catalog::record_blob`] without waiting for the flush.
    pub(crate) fn record_blob_pending(&self, digest: &Digest, size: u64, repo: Option<u64>) -> Result<(bool, Pending)> {
        self.write_pending(|b| {
            let new = self.blob(digest)?.is_none();
            if new {
                b.put(Tree::Blobs, digest.to_key(), encode(&BlobRecord { size, created: now_secs() }));
                let phys = self.counter("physical_bytes")? + size;
                b.put(Tree::Meta, counter_key("physical_bytes"), encode(&phys));
            }
            if let Some(r) = repo {
                self.link_into(b, r, digest, size)?;
            }
            Ok(new)
        })
    }

    fn link_into(&self, b: &mut Batch, repo: u64, digest: &Digest, size: u64) -> Result<()> {
        let lk = cat(&repo_key(repo), &digest.to_key());
        if self.index.get(Tree::Links, &lk)?.is_some() {
            return Ok(());
        }
        let mut rec = self.repo(repo)?.ok_or_else(|| Error::RepositoryUnknown(repo.to_string()))?;
        // Logical bytes grow only here, so the quota is checked only here: blob commits, mounts
        // and manifest pushes all pass through. Checked under the write lock, so concurrent
        // pushes cannot overshoot it together.
        if let Some(quota) = self.quota(&rec.project)? {
            let usage = self.project_logical_bytes(&rec.project)?;
            if usage.saturating_add(size) > quota {
                return Err(Error::QuotaExceeded { project: rec.project, quota, usage, needed: size });
            }
        }
        rec.logical_bytes += size;
        b.put(Tree::Repos, repo_key(repo), encode(&rec));
        b.put(Tree::Links, lk, super::codec::seal(UNIT));
        b.put(Tree::LinksByBlob, cat(&digest.to_key(), &repo_key(repo)), super::codec::seal(UNIT));
        Ok(())
    }

    /// Links an existing blob into a repository (cross-repository mount). Fails if the blob is not
    /// recorded (it may have been collected).
    pub fn link_blob(&self, repo: u64, digest: &Digest) -> Result<()> {
        let pending = self.link_blob_pending(repo, digest)?;
        self.group.wait(pending)
    }

    /// [`Catalog::link_blob`] without waiting for the flush.
    pub(crate) fn link_blob_pending(&self, repo: u64, digest: &Digest) -> Result<Pending> {
        let ((), pending) = self.write_pending(|b| {
            let blob = self.blob(digest)?.ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
            self.link_into(b, repo, digest, blob.size)
        })?;
        Ok(pending)
    }

    pub fn is_linked(&self, repo: u64, digest: &Digest) -> Result<bool> {
        Ok(self.index.get(Tree::Links, &cat(&repo_key(repo), &digest.to_key()))?.is_some())
    }

    /// Removes a blob from a repository. Returns false if it was not linked.
    pub fn unlink_blob(&self, repo: u64, digest: &Digest) -> Result<bool> {
        self.write(|b| self.unlink_into(b, repo, digest))
    }

    /// Adds the removal of a repository-to-blob link (and its share of the repository's logical
    /// bytes) to `b`. Returns false if it was not linked.
    fn unlink_into(&self, b: &mut Batch, repo: u64, digest: &Digest) -> Result<bool> {
        let lk = cat(&repo_key(repo), &digest.to_key());
        if self.index.get(Tree::Links, &lk)?.is_none() {
            return Ok(false);
        }
        if let (Some(mut rec), Some(blob)) = (self.repo(repo)?, self.blob(digest)?) {
            rec.logical_bytes = rec.logical_bytes.saturating_sub(blob.size);
            b.put(Tree::Repos, repo_key(repo), encode(&rec));
        }
        b.delete(Tree::Links, lk);
        b.delete(Tree::LinksByBlob, cat(&digest.to_key(), &repo_key(repo)));
        Ok(true)
    }

    /// Up to `limit` repositories that link the blob (ids in ascending order; keys are the
    /// digest then the big-endian repository id, so they sort by id).
    pub fn repos_linking(&self, digest: &Digest, limit: usize) -> Result<Vec<u64>> {
        let prefix = digest.to_key();
        Ok(self
            .index
            .scan_keys(Tree::LinksByBlob, &prefix, None, limit)?
            .into_iter()
            .filter_map(|k| k.get(prefix.len()..).and_then(|id| <[u8; 8]>::try_from(id).ok()).map(u64::from_be_bytes))
            .collect())
    }

    /// True if any repository links the blob.
    pub fn blob_is_linked_anywhere(&self, digest: &Digest) -> Result<bool> {
        Ok(!self.index.scan(Tree::LinksByBlob, &digest.to_key(), None, 1)?.is_empty())
    }

    /// True if any stored manifest references the blob (config, layer, child or subject).
    pub fn blob_is_referenced(&self, digest: &Digest) -> Result<bool> {
        Ok(!self.index.scan(Tree::RefsByBlob, &digest.to_key(), None, 1)?.is_empty())
    }

    /// Forgets a blob record. GC forgets a blob durably before it removes the file, and holds the
    /// GC exclusion while it decides.
    pub fn forget_blob(&self, digest: &Digest) -> Result<()> {
        let (_, pending) = self.forget_blobs_pending(std::slice::from_ref(digest))?;
        self.group.wait(pending)
    }

    /// Forgets several blob records in one batch without waiting for the flush. Returns the size
    /// of each blob that had a record.
    pub(crate) fn forget_blobs_pending(&self, digests: &[Digest]) -> Result<(Vec<(Digest, u64)>, Pending)> {
        self.write_pending(|b| {
            let mut forgotten = Vec::new();
            let mut freed = 0u64;
            for d in digests {
                let Some(rec) = self.blob(d)? else { continue };
                b.delete(Tree::Blobs, d.to_key());
                // A collected blob needs no quarantine either.
                b.delete(Tree::Quarantine, d.to_key());
                freed += rec.size;
                forgotten.push((d.clone(), rec.size));
            }
            if !forgotten.is_empty() {
                let phys = self.counter("physical_bytes")?.saturating_sub(freed);
                b.put(Tree::Meta, counter_key("physical_bytes"), encode(&phys));
            }
            Ok(forgotten)
        })
    }

    /// Unique bytes stored, over all repositories.
    pub fn physical_bytes(&self) -> Result<u64> {
        self.counter("physical_bytes")
    }

    // ---- manifests, tags, history, referrers ----

    /// Stores a manifest record, links its bytes (already a blob), and when `tag` is given points
    /// the tag at it and appends a history entry, all in one durable batch.
    pub fn put_manifest(
        &self,
        repo: u64,
        digest: &Digest,
        rec: &ManifestRecord,
        tag: Option<(&str, &str)>,
    ) -> Result<()> {
        let pending = self.put_manifest_pending(repo, digest, rec, tag)?;
        self.group.wait(pending)
    }

    /// [`Catalog::put_manifest`] without waiting for the flush.
    pub(crate) fn put_manifest_pending(
        &self,
        repo: u64,
        digest: &Digest,
        rec: &ManifestRecord,
        tag: Option<(&str, &str)>,
    ) -> Result<Pending> {
        let ((), pending) = self.write_pending(|b| self.put_manifest_into(b, repo, digest, rec, tag))?;
        Ok(pending)
    }

    fn put_manifest_into(
        &self,
        b: &mut Batch,
        repo: u64,
        digest: &Digest,
        rec: &ManifestRecord,
        tag: Option<(&str, &str)>,
    ) -> Result<()> {
        let rk = repo_key(repo);
        let dk = digest.to_key();
        b.put(Tree::Manifests, cat(&rk, &dk), encode(rec));
        // A referrer does not hold its subject: deleting an image lets GC take it, and its
        // referrers after it (distribution-spec: referrers of a deleted subject MAY go). The
        // subject is found through the Referrers tree instead.
        for r in &rec.refs {
            b.put(Tree::RefsByBlob, cat(&cat(&r.to_key(), &rk), &dk), super::codec::seal(UNIT));
        }
        self.link_into(b, repo, digest, rec.size)?;
        if let Some(subject) = &rec.subject {
            b.put(Tree::Referrers, cat(&cat(&rk, &subject.to_key()), &dk), super::codec::seal(UNIT));
        }
        if let Some((tag, pusher)) = tag {
            let time = now_secs();
            let seq = self.next_id("history")?;
            self.point_tag_into(b, repo, tag, digest, time)?;
            b.put(
                Tree::Tags,
                cat(&rk, tag.as_bytes()),
                encode(&TagRecord { digest: digest.clone(), time, pusher: pusher.to_string() }),
            );
            let commit = Commit { seq, tag: tag.to_string(), digest: digest.clone(), time, pusher: pusher.to_string() };
            b.put(Tree::History, cat(&rk, &seq.to_be_bytes()), encode(&commit));
        }
        Ok(())
    }

    /// Deletes an orphaned referrer of repository `repo`, if it still is one when checked under
    /// the write lock: a manifest with a subject that is not a manifest of the repository, no
    /// tag, no other manifest of the repository listing it, and created before `cutoff` (unix
    /// seconds; the grace window lets a referrer be pushed before its subject). Returns the
    /// blobs it referenced (to be unlinked with [`Catalog::unlink_unreferenced_pending`]), or
    /// None if it was kept. GC calls this under its exclusion; a tag or an index pushed
    /// meanwhile keeps the referrer.
    pub(crate) fn delete_orphan_referrer_pending(
        &self,
        repo: u64,
        digest: &Digest,
        cutoff: i64,
    ) -> Result<(Option<Vec<Digest>>, Pending)> {
        self.write_pending(|b| {
            let Some(rec) = self.manifest(repo, digest)? else { return Ok(None) };
            let Some(subject) = &rec.subject else { return Ok(None) };
            if rec.created >= cutoff || self.manifest(repo, subject)?.is_some() {
                return Ok(None);
            }
            let rk = repo_key(repo);
            if !self.index.scan(Tree::RefsByBlob, &cat(&digest.to_key(), &rk), None, 1)?.is_empty() {
                return Ok(None);
            }
            if !self.index.scan_keys(Tree::TagsByDigest, &cat(&rk, &digest.to_key()), None, 1)?.is_empty() {
                return Ok(None);
            }
            Ok(self.delete_manifest_into(b, repo, digest)?.then_some(rec.refs))
        })
    }

    /// Unlinks `digest` from repository `repo` if no manifest of the repository references it
    /// (checked under the write lock). Used by GC for the blobs of a referrer it deleted: they
    /// were linked for that referrer, and nothing there needs them any more.
    pub(crate) fn unlink_unreferenced_pending(&self, repo: u64, digest: &Digest) -> Result<(bool, Pending)> {
        self.write_pending(|b| {
            if !self.index.scan(Tree::RefsByBlob, &cat(&digest.to_key(), &repo_key(repo)), None, 1)?.is_empty() {
                return Ok(false);
            }
            self.unlink_into(b, repo, digest)
        })
    }

    pub fn manifest(&self, repo: u64, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.get(Tree::Manifests, &cat(&repo_key(repo), &digest.to_key()))
    }

    /// Deletes a manifest from a repository: its record, every tag pointing at it, its referrers
    /// entry and its link, in one durable batch. Returns false if the repository has no such
    /// manifest. The tags are read under the write lock, so a tag re-pointed at another manifest
    /// by a concurrent push is never deleted with this one.
    pub fn delete_manifest(&self, repo: u64, digest: &Digest) -> Result<bool> {
        self.write(|b| self.delete_manifest_into(b, repo, digest))
    }

    fn delete_manifest_into(&self, b: &mut Batch, repo: u64, digest: &Digest) -> Result<bool> {
        let Some(rec) = self.manifest(repo, digest)? else { return Ok(false) };
        let rk = repo_key(repo);
        b.delete(Tree::Manifests, cat(&rk, &digest.to_key()));
        for r in rec.refs.iter().chain(&rec.subject) {
            b.delete(Tree::RefsByBlob, cat(&cat(&r.to_key(), &rk), &digest.to_key()));
        }
        if let Some(subject) = &rec.subject {
            b.delete(Tree::Referrers, cat(&cat(&rk, &subject.to_key()), &digest.to_key()));
        }
        // Only the tags pointing at this manifest, from the reverse index.
        let prefix = cat(&rk, &digest.to_key());
        let mut tags = Vec::new();
        self.index.for_each_key(Tree::TagsByDigest, &prefix, &mut |k| {
            tags.push(k.to_vec());
            true
        })?;
        let mut removed = 0u64;
        for k in tags {
            let tag_key = cat(&rk, &k[prefix.len()..]);
            // The tag's push time names its entry in the time index.
            if let Some(t) = self.get::<TagRecord>(Tree::Tags, &tag_key)? {
                b.delete(Tree::TagsByTime, cat(&cat(&rk, &time_bytes(t.time)), &k[prefix.len()..]));
                removed += 1;
            }
            b.delete(Tree::Tags, tag_key);
            b.delete(Tree::TagsByDigest, k);
        }
        if removed > 0 {
            self.add_tag_count_into(b, repo, -(removed as i64))?;
        }
        self.unlink_into(b, repo, digest)?;
        Ok(true)
    }

    pub fn tag(&self, repo: u64, tag: &str) -> Result<Option<TagRecord>> {
        self.get(Tree::Tags, &cat(&repo_key(repo), tag.as_bytes()))
    }

    /// Tag names in lexical order after `after`, at most `limit`. Reads keys only.
    pub fn list_tags(&self, repo: u64, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let rk = repo_key(repo);
        let after_key = after.map(|a| cat(&rk, a.as_bytes()));
        Ok(self
            .index
            .scan_keys(Tree::Tags, &rk, after_key.as_deref(), limit)?
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k[8..]).into_owned())
            .collect())
    }

    /// How many tags a repository has: one record, kept with every tag write.
    pub fn count_tags(&self, repo: u64) -> Result<usize> {
        Ok(self.get::<u64>(Tree::TagCounts, &repo_key(repo))?.unwrap_or(0) as usize)
    }

    /// The latest push time of any current tag of the repository: the last entry of the time
    /// index, one key read.
    pub fn last_push(&self, repo: u64) -> Result<Option<i64>> {
        let k = self.index.scan_keys_rev(Tree::TagsByTime, &repo_key(repo), None, 1)?;
        Ok(k.first().and_then(|k| split_tag_time_key(k)).map(|(t, _)| t))
    }

    /// Tags with their records in push-time order (ties by tag name), oldest first or, with
    /// `desc`, newest first: the entries strictly after (before, with `desc`) `from`, skipping
    /// `skip` of them, at most `limit`. Reads `skip + limit` keys of the time index and the
    /// records of the page only.
    pub fn tags_by_time(
        &self,
        repo: u64,
        desc: bool,
        from: Option<TimeCursor<'_>>,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, TagRecord)>> {
        let rk = repo_key(repo);
        let from_key = from.map(|(t, tag)| tag_time_key(repo, t, tag));
        let want = skip.saturating_add(limit);
        let keys = if desc {
            self.index.scan_keys_rev(Tree::TagsByTime, &rk, from_key.as_deref(), want)?
        } else {
            self.index.scan_keys(Tree::TagsByTime, &rk, from_key.as_deref(), want)?
        };
        self.tags_named(repo, keys.iter().skip(skip).filter_map(|k| split_tag_time_key(k)).map(|(_, tag)| tag))
    }

    /// Tags with their records in descending name order, strictly before `before`, skipping
    /// `skip`, at most `limit`. Reads `skip + limit` keys and the page's records.
    pub fn tag_records_desc(
        &self,
        repo: u64,
        before: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, TagRecord)>> {
        let rk = repo_key(repo);
        let before_key = before.map(|a| cat(&rk, a.as_bytes()));
        let keys = self.index.scan_keys_rev(Tree::Tags, &rk, before_key.as_deref(), skip.saturating_add(limit))?;
        self.tags_named(repo, keys.iter().skip(skip).map(|k| String::from_utf8_lossy(&k[8..]).into_owned()))
    }

    /// The records of the named tags, in the order given (a tag gone meanwhile is left out).
    fn tags_named(&self, repo: u64, tags: impl Iterator<Item = String>) -> Result<Vec<(String, TagRecord)>> {
        let mut out = Vec::new();
        for tag in tags {
            if let Some(t) = self.tag(repo, &tag)? {
                out.push((tag, t));
            }
        }
        Ok(out)
    }

    /// Tags with their records, in lexical order.
    pub fn tag_records(&self, repo: u64, after: Option<&str>, limit: usize) -> Result<Vec<(String, TagRecord)>> {
        let rk = repo_key(repo);
        let after_key = after.map(|a| cat(&rk, a.as_bytes()));
        Ok(self
            .scan::<TagRecord>(Tree::Tags, &rk, after_key.as_deref(), limit)?
            .into_iter()
            .map(|(k, t)| (String::from_utf8_lossy(&k[8..]).into_owned(), t))
            .collect())
    }

    pub fn delete_tag(&self, repo: u64, tag: &str) -> Result<bool> {
        let key = cat(&repo_key(repo), tag.as_bytes());
        self.write(|b| {
            let Some(old) = self.get::<TagRecord>(Tree::Tags, &key)? else { return Ok(false) };
            b.delete(Tree::TagsByDigest, tag_by_digest_key(repo, &old.digest, tag));
            b.delete(Tree::TagsByTime, tag_time_key(repo, old.time, tag));
            self.add_tag_count_into(b, repo, -1)?;
            b.delete(Tree::Tags, key.clone());
            Ok(true)
        })
    }

    /// Adds to `b` the secondary-index changes of pointing `tag` at `digest` at push time
    /// `time`: the entries under the digest and time it had before go, the new ones come, and a
    /// new tag counts. The caller writes the tag itself. At most one call per batch and
    /// repository (the count is read from the index, not from the batch).
    fn point_tag_into(&self, b: &mut Batch, repo: u64, tag: &str, digest: &Digest, time: i64) -> Result<()> {
        match self.get::<TagRecord>(Tree::Tags, &cat(&repo_key(repo), tag.as_bytes()))? {
            Some(old) => {
                if &old.digest != digest {
                    b.delete(Tree::TagsByDigest, tag_by_digest_key(repo, &old.digest, tag));
                }
                if old.time != time {
                    b.delete(Tree::TagsByTime, tag_time_key(repo, old.time, tag));
                }
            }
            None => self.add_tag_count_into(b, repo, 1)?,
        }
        b.put(Tree::TagsByDigest, tag_by_digest_key(repo, digest, tag), super::codec::seal(UNIT));
        b.put(Tree::TagsByTime, tag_time_key(repo, time, tag), super::codec::seal(UNIT));
        Ok(())
    }

    /// Adds `delta` to a repository's tag count in `b` (the count as the index holds it now).
    fn add_tag_count_into(&self, b: &mut Batch, repo: u64, delta: i64) -> Result<()> {
        let n = self.get::<u64>(Tree::TagCounts, &repo_key(repo))?.unwrap_or(0);
        let n = n.saturating_add_signed(delta);
        if n == 0 {
            b.delete(Tree::TagCounts, repo_key(repo));
        } else {
            b.put(Tree::TagCounts, repo_key(repo), encode(&n));
        }
        Ok(())
    }

    /// Builds the push-time index and the tag counts when the data directory predates them (a
    /// marker in `meta` says they are complete), in durable batches of at most `batch` tags,
    /// like [`Catalog::build_tags_by_digest`]. Run at open, before any request; a crash part way
    /// leaves no marker and the next open builds again (every put is idempotent, and each count
    /// is rewritten from zero). Returns how many tags were indexed.
    pub fn build_tags_by_time(&self, batch: usize) -> Result<u64> {
        if self.index.get(Tree::Meta, TAGS_BY_TIME_BUILT)?.is_some() {
            return Ok(0);
        }
        let mut after: Option<Vec<u8>> = None;
        let mut written = 0u64;
        // The repository being counted and its tags so far (tags are keyed repository first, so
        // each repository's tags arrive together, possibly over several batches).
        let mut counting: Option<(Vec<u8>, u64)> = None;
        loop {
            let page = self.scan::<TagRecord>(Tree::Tags, b"", after.as_deref(), batch.max(1))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut b = Batch::default();
            for (k, t) in &page {
                let (Some(rk), Some(tag)) = (k.get(..8), k.get(8..)) else { continue };
                b.put(Tree::TagsByTime, cat(&cat(rk, &time_bytes(t.time)), tag), super::codec::seal(UNIT));
                written += 1;
                match &mut counting {
                    Some((r, n)) if r.as_slice() == rk => *n += 1,
                    _ => {
                        if let Some((r, n)) = counting.take() {
                            b.put(Tree::TagCounts, r, encode(&n));
                        }
                        counting = Some((rk.to_vec(), 1));
                    }
                }
            }
            // The running count of the repository still being read; a later batch overwrites it.
            if let Some((r, n)) = &counting {
                b.put(Tree::TagCounts, r.clone(), encode(n));
            }
            self.commit(b)?;
        }
        // Not waited for, as in `build_tags_by_digest`.
        let mut b = Batch::default();
        b.put(Tree::Meta, TAGS_BY_TIME_BUILT, encode(&1u8));
        self.apply_unwaited(b)?;
        Ok(written)
    }

    /// Builds the tag reverse index when the data directory predates it (a marker in `meta` says
    /// it is complete), in durable batches of at most `batch` entries. Run at open, before any
    /// request; a crash part way leaves no marker, so the next open builds it again (the puts
    /// are idempotent). Returns how many entries were written.
    pub fn build_tags_by_digest(&self, batch: usize) -> Result<u64> {
        if self.index.get(Tree::Meta, TAGS_BY_DIGEST_BUILT)?.is_some() {
            return Ok(0);
        }
        let mut after: Option<Vec<u8>> = None;
        let mut written = 0u64;
        loop {
            let page = self.scan::<TagRecord>(Tree::Tags, b"", after.as_deref(), batch.max(1))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut b = Batch::default();
            for (k, t) in &page {
                let (Some(rk), Some(tag)) = (k.get(..8), k.get(8..)) else { continue };
                b.put(Tree::TagsByDigest, cat(&cat(rk, &t.digest.to_key()), tag), super::codec::seal(UNIT));
                written += 1;
            }
            self.commit(b)?;
        }
        // Not waited for: the entries above are durable already, so the marker may become
        // durable with whatever flush comes next (a crash before it only means building again).
        let mut b = Batch::default();
        b.put(Tree::Meta, TAGS_BY_DIGEST_BUILT, encode(&1u8));
        self.apply_unwaited(b)?;
        Ok(written)
    }

    /// Appends a history entry without moving a managed tag (external repositories' commits).
    pub fn append_commit(&self, repo: u64, tag: &str, digest: &Digest, pusher: &str) -> Result<Commit> {
        self.write(|b| {
            let seq = self.next_id("history")?;
            let rk = repo_key(repo);
            let commit = Commit {
                seq,
                tag: tag.to_string(),
                digest: digest.clone(),
                time: now_secs(),
                pusher: pusher.to_string(),
            };
            b.put(Tree::History, cat(&rk, &seq.to_be_bytes()), encode(&commit));
            self.point_tag_into(b, repo, tag, digest, commit.time)?;
            b.put(
                Tree::Tags,
                cat(&rk, tag.as_bytes()),
                encode(&TagRecord { digest: digest.clone(), time: commit.time, pusher: pusher.to_string() }),
            );
            Ok(commit)
        })
    }

    /// A repository's tag history, oldest first, after sequence number `after`.
    pub fn history(&self, repo: u64, after: Option<u64>, limit: usize) -> Result<Vec<Commit>> {
        let rk = repo_key(repo);
        let after_key = after.map(|s| cat(&rk, &s.to_be_bytes()));
        Ok(self.scan::<Commit>(Tree::History, &rk, after_key.as_deref(), limit)?.into_iter().map(|(_, c)| c).collect())
    }

    /// Digests of the manifests in `repo` whose subject is `subject`.
    pub fn referrers(&self, repo: u64, subject: &Digest) -> Result<Vec<Digest>> {
        let prefix = cat(&repo_key(repo), &subject.to_key());
        let mut out = Vec::new();
        self.index.for_each_key(Tree::Referrers, &prefix, &mut |k| {
            if let Some(d) = Digest::from_key(&k[prefix.len()..]) {
                out.push(d);
            }
            true
        })?;
        Ok(out)
    }

    // ---- upload sessions ----

    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        self.get(Tree::Uploads, id.as_bytes())
    }

    pub fn put_upload(&self, rec: &UploadRecord) -> Result<()> {
        self.put(Tree::Uploads, rec.id.as_bytes(), rec)
    }

    pub fn delete_upload(&self, id: &str) -> Result<()> {
        self.remove(Tree::Uploads, id.as_bytes())
    }

    pub fn uploads(&self) -> Result<Vec<UploadRecord>> {
        Ok(self.scan::<UploadRecord>(Tree::Uploads, b"", None, usize::MAX)?.into_iter().map(|(_, r)| r).collect())
    }

    // ---- quotas ----

    /// The storage quota of a project in logical bytes, if one is set.
    pub fn quota(&self, project: &str) -> Result<Option<u64>> {
        self.get(Tree::Quotas, project.as_bytes())
    }

    /// Sets (Some) or removes (None) a project's quota. Durable before it returns.
    pub fn set_quota(&self, project: &str, bytes: Option<u64>) -> Result<()> {
        match bytes {
            Some(q) => self.put(Tree::Quotas, project.as_bytes(), &q),
            None => self.remove(Tree::Quotas, project.as_bytes()),
        }
    }

    /// Logical bytes of every repository of `project` (what `GET .../usage` reports). A scan of
    /// the repositories: only done for projects that have a quota.
    pub fn project_logical_bytes(&self, project: &str) -> Result<u64> {
        let mut total = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan::<RepoRecord>(Tree::Repos, b"", after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            total += page.iter().filter(|(_, r)| r.project == project).map(|(_, r)| r.logical_bytes).sum::<u64>();
        }
        Ok(total)
    }

    // ---- quarantine ----

    pub fn quarantined(&self, digest: &Digest) -> Result<Option<QuarantineRecord>> {
        self.get(Tree::Quarantine, &digest.to_key())
    }

    /// Every quarantined blob, in digest order.
    pub fn quarantine_list(&self) -> Result<Vec<(Digest, QuarantineRecord)>> {
        Ok(self
            .scan::<QuarantineRecord>(Tree::Quarantine, b"", None, usize::MAX)?
            .into_iter()
            .filter_map(|(k, r)| Digest::from_key(&k).map(|d| (d, r)))
            .collect())
    }

    pub(crate) fn set_quarantine_pending(&self, digest: &Digest, rec: Option<&QuarantineRecord>) -> Result<Pending> {
        let mut b = Batch::default();
        match rec {
            Some(r) => b.put(Tree::Quarantine, digest.to_key(), encode(r)),
            None => b.delete(Tree::Quarantine, digest.to_key()),
        };
        self.apply(b)
    }

    // ---- snapshots ----

    /// Calls `f` with every entry of `trees` (tree, key, sealed value) as of one point in the
    /// apply order: no write applies until it returns (see [`GroupCommit::frozen`]). Writes
    /// applied but not yet flushed are included; they are from pushes not yet acknowledged.
    pub fn snapshot(&self, trees: &[Tree], f: &mut SnapshotVisitor<'_>) -> Result<()> {
        self.group.frozen(|idx| {
            for &tree in trees {
                let mut after: Option<Vec<u8>> = None;
                loop {
                    let page = idx.scan(tree, b"", after.as_deref(), 1024)?;
                    let Some((last, _)) = page.last() else { break };
                    after = Some(last.clone());
                    for (k, v) in &page {
                        f(tree, k, v)?;
                    }
                }
            }
            Ok(())
        })
    }
}
