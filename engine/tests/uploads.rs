//! Upload sessions end to end, on both I/O backends: chunked appends at offsets, status, cancel,
//! finish with a right or wrong digest, sha512, one-shot pushes, deduplication, the size limit, a
//! busy session, a request abandoned while its chunks are still being written, a restart in the
//! middle of an upload, and expiry.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use bytes::Bytes;
use common::{append, assert_blob, blob_files, config, data, files_under, open, push, sha256, PROJECT, REPO};
use std::time::Duration;
use stowage_engine::io::IoChoice;
use stowage_engine::{Algorithm, Digest, Error};

on_both_backends!(
    chunked_upload_at_offsets,
    cancel_removes_the_upload,
    digest_mismatch_discards_the_upload,
    sha512_digest,
    one_shot_put,
    abandoned_one_shot_is_freed_on_drop,
    identical_blobs_are_stored_once,
    size_limit_refuses_before_writing,
    concurrent_appends_are_refused,
    abandoned_request_never_writes_into_the_next,
    upload_survives_a_restart,
    idle_uploads_expire,
    batches_of_pieces_are_written_in_order,
);

async fn chunked_upload_at_offsets(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let bytes = data(1, 300_000);
    let up = engine.start_upload(REPO, "alice").unwrap();
    assert_eq!((up.repo.as_str(), up.offset), (REPO, 0));
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 0);

    assert_eq!(append(&engine, &up.id, 0, &bytes[..100_000]).await.unwrap(), 100_000);
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 100_000);

    // A chunk at the wrong offset is refused and says where to resume, whether it repeats data or
    // leaves a gap; the durable offset does not move.
    for wrong in [0, 99_999, 100_001] {
        match engine.append(&up.id, Some(wrong)).await {
            Err(Error::OutOfOrder { expected: 100_000, got }) => assert_eq!(got, wrong),
            other => panic!("append at {wrong}: {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 100_000);

    // A request without Content-Range appends at the end; one request may carry several pieces.
    let mut w = engine.append(&up.id, None).await.unwrap();
    assert_eq!(w.offset(), 100_000);
    for piece in bytes[100_000..250_000].chunks(7_000) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert_eq!(w.offset(), 250_000);
    assert_eq!(w.end_chunk().await.unwrap(), 250_000);

    let mut w = engine.append(&up.id, Some(250_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[250_000..])).await.unwrap();
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    assert_eq!((info.digest.clone(), info.size, info.new), (sha256(&bytes), 300_000, true));

    assert_blob(&engine, &info.digest, &bytes);
    let range = engine.read_blob(&info.digest, Some((1_000, 200_999))).unwrap();
    assert!(range[..] == bytes[1_000..=200_999]);
    assert!(matches!(
        engine.read_blob(&info.digest, Some((10, 300_000))),
        Err(Error::RangeNotSatisfiable { start: 10, end: 300_000, len: 300_000 })
    ));
    // The session is over and its file was moved into the store.
    assert!(matches!(engine.upload_status(&up.id), Err(Error::UploadUnknown(_))));
    assert!(matches!(engine.append(&up.id, Some(300_000)).await, Err(Error::UploadUnknown(_))));
    assert!(files_under(&dir.path().join("uploads")).is_empty());
    assert_eq!(engine.catalog().upload(&up.id).unwrap(), None);
    assert_eq!(blob_files(dir.path()).len(), 1);
}

/// Batches of pieces (one vectored write each, split past 64 buffers, empty pieces skipped) land
/// in order, in a one-shot push and in resumable chunks.
async fn batches_of_pieces_are_written_in_order(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let bytes = data(22, 3 << 20);
    // Pieces of uneven sizes, with empty ones between: batches of 1, 7, 64, 65 and 150 pieces.
    let mut pieces = Vec::new();
    let (mut at, mut i) = (0usize, 0usize);
    while at < bytes.len() {
        let len = (1 + i * 977 % 20_000).min(bytes.len() - at);
        pieces.push(Bytes::copy_from_slice(&bytes[at..at + len]));
        if i % 5 == 0 {
            pieces.push(Bytes::new());
        }
        at += len;
        i += 1;
    }
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    let mut rest = pieces.clone();
    for n in [1, 7, 64, 65, 150].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let tail = rest.split_off(n.min(rest.len()));
        w.write_pieces(std::mem::replace(&mut rest, tail)).await.unwrap();
    }
    assert_eq!(w.offset(), bytes.len() as u64);
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    assert_blob(&engine, &info.digest, &bytes);

    // The same pieces as two resumable chunks of one batch each.
    let other = data(23, 1 << 20);
    let up = engine.start_upload(REPO, "alice").unwrap();
    let half = other.len() / 2;
    for (from, to) in [(0, half), (half, other.len())] {
        let batch: Vec<Bytes> = other[from..to].chunks(3_001).map(Bytes::copy_from_slice).collect();
        let mut w = engine.append(&up.id, Some(from as u64)).await.unwrap();
        w.write_pieces(batch).await.unwrap();
        assert_eq!(w.end_chunk().await.unwrap(), to as u64);
    }
    let w = engine.append(&up.id, Some(other.len() as u64)).await.unwrap();
    let info = w.finish(&sha256(&other)).await.unwrap();
    assert_blob(&engine, &info.digest, &other);
}

async fn cancel_removes_the_upload(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let up = engine.start_upload(REPO, "alice").unwrap();
    append(&engine, &up.id, 0, &data(2, 50_000)).await.unwrap();
    let file = dir.path().join("uploads").join(&up.id);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 50_000);

    engine.cancel_upload(&up.id).await.unwrap();
    assert!(!file.exists());
    assert_eq!(engine.catalog().upload(&up.id).unwrap(), None);
    assert!(matches!(engine.upload_status(&up.id), Err(Error::UploadUnknown(_))));
    assert!(matches!(engine.append(&up.id, Some(50_000)).await, Err(Error::UploadUnknown(_))));
    assert!(matches!(engine.cancel_upload(&up.id).await, Err(Error::UploadUnknown(_))));
    assert!(blob_files(dir.path()).is_empty());
}

