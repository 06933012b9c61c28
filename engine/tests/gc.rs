//! Online garbage collection, on both backends: what is collected (unlinked blobs past the grace
//! window, orphan files), what survives (linked blobs, blobs a manifest references, young blobs),
//! and a race of pushes against repeated collections in which nothing referenced may disappear.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use bytes::Bytes;
use common::{blob_files, config, data, open, push, sha256, REPO};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stowage_engine::index::Tree;
use stowage_engine::io::IoChoice;
use stowage_engine::{Digest, Engine, ManifestRecord};

on_both_backends!(
    unreferenced_blobs_are_collected,
    young_blobs_survive,
    gc_races_pushes,
    referrers_follow_their_subject
);

fn manifest_record(size: u64, refs: Vec<Digest>) -> ManifestRecord {
    ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size,
        refs,
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: stowage_engine::index::catalog::now_secs(),
    }
}

/// Stores a manifest referencing `refs` in `repo_id` (optionally tagged). Returns its digest.
async fn push_manifest(engine: &Engine, repo_id: u64, refs: Vec<Digest>, tag: Option<&str>) -> Digest {
    let body = format!(
        r#"{{"schemaVersion":2,"layers":[{}]}}"#,
        refs.iter().map(|d| format!(r#"{{"digest":"{d}"}}"#)).collect::<Vec<_>>().join(",")
    );
    let d = sha256(body.as_bytes());
    engine.put_small_blob(REPO, &d, Bytes::from(body.clone())).await.unwrap();
    let missing =
        engine.put_manifest(repo_id, &d, &manifest_record(body.len() as u64, refs), tag.map(|t| (t, "alice"))).unwrap();
    assert!(missing.is_empty(), "manifest {d} misses {missing:?}");
    d
}

/// Stores a referrer of `subject` referencing `refs` in `repo_id` (optionally tagged).
async fn push_referrer(
    engine: &Engine,
    repo_id: u64,
    subject: &Digest,
    refs: Vec<Digest>,
    tag: Option<&str>,
) -> Digest {
    let layers: Vec<String> = refs.iter().map(|d| format!(r#""{d}""#)).collect();
    let body = format!(r#"{{"schemaVersion":2,"subject":"{subject}","layers":[{}]}}"#, layers.join(","));
    let d = sha256(body.as_bytes());
    engine.put_small_blob(REPO, &d, Bytes::from(body.clone())).await.unwrap();
    let mut rec = manifest_record(body.len() as u64, refs);
    rec.subject = Some(subject.clone());
    assert!(engine.put_manifest(repo_id, &d, &rec, tag.map(|t| (t, "alice"))).unwrap().is_empty());
    d
}

/// Writes a file under `blobs/` with no index record, as a crash between rename and index write
/// leaves. Returns its path.
fn plant_orphan(dir: &std::path::Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("blobs").join(sha256(bytes).relative_path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn unreferenced_blobs_are_collected(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.gc_grace = Duration::ZERO;
    let (engine, repo_id) = open(cfg);
    let (garbage, in_manifest, linked) = (data(30, 40_000), data(31, 50_000), data(32, 60_000));
    let g = push(&engine, REPO, &garbage, 16_384).await.unwrap().digest;
    let m_ref = push(&engine, REPO, &in_manifest, 16_384).await.unwrap().digest;
    let l = push(&engine, REPO, &linked, 16_384).await.unwrap().digest;
    let manifest = push_manifest(&engine, repo_id, vec![m_ref.clone()], Some("v1")).await;
    // Deleting blobs from the repository: `g` is now unreachable, `m_ref` still referenced by the
    // manifest record.
    assert!(engine.catalog().unlink_blob(repo_id, &g).unwrap());
    assert!(engine.catalog().unlink_blob(repo_id, &m_ref).unwrap());
    let orphan = plant_orphan(dir.path(), b"left behind by a crash");
    let physical = engine.physical_bytes().unwrap();
    // Records carry whole seconds: make every blob older than the (zero) grace window.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let report = tokio::task::spawn_blocking({
        let e = engine.clone();
        move || e.collect_garbage()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.blobs_scanned, 4, "{report:?}");
    assert_eq!((report.blobs_deleted, report.bytes_freed), (1, 40_000), "{report:?}");
    assert_eq!(report.orphan_files_deleted, 1, "{report:?}");
    assert!(!orphan.exists());
    assert_eq!(engine.stat_blob(&g).unwrap(), None);
    assert!(!dir.path().join("blobs").join(g.relative_path()).exists());
    assert_eq!(engine.physical_bytes().unwrap(), physical - 40_000);
    common::assert_blob(&engine, &m_ref, &in_manifest);
    common::assert_blob(&engine, &l, &linked);
    assert!(engine.stat_blob(&manifest).unwrap().is_some());
    assert_eq!(common::verify_blob_files(dir.path()), 3);

    // Nothing left to collect; a collected blob can be pushed again.
    let again = engine.collect_garbage().unwrap();
    assert_eq!((again.blobs_deleted, again.orphan_files_deleted), (0, 0), "{again:?}");
    assert!(push(&engine, REPO, &garbage, 40_000).await.unwrap().new);
    common::assert_blob(&engine, &g, &garbage);
}

async fn young_blobs_survive(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.gc_grace = Duration::from_secs(3_600);
    let (engine, repo_id) = open(cfg);
    let bytes = data(33, 30_000);
    let d = push(&engine, REPO, &bytes, 30_000).await.unwrap().digest;
    assert!(engine.catalog().unlink_blob(repo_id, &d).unwrap());
    let orphan = plant_orphan(dir.path(), b"maybe a commit in progress");
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let report = engine.collect_garbage().unwrap();
    assert_eq!((report.blobs_scanned, report.blobs_deleted, report.orphan_files_deleted), (1, 0, 0), "{report:?}");
    common::assert_blob(&engine, &d, &bytes);
    assert!(orphan.exists());
    assert_eq!(blob_files(dir.path()).len(), 2);
}

/// Checks that every blob a recorded manifest references, every manifest, and every blob linked to
/// a repository is recorded and on disk with the right bytes. Returns how many were checked.
fn assert_referenced_blobs_intact(engine: &Engine) -> usize {
    let cat = engine.catalog();
    let mut needed = std::collections::BTreeSet::new();
    for (k, m) in cat.scan::<ManifestRecord>(Tree::Manifests, b"", None, usize::MAX).unwrap() {
        needed.insert(Digest::from_key(&k[8..]).unwrap());
        needed.extend(m.refs);
    }
    cat.index()
        .for_each_key(Tree::Links, b"", &mut |k| {
            needed.insert(Digest::from_key(&k[8..]).unwrap());
            true
        })
        .unwrap();
    for d in &needed {
        assert!(engine.stat_blob(d).unwrap().is_some(), "{d} is referenced but not recorded");
        let bytes = engine.read_blob(d, None).unwrap();
        assert_eq!(&Digest::of(d.algorithm(), &bytes), d, "{d} does not verify");
    }
    needed.len()
}

async fn gc_races_pushes(io: IoChoice) {
    const RUN: Duration = Duration::from_secs(3);
    const PUSHERS: u64 = 2;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.gc_grace = Duration::ZERO;
    let (engine, repo_id) = open(cfg);
    let stop = Arc::new(AtomicBool::new(false));

    let gc = std::thread::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        move || {
            let (mut runs, mut deleted) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                deleted += engine.collect_garbage().unwrap().blobs_deleted;
                runs += 1;
            }
            (runs, deleted)
        }
    });

    let deadline = Instant::now() + RUN;
    let mut pushers = Vec::new();
    for p in 0..PUSHERS {
        let engine = engine.clone();
        pushers.push(tokio::spawn(async move {
            let mut pushed = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                // Layers and configs come from small pools so they are often pushed again while
                // an earlier copy is linked (dedupe under GC); garbage comes from its own pool and
                // is unlinked right away, so GC keeps deleting blobs that pushes bring back.
                let layer = data(1_000 + (i * 7 + p) % 40, 2_000 + (i % 5) as usize * 3_000);
                let config_blob = data(2_000 + i % 10, 500);
                let garbage = data(3_000 + (i * 3 + p) % 20, 1_500);
                let l = engine.put_small_blob(REPO, &sha256(&layer), Bytes::from(layer)).await.unwrap().digest;
                let c = engine.put_small_blob(REPO, &sha256(&config_blob), Bytes::from(config_blob)).await.unwrap();
                let g = engine.put_small_blob(REPO, &sha256(&garbage), Bytes::from(garbage)).await.unwrap().digest;
                engine.catalog().unlink_blob(repo_id, &g).unwrap();
                let tag = format!("p{p}-{}", i % 8);
                let m = push_manifest(&engine, repo_id, vec![c.digest, l], Some(&tag)).await;
                pushed.push((tag, m));
                i += 1;
            }
            pushed
        }));
    }
    let mut manifests = 0;
    for p in pushers {
        manifests += p.await.unwrap().len();
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, deleted) = gc.join().unwrap();
    assert!(manifests > 10 && runs > 2, "only {manifests} pushes and {runs} collections in {RUN:?}");

    let checked = assert_referenced_blobs_intact(&engine);
    assert!(checked >= 3, "{checked}");
    // Each tag points at a manifest that is intact.
    for p in 0..PUSHERS {
        for t in 0..8 {
            if let Some(rec) = engine.catalog().tag(repo_id, &format!("p{p}-{t}")).unwrap() {
                assert!(engine.stat_blob(&rec.digest).unwrap().is_some());
            }
        }
    }
    // One last collection with no pushes running: garbage goes, everything referenced stays.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    engine.collect_garbage().unwrap();
    assert_eq!(assert_referenced_blobs_intact(&engine), checked);
    common::verify_blob_files(dir.path());
    eprintln!("{manifests} manifests pushed against {runs} collections that deleted {deleted} blobs");
}

/// A referrer does not keep its subject; once the subject is gone, an untagged referrer goes with
/// the blobs only it held, and a tagged one stays.
async fn referrers_follow_their_subject(io: IoChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), io);
    cfg.gc_grace = Duration::ZERO;
    let (engine, repo_id) = open(cfg);
    let layer = push(&engine, REPO, &data(40, 10_000), 4_096).await.unwrap().digest;
    let image = push_manifest(&engine, repo_id, vec![layer.clone()], Some("v1")).await;
    let sig_layer = push(&engine, REPO, &data(41, 3_000), 4_096).await.unwrap().digest;
    let sig = push_referrer(&engine, repo_id, &image, vec![sig_layer.clone()], None).await;
    let sbom_layer = push(&engine, REPO, &data(42, 2_000), 4_096).await.unwrap().digest;
    let sbom = push_referrer(&engine, repo_id, &image, vec![sbom_layer.clone()], Some("sbom")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(engine.collect_garbage().unwrap().blobs_deleted, 0, "the subject lives");

    assert!(engine.catalog().delete_manifest(repo_id, &image).unwrap());
    let report = engine.collect_garbage().unwrap();
    // The image's manifest, the untagged referrer and its layer; the image's layer stays linked.
    assert_eq!(report.blobs_deleted, 3, "{report:?}");
    for gone in [&image, &sig, &sig_layer] {
        assert_eq!(engine.stat_blob(gone).unwrap(), None, "{gone}");
    }
    assert!(engine.catalog().manifest(repo_id, &sig).unwrap().is_none());
    assert!(!engine.catalog().is_linked(repo_id, &sig_layer).unwrap());
    assert!(engine.catalog().manifest(repo_id, &sbom).unwrap().is_some(), "a tagged referrer stays");
    for kept in [&layer, &sbom, &sbom_layer] {
        assert!(engine.stat_blob(kept).unwrap().is_some(), "{kept}");
    }
    assert_eq!(engine.catalog().referrers(repo_id, &image).unwrap(), [sbom]);
    assert_referenced_blobs_intact(&engine);
}
