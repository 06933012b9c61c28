//! The bytes queued for upload writers are bounded across all uploads together
//! (`upload::QUEUED_BYTES`), not only per upload: with the disk stalled, many concurrent pushes
//! stop accepting body bytes once the shared queue is full, and every blob still commits exactly
//! once the disk moves again.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use bytes::Bytes;
use common::{config, sha256, PROJECT, REPO};
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stowage_engine::index::sled_index::SledIndex;
use stowage_engine::io::{BlobWriter, IoBackend, IoChoice};
use stowage_engine::upload::QUEUED_BYTES;
use stowage_engine::Engine;

on_both_backends!(the_queue_of_all_uploads_together_is_bounded, many_uploads_never_wait_on_each_other);

/// Held shut, every write waits: a disk that does not move.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    moved: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock();
        while !*open {
            self.moved.wait(&mut open);
        }
    }
    fn open(&self) {
        *self.open.lock() = true;
        self.moved.notify_all();
    }
}

struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

struct GatedIo {
    inner: Arc<dyn IoBackend>,
    gate: Arc<Gate>,
}

struct GatedWriter {
    inner: Box<dyn BlobWriter>,
    gate: Arc<Gate>,
}

impl BlobWriter for GatedWriter {
    fn write(&mut self, buf: Bytes) -> io::Result<()> {
        self.gate.wait();
        self.inner.write(buf)
    }
    fn write_batch(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        self.gate.wait();
        self.inner.write_batch(bufs)
    }
    fn flush(&mut self) -> io::Result<u64> {
        self.inner.flush()
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

impl IoBackend for GatedIo {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn writer(&self, file: File, offset: u64) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(GatedWriter { inner: self.inner.writer(file, offset)?, gate: self.gate.clone() }))
    }
    fn sync_file(&self, file: &File) -> io::Result<()> {
        self.inner.sync_file(file)
    }
    fn sync_file_all(&self, file: &File) -> io::Result<()> {
        self.inner.sync_file_all(file)
    }
}

const UPLOADS: usize = 12;
const BATCHES: usize = 28;
const BATCH: usize = 256 * 1024;

async fn the_queue_of_all_uploads_together_is_bounded(io: IoChoice) {
    // 12 uploads of 28 batches of 256 KiB: 84 MiB, more than the shared queue, while each
    // upload alone (7 MiB) fits its own channel.
    assert!(UPLOADS * BATCHES * BATCH > QUEUED_BYTES + UPLOADS * BATCH);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), io);
    let gate = Arc::new(Gate::default());
    let backend = GatedIo { inner: stowage_engine::io::choose(io, cfg.io_queue_depth).unwrap(), gate: gate.clone() };
    let index = SledIndex::open(&dir.path().join("index"), cfg.index_cache_bytes).unwrap();
    let engine = Engine::open_with(cfg, Arc::new(index), Some(Arc::new(backend))).unwrap();
    // Opened on every way out, so a failed assertion cannot leave writer threads waiting forever.
    let _opened = OpenOnDrop(gate.clone());
    engine.catalog().ensure_repo(REPO, PROJECT).unwrap();

    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..UPLOADS {
        let (engine, accepted) = (engine.clone(), accepted.clone());
        tasks.spawn(async move {
            let mut body = Vec::with_capacity(BATCHES * BATCH);
            let mut w = engine.put_blob_writer(REPO).await.unwrap();
            for b in 0..BATCHES {
                let piece = common::data((u * BATCHES + b) as u64, BATCH);
                body.extend_from_slice(&piece);
                w.write_pieces(vec![Bytes::from(piece)]).await.unwrap();
                accepted.fetch_add(BATCH as u64, Ordering::SeqCst);
            }
            let info = w.finish(&sha256(&body)).await.unwrap();
            (info, body)
        });
    }
    // Let the uploads take what they can; bounded wait for the count to settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = accepted.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let held = accepted.load(Ordering::SeqCst) as usize;
    assert!(held <= QUEUED_BYTES, "{held} bytes queued with the disk stalled, more than {QUEUED_BYTES}");
    assert!(held + BATCH > QUEUED_BYTES, "the shared queue should fill up: only {held} bytes accepted");
    assert_eq!(tasks.len(), UPLOADS, "no upload can have finished with the disk stalled");

    gate.open();
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        let (info, body) = r.unwrap();
        assert_eq!(info.size, body.len() as u64);
        common::assert_blob(&engine, &info.digest, &body);
        done += 1;
    }
    assert_eq!(done, UPLOADS);
}

/// More uploads than the shared queue holds at the backend's depth (40 x 8 writes in flight x
/// 256 KiB = 80 MiB): a writer whose writes are done must give their shares back even while its
/// client is quiet, or every upload ends up waiting for room the others hold.
async fn many_uploads_never_wait_on_each_other(io: IoChoice) {
    const MANY: usize = 40;
    const EACH: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = common::open(config(dir.path(), io));
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..MANY {
        let engine = engine.clone();
        tasks.spawn(async move {
            let mut body = Vec::with_capacity(EACH * BATCH);
            let mut w = engine.put_blob_writer(REPO).await.unwrap();
            for b in 0..EACH {
                let piece = common::data((1_000 + u * EACH + b) as u64, BATCH);
                body.extend_from_slice(&piece);
                w.write_pieces(vec![Bytes::from(piece)]).await.unwrap();
                // A client that pauses now and then.
                if b % 4 == 3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let info = w.finish(&sha256(&body)).await.unwrap();
            assert_eq!(info.digest, sha256(&body));
        });
    }
    let all = async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all).await.expect("uploads waited on each other for 120 s");
}