async fn digest_mismatch_discards_the_upload(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let bytes = data(3, 80_000);
    let wrong = sha256(b"something else");

    // Resumable upload.
    let up = engine.start_upload(REPO, "alice").unwrap();
    append(&engine, &up.id, 0, &bytes[..40_000]).await.unwrap();
    let mut w = engine.append(&up.id, Some(40_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[40_000..])).await.unwrap();
    match w.finish(&wrong).await {
        Err(Error::DigestMismatch { expected, computed }) => {
            assert_eq!(expected, wrong);
            assert_eq!(computed, sha256(&bytes));
        }
        other => panic!("finish with a wrong digest: {other:?}"),
    }
    assert!(matches!(engine.upload_status(&up.id), Err(Error::UploadUnknown(_))));
    assert_eq!(engine.catalog().upload(&up.id).unwrap(), None);

    // One-shot upload.
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes)).await.unwrap();
    assert!(matches!(w.finish(&wrong).await, Err(Error::DigestMismatch { .. })));

    assert!(files_under(&dir.path().join("uploads")).is_empty());
    assert!(blob_files(dir.path()).is_empty());
    assert_eq!(engine.stat_blob(&wrong).unwrap(), None);
    assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
    assert_eq!(engine.physical_bytes().unwrap(), 0);
}

async fn sha512_digest(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let bytes = data(4, 200_000);
    let d512 = Digest::of(Algorithm::Sha512, &bytes);

    let up = engine.start_upload(REPO, "alice").unwrap();
    append(&engine, &up.id, 0, &bytes[..70_000]).await.unwrap();
    let mut w = engine.append(&up.id, Some(70_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[70_000..])).await.unwrap();
    // The sha256 of the same bytes is not the sha512 the client named.
    let info = w.finish(&d512).await.unwrap();
    assert_eq!((info.digest.clone(), info.size), (d512.clone(), 200_000));
    assert_blob(&engine, &d512, &bytes);
    assert_eq!(engine.stat_blob(&sha256(&bytes)).unwrap(), None);
    assert!(dir.path().join("blobs").join(d512.relative_path()).is_file());

    // A one-shot sha512 push, and a mismatch against a sha512 digest.
    let small = data(5, 1_000);
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    w.write(Bytes::copy_from_slice(&small)).await.unwrap();
    w.finish(&Digest::of(Algorithm::Sha512, &small)).await.unwrap();
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    w.write(Bytes::copy_from_slice(&small)).await.unwrap();
    assert!(matches!(w.finish(&d512).await, Err(Error::DigestMismatch { .. })));
    assert_eq!(common::verify_blob_files(dir.path()), 2);
}

