//! `stowage-engine`: the storage heart of Stowage. A content-addressed, deduplicated blob store with
//! resumable streamed uploads hashed as they arrive, an index behind a replaceable trait (sled by
//! default), online garbage collection and storage accounting.
//!
//! It knows nothing of HTTP: the daemon calls typed methods and maps [`Error`] to responses in one
//! place. Durability contract (DESIGN.md section 4): when a commit returns Ok, the blob's file was
//! fsynced, linked into place, its directory fsynced, and the index write flushed. A failed fsync
//! of either kind poisons the engine (every later write is refused).
//!
//! Threads: the synchronous write methods (of [`Engine`] and [`Catalog`]) block the calling thread
//! until the group flush of the index that covers their write, which with concurrent writers is
//! shared by all of them. Call them from blocking threads: [`Engine::blocking`] is the short way
//! from async code. The async methods (uploads) already do their disk work on blocking threads.

pub mod backup;
pub mod blob_store;
pub mod digest;
pub mod error;
pub mod format;
pub mod gc;
pub mod index;
pub mod io;
pub(crate) mod poison;
pub mod scrub;
pub mod upload;

pub use digest::{Algorithm, Digest, DigestError};
pub use error::{Error, Result};
pub use index::catalog::{Catalog, Commit, ManifestRecord, QuarantineRecord, RepoRecord, TagRecord, UploadRecord};
pub use upload::UploadWriter;

use blob_store::{BlobStore, Committed};
use bytes::Bytes;
use index::catalog::now_secs;
use io::{IoBackend, IoChoice};
use parking_lot::{Condvar, Mutex, RwLock};
use poison::Poison;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use upload::{upload_path, Session};

/// Mode of every directory the engine creates: other local users get no access to stored data.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the engine creates (blobs are upload files linked into place, so they keep
/// it).
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with [`DIR_MODE`]. Explicit rather than left to the
/// umask, so the store stays private when the engine is embedded by a process that did not
/// restrict its umask.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Engine settings. The daemon fills these from its config file.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Root of `blobs/`, `uploads/`, `index/`.
    pub data_dir: PathBuf,
    /// Which I/O backend (default: io_uring if the kernel allows it).
    pub io: IoChoice,
    /// Writes in flight per upload with io_uring (default 8).
    pub io_queue_depth: u32,
    /// Idle uploads older than this are removed (default 24 h).
    pub upload_ttl: Duration,
    /// Blobs younger than this are never collected (default 1 h).
    pub gc_grace: Duration,
    /// Largest blob accepted, in bytes (default 100 GB, the seed's per-layer limit).
    pub max_blob_bytes: u64,
    /// sled page cache, in bytes (default 256 MiB).
    pub index_cache_bytes: u64,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            io: IoChoice::Auto,
            io_queue_depth: 8,
            upload_ttl: Duration::from_secs(24 * 3600),
            gc_grace: Duration::from_secs(3600),
            max_blob_bytes: 100_000_000_000,
            index_cache_bytes: 256 << 20,
        }
    }
}

/// What a committed blob is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// False when the same bytes were already stored (deduplicated).
    pub new: bool,
}

/// Status of an upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    pub repo: String,
    /// Who started the upload.
    pub owner: String,
    /// Bytes received and durable; the next chunk starts here.
    pub offset: u64,
}

pub(crate) struct Inner {
    pub(crate) cfg: EngineConfig,
    pub(crate) io: Arc<dyn IoBackend>,
    pub(crate) catalog: Catalog,
    pub(crate) blobs: BlobStore,
    pub(crate) uploads_dir: PathBuf,
    /// Shared with the catalog: a failed blob fsync or index flush stops both.
    poison: Arc<Poison>,
    pub(crate) sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    /// Held shared by everything that creates a reference to a blob (commit, mount, manifest
    /// push) and exclusively by GC while it deletes, so GC never removes a blob between another
    /// operation's check and its write.
    pub(crate) gc_lock: RwLock<()>,
    /// Blobs GC has forgotten (applied, maybe not yet durable) whose files it has not removed yet.
    /// GC removes files only after the forget is durable and without holding `gc_lock`, so a
    /// commit of the same bytes in that window must wait rather than link the doomed file.
    pub(crate) gc_deleting: Mutex<HashSet<Digest>>,
    pub(crate) gc_deleted: Condvar,
    /// Held by whole-store jobs that must not overlap: a garbage collection (removes files), a
    /// backup (needs every file its snapshot records) and a scrub's quarantine step (moves
    /// files). Never taken by pushes or pulls.
    pub(crate) maintenance: Mutex<()>,
    /// Blobs in quarantine now: reads check the quarantine only when this is not zero, so the
    /// common case costs one atomic load.
    pub(crate) quarantined: std::sync::atomic::AtomicU64,
    pub(crate) scrub_stats: scrub::ScrubStats,
    /// Bytes of request bodies queued for the upload writers, across every upload: see
    /// [`upload::QUEUED_BYTES`].
    pub(crate) upload_queue: Arc<tokio::sync::Semaphore>,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Inner {
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        self.poison.check()
    }

