//! The push-time index of tags and the per-repository tag counts (issue 11): built on open for a
//! data directory written before they existed, in bounded durable batches, kept in the batch of
//! every tag write, and read a page at a time in exact (time, tag) order both ways.

#![allow(clippy::unwrap_used)]

mod common;

use common::keys;
use stowage_engine::index::codec::encode;
use stowage_engine::index::{Batch, Tree};
use stowage_engine::{Algorithm, Catalog, Digest, Engine, EngineConfig, ManifestRecord, TagRecord};

fn manifest(n: u32) -> (Digest, ManifestRecord) {
    let d = Digest::of(Algorithm::Sha256, format!("manifest {n}").as_bytes());
    let rec = ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100,
        refs: vec![],
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    };
    (d, rec)
}

fn names(page: &[(String, TagRecord)]) -> Vec<&str> {
    page.iter().map(|(t, _)| t.as_str()).collect()
}

/// Wipes the time index, the counts and the marker, as a data directory from before them holds.
fn make_old(cat: &Catalog) {
    let mut b = Batch::default();
    for tree in [Tree::TagsByTime, Tree::TagCounts] {
        for k in keys(cat.index().as_ref(), tree) {
            b.delete(tree, k);
        }
    }
    b.delete(Tree::Meta, b"index/tags_by_time".to_vec());
    cat.index().apply(b).unwrap();
    cat.sync().unwrap();
}

/// Tags written straight into the tag tree with chosen push times, as an old index holds them.
fn write_old_tags(cat: &Catalog, repo: u64, tags: &[(&str, i64)]) {
    cat.write(|b| {
        for (i, (tag, time)) in tags.iter().enumerate() {
            let mut k = repo.to_be_bytes().to_vec();
            k.extend_from_slice(tag.as_bytes());
            let rec = TagRecord { digest: manifest(i as u32).0, time: *time, pusher: "alice".into() };
            b.put(Tree::Tags, k, encode(&rec));
        }
        Ok(())
    })
    .unwrap();
}

/// The time index and the count agree exactly with the tag records of `repo`.
fn assert_consistent(cat: &Catalog, repo: u64) {
    let mut want: Vec<(i64, String)> =
        cat.tag_records(repo, None, usize::MAX).unwrap().into_iter().map(|(t, r)| (r.time, t)).collect();
    want.sort();
    let got: Vec<(i64, String)> =
        cat.tags_by_time(repo, false, None, 0, usize::MAX).unwrap().into_iter().map(|(t, r)| (r.time, t)).collect();
    assert_eq!(got, want, "ascending time order of repository {repo}");
    let prefix = repo.to_be_bytes();
    let entries = keys(cat.index().as_ref(), Tree::TagsByTime).into_iter().filter(|k| k.starts_with(&prefix)).count();
    assert_eq!(entries, want.len(), "one time entry per tag, none stale");
    assert_eq!(cat.count_tags(repo).unwrap(), want.len(), "tag count");
    assert_eq!(cat.last_push(repo).unwrap(), want.last().map(|(t, _)| *t), "last push");
    let mut desc = cat.tags_by_time(repo, true, None, 0, usize::MAX).unwrap();
    desc.reverse();
    assert_eq!(desc.into_iter().map(|(t, r)| (r.time, t)).collect::<Vec<_>>(), want, "descending is the reverse");
}

const OLD_A: [(&str, i64); 6] = [("v1", 100), ("v2", 300), ("latest", 300), ("beta", 200), ("neg", -5), ("zero", 0)];
const OLD_B: [(&str, i64); 3] = [("x", 50), ("y", 50), ("w", 400)];
/// OLD_A by (time, tag).
const A_ASC: [&str; 6] = ["neg", "zero", "v1", "beta", "latest", "v2"];

