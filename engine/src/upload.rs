//! Upload sessions: resumable, streamed, hashed as the bytes arrive.
//!
//! A request body is fed chunk by chunk into an [`UploadWriter`]: each chunk crosses a bounded
//! channel to a blocking worker that hashes it (ring) and hands it to the I/O backend, so neither
//! hashing nor disk writes run on the async reactor (garage `api/s3/put.rs`). When a request ends
//! the chunk is made durable (fdatasync) and its end offset recorded in the index; that recorded
//! offset is what the upload-status request reports and where a resumed upload continues.
//!
//! After a restart the in-memory hash state is gone: the first append re-hashes the durable prefix
//! once (a sequential read at disk speed), then continues incrementally. This keeps the per-chunk
//! cost to one fdatasync and one small index write, rather than persisting ring's hash state,
//! which ring does not expose.

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::index::catalog::{now_secs, UploadRecord};
use crate::io::BlobWriter;
use crate::Inner;
use bytes::Bytes;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedMutexGuard};

/// In-memory state of a live upload. Guarded by a mutex: one writer at a time.
pub(crate) struct Session {
    pub id: String,
    pub repo: String,
    /// Who started it: only they may continue, inspect or cancel it (the daemon checks).
    pub owner: String,
    /// Bytes durable and recorded in the index.
    pub offset: u64,
    /// Hash of bytes `0..offset`; None after a restart or a failed append, until re-hashed.
    pub hasher: Option<Hasher>,
    /// Whether the session has an index record (one-shot uploads do not).
    pub recorded: bool,
    pub started: i64,
    /// Set when the session was finished or cancelled while a caller waited on its lock.
    pub gone: bool,
    /// Held for a request's writer worker from before the worker is spawned until it has
    /// finished. A request whose client went away drops its [`UploadWriter`], and with it the
    /// session lock, while the worker may still be writing chunks already queued; the next
    /// request waits for this first, so its worker never truncates and rewrites the file while a
    /// stale worker still writes into it, and a stale worker never runs after the next request
    /// (it used to take this lock only once running, so a worker still queued on the blocking
    /// pool could start after the next request had committed the file, and truncate and rewrite
    /// the committed blob).
    pub file_busy: Arc<tokio::sync::Mutex<()>>,
    /// Whether the upload file's name in `uploads/` is known durable. fdatasync of the file does
    /// not make its directory entry durable: until `uploads/` is fsynced once, power loss may drop
    /// the file and with it every chunk acknowledged so far.
    pub dir_entry_durable: bool,
}

/// Start kernel writeback after this many new bytes, so the disk writes while data streams in and
/// the final fdatasync has only the tail left.
const WRITEBACK_EVERY_BYTES: usize = 16 << 20;

/// Channel depth between a request and its writer worker, in messages: enough to absorb jitter,
/// small enough that a slow disk pushes back on the client. The daemon sends batches of about
/// 256 KiB, so an upload holds about 8 MiB queued here.
const CHANNEL_CHUNKS: usize = 32;

/// Bytes queued for the writers of all uploads together. Each upload may queue about 8 MiB (see
/// [`CHANNEL_CHUNKS`]), so without this bound 64 concurrent pushes on a slow disk held 512 MiB;
/// with it a request waits for room (its client is then held back by TCP), and the time it
/// waits is the server's, not counted against the client's minimum rate.
pub const QUEUED_BYTES: usize = 64 << 20;

/// A batch of pieces for the writer thread, with its share of [`QUEUED_BYTES`], given back
/// once the batch is written (or dropped).
struct Batch {
    pieces: Vec<Bytes>,
    _queued: Option<tokio::sync::OwnedSemaphorePermit>,
}

struct WorkerDone {
    hasher: Hasher,
    writer: Box<dyn BlobWriter>,
    end: u64,
}

/// Streams one request body into an upload session.
pub struct UploadWriter {
    pub(crate) inner: Arc<Inner>,
    pub(crate) session: OwnedMutexGuard<Session>,
    tx: Option<mpsc::Sender<Batch>>,
    worker: Option<tokio::task::JoinHandle<Result<WorkerDone>>>,
    /// Offset after the bytes accepted so far by this writer.
    offset: u64,
}

pub(crate) fn upload_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(id)
}

