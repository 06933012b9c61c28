//! Disk faults injected through the I/O seam (`io::fault::Faulty`) and the index seam
//! (`index::fault::FaultyIndex`), on both backends: a failed write (EIO, ENOSPC) is a typed error
//! that commits nothing and leaves the upload resumable from its durable offset; a failed fsync of
//! a blob, a directory or the index poisons the engine, which then refuses every write.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use bytes::Bytes;
use common::{append, blob_files, config, data, push, sha256, REPO};
use std::path::Path;
use std::sync::Arc;
use stowage_engine::index::fault::{FaultyIndex, IndexFaultOp};
use stowage_engine::index::sled_index::SledIndex;
use stowage_engine::io::fault::{FaultOp, Faulty};
use stowage_engine::io::IoChoice;
use stowage_engine::{Engine, Error, ManifestRecord};

on_both_backends!(
    write_eio_is_typed_and_resumable,
    write_enospc_is_typed_and_resumable,
    disk_stays_full,
    failed_chunk_fsync_poisons,
    failed_blob_fsync_poisons,
    failed_directory_fsync_poisons,
    failed_index_flush_poisons,
);

/// An engine in `dir` whose I/O fails operation `nth` of kind `op` with `errno`.
fn faulty_engine(dir: &Path, io: IoChoice, op: FaultOp, nth: u64, errno: i32, sticky: bool) -> (Engine, u64) {
    let cfg = config(dir, io);
    let backend = stowage_engine::io::choose(io, cfg.io_queue_depth).unwrap();
    let faulty = Faulty::new(backend, op, nth, errno, sticky);
    // Made here so that opening fsyncs no new directory and the counts below start with the
    // scenario's own operations.
    for d in ["blobs", "uploads"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let index = SledIndex::open(&dir.join("index"), cfg.index_cache_bytes).unwrap();
    let engine = Engine::open_with(cfg, Arc::new(index), Some(Arc::new(faulty))).unwrap();
    let (repo, _) = engine.catalog().ensure_repo(REPO, common::PROJECT).unwrap();
    (engine, repo.id)
}

fn assert_errno(e: &Error, errno: i32) {
    match e {
        Error::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(errno), "{e:?}"),
        other => panic!("expected an I/O error with errno {errno}, got {other:?}"),
    }
    assert_eq!(e.is_no_space(), errno == libc::ENOSPC, "{e:?}");
}

/// Appends `bytes` at `offset` as one request written in 10 KB pieces; the first error wins.
async fn append_pieces(engine: &Engine, id: &str, offset: u64, bytes: &[u8]) -> stowage_engine::Result<u64> {
    let mut w = engine.append(id, Some(offset)).await?;
    for piece in bytes.chunks(10_000) {
        w.write(Bytes::copy_from_slice(piece)).await?;
    }
    w.end_chunk().await
}

async fn write_fault(io: IoChoice, errno: i32) {
    let dir = tempfile::tempdir().unwrap();
    // Write 1 is the first chunk; write 3 is the second piece of the second chunk.
    let (engine, _) = faulty_engine(dir.path(), io, FaultOp::Write, 3, errno, false);
    let bytes = data(20, 100_000);
    let up = engine.start_upload(REPO, "alice").unwrap();
    assert_eq!(append(&engine, &up.id, 0, &bytes[..10_000]).await.unwrap(), 10_000);

    let err = append_pieces(&engine, &up.id, 10_000, &bytes[10_000..60_000]).await.unwrap_err();
    assert_errno(&err, errno);
    // Nothing past the durable offset counts, nothing is committed, and the engine still works.
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 10_000);
    assert_eq!(engine.catalog().upload(&up.id).unwrap().unwrap().offset, 10_000);
    assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
    assert!(blob_files(dir.path()).is_empty());
    engine.check_writable().unwrap();

    // The client retries from the offset the status reports.
    assert_eq!(append_pieces(&engine, &up.id, 10_000, &bytes[10_000..60_000]).await.unwrap(), 60_000);
    let mut w = engine.append(&up.id, Some(60_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[60_000..])).await.unwrap();
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    common::assert_blob(&engine, &info.digest, &bytes);
    assert_eq!(common::verify_blob_files(dir.path()), 1);
}

async fn write_eio_is_typed_and_resumable(io: IoChoice) {
    write_fault(io, libc::EIO).await;
}

async fn write_enospc_is_typed_and_resumable(io: IoChoice) {
    write_fault(io, libc::ENOSPC).await;
}