#[test]
fn the_time_index_is_built_for_old_data_and_pages_in_exact_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let cat = engine.catalog();
        a = cat.ensure_repo("syn1/a", "syn1").unwrap().0.id;
        b = cat.ensure_repo("syn1/b", "syn1").unwrap().0.id;
        write_old_tags(cat, a, &OLD_A);
        write_old_tags(cat, b, &OLD_B);
        make_old(cat);
        assert_eq!(cat.count_tags(a).unwrap(), 0, "nothing indexed yet");
    }
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let cat = engine.catalog();
    assert_eq!(keys(cat.index().as_ref(), Tree::TagsByTime).len(), 9, "built on open");
    assert_eq!(cat.build_tags_by_time(10).unwrap(), 0, "the marker says it is built");
    for repo in [a, b] {
        assert_consistent(cat, repo);
    }
    assert_eq!(names(&cat.tags_by_time(a, false, None, 0, 100).unwrap()), A_ASC);
    let mut desc = A_ASC;
    desc.reverse();
    assert_eq!(names(&cat.tags_by_time(a, true, None, 0, 100).unwrap()), desc);
    // Pages: by cursor (exact ties at 300 broken by tag) and by skip.
    assert_eq!(names(&cat.tags_by_time(a, false, Some((200, "beta")), 0, 2).unwrap()), ["latest", "v2"]);
    assert_eq!(names(&cat.tags_by_time(a, true, Some((300, "v2")), 0, 2).unwrap()), ["latest", "beta"]);
    assert_eq!(names(&cat.tags_by_time(a, true, Some((300, "latest")), 1, 2).unwrap()), ["v1", "zero"]);
    assert_eq!(names(&cat.tags_by_time(a, false, None, 4, 10).unwrap()), ["latest", "v2"]);
    assert!(cat.tags_by_time(a, false, None, 6, 10).unwrap().is_empty());
    assert_eq!(names(&cat.tags_by_time(b, true, None, 0, 10).unwrap()), ["w", "y", "x"]);
    assert_eq!(cat.last_push(a).unwrap(), Some(300));
    assert_eq!((cat.count_tags(a).unwrap(), cat.count_tags(b).unwrap()), (6, 3));
    // By name, descending, with a cursor and a skip.
    assert_eq!(names(&cat.tag_records_desc(a, None, 0, 3).unwrap()), ["zero", "v2", "v1"]);
    assert_eq!(names(&cat.tag_records_desc(a, Some("v1"), 1, 2).unwrap()), ["latest", "beta"]);

    // Built again in batches of 3 tags: each batch is one durable commit (one flush), the
    // marker costs none, and a repository's count spanning batches comes out whole.
    make_old(cat);
    let before = cat.flushes();
    assert_eq!(cat.build_tags_by_time(3).unwrap(), 9);
    assert_eq!(cat.flushes() - before, 3, "three batches of three tags");
    for repo in [a, b] {
        assert_consistent(cat, repo);
    }
    assert_eq!(names(&cat.tags_by_time(a, false, None, 0, 100).unwrap()), A_ASC);
}

#[test]
fn every_tag_write_keeps_the_time_index_and_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let cat = engine.catalog();
    let repo = cat.ensure_repo("syn1/app", "syn1").unwrap().0.id;
    let other = cat.ensure_repo("syn1/other", "syn1").unwrap().0.id;
    let (m1, r1) = manifest(1);
    let (m2, r2) = manifest(2);
    // Push by tag (also several tags of one digest, as PUT by digest with ?tag= does).
    for t in ["a", "b", "c"] {
        cat.put_manifest(repo, &m1, &r1, Some((t, "alice"))).unwrap();
    }
    cat.put_manifest(other, &m1, &r1, Some(("keep", "alice"))).unwrap();
    assert_consistent(cat, repo);
    assert_eq!(cat.count_tags(repo).unwrap(), 3);
    // The same tag pushed again, and moved to another digest: no new count, no stale entry.
    cat.put_manifest(repo, &m1, &r1, Some(("a", "alice"))).unwrap();
    cat.put_manifest(repo, &m2, &r2, Some(("b", "bob"))).unwrap();
    assert_consistent(cat, repo);
    assert_eq!(cat.count_tags(repo).unwrap(), 3);
    // A manifest pushed by digest only touches no tag.
    cat.put_manifest(repo, &manifest(3).0, &manifest(3).1, None).unwrap();
    assert_eq!(cat.count_tags(repo).unwrap(), 3);
    // Tag delete.
    assert!(cat.delete_tag(repo, "c").unwrap());
    assert!(!cat.delete_tag(repo, "c").unwrap());
    assert_consistent(cat, repo);
    assert_eq!(cat.count_tags(repo).unwrap(), 2);
    // Manifest delete takes every tag of that digest and only those.
    cat.put_manifest(repo, &m2, &r2, Some(("d", "bob"))).unwrap();
    assert!(cat.delete_manifest(repo, &m2).unwrap());
    assert_consistent(cat, repo);
    assert_eq!(names(&cat.tags_by_time(repo, true, None, 0, 10).unwrap()), ["a"]);
    // External repositories: commits move tags with no repository record.
    let ext = 9_999;
    cat.append_commit(ext, "v1", &m1, "carol").unwrap();
    cat.append_commit(ext, "v2", &m2, "carol").unwrap();
    cat.append_commit(ext, "v1", &m2, "carol").unwrap();
    assert_consistent(cat, ext);
    assert_eq!(cat.count_tags(ext).unwrap(), 2);
    // Purge, in batches and then the rest.
    for t in 0..50 {
        cat.put_manifest(repo, &m1, &r1, Some((&format!("t{t:02}"), "alice"))).unwrap();
    }
    assert_consistent(cat, repo);
    assert!(cat.purge_repo_batched(repo, 7, || Ok(true)).unwrap());
    cat.purge_repo(repo).unwrap();
    cat.purge_repo(ext).unwrap();
    for r in [repo, ext] {
        assert_consistent(cat, r);
        assert_eq!(cat.count_tags(r).unwrap(), 0);
        assert!(keys(cat.index().as_ref(), Tree::TagCounts).iter().all(|k| k.as_slice() != r.to_be_bytes()));
    }
    assert_consistent(cat, other);
    assert_eq!(names(&cat.tags_by_time(other, false, None, 0, 10).unwrap()), ["keep"], "untouched");
    drop(engine);
    // Kept, not rebuilt, across a restart.
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(engine.catalog().build_tags_by_time(10).unwrap(), 0);
    assert_consistent(engine.catalog(), other);
}
