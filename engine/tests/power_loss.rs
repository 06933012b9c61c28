//! Power loss, simulated: the engine runs on the I/O power-loss model (`io::fault::Faulty` with
//! `with_power_loss`, over std_fs or io_uring) and the in-memory index in durable-snapshot mode,
//! sharing one `Power`. After each simulated power loss the disk holds only what was synced (or a
//! torn version of what was not) and the index only what was flushed (plus, sometimes, a prefix
//! of what was not); the store is reopened and checked against DESIGN.md section 4: every
//! acknowledged blob is there and verifies, every acknowledged upload chunk resumes, every
//! acknowledged manifest and tag is there (and every acknowledged delete stays done), and no
//! partial blob is visible. `kill -9` (tests/crash.rs) only loses the page cache's future; this
//! loses the page cache.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use bytes::Bytes;
use common::{data, sha256, PROJECT, REPO};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stowage_engine::index::mem::MemIndex;
use stowage_engine::io::fault::{Crash, Faulty, Power};
use stowage_engine::io::IoChoice;
use stowage_engine::{Digest, Engine, Error, ManifestRecord};

on_both_backends!(acknowledged_writes_survive_power_loss, power_cut_at_every_step, power_cut_during_concurrent_pushes);

/// A data directory on a simulated disk and index that can lose power.
struct Rig {
    dir: tempfile::TempDir,
    io: IoChoice,
    power: Arc<Power>,
    disk: Arc<Faulty>,
    index: Arc<MemIndex>,
}

/// The simulated disk of one boot: what is under `dir` now counts as durable.
fn disk(dir: &std::path::Path, io: IoChoice, power: &Arc<Power>) -> Arc<Faulty> {
    let backend = stowage_engine::io::choose(io, 8).unwrap();
    // The index lives in memory here; `index/` would be sled's and is not modelled.
    Arc::new(Faulty::reliable(backend).with_power_loss(dir, &[PathBuf::from("index")], power.clone()).unwrap())
}

impl Rig {
    fn new(io: IoChoice) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let power = Power::new();
        let index = Arc::new(MemIndex::durable(Some(power.clone())));
        Rig { disk: disk(dir.path(), io, &power), dir, io, power, index }
    }

    fn open(&self) -> Engine {
        let mut cfg = common::config(self.dir.path(), self.io);
        cfg.gc_grace = Duration::ZERO;
        Engine::open_with(cfg, self.index.clone(), Some(self.disk.clone())).unwrap()
    }

    /// Power loss and restart on a new power supply: the old engine's threads, if any still
    /// run, fail on the old one and can touch neither the disk nor the index again.
    fn reboot(&mut self, mode: Crash, keep_unflushed: usize) {
        self.disk.crash(mode).unwrap();
        self.power = Power::new();
        self.index = Arc::new(self.index.reboot(keep_unflushed, Some(self.power.clone())));
        self.disk = disk(self.dir.path(), self.io, &self.power);
    }
}

/// What the engine acknowledged, so far as it must survive, and what an unacknowledged attempt
/// since may have left instead (a write applied but never acknowledged may or may not survive).
#[derive(Clone, Debug, Default)]
struct Acks {
    /// Blobs that must be readable (linked, or a tagged manifest's).
    blobs: BTreeMap<Digest, Vec<u8>>,
    /// Upload id -> (all of its data, offset acknowledged).
    uploads: BTreeMap<String, (Vec<u8>, u64)>,
    /// Tag -> the manifest it may point at: first the acknowledged one (None: no tag), then any
    /// attempted since.
    tags: BTreeMap<String, Vec<Option<Digest>>>,
    /// Manifest -> whether it may be stored: first the acknowledged state, then attempted ones.
    manifests: BTreeMap<Digest, Vec<bool>>,
}

impl Acks {
    fn try_tag(&mut self, tag: &str, to: Option<Digest>) {
        self.tags.entry(tag.to_string()).or_insert_with(|| vec![None]).push(to);
    }

    fn ack_tag(&mut self, tag: &str, to: Option<Digest>) {
        self.tags.insert(tag.to_string(), vec![to]);
    }

