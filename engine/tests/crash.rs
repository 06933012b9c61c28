//! `kill -9` crash test in the style of sled's `tests/test_crash_recovery.rs`: the test binary runs
//! itself as a child that pushes blobs concurrently (one-shot puts and multi-chunk resumable
//! uploads) and prints a line for everything the engine acknowledged; the parent kills it with
//! SIGKILL at a random moment, reopens the store and checks the durability contract of DESIGN.md
//! section 4: every acknowledged blob is there and verifies, no partial blob is visible, and every
//! acknowledged upload resumes from the offset its status reports. Rounds alternate the I/O
//! backends and reuse one directory, so state from earlier crashes accumulates.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{config, data, open, sha256, REPO};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stowage_engine::io::IoChoice;
use stowage_engine::{Engine, Error};

const CHILD_ENV: &str = "STOWAGE_CRASH_CHILD";
const ROUND_ENV: &str = "STOWAGE_CRASH_ROUND";
const TEST_NAME: &str = "kill_9_during_pushes_loses_nothing_acknowledged";
const ROUNDS: u64 = 15;
const CHILD_TASKS: u64 = 4;

fn backend(round: u64) -> IoChoice {
    match round % 2 {
        0 => IoChoice::StdFs,
        _ => IoChoice::IoUring,
    }
}

/// Size of the one-shot blob made from `seed`.
fn one_shot_len(seed: u64) -> usize {
    1_024 + (seed % 23) as usize * 4_099
}

/// Total size and request size of the resumable upload made from `seed`.
fn upload_plan(seed: u64) -> (usize, usize) {
    (32_768 + (seed % 5) as usize * 32_768 + (seed % 1_000) as usize, 16_384 * (1 + (seed % 3) as usize))
}

#[test]
fn kill_9_during_pushes_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
        child(Path::new(&dir), round);
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rng =
        Rng(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    let started = Instant::now();
    let mut totals = (0, 0, 0);
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(20 + rng.next() % 280);
        let lines = run_and_kill(dir.path(), round, kill_after);
        let (blobs, uploads, files) = rt.block_on(check_after_crash(dir.path(), round, &lines));
        eprintln!(
            "round {round} ({:?}): killed after {kill_after:?}; {blobs} acknowledged blobs, {uploads} uploads \
             resumed, {files} blob files verified",
            backend(round)
        );
        totals = (totals.0 + blobs, totals.1 + uploads, files);
    }
    assert!(totals.0 > 0 && totals.1 > 0, "the child acknowledged nothing in {ROUNDS} rounds: {totals:?}");
    eprintln!("{ROUNDS} crashes in {:?}: {totals:?}", started.elapsed());
}

/// Runs the child for one round and SIGKILLs it `kill_after` after it reports ready. Returns every
/// complete line it printed.
fn run_and_kill(dir: &Path, round: u64, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = std::io::BufReader::new(stdout);
        let mut line = String::new();
        // A line cut by the kill has no newline: it was not fully acknowledged, so it is dropped.
        while r.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            // libtest prints "test <name> ... " without a newline just before the test runs.
            if line.ends_with("READY\n") {
                let _ = tx.send(());
            }
            lines.push(line.trim_end().to_string());
            line.clear();
        }
        lines
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("the child never reported READY");
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child ended by itself before the kill: {status:?}");
    reader.join().unwrap()
}

/// What the child acknowledged in one round.
#[derive(Default)]
struct Acks {
    /// digest string -> (seed, len)
    blobs: BTreeMap<String, (u64, usize)>,
    /// upload id -> (seed, highest acknowledged offset)
    uploads: BTreeMap<String, (u64, u64)>,
}

fn parse(lines: &[String]) -> Acks {
    let mut acks = Acks::default();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["BLOB", digest, seed, len] => {
                acks.blobs.insert(digest.to_string(), (seed.parse().unwrap(), len.parse().unwrap()));
            }
            ["START", id, seed] => {
                acks.uploads.insert(id.to_string(), (seed.parse().unwrap(), 0));
            }
            ["CHUNK", id, offset] => {
                let e = acks.uploads.get_mut(id).unwrap();
                e.1 = e.1.max(offset.parse().unwrap());
            }
            ["DONE", id] => {
                acks.uploads.remove(id);
            }
            // libtest's own output.
            _ => {}
        }
    }
    acks
}