async fn one_shot_put(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, repo_id) = open(config(dir.path(), io));
    let bytes = data(6, (1 << 20) + 123);
    let info = push(&engine, REPO, &bytes, 64 << 10).await.unwrap();
    assert_eq!((info.digest.clone(), info.size, info.new), (sha256(&bytes), bytes.len() as u64, true));
    assert_blob(&engine, &info.digest, &bytes);
    assert!(engine.catalog().is_linked(repo_id, &info.digest).unwrap());
    assert!(files_under(&dir.path().join("uploads")).is_empty());
    assert_eq!(common::verify_blob_files(dir.path()), 1);

    // The empty blob is a blob too.
    let empty = push(&engine, REPO, b"", 1).await.unwrap();
    assert_eq!((empty.size, empty.new), (0, true));
    assert_eq!(engine.read_blob(&empty.digest, None).unwrap().len(), 0);

    // put_small_blob (manifests) is the same path.
    let m = br#"{"schemaVersion":2}"#;
    let info = engine.put_small_blob(REPO, &sha256(m), Bytes::from_static(m)).await.unwrap();
    assert_blob(&engine, &info.digest, m);
    assert!(info.new);
    // Pushed again (another tag, or another repository): linked, not stored again.
    let (other, _) = engine.catalog().ensure_repo("syn1/other", "syn1").unwrap();
    let again = engine.put_small_blob("syn1/other", &sha256(m), Bytes::from_static(m)).await.unwrap();
    assert_eq!((again.digest.clone(), again.size, again.new), (info.digest.clone(), m.len() as u64, false));
    assert!(engine.catalog().is_linked(other.id, &info.digest).unwrap());
    assert_blob(&engine, &info.digest, m);
    let again = engine.put_small_blob(REPO, &sha256(m), Bytes::from_static(m)).await.unwrap();
    assert!(!again.new);

    // Pushing into a repository that does not exist commits nothing.
    let err = push(&engine, "syn1/nope", &data(7, 10), 10).await.unwrap_err();
    assert!(matches!(err, Error::RepositoryUnknown(ref r) if r == "syn1/nope"), "{err:?}");
    assert_eq!(engine.stat_blob(&sha256(&data(7, 10))).unwrap(), None);
    assert!(files_under(&dir.path().join("uploads")).is_empty(), "a failed one-shot leaves no temp file");
}

async fn abandoned_one_shot_is_freed_on_drop(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    let id = w.id().to_string();
    w.write(Bytes::from(data(8, 100_000))).await.unwrap();
    assert_eq!(files_under(&dir.path().join("uploads")).len(), 1);
    // The client went away before the end of its body.
    drop(w);
    assert!(files_under(&dir.path().join("uploads")).is_empty(), "the temp file is removed at once");
    assert!(matches!(engine.upload_status(&id), Err(Error::UploadUnknown(_))));
    assert_eq!(common::verify_blob_files(dir.path()), 0);
}