    /// Records a failed fsync: from now on every write is refused.
    pub(crate) fn poison(&self, path: &Path, e: std::io::Error) -> Error {
        self.poison.set(format!("fsync of {} failed: {e}", path.display()))
    }

    /// Drops an upload's file and record. Best effort: leftovers are removed at the next start.
    pub(crate) fn discard_upload(&self, id: &str, recorded: bool) {
        let path = upload_path(&self.uploads_dir, id);
        if let Err(e) = self.io.remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not remove upload file");
            }
        }
        if recorded {
            if let Err(e) = self.catalog.delete_upload(id) {
                tracing::warn!(upload = id, error = %e, "could not remove upload record");
            }
        }
    }

    /// Moves a synced temp file into the store and records it, linked to `repo`. Blocks until the
    /// record is durable.
    pub(crate) fn commit_blob(&self, temp: &Path, digest: &Digest, size: u64, repo: &str) -> Result<BlobInfo> {
        let (committed, new_record, pending) = {
            let _gc = self.gc_lock.read();
            let repo_id = self
                .catalog
                .repo_by_name(repo)?
                .map(|r| r.id)
                .ok_or_else(|| Error::RepositoryUnknown(repo.to_string()))?;
            self.wait_not_being_deleted(digest);
            // A quarantined blob's file was moved aside, so the commit below links this (verified)
            // upload in its place, and the quarantine record goes: the blob is healed.
            let healing = self.is_quarantined(digest)?;
            let committed = match self.blobs.commit(self.io.as_ref(), temp, digest) {
                Err(Error::Io { path, source }) if path != temp && source.kind() != std::io::ErrorKind::NotFound => {
                    // A failed directory fsync: the link's durability is unknown.
                    return Err(self.poison(&path, source));
                }
                other => other?,
            };
            let (new_record, mut pending) = self.catalog.record_blob_pending(digest, size, Some(repo_id))?;
            if healing {
                pending = self.catalog.set_quarantine_pending(digest, None)?;
                // Saturating: two pushes healing the same blob at once both get here.
                let _ = self.quarantined.fetch_update(
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                    |n| Some(n.saturating_sub(1)),
                );
                tracing::info!(%digest, "quarantined blob healed by a push of the same content");
            }
            (committed, new_record, pending)
        };
        // Wait for the flush without the GC lock: GC's next exclusive section need not queue
        // behind this fsync. The record is applied, so GC already sees the blob as linked.
        self.catalog.wait(pending)?;
        Ok(BlobInfo { digest: digest.clone(), size, new: committed == Committed::New || new_record })
    }

    /// True if scrub quarantined `digest` (one atomic load when nothing is quarantined).
    pub(crate) fn is_quarantined(&self, digest: &Digest) -> Result<bool> {
        if self.quarantined.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return Ok(false);
        }
        Ok(self.catalog.quarantined(digest)?.is_some())
    }

    /// Blocks while GC is removing the file of `digest`. Called with `gc_lock` held shared, so GC
    /// cannot start removing it again meanwhile; GC removes files without that lock, so this
    /// cannot deadlock.
    fn wait_not_being_deleted(&self, digest: &Digest) {
        let mut deleting = self.gc_deleting.lock();
        while deleting.contains(digest) {
            self.gc_deleted.wait(&mut deleting);
        }
    }
}

/// Entries per durable batch when a secondary index is built at open.
const INDEX_BUILD_BATCH: usize = 10_000;