impl UploadWriter {
    pub(crate) async fn start(inner: Arc<Inner>, session: OwnedMutexGuard<Session>) -> Result<UploadWriter> {
        // Taken before the worker exists and moved into it: released only when it is done.
        let busy = session.file_busy.clone().lock_owned().await;
        let path = upload_path(&inner.uploads_dir, &session.id);
        let file = inner.io.open_or_create(&path).map_err(|e| Error::io(&path, e))?;
        let offset = session.offset;
        let mut session = session;
        let hasher = session.hasher.take();
        let io = inner.io.clone();
        let depth = inner.cfg.io_queue_depth;
        let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL_CHUNKS);
        let worker = tokio::task::spawn_blocking(move || -> Result<WorkerDone> {
            // Declared first, so released last: after every write of this worker is done.
            let _busy = busy;
            // Drop whatever a failed earlier request left past the durable offset.
            io.set_len(&file, offset).map_err(|e| Error::io(&path, e))?;
            let mut hasher = match hasher {
                Some(h) => h,
                None => rehash(&file, offset, Algorithm::Sha256).map_err(|e| Error::io(&path, e))?,
            };
            let mut writer = io.writer(file, offset).map_err(|e| Error::io(&path, e))?;
            let mut since_kick = 0usize;
            // The shares of the batches the backend may still be writing from (io_uring keeps up
            // to `io_queue_depth` writes in flight, one per batch, after `write_batch` returns):
            // given back only once newer batches have pushed them out of that window.
            let in_flight = usize::try_from(depth).unwrap_or(usize::MAX).max(1);
            let mut held = std::collections::VecDeque::with_capacity(in_flight + 1);
            // One message may hold several pieces: one wake-up of this thread for all of them.
            // Hashed and then written as one batch (one pwritev or io_uring Writev): the batch
            // is still in the cache when the kernel copies it.
            loop {
                let Batch { pieces, _queued } = match rx.try_recv() {
                    Ok(batch) => batch,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Nothing to write next: finish what is in flight and give its shares
                        // back before waiting, so no worker sits idle on a part of the queue
                        // that other uploads wait for.
                        if !held.is_empty() {
                            writer.flush().map_err(|e| Error::io(&path, e))?;
                            held.clear();
                        }
                        match rx.blocking_recv() {
                            Some(batch) => batch,
                            None => break,
                        }
                    }
                };
                for buf in &pieces {
                    hasher.update(buf);
                    since_kick += buf.len();
                }
                writer.write_batch(pieces).map_err(|e| Error::io(&path, e))?;
                held.push_back(_queued);
                if held.len() > in_flight {
                    held.pop_front();
                }
                if since_kick >= WRITEBACK_EVERY_BYTES {
                    since_kick = 0;
                    // A hint only: a refusal here changes nothing about durability.
                    let _ = writer.start_writeback();
                }
            }
            let end = writer.flush().map_err(|e| Error::io(&path, e))?;
            drop(held);
            Ok(WorkerDone { hasher, writer, end })
        });
        Ok(UploadWriter { inner, session, tx: Some(tx), worker: Some(worker), offset })
    }

    /// The upload's id.
    pub fn id(&self) -> &str {
        &self.session.id
    }

    /// The repository the upload was started in.
    pub fn repo(&self) -> &str {
        &self.session.repo
    }

    /// Bytes accepted so far (durable ones plus this request's).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Queues a chunk. Refuses, before writing it, a chunk that would take the blob past the size
    /// limit.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.write_pieces(vec![chunk]).await
    }

    /// Queues several chunks, in order, as one message to the writer thread: pieces that arrive
    /// separately are passed on without being copied together, at the cost of one wake-up.
    /// Refuses them all, before writing any, if they would take the blob past the size limit.
    pub async fn write_pieces(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        let limit = self.inner.cfg.max_blob_bytes;
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let size = self.offset.saturating_add(len);
        if size > limit {
            return Err(Error::BlobTooLarge { size, limit });
        }
        let tx = self.tx.as_ref().ok_or(Error::WriterGone)?;
        // Room in the shared queue first (a batch larger than the whole queue takes all of it).
        let want = u32::try_from(usize::try_from(len).unwrap_or(usize::MAX).min(QUEUED_BYTES)).unwrap_or(u32::MAX);
        let queued = match want {
            0 => None,
            n => Some(self.inner.upload_queue.clone().acquire_many_owned(n).await.map_err(|_| Error::WriterGone)?),
        };
        if tx.send(Batch { pieces, _queued: queued }).await.is_err() {
            // The worker stopped early: its error says why.
            return Err(self.join().await.err().unwrap_or(Error::WriterGone));
        }
        self.offset += len;
        Ok(())
    }

    async fn join(&mut self) -> Result<WorkerDone> {
        self.tx = None;
        let worker = self.worker.take().ok_or(Error::WriterGone)?;
        let res = worker.await.map_err(|_| Error::WriterGone)?;
        if res.is_err() {
            // The hash state absorbed bytes that were not written: rebuild it next time.
            self.session.hasher = None;
        }
        res
    }

    /// Ends this request's chunk: waits for the writes, fsyncs, and records the new durable
    /// offset. Returns it.
    pub async fn end_chunk(mut self) -> Result<u64> {
        self.inner.check_poisoned()?;
        let done = self.join().await?;
        let inner = self.inner.clone();
        let (id, repo, started) = (self.session.id.clone(), self.session.repo.clone(), self.session.started);
        let owner = self.session.owner.clone();
        let dir_entry_durable = self.session.dir_entry_durable;
        let WorkerDone { hasher, mut writer, end } = done;
        let path = upload_path(&inner.uploads_dir, &id);
        let writer_back = tokio::task::spawn_blocking(move || -> Result<Box<dyn BlobWriter>> {
            writer.sync().map_err(|e| inner.poison(&path, e))?;
            if !dir_entry_durable {
                // Before the offset is recorded: a recorded offset must always find its file.
                inner.io.sync_dir(&inner.uploads_dir).map_err(|e| inner.poison(&inner.uploads_dir, e))?;
            }
            inner.catalog.put_upload(&UploadRecord { id, repo, offset: end, started, updated: now_secs(), owner })?;
            Ok(writer)
        })
        .await
        .map_err(|_| Error::WriterGone)?;
        match writer_back {
            Ok(_) => {
                self.session.offset = end;
                self.session.hasher = Some(hasher);
                self.session.recorded = true;
                self.session.dir_entry_durable = true;
                Ok(end)
            }
            Err(e) => {
                self.session.hasher = None;
                Err(e)
            }
        }
    }

    /// Ends the upload: checks the content against `expected`, commits the blob durably, records it
    /// and links it to the upload's repository. On a digest mismatch the upload's data is
    /// discarded and the session removed.
    pub async fn finish(mut self, expected: &Digest) -> Result<crate::BlobInfo> {
        self.inner.check_poisoned()?;
        let done = self.join().await?;
        let inner = self.inner.clone();
        let id = self.session.id.clone();
        let repo = self.session.repo.clone();
        let recorded = self.session.recorded;
        let expected = expected.clone();
        let path = upload_path(&inner.uploads_dir, &id);
        let result = tokio::task::spawn_blocking(move || -> Result<crate::BlobInfo> {
            let WorkerDone { hasher, mut writer, end } = done;
            let computed = if hasher.algorithm() == expected.algorithm() {
                hasher.finish()
            } else {
                // The stream was hashed with sha256; a sha512 digest costs one re-read.
                rehash(&File::open(&path).map_err(|e| Error::io(&path, e))?, end, expected.algorithm())
                    .map_err(|e| Error::io(&path, e))?
                    .finish()
            };
            if computed != expected {
                drop(writer);
                inner.discard_upload(&id, recorded);
                return Err(Error::DigestMismatch { expected, computed });
            }
            writer.sync().map_err(|e| inner.poison(&path, e))?;
            drop(writer);
            let info = inner.commit_blob(&path, &expected, end, &repo)?;
            if recorded {
                inner.catalog.delete_upload(&id)?;
            }
            // The blob is recorded under its own name: the upload's name for the file can go.
            inner.discard_upload(&id, false);
            Ok(info)
        })
        .await
        .map_err(|_| Error::WriterGone)?;
        match &result {
            // Storage failures leave a recorded upload resumable (a one-shot one is freed on drop).
            Err(Error::Io { .. } | Error::Poisoned(_) | Error::WriterGone) => self.session.hasher = None,
            // Done, or a mismatch whose data the blocking task already discarded.
            Ok(_) | Err(Error::DigestMismatch { .. }) => {
                self.session.gone = true;
                self.inner.sessions.lock().remove(&self.session.id);
            }
            // Anything else (the repository went away meanwhile) ends the upload too: free it.
            Err(_) => {
                self.session.gone = true;
                self.inner.sessions.lock().remove(&self.session.id);
                self.inner.discard_upload(&self.session.id, self.session.recorded);
            }
        }
        result
    }
}

/// Hashes the first `len` bytes of `file` with `alg`.
pub(crate) fn rehash(file: &File, len: u64, alg: Algorithm) -> std::io::Result<Hasher> {
    let mut h = Hasher::new(alg);
    let mut reader = file.try_clone()?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(std::io::Error::other(format!("upload file has {seen} bytes, expected {len}")));
    }
    Ok(h)
}

impl Drop for UploadWriter {
    /// A one-shot upload (monolithic push) that did not finish, because the client went away or a
    /// write failed, cannot be resumed: free its session and temp file now rather than at restart.
    fn drop(&mut self) {
        if !self.session.recorded && !self.session.gone {
            self.session.gone = true;
            self.inner.sessions.lock().remove(&self.session.id);
            self.inner.discard_upload(&self.session.id, false);
        }
    }
}
