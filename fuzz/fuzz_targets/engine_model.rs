//! The blob engine against a simple model, with reboots (sled's `fuzz/fuzz_targets/fuzz_model.rs`
//! is the pattern): random sequences of start upload, write (unacknowledged) bytes, end a chunk,
//! commit an upload, one-shot push, put a manifest with or without a tag, delete a manifest, GC,
//! scheduled power cuts, and reboot = simulated power loss (strict or torn, on the disk model and
//! the durable-mode in-memory index) + reopen. The model records what the engine acknowledged;
//! after every reboot each acknowledged blob must read back and verify, each acknowledged upload
//! must resume from at least its acknowledged offset, acknowledged manifests, tags and deletes
//! must hold (or an unacknowledged later attempt), and no partial blob may be visible. Every input
//! ends with a reboot.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use stowage_engine::index::mem::MemIndex;
use stowage_engine::io::fault::{Crash, Faulty, Power};
use stowage_engine::io::IoChoice;
use stowage_engine::{Algorithm, Digest, Engine, EngineConfig, Error, ManifestRecord, UploadWriter};

const REPO: &str = "syn1/app";
/// Operations per input: enough for several reboots, few enough for thousands of runs a minute.
const MAX_OPS: usize = 48;
const MAX_BLOB: usize = 24 * 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    io_uring: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    StartUpload,
    /// Writes bytes into the open request of an upload (opening one if needed); not acknowledged.
    Write {
        upload: u8,
        len: u16,
    },
    /// Ends the open request: the bytes become durable and acknowledged.
    EndChunk {
        upload: u8,
    },
    /// Ends the upload with the digest of all its bytes.
    Commit {
        upload: u8,
    },
    Push {
        len: u16,
    },
    PutManifest {
        blob: u8,
        tag: Option<u8>,
    },
    DeleteManifest {
        manifest: u8,
    },
    Gc,
    /// Lets this many more disk or index steps happen, then the power goes.
    CutAfter {
        steps: u8,
    },
    Reboot {
        torn: bool,
        seed: u8,
        keep_unflushed: u8,
    },
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime"))
}

fn sha256(b: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, b)
}

fn bytes_for(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Upload {
    id: String,
    /// Every byte handed to the engine, acknowledged or not, in order.
    data: Vec<u8>,
    acked: u64,
    open: Option<UploadWriter>,
}

#[derive(Default)]
struct Model {
    blobs: BTreeMap<Digest, Vec<u8>>,
    uploads: Vec<Upload>,
    /// Tag -> allowed targets: the acknowledged one first, then unacknowledged attempts since.
    tags: BTreeMap<String, Vec<Option<Digest>>>,
    /// Manifest -> allowed presence, acknowledged first.
    manifests: BTreeMap<Digest, Vec<bool>>,
    /// Manifests in order of acknowledgement, for DeleteManifest to pick from.
    manifest_list: Vec<Digest>,
    counter: u64,
}

impl Model {
    fn try_tag(&mut self, tag: &str, to: Option<Digest>) {
        self.tags.entry(tag.to_string()).or_insert_with(|| vec![None]).push(to);
    }
    fn try_manifest(&mut self, d: &Digest, stored: bool) {
        self.manifests.entry(d.clone()).or_insert_with(|| vec![false]).push(stored);
    }
}

struct Rig {
    dir: PathBuf,
    io: IoChoice,
    power: Arc<Power>,
    disk: Arc<Faulty>,
    index: Arc<MemIndex>,
}

impl Rig {
    fn open(&self) -> (Engine, u64) {
        let mut cfg = EngineConfig::new(&self.dir);
        cfg.io = self.io;
        cfg.gc_grace = Duration::ZERO;
        let engine = Engine::open_with(cfg, self.index.clone(), Some(self.disk.clone())).expect("reopen");
        let repo = engine.catalog().ensure_repo(REPO, "syn1").expect("repository").0.id;
        (engine, repo)
    }
}

/// The simulated disk of one boot: what is under `dir` now counts as durable.
fn disk(dir: &Path, io: IoChoice, power: &Arc<Power>) -> Arc<Faulty> {
    let backend = stowage_engine::io::choose(io, 8).expect("I/O backend");
    let model = Faulty::reliable(backend).with_power_loss(dir, &[PathBuf::from("index")], power.clone());
    Arc::new(model.expect("disk model"))
}

fn base_dir() -> PathBuf {
    // tmpfs when there is one: the disk model makes real fsyncs pointless here.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fuzz_target!(|input: Input| {
    let io = if input.io_uring { IoChoice::IoUring } else { IoChoice::StdFs };
    if stowage_engine::io::choose(io, 8).is_err() {
        return;
    }
    let tmp = tempfile::tempdir_in(base_dir()).expect("temp dir");
    let power = Power::new();
    let mut rig = Rig {
        dir: tmp.path().to_path_buf(),
        io,
        disk: disk(tmp.path(), io, &power),
        index: Arc::new(MemIndex::durable(Some(power.clone()))),
        power,
    };
    runtime().block_on(run(&mut rig, &input.ops));
});