impl Engine {
    /// Opens the store in `cfg.data_dir`, creating it if needed, and recovers upload sessions:
    /// each recorded upload is cut back to its recorded durable offset; files with no record
    /// (one-shot uploads interrupted by a crash) are removed.
    pub fn open(cfg: EngineConfig) -> Result<Engine> {
        // Before sled creates `index/` in it: a new data directory must be durable first. sled
        // would create `index/` with the process's default mode: make it (private) first.
        let io = io::choose(cfg.io, cfg.io_queue_depth).map_err(|e| Error::io(&cfg.data_dir, e))?;
        let index_dir = cfg.data_dir.join("index");
        io::create_dir_durable(io.as_ref(), &index_dir).map_err(|e| Error::io(&index_dir, e))?;
        let index = index::sled_index::SledIndex::open(&index_dir, cfg.index_cache_bytes)?;
        Engine::open_with(cfg, Arc::new(index), Some(io))
    }

    /// Like [`Engine::open`] with a given index and, optionally, I/O backend (tests inject faults).
    pub fn open_with(
        cfg: EngineConfig,
        index: Arc<dyn index::Index>,
        io: Option<Arc<dyn IoBackend>>,
    ) -> Result<Engine> {
        let blobs_dir = cfg.data_dir.join("blobs");
        let uploads_dir = cfg.data_dir.join("uploads");
        let io = match io {
            Some(io) => io,
            None => io::choose(cfg.io, cfg.io_queue_depth).map_err(|e| Error::io(&cfg.data_dir, e))?,
        };
        for d in [&cfg.data_dir, &blobs_dir, &uploads_dir] {
            // A data directory whose `blobs/` vanished at power loss would lose every blob. New
            // levels are private (`IoBackend::create_dir_all`).
            io::create_dir_durable(io.as_ref(), d).map_err(|e| Error::io(d, e))?;
        }
        tracing::info!(io = io.name(), index = index.name(), data_dir = %cfg.data_dir.display(), "blob engine open");
        let poison = Arc::new(Poison::default());
        let catalog = Catalog::with_poison(index, poison.clone());
        format::upgrade(&catalog, &cfg.data_dir.join("index"))?;
        let quarantined = catalog.quarantine_list()?.len() as u64;
        let inner = Inner {
            io,
            catalog,
            blobs: BlobStore::new(blobs_dir),
            uploads_dir,
            poison,
            sessions: Mutex::new(HashMap::new()),
            gc_lock: RwLock::new(()),
            gc_deleting: Mutex::new(HashSet::new()),
            gc_deleted: Condvar::new(),
            maintenance: Mutex::new(()),
            quarantined: std::sync::atomic::AtomicU64::new(quarantined),
            scrub_stats: scrub::ScrubStats::default(),
            upload_queue: Arc::new(tokio::sync::Semaphore::new(upload::QUEUED_BYTES)),
            cfg,
        };
        let engine = Engine { inner: Arc::new(inner) };
        // Secondary indexes newer than the data directory are built before the first request.
        let built = engine.inner.catalog.build_tags_by_digest(INDEX_BUILD_BATCH)?;
        if built > 0 {
            tracing::info!(entries = built, "built the tag-by-digest index for existing tags");
        }
        let built = engine.inner.catalog.build_tags_by_time(INDEX_BUILD_BATCH)?;
        if built > 0 {
            tracing::info!(entries = built, "built the tag-by-time index and tag counts for existing tags");
        }
        engine.recover_uploads()?;
        Ok(engine)
    }