async fn identical_blobs_are_stored_once(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, repo_id) = open(config(dir.path(), io));
    let (other, _) = engine.catalog().ensure_repo("syn1/other", PROJECT).unwrap();
    let bytes = data(8, 123_456);
    let len = bytes.len() as u64;

    let first = push(&engine, REPO, &bytes, 50_000).await.unwrap();
    assert!(first.new);
    assert_eq!(engine.physical_bytes().unwrap(), len);

    let again = push(&engine, REPO, &bytes, 10_000).await.unwrap();
    assert_eq!((again.digest.clone(), again.new), (first.digest.clone(), false));

    // The same bytes through a resumable upload into another repository.
    let up = engine.start_upload("syn1/other", "alice").unwrap();
    append(&engine, &up.id, 0, &bytes[..1_000]).await.unwrap();
    let mut w = engine.append(&up.id, Some(1_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[1_000..])).await.unwrap();
    assert!(!w.finish(&first.digest).await.unwrap().new);

    assert_eq!(blob_files(dir.path()).len(), 1);
    assert!(files_under(&dir.path().join("uploads")).is_empty());
    assert_eq!(engine.physical_bytes().unwrap(), len);
    assert!(engine.catalog().is_linked(repo_id, &first.digest).unwrap());
    assert!(engine.catalog().is_linked(other.id, &first.digest).unwrap());
    let (total, mut per_repo) = engine.project_usage(PROJECT).unwrap();
    per_repo.sort();
    assert_eq!(total, 2 * len);
    assert_eq!(per_repo, vec![(REPO.to_string(), len), ("syn1/other".to_string(), len)]);
    assert_blob(&engine, &first.digest, &bytes);
}