async fn run(rig: &mut Rig, ops: &[Op]) {
    let mut model = Model::default();
    let (mut engine, mut repo) = rig.open();
    for op in ops.iter().take(MAX_OPS) {
        match op {
            Op::Reboot { torn, seed, keep_unflushed } => {
                let mode = if *torn { Crash::Torn { seed: u64::from(*seed) } } else { Crash::Strict };
                (engine, repo) = reboot(rig, engine, &mut model, mode, usize::from(*keep_unflushed % 4)).await;
            }
            // After a cut every write fails until the reboot; nothing to learn from trying.
            _ if !rig.power.is_on() => {}
            op => step(&engine, repo, &mut model, op, &rig.power).await,
        }
    }
    reboot(rig, engine, &mut model, Crash::Strict, 0).await;
}

fn pick<T>(v: &mut [T], i: u8) -> Option<&mut T> {
    if v.is_empty() {
        None
    } else {
        let n = v.len();
        v.get_mut(usize::from(i) % n)
    }
}

/// An operation failed: only a power cut may cause that.
fn failed(power: &Power, what: &str, e: Error) {
    assert!(!power.is_on(), "{what} failed with the power on: {e}");
}

async fn step(engine: &Engine, repo: u64, model: &mut Model, op: &Op, power: &Power) {
    model.counter += 1;
    let n = model.counter;
    match op {
        Op::StartUpload => match engine.start_upload(REPO, "alice") {
            Ok(st) => model.uploads.push(Upload { id: st.id, data: Vec::new(), acked: 0, open: None }),
            Err(e) => failed(power, "start_upload", e),
        },
        Op::Write { upload, len } => {
            let Some(u) = pick(&mut model.uploads, *upload) else { return };
            if u.open.is_none() {
                match engine.append(&u.id, Some(u.acked)).await {
                    Ok(w) => u.open = Some(w),
                    Err(e) => return failed(power, "append", e),
                }
                // A new request starts at the durable offset (the model's data ends there unless
                // a request failed, and then the power is off and no new request comes).
                u.data.truncate(u.acked as usize);
            }
            let len = usize::from(*len) % 9_000;
            if u.data.len() + len > MAX_BLOB {
                return;
            }
            let chunk = bytes_for(n, len);
            let Some(w) = u.open.as_mut() else { return };
            // Handed to the engine either way: some of it may reach the disk.
            u.data.extend_from_slice(&chunk);
            if let Err(e) = w.write(Bytes::from(chunk)).await {
                u.open = None;
                failed(power, "write", e);
            }
        }
        Op::EndChunk { upload } => {
            let Some(u) = pick(&mut model.uploads, *upload) else { return };
            let Some(w) = u.open.take() else { return };
            match w.end_chunk().await {
                Ok(end) => {
                    assert_eq!(end, u.data.len() as u64, "end_chunk offset");
                    u.acked = end;
                }
                // Unacknowledged, but the offset may still be recorded: the reboot check decides.
                Err(e) => failed(power, "end_chunk", e),
            }
        }
        Op::Commit { upload } => {
            if model.uploads.is_empty() {
                return;
            }
            let i = usize::from(*upload) % model.uploads.len();
            let u = &mut model.uploads[i];
            let w = match u.open.take() {
                Some(w) => w,
                None => match engine.append(&u.id, Some(u.acked)).await {
                    Ok(w) => w,
                    Err(e) => return failed(power, "append", e),
                },
            };
            let d = sha256(&u.data);
            match w.finish(&d).await {
                Ok(info) => {
                    assert_eq!(info.digest, d);
                    let u = model.uploads.remove(i);
                    model.blobs.insert(d, u.data);
                }
                // Unacknowledged: resumable, or committed after all (the reboot check decides).
                Err(e) => failed(power, "finish", e),
            }
        }
        Op::Push { len } => {
            let bytes = bytes_for(n, usize::from(*len) % MAX_BLOB);
            let d = sha256(&bytes);
            let mut w = match engine.put_blob_writer(REPO).await {
                Ok(w) => w,
                Err(e) => return failed(power, "put_blob_writer", e),
            };
            for c in bytes.chunks(4_096) {
                if let Err(e) = w.write(Bytes::copy_from_slice(c)).await {
                    return failed(power, "write", e);
                }
            }
            match w.finish(&d).await {
                Ok(_) => drop(model.blobs.insert(d, bytes)),
                Err(e) => failed(power, "finish", e),
            }
        }
        Op::PutManifest { blob, tag } => {
            let keys: Vec<Digest> = model.blobs.keys().cloned().collect();
            let Some(layer) = keys.get(usize::from(*blob) % keys.len().max(1)).cloned() else { return };
            let body = format!(r#"{{"schemaVersion":2,"layers":["{layer}"],"n":{n}}}"#);
            let d = sha256(body.as_bytes());
            if let Err(e) = engine.put_small_blob(REPO, &d, Bytes::from(body.clone())).await {
                return failed(power, "put_small_blob", e);
            }
            model.blobs.insert(d.clone(), body.clone().into_bytes());
            let rec = ManifestRecord {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: body.len() as u64,
                refs: vec![layer],
                subject: None,
                artifact_type: None,
                annotations: Default::default(),
                created: 0,
            };
            let tag = tag.map(|t| format!("t{}", t % 4));
            model.try_manifest(&d, true);
            if let Some(t) = &tag {
                model.try_tag(t, Some(d.clone()));
            }
            match engine.put_manifest(repo, &d, &rec, tag.as_deref().map(|t| (t, "fuzz"))) {
                Ok(missing) => {
                    assert!(missing.is_empty(), "a linked layer reported missing: {missing:?}");
                    model.manifests.insert(d.clone(), vec![true]);
                    model.manifest_list.push(d.clone());
                    if let Some(t) = tag {
                        model.tags.insert(t, vec![Some(d)]);
                    }
                }
                Err(e) => failed(power, "put_manifest", e),
            }
        }
        Op::DeleteManifest { manifest } => {
            if model.manifest_list.is_empty() {
                return;
            }
            let i = usize::from(*manifest) % model.manifest_list.len();
            let d = model.manifest_list[i].clone();
            let pointing: Vec<String> =
                model.tags.iter().filter(|(_, v)| v.contains(&Some(d.clone()))).map(|(t, _)| t.clone()).collect();
            model.try_manifest(&d, false);
            for t in &pointing {
                model.try_tag(t, None);
            }
            match engine.catalog().delete_manifest(repo, &d) {
                Ok(found) => {
                    // With the power on, every acknowledgement so far holds exactly (the reboot
                    // check resolved any doubt), so the manifest is there to delete.
                    assert!(found, "acknowledged manifest {d} was not there to delete");
                    model.manifest_list.remove(i);
                    model.manifests.insert(d.clone(), vec![false]);
                    for t in pointing {
                        model.tags.insert(t, vec![None]);
                    }
                    // Its bytes are unlinked: garbage now, no longer promised.
                    model.blobs.remove(&d);
                }
                Err(e) => failed(power, "delete_manifest", e),
            }
        }
        Op::Gc => {
            if let Err(e) = engine.collect_garbage() {
                failed(power, "collect_garbage", e);
            }
        }
        Op::CutAfter { steps } => power.cut_after(u64::from(*steps)),
        Op::Reboot { .. } => unreachable!("handled by run"),
    }
}

async fn reboot(rig: &mut Rig, engine: Engine, model: &mut Model, mode: Crash, keep: usize) -> (Engine, u64) {
    for u in &mut model.uploads {
        // Requests still open are cut off by the power loss: their bytes were never acknowledged.
        u.open = None;
    }
    drop(engine);
    rig.disk.crash(mode).expect("crash");
    // A new power supply for the rebooted machine: threads of the old engine that still run
    // fail on the old one and can touch neither disk nor index again.
    rig.power = Power::new();
    rig.index = Arc::new(rig.index.reboot(keep, Some(rig.power.clone())));
    rig.disk = disk(&rig.dir, rig.io, &rig.power);
    let (engine, repo) = rig.open();
    check(&engine, repo, &rig.dir, model);
    (engine, repo)
}

fn check(engine: &Engine, repo: u64, dir: &Path, model: &mut Model) {
    for (d, bytes) in &model.blobs {
        assert_eq!(engine.stat_blob(d).expect("stat"), Some(bytes.len() as u64), "acknowledged blob {d} lost");
        let got = engine.read_blob(d, None).expect("read");
        if got[..] != bytes[..] {
            let first = got.iter().zip(bytes.iter()).position(|(a, b)| a != b);
            panic!(
                "acknowledged blob {d} reads back different bytes ({} of {}, first difference at {first:?})",
                got.len(),
                bytes.len()
            );
        }
    }
    for (tag, allowed) in &mut model.tags {
        let got = engine.catalog().tag(repo, tag).expect("tag").map(|t| t.digest);
        assert!(allowed.contains(&got), "tag {tag} at {got:?}, acknowledged {:?}", allowed[0]);
        *allowed = vec![got];
    }
    for (m, allowed) in &mut model.manifests {
        let got = engine.catalog().manifest(repo, m).expect("manifest").is_some();
        assert!(allowed.contains(&got), "manifest {m} stored: {got}, acknowledged {}", allowed[0]);
        *allowed = vec![got];
    }
    model.manifest_list.retain(|m| model.manifests.get(m).is_some_and(|v| v[0]));
    let mut finished = Vec::new();
    for (i, u) in model.uploads.iter_mut().enumerate() {
        match engine.upload_status(&u.id) {
            Ok(st) => {
                assert!(st.offset >= u.acked, "upload {} at {} after {} was acknowledged", u.id, st.offset, u.acked);
                assert!(st.offset <= u.data.len() as u64, "upload {} at {} of {} bytes", u.id, st.offset, u.data.len());
                u.acked = st.offset;
                u.data.truncate(st.offset as usize);
            }
            // Committed just as the power went: then the blob is whole.
            Err(Error::UploadUnknown(_)) => {
                let d = sha256(&u.data);
                assert_eq!(engine.stat_blob(&d).expect("stat"), Some(u.data.len() as u64), "upload {} lost", u.id);
                finished.push(i);
            }
            Err(e) => panic!("upload {}: {e}", u.id),
        }
    }
    for i in finished.into_iter().rev() {
        let u = model.uploads.remove(i);
        model.blobs.insert(sha256(&u.data), u.data);
    }
    verify_blob_files(&dir.join("blobs"));
}

/// Every file under `blobs/` hashes to its name: nothing partial is visible.
fn verify_blob_files(root: &Path) {
    let Ok(algs) = std::fs::read_dir(root) else { return };
    for alg in algs.flatten() {
        for sub in std::fs::read_dir(alg.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                let name = format!("{}:{}", alg.file_name().to_string_lossy(), f.file_name().to_string_lossy());
                let d: Digest = name.parse().unwrap_or_else(|_| panic!("foreign file {name} in the store"));
                let bytes = std::fs::read(f.path()).expect("read blob file");
                assert_eq!(Digest::of(d.algorithm(), &bytes), d, "blob file {name} is partial or wrong");
            }
        }
    }
}