    fn recover_uploads(&self) -> Result<()> {
        let inner = &self.inner;
        let mut known = std::collections::HashSet::new();
        for rec in inner.catalog.uploads()? {
            let path = upload_path(&inner.uploads_dir, &rec.id);
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len < rec.offset {
                tracing::warn!(
                    upload = rec.id,
                    len,
                    recorded = rec.offset,
                    "upload file shorter than its recorded offset; dropping it"
                );
                inner.discard_upload(&rec.id, true);
                continue;
            }
            // A crash after a finished upload was linked into the store but before it was recorded
            // leaves the upload file sharing its inode with an unrecorded blob file. Resuming the
            // upload truncates its file to the durable offset, which must never touch a blob
            // file: give the upload its own copy first.
            if std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::nlink(&m) > 1).unwrap_or(false) {
                let copy = inner.uploads_dir.join(format!("{}.unshare", rec.id));
                let unshare = || -> std::io::Result<()> {
                    if copy.exists() {
                        inner.io.remove_file(&copy)?;
                    }
                    let mut dst = inner.io.open_or_create(&copy)?;
                    std::io::copy(&mut std::fs::File::open(&path)?, &mut dst)?;
                    inner.io.sync_file(&dst)?;
                    inner.io.rename(&copy, &path)?;
                    inner.io.sync_dir(&inner.uploads_dir)
                };
                unshare().map_err(|e| Error::io(&path, e))?;
            }
            known.insert(rec.id.clone());
            let session = Session {
                id: rec.id.clone(),
                repo: rec.repo,
                owner: rec.owner,
                offset: rec.offset,
                hasher: None,
                recorded: true,
                started: rec.started,
                gone: false,
                file_busy: Default::default(),
                // An offset above zero was recorded only after `uploads/` was fsynced. Otherwise
                // the file may never have been made durable, even if it is here after a clean
                // restart.
                dir_entry_durable: rec.offset > 0,
            };
            inner.sessions.lock().insert(rec.id, Arc::new(tokio::sync::Mutex::new(session)));
        }
        let entries = std::fs::read_dir(&inner.uploads_dir).map_err(|e| Error::io(&inner.uploads_dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let _ = inner.io.remove_file(&entry.path());
            }
        }
        Ok(())
    }

    /// Name of the I/O backend in use (`io_uring` or `std_fs`).
    pub fn io_backend(&self) -> &'static str {
        self.inner.io.name()
    }

    /// The typed index: repositories, tags, manifests, access-model records.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Refuses writes after a failed fsync.
    pub fn check_writable(&self) -> Result<()> {
        self.inner.check_poisoned()
    }

    // ---- uploads ----

    /// Starts a resumable upload into `repo` (which must exist). The session is recorded durably
    /// so it survives a restart.
    pub fn start_upload(&self, repo: &str, owner: &str) -> Result<UploadStatus> {
        self.inner.check_poisoned()?;
        let id = uuid::Uuid::new_v4().to_string();
        let started = now_secs();
        self.inner.catalog.put_upload(&UploadRecord {
            id: id.clone(),
            repo: repo.to_string(),
            offset: 0,
            started,
            updated: started,
            owner: owner.to_string(),
        })?;
        let session = Session {
            id: id.clone(),
            repo: repo.to_string(),
            owner: owner.to_string(),
            offset: 0,
            hasher: None,
            recorded: true,
            started,
            gone: false,
            file_busy: Default::default(),
            dir_entry_durable: false,
        };
        self.inner.sessions.lock().insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        Ok(UploadStatus { id, repo: repo.to_string(), owner: owner.to_string(), offset: 0 })
    }

    fn session(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<Session>>> {
        self.inner.sessions.lock().get(id).cloned().ok_or_else(|| Error::UploadUnknown(id.to_string()))
    }

    /// The durable offset of an upload.
    pub fn upload_status(&self, id: &str) -> Result<UploadStatus> {
        let s = self.session(id)?;
        let guard = s.try_lock().map_err(|_| Error::UploadBusy(id.to_string()))?;
        if guard.gone {
            return Err(Error::UploadUnknown(id.to_string()));
        }
        Ok(UploadStatus {
            id: guard.id.clone(),
            repo: guard.repo.clone(),
            owner: guard.owner.clone(),
            offset: guard.offset,
        })
    }

    /// Opens a writer appending to upload `id`. `expected_offset` (from `Content-Range`) must equal
    /// the durable offset; a mismatch is [`Error::OutOfOrder`] carrying the offset to resume at.
    pub async fn append(&self, id: &str, expected_offset: Option<u64>) -> Result<UploadWriter> {
        self.inner.check_poisoned()?;
        let s = self.session(id)?;
        let guard = s.try_lock_owned().map_err(|_| Error::UploadBusy(id.to_string()))?;
        if guard.gone {
            return Err(Error::UploadUnknown(id.to_string()));
        }
        if let Some(got) = expected_offset {
            if got != guard.offset {
                return Err(Error::OutOfOrder { expected: guard.offset, got });
            }
        }
        UploadWriter::start(self.inner.clone(), guard).await
    }

    /// A writer for a one-shot upload (monolithic push): no session record, nothing to resume.
    pub async fn put_blob_writer(&self, repo: &str) -> Result<UploadWriter> {
        self.inner.check_poisoned()?;
        let id = uuid::Uuid::new_v4().to_string();
        let session = Session {
            id: id.clone(),
            repo: repo.to_string(),
            owner: String::new(),
            offset: 0,
            hasher: None,
            recorded: false,
            started: now_secs(),
            gone: false,
            file_busy: Default::default(),
            // Never resumed, so its name in `uploads/` need not survive a crash.
            dir_entry_durable: true,
        };
        let s = Arc::new(tokio::sync::Mutex::new(session));
        self.inner.sessions.lock().insert(id, s.clone());
        let guard = s.try_lock_owned().map_err(|_| Error::WriterGone)?;
        UploadWriter::start(self.inner.clone(), guard).await
    }

    /// Cancels an upload and frees its space.
    pub async fn cancel_upload(&self, id: &str) -> Result<()> {
        let s = self.session(id)?;
        let mut guard = s.try_lock().map_err(|_| Error::UploadBusy(id.to_string()))?;
        guard.gone = true;
        self.inner.sessions.lock().remove(id);
        let inner = self.inner.clone();
        let (id, recorded) = (id.to_string(), guard.recorded);
        tokio::task::spawn_blocking(move || inner.discard_upload(&id, recorded)).await.map_err(|_| Error::WriterGone)
    }

    /// Removes uploads idle for longer than the configured TTL. Returns how many.
    pub fn expire_uploads(&self) -> Result<usize> {
        let cutoff = now_secs() - self.inner.cfg.upload_ttl.as_secs() as i64;
        let mut n = 0;
        for rec in self.inner.catalog.uploads()? {
            if rec.updated >= cutoff {
                continue;
            }
            let Ok(s) = self.session(&rec.id) else {
                self.inner.discard_upload(&rec.id, true);
                n += 1;
                continue;
            };
            let expired = match s.try_lock() {
                Ok(mut g) => {
                    g.gone = true;
                    true
                }
                Err(_) => false,
            };
            if expired {
                self.inner.sessions.lock().remove(&rec.id);
                self.inner.discard_upload(&rec.id, true);
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- blobs ----

    /// Size of a stored blob, if recorded; [`Error::Quarantined`] if scrub moved it aside.
    pub fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        let size = self.inner.catalog.blob(digest)?.map(|b| b.size);
        if size.is_some() && self.inner.is_quarantined(digest)? {
            return Err(Error::Quarantined(digest.clone()));
        }
        Ok(size)
    }

    /// True if scrub quarantined the blob (it cannot be read until pushed again).
    pub fn is_quarantined(&self, digest: &Digest) -> Result<bool> {
        self.inner.is_quarantined(digest)
    }

    /// The blob's bytes (or `start..=end`), zero-copy. Blocking: call off the reactor for big
    /// blobs that may not be cached. A quarantined blob's file is gone from the store, so the
    /// quarantine is looked up only when the file is missing.
    pub fn read_blob(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<Bytes> {
        match self.inner.blobs.read(digest, range) {
            Err(Error::BlobUnknown(d)) if self.inner.is_quarantined(&d)? => Err(Error::Quarantined(d)),
            other => other,
        }
    }

    /// Opens a blob for streamed reads in bounded windows. Blocking (one `open` and `fstat`).
    pub fn open_blob(&self, digest: &Digest) -> Result<blob_store::BlobFile> {
        self.inner.blobs.open(digest)
    }

    /// Stores small bytes (manifests) as a blob linked to `repo`, durably. Hashing and the fsyncs
    /// run on a blocking thread.
    pub async fn put_small_blob(&self, repo: &str, digest: &Digest, bytes: Bytes) -> Result<BlobInfo> {
        // Stored already (a manifest pushed again, or under another tag or repository): link it
        // and write no file. Content addressing makes the stored bytes these bytes (the caller
        // computed `digest` from them); the link re-checks under the GC lock that the record
        // still exists, and GC forgets a record before it removes the file, so a record found
        // there always has its file.
        // A quarantined manifest is stored again below, which heals it.
        let stored = match self.stat_blob(digest) {
            Err(Error::Quarantined(_)) => None,
            other => other?,
        };
        if stored == Some(bytes.len() as u64) {
            if let Some(r) = self.inner.catalog.repo_by_name(repo)? {
                let (id, d) = (r.id, digest.clone());
                match self.blocking(move |e| e.mount_blob(id, &d)).await {
                    Ok(()) => return Ok(BlobInfo { digest: digest.clone(), size: bytes.len() as u64, new: false }),
                    // Collected meanwhile: store it again below.
                    Err(Error::BlobUnknown(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut w = self.put_blob_writer(repo).await?;
        w.write(bytes).await?;
        w.finish(digest).await
    }

    /// Links an already stored blob into another repository (cross-repository mount). Blocks
    /// until the link is durable.
    pub fn mount_blob(&self, repo_id: u64, digest: &Digest) -> Result<()> {
        self.inner.check_poisoned()?;
        let pending = {
            let _gc = self.inner.gc_lock.read();
            // Mounting damaged bytes would spread them: refuse, so the client uploads them.
            if self.inner.is_quarantined(digest)? {
                return Err(Error::Quarantined(digest.clone()));
            }
            self.inner.catalog.link_blob_pending(repo_id, digest)?
        };
        self.inner.catalog.wait(pending)
    }

    /// Records a manifest whose bytes were stored with [`Engine::put_small_blob`], after checking
    /// that every referenced blob or child manifest is linked to the repository. Returns the
    /// digests that are missing, if any, and records nothing then. Blocks until the record is
    /// durable (the group flush).
    pub fn put_manifest(
        &self,
        repo_id: u64,
        digest: &Digest,
        rec: &ManifestRecord,
        tag: Option<(&str, &str)>,
    ) -> Result<Vec<Digest>> {
        self.inner.check_poisoned()?;
        let pending = {
            // Shared GC exclusion from the link check to the apply: GC cannot delete a blob
            // between them. Released before the flush, once the references are applied (GC
            // reads applied state, so it sees them).
            let _gc = self.inner.gc_lock.read();
            let mut missing = Vec::new();
            for r in &rec.refs {
                if !self.inner.catalog.is_linked(repo_id, r)? {
                    missing.push(r.clone());
                }
            }
            if !missing.is_empty() {
                return Ok(missing);
            }
            self.inner.catalog.put_manifest_pending(repo_id, digest, rec, tag)?
        };
        self.inner.catalog.wait(pending)?;
        Ok(Vec::new())
    }

    /// Bytes of blobs linked to each repository of `project`, and their sum.
    pub fn project_usage(&self, project: &str) -> Result<(u64, Vec<(String, u64)>)> {
        let mut repos = Vec::new();
        let mut total = 0u64;
        for (_, rec) in self.inner.catalog.scan::<RepoRecord>(index::Tree::Repos, b"", None, usize::MAX)? {
            if rec.project == project {
                total += rec.logical_bytes;
                repos.push((rec.name, rec.logical_bytes));
            }
        }
        Ok((total, repos))
    }

    /// Unique bytes stored over all repositories.
    pub fn physical_bytes(&self) -> Result<u64> {
        self.inner.catalog.physical_bytes()
    }

    /// Runs garbage collection (blocking). See [`gc`].
    pub fn collect_garbage(&self) -> Result<gc::GcReport> {
        let _maintenance = self.inner.maintenance.lock();
        gc::run(&self.inner)
    }

    /// Re-reads every blob and checks its digest, reading at most `bytes_per_s` (0: no limit),
    /// and quarantines what fails (blocking, long). See [`scrub`].
    pub fn scrub(&self, bytes_per_s: u64) -> Result<scrub::ScrubReport> {
        scrub::run(&self.inner, bytes_per_s)
    }

    /// Scrub counters since start and the number of blobs in quarantine now.
    pub fn scrub_counters(&self) -> scrub::ScrubCounters {
        self.inner.scrub_stats.counters(self.inner.quarantined.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Makes or completes a backup in `dest` while the store stays in use (blocking, long). See
    /// [`backup`].
    pub fn backup(&self, dest: &Path) -> Result<backup::BackupReport> {
        backup::run(&self.inner, dest)
    }

    /// Runs `f` with this engine on tokio's blocking pool and awaits it: the way for async code
    /// to call the synchronous write methods, which block their thread until the group flush of
    /// the index (and take locks), without stalling a reactor thread. Concurrent calls share
    /// flushes, so many of them in flight is the fast path, not a problem.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Engine) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let engine = self.clone();
        // What it logs stays under the caller's span (the daemon's request id).
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&engine))).await.map_err(|_| Error::WriterGone)?
    }
}
