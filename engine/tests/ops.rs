//! Operating the store: index format upgrades (a format-1 fixture is upgraded, a newer index is
//! refused), scrub and quarantine (a flipped byte is found, the blob refused, a push heals it),
//! online backups during pushes with restore, incremental and resumed backups, and project
//! quotas (refused over, accepted just under).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::{assert_blob, config, data, files_under, open, push, sha256, verify_blob_files, PROJECT, REPO};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stowage_engine::format::INDEX_FORMAT;
use stowage_engine::index::Tree;
use stowage_engine::io::IoChoice;
use stowage_engine::{Engine, Error};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/index-format-1"), &dir);
    (tmp, dir)
}

const FIXTURE_LAYER: &str = "sha256:1a4166360eecd368b346f5014ecb4be190f45be863f89eec0c2430bf0311b8cf";
const FIXTURE_MANIFEST: &str = "sha256:82f0416c1ab71491400bd81adb4635015b3541b8d3707c7b59ef0d1fa2572d73";

#[tokio::test]
async fn a_format_1_index_is_upgraded_on_open_and_keeps_its_records() {
    let (_tmp, dir) = fixture_copy();
    let engine = Engine::open(config(&dir, IoChoice::StdFs)).unwrap();
    assert_eq!(stowage_engine::format::recorded_version(engine.catalog()).unwrap(), Some(INDEX_FORMAT));
    let repo = engine.catalog().repo_by_name(REPO).unwrap().expect("the fixture's repository");
    let tag = engine.catalog().tag(repo.id, "v1").unwrap().expect("the fixture's tag");
    assert_eq!(tag.digest.to_string(), FIXTURE_MANIFEST);
    let layer = FIXTURE_LAYER.parse().unwrap();
    assert_blob(&engine, &layer, b"stowage index format 1 fixture layer\n");
    assert_eq!(engine.catalog().manifest(repo.id, &tag.digest).unwrap().unwrap().refs, vec![layer]);
    assert_eq!(engine.project_usage(PROJECT).unwrap().0, 37 + 115);
    drop(engine);
    // Opening again finds it current and changes nothing.
    let engine = Engine::open(config(&dir, IoChoice::StdFs)).unwrap();
    assert_eq!(stowage_engine::format::recorded_version(engine.catalog()).unwrap(), Some(INDEX_FORMAT));
}

#[tokio::test]
async fn an_index_from_a_newer_stowage_is_refused_with_a_clear_message() {
    let (_tmp, dir) = fixture_copy();
    let engine = Engine::open(config(&dir, IoChoice::StdFs)).unwrap();
    engine.catalog().put(Tree::Meta, b"format_version", &(INDEX_FORMAT + 7)).unwrap();
    drop(engine);
    let err = Engine::open(config(&dir, IoChoice::StdFs)).err().expect("a newer index must be refused");
    assert!(
        matches!(err, Error::IndexTooNew { found, supported, .. } if found == INDEX_FORMAT + 7 && supported == INDEX_FORMAT)
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the index in {} has format version {}, but this Stowage reads versions up to {INDEX_FORMAT}; run the newer Stowage that wrote it, or restore a backup made by this version",
            dir.join("index").display(),
            INDEX_FORMAT + 7
        )
    );
}

#[tokio::test]
async fn a_new_index_records_the_current_format() {
    let tmp = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(tmp.path(), IoChoice::StdFs));
    assert_eq!(stowage_engine::format::recorded_version(engine.catalog()).unwrap(), Some(INDEX_FORMAT));
}