async fn disk_stays_full(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = faulty_engine(dir.path(), io, FaultOp::Write, 2, libc::ENOSPC, true);
    let bytes = data(21, 50_000);
    // A one-shot push fails at its second piece: typed, nothing committed.
    for _ in 0..3 {
        let err = push(&engine, REPO, &bytes, 20_000).await.unwrap_err();
        assert_errno(&err, libc::ENOSPC);
        assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
        assert!(blob_files(dir.path()).is_empty());
    }
    // A full disk is not a failed fsync: the engine does not poison itself, and an upload whose
    // chunk failed keeps its durable offset.
    engine.check_writable().unwrap();
    let up = engine.start_upload(REPO, "alice").unwrap();
    assert_errno(&append(&engine, &up.id, 0, &bytes).await.unwrap_err(), libc::ENOSPC);
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 0);
    assert_eq!(engine.physical_bytes().unwrap(), 0);
}

/// Every write path refuses with `Poisoned`.
async fn assert_poisoned(engine: &Engine, repo_id: u64, upload: &str) {
    let small = Bytes::from_static(b"{}");
    let d = sha256(&small);
    let rec = ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 2,
        refs: vec![],
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    };
    let errors = [
        engine.check_writable().err(),
        engine.start_upload(REPO, "alice").err(),
        engine.append(upload, None).await.err(),
        engine.put_blob_writer(REPO).await.err(),
        engine.put_small_blob(REPO, &d, small.clone()).await.err(),
        engine.mount_blob(repo_id, &d).err(),
        engine.put_manifest(repo_id, &d, &rec, Some(("latest", "alice"))).err(),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        assert!(matches!(e, Some(Error::Poisoned(_))), "write path {i}: {e:?}");
    }
}

async fn failed_chunk_fsync_poisons(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    // Not sticky: the disk "recovers", but the engine must not trust the page cache again.
    let (engine, repo_id) = faulty_engine(dir.path(), io, FaultOp::Sync, 1, libc::EIO, false);
    let up = engine.start_upload(REPO, "alice").unwrap();
    let err = append(&engine, &up.id, 0, &data(22, 30_000)).await.unwrap_err();
    assert!(matches!(err, Error::Poisoned(ref why) if why.contains(&up.id)), "{err:?}");
    // The chunk was never acknowledged, so its offset was not recorded.
    assert_eq!(engine.catalog().upload(&up.id).unwrap().unwrap().offset, 0);
    assert_poisoned(&engine, repo_id, &up.id).await;
    // Reads still work.
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 0);
}

async fn failed_blob_fsync_poisons(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, repo_id) = faulty_engine(dir.path(), io, FaultOp::Sync, 1, libc::EIO, false);
    let bytes = data(23, 70_000);
    let err = push(&engine, REPO, &bytes, 30_000).await.unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err:?}");
    assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
    assert!(blob_files(dir.path()).is_empty());
    assert_poisoned(&engine, repo_id, "no-such-upload").await;
}

async fn failed_directory_fsync_poisons(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    // Sync 1 is the blob file's fdatasync, sync 2 the parent of the new two-hex directory.
    let (engine, repo_id) = faulty_engine(dir.path(), io, FaultOp::Sync, 2, libc::EIO, false);
    let bytes = data(24, 10_000);
    let err = push(&engine, REPO, &bytes, 30_000).await.unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err:?}");
    // Not acknowledged, so not recorded (a file in blobs/ is at most an orphan for GC).
    assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
    assert_poisoned(&engine, repo_id, "no-such-upload").await;
}

async fn failed_index_flush_poisons(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), io);
    let backend = stowage_engine::io::choose(io, cfg.io_queue_depth).unwrap();
    let sled = SledIndex::open(&dir.path().join("index"), cfg.index_cache_bytes).unwrap();
    // Flush 1 records the index format of the new index, flush 2 the repository; flush 3 is the
    // blob record of the first push.
    let index = Arc::new(FaultyIndex::new(Arc::new(sled)).fail(IndexFaultOp::Flush, 3, false));
    let engine = Engine::open_with(cfg, index.clone(), Some(backend)).unwrap();
    let (repo, _) = engine.catalog().ensure_repo(REPO, common::PROJECT).unwrap();
    let bytes = data(25, 40_000);
    let err = push(&engine, REPO, &bytes, 16_384).await.unwrap_err();
    assert!(matches!(err, Error::Poisoned(ref why) if why.contains("index flush failed")), "{err:?}");
    // The index flush failed on the blob side of the engine's gate too: every write path refuses.
    let up = "no-such-upload";
    assert_poisoned(&engine, repo.id, up).await;
    assert!(matches!(engine.catalog().put(stowage_engine::index::Tree::Users, b"u", &1u64), Err(Error::Poisoned(_))));
    assert_eq!(index.counts().1, 3, "no flush after the failed one");
}