/// Reopens the store and checks it. Returns (acknowledged blobs, uploads resumed, blob files).
async fn check_after_crash(dir: &Path, round: u64, lines: &[String]) -> (usize, usize, usize) {
    let acks = parse(lines);
    let (engine, _) = open(config(dir, backend(round)));

    // Every acknowledged blob is recorded, readable and verifies.
    for (digest, &(seed, len)) in &acks.blobs {
        let d = digest.parse().unwrap();
        let expected = data(seed, len);
        assert_eq!(sha256(&expected), d, "child and parent disagree on the data of seed {seed}");
        common::assert_blob(&engine, &d, &expected);
    }
    // No partial or foreign file is visible in the store.
    let files = common::verify_blob_files(dir);
    // Upload files left are exactly the recorded sessions.
    let recorded: Vec<String> = engine.catalog().uploads().unwrap().into_iter().map(|r| r.id).collect();
    for f in common::files_under(&dir.join("uploads")) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(recorded.contains(&name), "upload file {name} has no record after recovery");
    }

    // Every acknowledged upload resumes from its reported offset and finishes.
    for (id, &(seed, acked)) in &acks.uploads {
        let (len, _) = upload_plan(seed);
        let bytes = data(seed, len);
        let digest = sha256(&bytes);
        match engine.upload_status(id) {
            Ok(st) => {
                assert!(st.offset >= acked, "upload {id} reports {} after {acked} was acknowledged", st.offset);
                assert!(st.offset <= len as u64, "upload {id} reports {} of {len} bytes", st.offset);
                let mut w = engine.append(id, Some(st.offset)).await.unwrap();
                w.write(Bytes::copy_from_slice(&bytes[st.offset as usize..])).await.unwrap();
                let info = w.finish(&digest).await.unwrap();
                assert_eq!(info.digest, digest);
            }
            // Finished just before the kill, acknowledged but not yet printed.
            Err(Error::UploadUnknown(_)) => {}
            Err(e) => panic!("upload {id}: {e}"),
        }
        common::assert_blob(&engine, &digest, &bytes);
    }
    // Sessions the child started but never acknowledged are of no use to anyone.
    for id in recorded {
        if !acks.uploads.contains_key(&id) {
            engine.cancel_upload(&id).await.unwrap();
        }
    }
    (acks.blobs.len(), acks.uploads.len(), files)
}

/// The child: pushes until killed, acknowledging on stdout. Never returns.
fn child(dir: &Path, round: u64) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, _) = open(config(dir, backend(round)));
        say("READY".to_string());
        let tasks: Vec<_> = (0..CHILD_TASKS)
            .map(|task| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let seed = round * 1_000_000 + task * 10_000 + i;
                        if i % 2 == 0 {
                            one_shot(&engine, seed).await;
                        } else {
                            resumable(&engine, seed).await;
                        }
                    }
                })
            })
            .collect();
        // The parent kills within a second; never outlive a parent that died.
        tokio::time::sleep(Duration::from_secs(20)).await;
        for t in tasks {
            t.abort();
        }
    });
    std::process::exit(0)
}

/// Writes one whole line to the real stdout (not libtest's capture) and flushes it.
fn say(line: String) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes()).unwrap();
    out.flush().unwrap();
}

async fn one_shot(engine: &Engine, seed: u64) {
    let bytes = data(seed, one_shot_len(seed));
    let info = common::push(engine, REPO, &bytes, 16_384).await.unwrap();
    say(format!("BLOB {} {seed} {}", info.digest, bytes.len()));
}

async fn resumable(engine: &Engine, seed: u64) {
    let (len, request) = upload_plan(seed);
    let bytes = data(seed, len);
    let up = engine.start_upload(REPO, "alice").unwrap();
    say(format!("START {} {seed}", up.id));
    let mut offset = 0;
    while offset + request < len {
        let end = offset + request;
        assert_eq!(common::append(engine, &up.id, offset as u64, &bytes[offset..end]).await.unwrap(), end as u64);
        say(format!("CHUNK {} {end}", up.id));
        offset = end;
    }
    let mut w = engine.append(&up.id, Some(offset as u64)).await.unwrap();
    w.write(Bytes::copy_from_slice(&bytes[offset..])).await.unwrap();
    let info = w.finish(&sha256(&bytes)).await.unwrap();
    say(format!("BLOB {} {seed} {len}", info.digest));
    say(format!("DONE {}", up.id));
}

/// xorshift64: kill delays only, seeded from the clock (printed per round).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