    fn try_manifest(&mut self, d: &Digest, stored: bool) {
        self.manifests.entry(d.clone()).or_insert_with(|| vec![false]).push(stored);
    }

    fn ack_manifest(&mut self, d: &Digest, stored: bool) {
        self.manifests.insert(d.clone(), vec![stored]);
    }
}

fn manifest_record(size: u64) -> ManifestRecord {
    ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size,
        refs: vec![],
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    }
}

/// Checks the reopened store against what was acknowledged, then finishes every acknowledged
/// upload from the offset its status reports.
async fn check(engine: &Engine, dir: &std::path::Path, acks: &mut Acks) {
    let Some(repo) = engine.catalog().repo_by_name(REPO).unwrap() else {
        // Nothing was acknowledged yet (every acknowledgement needs the repository).
        assert!(acks.blobs.is_empty() && acks.uploads.is_empty(), "acknowledged work lost with its repository");
        return;
    };
    for (d, bytes) in &acks.blobs {
        common::assert_blob(engine, d, bytes);
    }
    for (tag, allowed) in &mut acks.tags {
        let got = engine.catalog().tag(repo.id, tag).unwrap().map(|t| t.digest);
        assert!(allowed.contains(&got), "tag {tag} points at {got:?}, acknowledged {:?}", allowed[0]);
        // What survived is what holds from now on.
        *allowed = vec![got];
    }
    for (m, allowed) in &mut acks.manifests {
        let got = engine.catalog().manifest(repo.id, m).unwrap().is_some();
        assert!(allowed.contains(&got), "manifest {m} stored: {got}, acknowledged {}", allowed[0]);
        *allowed = vec![got];
    }
    // Nothing partial or foreign in the store, and no upload file without its record.
    common::verify_blob_files(dir);
    let recorded: Vec<String> = engine.catalog().uploads().unwrap().into_iter().map(|r| r.id).collect();
    for f in common::files_under(&dir.join("uploads")) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(recorded.contains(&name), "upload file {name} has no record after recovery");
    }
    for (id, (bytes, acked)) in std::mem::take(&mut acks.uploads) {
        let st = match engine.upload_status(&id) {
            Ok(st) => st,
            // Finished, but the power went before the answer: then the blob is complete.
            Err(Error::UploadUnknown(_)) => {
                common::assert_blob(engine, &sha256(&bytes), &bytes);
                acks.blobs.insert(sha256(&bytes), bytes);
                continue;
            }
            Err(e) => panic!("acknowledged upload {id}: {e}"),
        };
        assert!(st.offset >= acked && st.offset <= bytes.len() as u64, "upload {id} at {} (acked {acked})", st.offset);
        let mut w = engine.append(&id, Some(st.offset)).await.unwrap();
        w.write(Bytes::copy_from_slice(&bytes[st.offset as usize..])).await.unwrap();
        let info = w.finish(&sha256(&bytes)).await.unwrap();
        common::assert_blob(engine, &info.digest, &bytes);
        acks.blobs.insert(info.digest, bytes);
    }
}