/// Flips one byte in the middle of a stored blob file (the file is 0600 and ours).
fn flip_byte(data_dir: &Path, digest: &stowage_engine::Digest) {
    let path = data_dir.join("blobs").join(digest.relative_path());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_quarantines_a_flipped_byte_and_a_push_heals_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(tmp.path(), IoChoice::StdFs));
    let good = data(1, 300_000);
    let other = data(2, 5000);
    let d = push(&engine, REPO, &good, 65536).await.unwrap().digest;
    let d2 = push(&engine, REPO, &other, 65536).await.unwrap().digest;
    flip_byte(tmp.path(), &d);

    let report = engine.clone().blocking(|e| e.scrub(0)).await.unwrap();
    assert_eq!((report.blobs_checked, report.bytes_checked), (2, 305_000));
    assert_eq!(report.quarantined, vec![d.to_string()]);
    let q = engine.catalog().quarantine_list().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, d);
    assert!(q[0].1.reason.starts_with("content hashes to sha256:"), "{}", q[0].1.reason);
    assert!(matches!(engine.stat_blob(&d), Err(Error::Quarantined(x)) if x == d));
    assert!(matches!(engine.read_blob(&d, None), Err(Error::Quarantined(x)) if x == d));
    assert_blob(&engine, &d2, &other);
    let c = engine.scrub_counters();
    assert_eq!((c.runs, c.blobs_checked, c.quarantined_total, c.quarantined_now), (1, 2, 1, 1));
    // The damaged file is kept aside, not deleted.
    let kept = tmp.path().join("quarantine").join(format!("sha256-{}", d.hex()));
    assert_eq!(std::fs::read(&kept).unwrap().len(), good.len());

    // A second scrub skips it; a mount of it is refused.
    let again = engine.clone().blocking(|e| e.scrub(0)).await.unwrap();
    assert_eq!((again.blobs_checked, again.already_quarantined, again.quarantined.len()), (1, 1, 0));
    let (other_repo, _) = engine.catalog().ensure_repo("syn1/other", PROJECT).unwrap();
    assert!(matches!(engine.mount_blob(other_repo.id, &d), Err(Error::Quarantined(_))));

    // The same content pushed again heals it.
    let info = push(&engine, REPO, &good, 65536).await.unwrap();
    assert_eq!(info.digest, d);
    assert_blob(&engine, &d, &good);
    assert!(engine.catalog().quarantine_list().unwrap().is_empty());
    assert_eq!(engine.scrub_counters().quarantined_now, 0);
    assert_eq!(verify_blob_files(tmp.path()), 2);
    drop(engine);
    // Healed durably: a reopened engine agrees.
    let (engine, _) = open(config(tmp.path(), IoChoice::StdFs));
    assert_blob(&engine, &d, &good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_quarantines_a_missing_file_and_honours_its_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (engine, _) = open(config(tmp.path(), IoChoice::StdFs));
    let d = push(&engine, REPO, &data(3, 1000), 1000).await.unwrap().digest;
    let big = data(4, 2_000_000);
    push(&engine, REPO, &big, 65536).await.unwrap();
    std::fs::remove_file(tmp.path().join("blobs").join(d.relative_path())).unwrap();
    let started = std::time::Instant::now();
    let e = engine.clone();
    // 4 MB/s over 2 MB: about half a second.
    let report = e.blocking(|e| e.scrub(4_000_000)).await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450), "rate limit not applied: {took:?}");
    assert_eq!(report.quarantined, vec![d.to_string()]);
    assert_eq!(engine.catalog().quarantined(&d).unwrap().unwrap().reason, "file is missing");
}