async fn size_limit_refuses_before_writing(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.max_blob_bytes = 1_000;
    let (engine, _) = open(cfg);

    // One-shot: the chunk that crosses the limit is refused, whatever came before.
    let mut w = engine.put_blob_writer(REPO).await.unwrap();
    match w.write(Bytes::from(vec![1u8; 1_001])).await {
        Err(Error::BlobTooLarge { size: 1_001, limit: 1_000 }) => {}
        other => panic!("{other:?}"),
    }
    drop(w);

    // Resumable: 600 bytes are durable; a second request of 600 is refused before any byte of it
    // reaches the file, and the upload can still be finished within the limit.
    let bytes = data(9, 1_000);
    let up = engine.start_upload(REPO, "alice").unwrap();
    append(&engine, &up.id, 0, &bytes[..600]).await.unwrap();
    let mut w = engine.append(&up.id, Some(600)).await.unwrap();
    match w.write(Bytes::from(vec![2u8; 600])).await {
        Err(Error::BlobTooLarge { size: 1_200, limit: 1_000 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.end_chunk().await.unwrap(), 600);
    assert_eq!(std::fs::metadata(dir.path().join("uploads").join(&up.id)).unwrap().len(), 600);
    assert_eq!(engine.upload_status(&up.id).unwrap().offset, 600);
    let mut w = engine.append(&up.id, Some(600)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[600..])).await.unwrap();
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    assert_blob(&engine, &info.digest, &bytes);
    assert_eq!(blob_files(dir.path()).len(), 1);
}

async fn concurrent_appends_are_refused(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let bytes = data(10, 20_000);
    let up = engine.start_upload(REPO, "alice").unwrap();

    let mut first = engine.append(&up.id, Some(0)).await.unwrap();
    first.write(Bytes::copy_from_slice(&bytes[..10_000])).await.unwrap();
    // While one request writes, a second one, a status request and a cancel are all told "busy".
    let (e2, e3) = tokio::join!(engine.append(&up.id, Some(0)), engine.append(&up.id, None));
    for e in [e2.err(), e3.err(), engine.upload_status(&up.id).err(), engine.cancel_upload(&up.id).await.err()] {
        assert!(matches!(e, Some(Error::UploadBusy(ref id)) if *id == up.id), "{e:?}");
    }
    assert_eq!(first.end_chunk().await.unwrap(), 10_000);

    // Two requests racing from separate tasks: exactly one wins.
    let (a, b) = tokio::join!(
        tokio::spawn({
            let e = engine.clone();
            let (id, chunk) = (up.id.clone(), bytes[10_000..].to_vec());
            async move { append(&e, &id, 10_000, &chunk).await }
        }),
        tokio::spawn({
            let e = engine.clone();
            let (id, chunk) = (up.id.clone(), bytes[10_000..].to_vec());
            async move { append(&e, &id, 10_000, &chunk).await }
        }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    for r in [&a, &b] {
        assert!(matches!(r, Ok(20_000) | Err(Error::UploadBusy(_)) | Err(Error::OutOfOrder { .. })), "{r:?}");
    }
    let w = engine.append(&up.id, Some(20_000)).await.unwrap();
    assert!(w.finish(&sha256(&bytes)).await.unwrap().new);
}

async fn upload_survives_a_restart(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(11, 500_000);
    let id = {
        let (engine, _) = open(config(dir.path(), io));
        let up = engine.start_upload(REPO, "alice").unwrap();
        append(&engine, &up.id, 0, &bytes[..120_000]).await.unwrap();
        append(&engine, &up.id, 120_000, &bytes[120_000..300_000]).await.unwrap();
        // A request that was cut off: its bytes may reach the file but were never acknowledged.
        let mut w = engine.append(&up.id, Some(300_000)).await.unwrap();
        w.write(Bytes::from(vec![0xAA; 50_000])).await.unwrap();
        drop(w);
        // A one-shot upload in flight at the crash leaves a temp file with no record.
        let mut w = engine.put_blob_writer(REPO).await.unwrap();
        w.write(Bytes::from(vec![0xBB; 10_000])).await.unwrap();
        drop(w);
        up.id
    };
    // Give the dropped writers' workers a moment to finish so nothing holds the index.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (engine, _) = open(config(dir.path(), io));
    let st = engine.upload_status(&id).unwrap();
    assert_eq!((st.repo.as_str(), st.offset), (REPO, 300_000));
    assert_eq!(files_under(&dir.path().join("uploads")), vec![dir.path().join("uploads").join(&id)]);
    match engine.append(&id, Some(350_000)).await {
        Err(Error::OutOfOrder { expected: 300_000, got: 350_000 }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(append(&engine, &id, 300_000, &bytes[300_000..400_000]).await.unwrap(), 400_000);
    let mut w = engine.append(&id, Some(400_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[400_000..])).await.unwrap();
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    assert_blob(&engine, &info.digest, &bytes);
    assert!(files_under(&dir.path().join("uploads")).is_empty());
    drop(engine);

    // And the blob is still there after another restart.
    let (engine, _) = open(config(dir.path(), io));
    assert_blob(&engine, &sha256(&bytes), &bytes);
    assert!(matches!(engine.upload_status(&id), Err(Error::UploadUnknown(_))));
}

async fn idle_uploads_expire(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.upload_ttl = Duration::ZERO;
    let (engine, _) = open(cfg);
    let idle = engine.start_upload(REPO, "alice").unwrap();
    append(&engine, &idle.id, 0, &data(12, 5_000)).await.unwrap();
    let untouched = engine.start_upload(REPO, "alice").unwrap();
    // Records carry whole seconds: step past the second of the last update.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // An upload being written right now is not expired under its writer.
    let busy = engine.start_upload(REPO, "alice").unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let w = engine.append(&busy.id, Some(0)).await.unwrap();

    assert_eq!(engine.expire_uploads().unwrap(), 2);
    for id in [&idle.id, &untouched.id] {
        assert!(matches!(engine.upload_status(id), Err(Error::UploadUnknown(_))));
        assert_eq!(engine.catalog().upload(id).unwrap(), None);
        assert!(!dir.path().join("uploads").join(id).exists());
    }
    assert_eq!(w.end_chunk().await.unwrap(), 0);
    assert_eq!(engine.upload_status(&busy.id).unwrap().offset, 0);
}

/// A client goes away mid-request: its writer is dropped with chunks still queued, and the next
/// request (from the durable offset) starts at once. The stale request's worker must be done
/// before the new one cuts the file back and writes, or the stored bytes would differ from the
/// bytes hashed and a blob would be committed under a digest it does not have.
async fn abandoned_request_never_writes_into_the_next(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(dir.path(), io));
    let up = engine.start_upload(REPO, "alice").unwrap();
    let stale = Bytes::from(data(60, 1 << 20));
    let mut w = engine.append(&up.id, Some(0)).await.unwrap();
    // Enough queued that its worker is still hashing and writing when the next request starts.
    for _ in 0..24 {
        w.write(stale.clone()).await.unwrap();
    }
    drop(w);
    let fresh = data(61, 100_000);
    let mut w = engine.append(&up.id, Some(0)).await.unwrap();
    w.write(Bytes::copy_from_slice(&fresh)).await.unwrap();
    let info = w.finish(&sha256(&fresh)).await.unwrap();
    assert_blob(&engine, &info.digest, &fresh);
    assert_eq!(common::verify_blob_files(dir.path()), 1);
}