/// One round of work: pushes, a resumable upload left half way, another left with unsynced bytes,
/// manifests with tags, a manifest delete. Acknowledgements go to `acks` as they return.
async fn round(engine: &Engine, round: u64, acks: &mut Acks) {
    let repo = engine.catalog().ensure_repo(REPO, PROJECT).unwrap().0.id;
    let seed = round * 100;
    // One-shot push.
    let bytes = data(seed, 3_000 + (round as usize % 7) * 5_000);
    let info = common::push(engine, REPO, &bytes, 4_096).await.unwrap();
    acks.blobs.insert(info.digest, bytes);
    // A resumable upload with two acknowledged chunks, left open.
    let bytes = data(seed + 1, 50_000);
    let up = engine.start_upload(REPO, "alice").unwrap();
    acks.uploads.insert(up.id.clone(), (bytes.clone(), 0));
    for end in [20_000u64, 35_000] {
        let start = acks.uploads[&up.id].1;
        common::append(engine, &up.id, start, &bytes[start as usize..end as usize]).await.unwrap();
        acks.uploads.get_mut(&up.id).unwrap().1 = end;
    }
    // Another one whose second request is written but never ended: its bytes are not acknowledged.
    let bytes = data(seed + 2, 40_000);
    let up = engine.start_upload(REPO, "alice").unwrap();
    acks.uploads.insert(up.id.clone(), (bytes.clone(), 0));
    common::append(engine, &up.id, 0, &bytes[..10_000]).await.unwrap();
    acks.uploads.get_mut(&up.id).unwrap().1 = 10_000;
    let mut w = engine.append(&up.id, Some(10_000)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[10_000..30_000])).await.unwrap();
    drop(w);
    // Manifests: push two under the same tag, delete the older of the round before.
    for i in 0..2 {
        let body = format!(r#"{{"schemaVersion":2,"round":{round},"i":{i}}}"#);
        let d = sha256(body.as_bytes());
        engine.put_small_blob(REPO, &d, Bytes::from(body.clone())).await.unwrap();
        let missing = engine.put_manifest(repo, &d, &manifest_record(body.len() as u64), Some(("latest", "alice")));
        assert!(missing.unwrap().is_empty());
        acks.blobs.insert(d.clone(), body.into_bytes());
        acks.ack_manifest(&d, true);
        acks.ack_tag("latest", Some(d.clone()));
        if i == 0 {
            engine.put_manifest(repo, &d, &manifest_record(0), Some((&format!("r{round}"), "bob"))).unwrap();
            acks.ack_tag(&format!("r{round}"), Some(d));
        }
    }
    if round > 0 {
        let body = format!(r#"{{"schemaVersion":2,"round":{},"i":0}}"#, round - 1);
        let old = sha256(body.as_bytes());
        assert!(engine.catalog().delete_manifest(repo, &old).unwrap());
        acks.ack_manifest(&old, false);
        acks.ack_tag(&format!("r{}", round - 1), None);
        // Its bytes are unlinked now: garbage, no longer promised.
        acks.blobs.remove(&old);
    }
}

async fn acknowledged_writes_survive_power_loss(io: IoChoice) {
    let mut rig = Rig::new(io);
    let mut acks = Acks::default();
    for r in 0..6u64 {
        let engine = rig.open();
        check(&engine, rig.dir.path(), &mut acks).await;
        round(&engine, r, &mut acks).await;
        if r % 3 == 2 {
            // Online GC between rounds: it must not take anything acknowledged.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            engine.collect_garbage().unwrap();
        }
        drop(engine);
        let mode = if r % 2 == 0 { Crash::Strict } else { Crash::Torn { seed: r * 7 + 1 } };
        rig.reboot(mode, r as usize % 3);
    }
    let engine = rig.open();
    check(&engine, rig.dir.path(), &mut acks).await;
}

/// The fixed scenario of [`power_cut_at_every_step`]: acknowledges into `acks` until the first
/// error (the power cut), then stops.
async fn scenario(engine: &Engine, acks: &mut Acks) -> Result<(), Error> {
    let repo = engine.catalog().ensure_repo(REPO, PROJECT)?.0.id;
    let bytes = data(7, 20_000);
    let info = common::push(engine, REPO, &bytes, 8_192).await?;
    acks.blobs.insert(info.digest, bytes);
    let bytes = data(8, 30_000);
    let up = engine.start_upload(REPO, "alice")?;
    acks.uploads.insert(up.id.clone(), (bytes.clone(), 0));
    common::append(engine, &up.id, 0, &bytes[..12_000]).await?;
    acks.uploads.get_mut(&up.id).unwrap().1 = 12_000;
    let mut w = engine.append(&up.id, Some(12_000)).await?;
    w.write(Bytes::copy_from_slice(&bytes[12_000..])).await?;
    let info = w.finish(&sha256(&bytes)).await?;
    acks.uploads.remove(&up.id);
    acks.blobs.insert(info.digest, bytes);
    let body = br#"{"schemaVersion":2}"#;
    let d = sha256(body);
    engine.put_small_blob(REPO, &d, Bytes::from_static(body)).await?;
    acks.blobs.insert(d.clone(), body.to_vec());
    acks.try_manifest(&d, true);
    acks.try_tag("v1", Some(d.clone()));
    engine.put_manifest(repo, &d, &manifest_record(body.len() as u64), Some(("v1", "alice")))?;
    acks.ack_manifest(&d, true);
    acks.ack_tag("v1", Some(d.clone()));
    acks.try_manifest(&d, false);
    acks.try_tag("v1", None);
    assert!(engine.catalog().delete_manifest(repo, &d)?);
    acks.ack_manifest(&d, false);
    acks.ack_tag("v1", None);
    Ok(())
}

/// Cuts the power after each step of a scenario in turn (every write, sync, name change, index
/// apply and flush is a step), like ALICE's crash states: whatever was acknowledged before the
/// cut survives, strict or torn.
async fn power_cut_at_every_step(io: IoChoice) {
    let steps = {
        let rig = Rig::new(io);
        let engine = rig.open();
        let before = rig.power.ticks();
        scenario(&engine, &mut Acks::default()).await.unwrap();
        rig.power.ticks() - before
    };
    assert!(steps > 20, "only {steps} steps");
    for cut in 0..steps {
        let mut rig = Rig::new(io);
        let engine = rig.open();
        // Opening took steps of its own (directories); cut within the scenario's.
        rig.power.cut_after(cut);
        let mut acks = Acks::default();
        let res = scenario(&engine, &mut acks).await;
        assert!(res.is_err() || cut + 1 >= steps, "cut after step {cut} of {steps} went unnoticed");
        drop(engine);
        let mode = if cut % 2 == 0 { Crash::Strict } else { Crash::Torn { seed: cut } };
        rig.reboot(mode, cut as usize % 2);
        let engine = rig.open();
        check(&engine, rig.dir.path(), &mut acks).await;
    }
    eprintln!("{steps} cut points checked");
}

/// Pushes from several tasks at once, so group commits are in flight, when the power goes.
async fn power_cut_during_concurrent_pushes(io: IoChoice) {
    const TASKS: u64 = 4;
    let mut rig = Rig::new(io);
    let mut acks = Acks::default();
    for r in 0..4u64 {
        let engine = rig.open();
        check(&engine, rig.dir.path(), &mut acks).await;
        let repo = engine.catalog().ensure_repo(REPO, PROJECT).unwrap().0.id;
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let engine = engine.clone();
                let tag = format!("t{t}");
                // Each task owns one tag: it starts from what survived of it.
                let mut mine = Acks::default();
                if let Some(allowed) = acks.tags.get(&tag) {
                    mine.tags.insert(tag.clone(), allowed.clone());
                }
                tokio::spawn(async move {
                    let mut acks = mine;
                    for i in 0.. {
                        let seed = 10_000 * r + 100 * t + i;
                        let bytes = data(seed, 2_000 + (seed as usize % 5) * 3_000);
                        let Ok(info) = common::push(&engine, REPO, &bytes, 4_096).await else { break };
                        let d = info.digest;
                        acks.blobs.insert(d.clone(), bytes);
                        // The blob doubles as the manifest: a tag may point at any stored bytes.
                        acks.try_manifest(&d, true);
                        acks.try_tag(&tag, Some(d.clone()));
                        let (rec, tag2, d2) = (manifest_record(0), tag.clone(), d.clone());
                        match engine.blocking(move |e| e.put_manifest(repo, &d2, &rec, Some((&tag2, "c")))).await {
                            Ok(missing) => assert!(missing.is_empty()),
                            Err(_) => break,
                        }
                        acks.ack_manifest(&d, true);
                        acks.ack_tag(&tag, Some(d));
                    }
                    acks
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30 + r * 40)).await;
        rig.power.cut();
        for t in tasks {
            let got = t.await.unwrap();
            acks.blobs.extend(got.blobs);
            acks.tags.extend(got.tags);
            for (d, allowed) in got.manifests {
                acks.manifests.insert(d, allowed);
            }
        }
        drop(engine);
        let mode = if r % 2 == 0 { Crash::Strict } else { Crash::Torn { seed: r + 11 } };
        rig.reboot(mode, r as usize);
    }
    let engine = rig.open();
    check(&engine, rig.dir.path(), &mut acks).await;
    assert!(!acks.blobs.is_empty(), "nothing was acknowledged before the cuts");
}