/// Every tag of every repository resolves and every recorded blob reads back and verifies.
fn verify_everything(engine: &Engine) -> usize {
    let mut n = 0;
    for (name, id) in engine.catalog().list_repo_names(None, usize::MAX).unwrap() {
        for (tag, t) in engine.catalog().tag_records(id, None, usize::MAX).unwrap() {
            assert!(engine.catalog().manifest(id, &t.digest).unwrap().is_some(), "{name}:{tag} lost its manifest");
            let bytes = engine.read_blob(&t.digest, None).unwrap();
            assert_eq!(sha256(&bytes), t.digest);
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_pushes_restores_every_acknowledged_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (engine, _) = open(config(&data_dir, IoChoice::StdFs));
    let mut before = Vec::new();
    for i in 0..20 {
        let bytes = data(100 + i, 10_000 + i as usize * 997);
        before.push((push(&engine, REPO, &bytes, 4096).await.unwrap().digest, bytes));
    }
    // Pushes go on while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (engine, stop) = (engine.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) && i < 1400 {
                let bytes = data(i, 20_000);
                acked.push((push(&engine, REPO, &bytes, 8192).await.unwrap().digest, bytes));
                i += 1;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let dest = tmp.path().join("backup");
    let e = engine.clone();
    let d2 = dest.clone();
    let report = e.blocking(move |e| e.backup(&d2)).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = pusher.await.unwrap();
    assert!(report.blobs >= 20, "{report:?}");
    assert_eq!(report.blobs, report.blobs_linked, "same filesystem: every blob hard-linked ({report:?})");
    assert_eq!((report.blobs_copied, report.blobs_present, report.files_pruned), (0, 0, 0));
    drop(engine);

    // Wipe and restore.
    std::fs::remove_dir_all(&data_dir).unwrap();
    let restored = stowage_engine::backup::restore(&dest, &data_dir).unwrap();
    assert_eq!((restored.blobs, restored.bytes), (report.blobs, report.bytes));
    let (engine, _) = open(config(&data_dir, IoChoice::StdFs));
    for (d, bytes) in &before {
        assert_blob(&engine, d, bytes);
    }
    // Pushes acknowledged before the snapshot are in it; those after are not, and nothing is
    // half there: each is either readable or unknown.
    let mut present = 0;
    for (d, bytes) in &during {
        match engine.stat_blob(d).unwrap() {
            Some(_) => {
                assert_blob(&engine, d, bytes);
                present += 1;
            }
            None => assert!(!data_dir.join("blobs").join(d.relative_path()).exists()),
        }
    }
    assert_eq!(report.blobs as usize, 20 + present);
    assert_eq!(verify_blob_files(&data_dir), report.blobs as usize);
    verify_everything(&engine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_incremental_resumable_and_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (engine, repo_id) = open(config(&data_dir, IoChoice::StdFs));
    let a = push(&engine, REPO, &data(1, 5000), 5000).await.unwrap().digest;
    let b = push(&engine, REPO, &data(2, 6000), 6000).await.unwrap().digest;
    let dest = tmp.path().join("backup");
    let first = engine.backup(&dest).unwrap();
    assert_eq!((first.blobs, first.blobs_linked), (2, 2));

    let c = push(&engine, REPO, &data(3, 7000), 7000).await.unwrap().digest;
    let second = engine.backup(&dest).unwrap();
    assert_eq!((second.blobs, second.blobs_present, second.blobs_linked), (3, 2, 1), "only the new blob moves");

    // An interrupted run: a blob gone from the backup and a partial copy left behind. The rerun
    // completes it.
    std::fs::remove_file(dest.join("blobs").join(c.relative_path())).unwrap();
    let partial = dest.join("blobs").join(c.relative_path()).with_extension("partial");
    std::fs::write(&partial, b"half").unwrap();
    let stray = dest.join("blobs/sha256/stray");
    std::fs::write(&stray, b"not a blob directory").unwrap();
    let third = engine.backup(&dest).unwrap();
    assert_eq!((third.blobs_present, third.blobs_linked, third.files_pruned), (2, 1, 2));
    assert!(!partial.exists() && !stray.exists());

    // A blob unlinked and collected leaves the next backup.
    assert!(engine.catalog().unlink_blob(repo_id, &a).unwrap());
    // Past the (zero) grace window, which GC counts in whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let mut cfg = config(&data_dir, IoChoice::StdFs);
    cfg.gc_grace = Duration::ZERO;
    drop(engine);
    let (engine, _) = open(cfg);
    assert_eq!(engine.collect_garbage().unwrap().blobs_deleted, 1);
    let fourth = engine.backup(&dest).unwrap();
    assert_eq!((fourth.blobs, fourth.files_pruned), (2, 1));
    let mut names: Vec<_> =
        files_under(&dest.join("blobs")).into_iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    names.sort();
    let mut want: Vec<std::ffi::OsString> = vec![b.hex().into(), c.hex().into()];
    want.sort();
    assert_eq!(names, want);
}

fn msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("refused").to_string()
}

#[tokio::test]
async fn backup_destinations_and_restore_targets_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (engine, _) = open(config(&data_dir, IoChoice::StdFs));
    assert_eq!(
        msg(engine.backup(Path::new("relative/dir"))),
        "backup destination relative/dir must be an absolute path"
    );
    let inside = data_dir.join("backups");
    assert!(msg(engine.backup(&inside)).contains("must be outside the data directory"));
    assert!(!inside.exists(), "nothing is created for a refused destination");
    assert!(msg(engine.backup(tmp.path())).contains("must be outside the data directory"), "a parent of the data dir");
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"x").unwrap();
    assert!(msg(engine.backup(&foreign)).contains("holds notes.txt and is not a Stowage backup"));
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"x");

    let dest = tmp.path().join("backup");
    engine.backup(&dest).unwrap();
    let m = msg(stowage_engine::backup::restore(&dest, &data_dir));
    assert!(
        m.ends_with("is not empty; restore into a new or empty directory (never over a live data directory)"),
        "{m}"
    );
    // A damaged snapshot is refused before anything is written.
    let snap = dest.join("index.snapshot");
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&snap, bytes).unwrap();
    let target = tmp.path().join("restored");
    let m = msg(stowage_engine::backup::restore(&dest, &target));
    assert!(m.ends_with("is damaged or incomplete (checksum mismatch); use another backup"), "{m}");
    assert!(!target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_quota_refuses_a_push_over_it_and_accepts_one_just_under() {
    let tmp = tempfile::tempdir().unwrap();
    let (engine, repo_id) = open(config(tmp.path(), IoChoice::StdFs));
    push(&engine, REPO, &data(1, 1000), 1000).await.unwrap();
    engine.catalog().set_quota(PROJECT, Some(3000)).unwrap();
    // Another repository of the same project counts too; one of another project does not.
    engine.catalog().ensure_repo("syn1/second", PROJECT).unwrap();
    engine.catalog().ensure_repo("syn9/free", "syn9").unwrap();
    push(&engine, "syn9/free", &data(9, 50_000), 50_000).await.unwrap();
    // 1000 + 2000 = 3000: exactly at the quota is allowed.
    push(&engine, "syn1/second", &data(2, 2000), 2000).await.unwrap();
    let err = push(&engine, REPO, &data(3, 1), 1).await.expect_err("over the quota");
    assert_eq!(
        err.to_string(),
        "project syn1 is over its storage quota of 3000 bytes: it uses 3000 bytes and this push needs 1 more; purge repositories of the project, or ask an administrator to raise the quota"
    );
    assert_eq!(engine.project_usage(PROJECT).unwrap().0, 3000, "a refused push adds nothing");
    // A blob already linked to the repository adds nothing, so it is not refused.
    push(&engine, REPO, &data(1, 1000), 1000).await.unwrap();
    // Mounting counts as well.
    let d = sha256(&data(9, 50_000));
    assert!(matches!(engine.mount_blob(repo_id, &d), Err(Error::QuotaExceeded { needed: 50_000, .. })));
    engine.catalog().set_quota(PROJECT, Some(3001)).unwrap();
    push(&engine, REPO, &data(3, 1), 1).await.unwrap();
    engine.catalog().set_quota(PROJECT, None).unwrap();
    engine.mount_blob(repo_id, &d).unwrap();
    assert_eq!(engine.catalog().quota(PROJECT).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_another_filesystem_copies_and_verifies_every_blob() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (engine, _) = open(config(&data_dir, IoChoice::StdFs));
    // tmpfs: another filesystem than the temp dir's, so hard links cannot work.
    let other = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) for a second filesystem");
    assert_ne!(
        std::fs::metadata(other.path()).unwrap().dev(),
        std::fs::metadata(tmp.path()).unwrap().dev(),
        "/dev/shm must be another filesystem for this test"
    );
    let blobs: Vec<Vec<u8>> = (0..5).map(|i| data(200 + i, 3000 + i as usize * 100_000)).collect();
    for b in &blobs {
        push(&engine, REPO, b, 65536).await.unwrap();
    }
    let dest = other.path().join("backup");
    let report = engine.backup(&dest).unwrap();
    assert_eq!((report.blobs, report.blobs_copied, report.blobs_linked), (5, 5, 0));
    assert_eq!(report.bytes_copied, blobs.iter().map(|b| b.len() as u64).sum::<u64>());
    assert_eq!(verify_blob_files(&dest), 5);
    // A damaged blob is not copied into a backup: the run fails and says what to do.
    let d = push(&engine, REPO, &data(300, 50_000), 65536).await.unwrap().digest;
    flip_byte(&data_dir, &d);
    let m = msg(engine.backup(&dest));
    assert!(
        m.contains(&format!("blob {d} at")) && m.ends_with("run a scrub to quarantine it, then back up again"),
        "{m}"
    );
    // The previous complete backup is still whole, and restores.
    drop(engine);
    let restored = tmp.path().join("restored");
    assert_eq!(stowage_engine::backup::restore(&dest, &restored).unwrap().blobs, 5);
    let (engine, _) = open(config(&restored, IoChoice::StdFs));
    for b in &blobs {
        assert_blob(&engine, &sha256(b), b);
    }
}
