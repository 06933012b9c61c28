//! Secondary indexes that keep request paths free of full scans (issue 11): the tags pointing at
//! a manifest are found without reading the repository's other tags, the index is built on open
//! for data written before it existed, and purging a repository works in bounded batches.

#![allow(clippy::unwrap_used)]

mod common;

use common::keys;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stowage_engine::index::mem::MemIndex;
use stowage_engine::index::{Batch, Entry, Index, Tree};
use stowage_engine::{Algorithm, Catalog, Digest, Engine, EngineConfig, ManifestRecord};

fn manifest(n: u32) -> (Digest, ManifestRecord) {
    let d = Digest::of(Algorithm::Sha256, format!("manifest {n}").as_bytes());
    let rec = ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100,
        refs: vec![Digest::of(Algorithm::Sha256, format!("layer {n}").as_bytes())],
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    };
    (d, rec)
}

#[test]
fn deleting_a_manifest_removes_exactly_its_tags_also_for_data_older_than_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (m1, r1) = manifest(1);
    let (m2, r2) = manifest(2);
    {
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let cat = engine.catalog();
        let (repo, _) = cat.ensure_repo("syn1/app", "syn1").unwrap();
        cat.put_manifest(repo.id, &m1, &r1, Some(("a", "alice"))).unwrap();
        cat.put_manifest(repo.id, &m1, &r1, Some(("b", "alice"))).unwrap();
        cat.put_manifest(repo.id, &m2, &r2, Some(("c", "alice"))).unwrap();
        // "b" moves to m2: its old reverse entry must go.
        cat.put_manifest(repo.id, &m2, &r2, Some(("b", "alice"))).unwrap();
        assert_eq!(keys(cat.index().as_ref(), Tree::TagsByDigest).len(), 3);
        // Make it look like a data directory from before the index: no entries, no marker.
        let mut b = Batch::default();
        for k in keys(cat.index().as_ref(), Tree::TagsByDigest) {
            b.delete(Tree::TagsByDigest, k);
        }
        b.delete(Tree::Meta, b"index/tags_by_digest".to_vec());
        cat.index().apply(b).unwrap();
        cat.sync().unwrap();
        assert!(keys(cat.index().as_ref(), Tree::TagsByDigest).is_empty());
    }
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let cat = engine.catalog();
    assert_eq!(keys(cat.index().as_ref(), Tree::TagsByDigest).len(), 3, "built on open");
    let repo = cat.repo_by_name("syn1/app").unwrap().unwrap();
    assert!(cat.delete_manifest(repo.id, &m2).unwrap());
    assert_eq!(cat.list_tags(repo.id, None, 10).unwrap(), ["a"], "b and c pointed at m2");
    assert!(cat.delete_manifest(repo.id, &m1).unwrap());
    assert!(cat.list_tags(repo.id, None, 10).unwrap().is_empty());
    assert!(keys(cat.index().as_ref(), Tree::TagsByDigest).is_empty(), "no reverse entry outlives its tag");
    // A tag deleted on its own takes its reverse entry along.
    cat.put_manifest(repo.id, &m1, &r1, Some(("d", "alice"))).unwrap();
    assert!(cat.delete_tag(repo.id, "d").unwrap());
    assert!(keys(cat.index().as_ref(), Tree::TagsByDigest).is_empty());
}

/// An index that remembers the largest batch applied to it.
struct Largest {
    inner: MemIndex,
    largest: AtomicUsize,
}

impl Index for Largest {
    fn name(&self) -> &'static str {
        "largest"
    }
    fn get(&self, tree: Tree, key: &[u8]) -> stowage_engine::Result<Option<Vec<u8>>> {
        self.inner.get(tree, key)
    }
    fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> stowage_engine::Result<Vec<Entry>> {
        self.inner.scan(tree, prefix, after, limit)
    }
    fn scan_keys_rev(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> stowage_engine::Result<Vec<Vec<u8>>> {
        self.inner.scan_keys_rev(tree, prefix, before, limit)
    }
    fn for_each_key(&self, tree: Tree, prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> stowage_engine::Result<()> {
        self.inner.for_each_key(tree, prefix, f)
    }
    fn apply(&self, batch: Batch) -> stowage_engine::Result<()> {
        self.largest.fetch_max(batch.ops.len(), Ordering::Relaxed);
        self.inner.apply(batch)
    }
    fn compare_and_swap(
        &self,
        tree: Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> stowage_engine::Result<bool> {
        self.inner.compare_and_swap(tree, key, old, new)
    }
    fn flush(&self) -> stowage_engine::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn purging_a_repository_with_many_tags_writes_bounded_batches() {
    const TAGS: u32 = 20_000;
    const BATCH: usize = 1_000;
    let index = Arc::new(Largest { inner: MemIndex::new(), largest: AtomicUsize::new(0) });
    let cat = Catalog::new(index.clone());
    let (repo, _) = cat.ensure_repo("syn1/app", "syn1").unwrap();
    let (other, _) = cat.ensure_repo("syn1/other", "syn1").unwrap();
    let (m, r) = manifest(1);
    cat.put_manifest(other.id, &m, &r, Some(("keep", "alice"))).unwrap();
    // Many tags in few writes: straight into the trees, as an old index might hold them.
    for chunk in (0..TAGS).collect::<Vec<_>>().chunks(5_000) {
        cat.write(|b| {
            for n in chunk {
                let (d, rec) = manifest(*n);
                let mut k = repo.id.to_be_bytes().to_vec();
                k.extend_from_slice(format!("t{n:06}").as_bytes());
                let tag = stowage_engine::TagRecord { digest: d.clone(), time: 0, pusher: "alice".into() };
                b.put(Tree::Tags, k, stowage_engine::index::codec::encode(&tag));
                let mut mk = repo.id.to_be_bytes().to_vec();
                mk.extend_from_slice(&d.to_key());
                b.put(Tree::Manifests, mk, stowage_engine::index::codec::encode(&rec));
            }
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(cat.list_tags(repo.id, None, usize::MAX).unwrap().len(), TAGS as usize);
    index.largest.store(0, Ordering::Relaxed);

    // Refused part way: what is done stays done, nothing else is touched.
    let asked = AtomicUsize::new(0);
    let done = cat.purge_repo_batched(repo.id, BATCH, || Ok(asked.fetch_add(1, Ordering::Relaxed) < 3)).unwrap();
    assert!(!done);
    assert_eq!(cat.list_tags(repo.id, None, usize::MAX).unwrap().len(), TAGS as usize - 3 * BATCH);

    assert!(cat.purge_repo_batched(repo.id, BATCH, || Ok(true)).unwrap());
    let largest = index.largest.load(Ordering::Relaxed);
    // A manifest's batch also removes its reverse entries: a few ops per key at most.
    assert!(largest <= 3 * BATCH, "a purge batch of {largest} ops");
    assert!(cat.list_tags(repo.id, None, 1).unwrap().is_empty());
    assert!(cat.manifest(repo.id, &manifest(7).0).unwrap().is_none());
    assert!(cat.repo(repo.id).unwrap().is_some(), "the record stays for the final batch");
    cat.purge_repo(repo.id).unwrap();
    assert!(cat.repo_by_name("syn1/app").unwrap().is_none());
    assert_eq!(cat.list_tags(other.id, None, 10).unwrap(), ["keep"], "the other repository is untouched");
}
