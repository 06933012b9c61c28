//! The test suite every [`Index`] backend must pass (like garage `src/db/test.rs`): raw key-value
//! semantics first, then the typed catalog on top. Backends call [`run_all`] from their tests with
//! a factory that returns a fresh, empty index and a guard keeping its storage alive.

#![allow(clippy::unwrap_used)]

use super::catalog::{Catalog, ManifestRecord};
use super::codec::seal;
use super::fault::{FaultyIndex, IndexFaultOp};
use super::{Batch, Index, Tree};
use crate::digest::{Algorithm, Digest};
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub type Factory<'a> = &'a dyn Fn() -> (Box<dyn Index>, Box<dyn Any>);

pub fn run_all(make: Factory<'_>) {
    for (name, test) in [
        ("get_put_delete", get_put_delete as fn(&dyn Index)),
        ("trees_are_separate", trees_are_separate),
        ("scan_prefix_after_limit", scan_prefix_after_limit),
        ("scan_keys_rev_before_limit", scan_keys_rev_before_limit),
        ("batch_is_atomic_and_ordered", batch_is_atomic_and_ordered),
        ("compare_and_swap", compare_and_swap),
    ] {
        let (idx, _guard) = make();
        eprintln!("index suite ({}): {name}", idx.name());
        test(idx.as_ref());
    }
    for (name, test) in [
        ("catalog_repos_and_counters", catalog_repos_and_counters as fn(&Catalog)),
        ("catalog_blobs_links_accounting", catalog_blobs_links_accounting),
        ("catalog_manifests_tags_history", catalog_manifests_tags_history),
        ("catalog_purge", catalog_purge),
        ("catalog_detects_corruption", catalog_detects_corruption),
    ] {
        let (idx, _guard) = make();
        eprintln!("index suite ({}): {name}", idx.name());
        let cat = Catalog::new(Arc::from(idx));
        test(&cat);
    }
    for (name, test) in [
        ("group_commit_shares_flushes", group_commit_shares_flushes as fn(Arc<dyn Index>)),
        ("concurrent_ids_are_unique", concurrent_ids_are_unique),
        ("delete_manifest_keeps_a_repointed_tag", delete_manifest_keeps_a_repointed_tag),
        ("failed_flush_poisons_every_waiter", failed_flush_poisons_every_waiter),
    ] {
        let (idx, _guard) = make();
        eprintln!("index suite ({}): {name}", idx.name());
        test(Arc::from(idx));
    }
}

fn get_put_delete(idx: &dyn Index) {
    assert_eq!(idx.get(Tree::Tags, b"a").unwrap(), None);
    let mut b = Batch::default();
    b.put(Tree::Tags, b"a".to_vec(), b"1".to_vec());
    idx.apply(b).unwrap();
    assert_eq!(idx.get(Tree::Tags, b"a").unwrap(), Some(b"1".to_vec()));
    let mut b = Batch::default();
    b.delete(Tree::Tags, b"a".to_vec());
    idx.apply(b).unwrap();
    assert_eq!(idx.get(Tree::Tags, b"a").unwrap(), None);
    idx.flush().unwrap();
}

fn trees_are_separate(idx: &dyn Index) {
    let mut b = Batch::default();
    b.put(Tree::Tags, b"k".to_vec(), b"tags".to_vec());
    b.put(Tree::Repos, b"k".to_vec(), b"repos".to_vec());
    b.put(Tree::Meta, b"\xff\xff".to_vec(), b"meta".to_vec());
    idx.apply(b).unwrap();
    assert_eq!(idx.get(Tree::Tags, b"k").unwrap(), Some(b"tags".to_vec()));
    assert_eq!(idx.get(Tree::Repos, b"k").unwrap(), Some(b"repos".to_vec()));
    assert_eq!(idx.scan(Tree::Meta, b"", None, 10).unwrap(), vec![(b"\xff\xff".to_vec(), b"meta".to_vec())]);
    assert_eq!(idx.scan(Tree::Tags, b"", None, 10).unwrap().len(), 1);
    assert_eq!(idx.scan(Tree::Blobs, b"", None, 10).unwrap().len(), 0);
}

fn scan_prefix_after_limit(idx: &dyn Index) {
    let mut b = Batch::default();
    for p in [b"a".as_slice(), b"b", b"c"] {
        for i in 0u16..300 {
            let mut k = p.to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            b.put(Tree::Tags, k, i.to_be_bytes().to_vec());
        }
    }
    idx.apply(b).unwrap();
    let all = idx.scan(Tree::Tags, b"b", None, usize::MAX).unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "scan not in key order");
    assert!(all.iter().all(|(k, _)| k[0] == b'b'));
    let mut after = b"b".to_vec();
    after.extend_from_slice(&99u16.to_be_bytes());
    let page = idx.scan(Tree::Tags, b"b", Some(&after), 5).unwrap();
    let got: Vec<u16> = page.iter().map(|(k, _)| u16::from_be_bytes([k[1], k[2]])).collect();
    assert_eq!(got, vec![100, 101, 102, 103, 104]);
    let keys = idx.scan_keys(Tree::Tags, b"b", Some(&after), 5).unwrap();
    assert_eq!(keys, page.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), "scan_keys agrees with scan");
    // An `after` before the prefix starts at the prefix.
    assert_eq!(idx.scan(Tree::Tags, b"b", Some(b"a"), 1).unwrap()[0].0, [b'b', 0, 0]);
    // Pagination walks everything exactly once.
    let mut seen = 0;
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = idx.scan(Tree::Tags, b"c", cursor.as_deref(), 64).unwrap();
        if page.is_empty() {
            break;
        }
        seen += page.len();
        cursor = Some(page.last().unwrap().0.clone());
    }
    assert_eq!(seen, 300);
    let mut n = 0;
    idx.for_each_key(Tree::Tags, b"a", &mut |_| {
        n += 1;
        n < 10
    })
    .unwrap();
    assert_eq!(n, 10);
}

fn scan_keys_rev_before_limit(idx: &dyn Index) {
    let mut b = Batch::default();
    for p in [b"a".as_slice(), b"b", b"c"] {
        for i in 0u16..300 {
            let mut k = p.to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            b.put(Tree::Tags, k, Vec::new());
        }
    }
    // The next tree's first key must never show up at the end of a reverse scan.
    b.put(Tree::History, b"b".to_vec(), Vec::new());
    b.put(Tree::Manifests, b"\xff".to_vec(), Vec::new());
    idx.apply(b).unwrap();
    let num = |k: &Vec<u8>| u16::from_be_bytes([k[1], k[2]]);
    let last: Vec<u16> = idx.scan_keys_rev(Tree::Tags, b"b", None, 3).unwrap().iter().map(num).collect();
    assert_eq!(last, [299, 298, 297]);
    let mut before = b"b".to_vec();
    before.extend_from_slice(&100u16.to_be_bytes());
    let page: Vec<u16> = idx.scan_keys_rev(Tree::Tags, b"b", Some(&before), 4).unwrap().iter().map(num).collect();
    assert_eq!(page, [99, 98, 97, 96]);
    assert!(idx.scan_keys_rev(Tree::Tags, b"b", Some(b"b"), 10).unwrap().is_empty(), "nothing before the prefix");
    assert!(idx.scan_keys_rev(Tree::Tags, b"b", Some(b"a"), 10).unwrap().is_empty());
    // A `before` past the prefix is the end of the prefix.
    assert_eq!(idx.scan_keys_rev(Tree::Tags, b"b", Some(b"c"), 1).unwrap(), vec![vec![b'b', 1, 43]]);
    assert_eq!(idx.scan_keys_rev(Tree::Tags, b"c", None, usize::MAX).unwrap().len(), 300);
    // Whole tree, walked backwards page by page, exactly once and in order.
    let mut seen: Vec<Vec<u8>> = Vec::new();
    loop {
        let page = idx.scan_keys_rev(Tree::Tags, b"", seen.last().map(Vec::as_slice), 64).unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    assert_eq!(seen.len(), 900);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "reverse scan not in descending order");
    assert_eq!(idx.scan_keys_rev(Tree::Manifests, b"", None, 5).unwrap(), vec![b"\xff".to_vec()]);
}

fn batch_is_atomic_and_ordered(idx: &dyn Index) {
    let mut b = Batch::default();
    b.put(Tree::Tags, b"x".to_vec(), b"1".to_vec());
    b.delete(Tree::Tags, b"x".to_vec());
    b.put(Tree::Tags, b"y".to_vec(), b"1".to_vec());
    b.put(Tree::Tags, b"y".to_vec(), b"2".to_vec());
    idx.apply(b).unwrap();
    assert_eq!(idx.get(Tree::Tags, b"x").unwrap(), None);
    assert_eq!(idx.get(Tree::Tags, b"y").unwrap(), Some(b"2".to_vec()));
}

fn compare_and_swap(idx: &dyn Index) {
    assert!(idx.compare_and_swap(Tree::Users, b"u", None, Some(b"1".to_vec())).unwrap());
    assert!(!idx.compare_and_swap(Tree::Users, b"u", None, Some(b"2".to_vec())).unwrap());
    assert!(idx.compare_and_swap(Tree::Users, b"u", Some(b"1"), Some(b"2".to_vec())).unwrap());
    assert_eq!(idx.get(Tree::Users, b"u").unwrap(), Some(b"2".to_vec()));
    assert!(idx.compare_and_swap(Tree::Users, b"u", Some(b"2"), None).unwrap());
    assert_eq!(idx.get(Tree::Users, b"u").unwrap(), None);
}

fn d(n: u8) -> Digest {
    Digest::of(Algorithm::Sha256, &[n])
}

fn catalog_repos_and_counters(cat: &Catalog) {
    assert_eq!(cat.next_id("entity").unwrap(), 1);
    let (r, created) = cat.ensure_repo("syn1/app", "syn1").unwrap();
    assert!(created);
    assert_eq!((r.id, r.name.as_str(), r.project.as_str()), (2, "syn1/app", "syn1"));
    let (again, created) = cat.ensure_repo("syn1/app", "syn1").unwrap();
    assert!(!created);
    assert_eq!(again, r);
    cat.ensure_repo("syn1/a/b/c", "syn1").unwrap();
    cat.ensure_repo("syn1/zz", "syn1").unwrap();
    let names: Vec<String> = cat.list_repo_names(None, 10).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["syn1/a/b/c", "syn1/app", "syn1/zz"]);
    let names: Vec<String> = cat.list_repo_names(Some("syn1/a/b/c"), 1).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["syn1/app"]);
    assert_eq!(cat.repo_by_name("nope/x").unwrap(), None);
}

fn catalog_blobs_links_accounting(cat: &Catalog) {
    let (a, _) = cat.ensure_repo("p/a", "p").unwrap();
    let (b, _) = cat.ensure_repo("p/b", "p").unwrap();
    assert!(cat.record_blob(&d(1), 100, Some(a.id)).unwrap());
    assert!(!cat.record_blob(&d(1), 100, Some(b.id)).unwrap(), "second record of the same bytes is a no-op");
    assert!(cat.record_blob(&d(2), 10, None).unwrap());
    assert_eq!(cat.physical_bytes().unwrap(), 110);
    assert!(cat.is_linked(a.id, &d(1)).unwrap());
    assert!(!cat.is_linked(a.id, &d(2)).unwrap());
    cat.link_blob(a.id, &d(2)).unwrap();
    cat.link_blob(a.id, &d(2)).unwrap();
    assert_eq!(cat.repo(a.id).unwrap().unwrap().logical_bytes, 110);
    assert_eq!(cat.repo(b.id).unwrap().unwrap().logical_bytes, 100);
    assert!(matches!(cat.link_blob(a.id, &d(3)), Err(crate::Error::BlobUnknown(_))));
    assert!(cat.unlink_blob(a.id, &d(1)).unwrap());
    assert!(!cat.unlink_blob(a.id, &d(1)).unwrap());
    assert_eq!(cat.repo(a.id).unwrap().unwrap().logical_bytes, 10);
    assert!(cat.blob_is_linked_anywhere(&d(1)).unwrap());
    assert!(cat.unlink_blob(b.id, &d(1)).unwrap());
    assert!(!cat.blob_is_linked_anywhere(&d(1)).unwrap());
    cat.forget_blob(&d(1)).unwrap();
    assert_eq!(cat.blob(&d(1)).unwrap(), None);
    assert_eq!(cat.physical_bytes().unwrap(), 10);
}

fn manifest(subject: Option<Digest>) -> ManifestRecord {
    ManifestRecord {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 7,
        refs: vec![d(1)],
        subject,
        artifact_type: None,
        annotations: Default::default(),
        created: 0,
    }
}

fn catalog_manifests_tags_history(cat: &Catalog) {
    let (r, _) = cat.ensure_repo("p/a", "p").unwrap();
    let (m1, m2, sig) = (d(10), d(11), d(12));
    for m in [&m1, &m2, &sig] {
        cat.record_blob(m, 7, None).unwrap();
    }
    cat.put_manifest(r.id, &m1, &manifest(None), Some(("v1", "alice"))).unwrap();
    cat.put_manifest(r.id, &m2, &manifest(None), Some(("v1", "bob"))).unwrap();
    cat.put_manifest(r.id, &m2, &manifest(None), Some(("latest", "bob"))).unwrap();
    cat.put_manifest(r.id, &sig, &manifest(Some(m2.clone())), None).unwrap();
    assert_eq!(cat.tag(r.id, "v1").unwrap().unwrap().digest, m2);
    assert_eq!(cat.list_tags(r.id, None, 10).unwrap(), ["latest", "v1"]);
    assert_eq!(cat.list_tags(r.id, Some("latest"), 10).unwrap(), ["v1"]);
    let h = cat.history(r.id, None, 10).unwrap();
    let h: Vec<(&str, &Digest, &str)> = h.iter().map(|c| (c.tag.as_str(), &c.digest, c.pusher.as_str())).collect();
    assert_eq!(h, [("v1", &m1, "alice"), ("v1", &m2, "bob"), ("latest", &m2, "bob")]);
    assert_eq!(cat.referrers(r.id, &m2).unwrap(), std::slice::from_ref(&sig));
    assert!(cat.is_linked(r.id, &m1).unwrap());
    assert!(cat.blob_is_referenced(&d(1)).unwrap(), "a layer of a stored manifest is referenced");
    assert!(!cat.blob_is_referenced(&m2).unwrap(), "a referrer does not hold its subject");
    assert!(!cat.blob_is_referenced(&d(99)).unwrap());
    assert!(cat.delete_manifest(r.id, &m2).unwrap());
    assert_eq!(cat.list_tags(r.id, None, 10).unwrap(), Vec::<String>::new());
    assert_eq!(cat.history(r.id, None, 10).unwrap().len(), 3, "history is never rewritten");
    assert!(!cat.is_linked(r.id, &m2).unwrap());
    assert!(cat.delete_manifest(r.id, &sig).unwrap());
    assert_eq!(cat.referrers(r.id, &m2).unwrap(), Vec::<Digest>::new());
    assert!(!cat.blob_is_referenced(&m2).unwrap());
    assert!(!cat.delete_manifest(r.id, &sig).unwrap());
    assert!(cat.delete_tag(r.id, "nope").is_ok_and(|x| !x));
}

fn catalog_purge(cat: &Catalog) {
    let (r, _) = cat.ensure_repo("p/a", "p").unwrap();
    let (other, _) = cat.ensure_repo("p/b", "p").unwrap();
    cat.record_blob(&d(1), 5, Some(r.id)).unwrap();
    cat.record_blob(&d(1), 5, Some(other.id)).unwrap();
    cat.record_blob(&d(10), 7, None).unwrap();
    cat.put_manifest(r.id, &d(10), &manifest(None), Some(("v1", "a"))).unwrap();
    cat.purge_repo(r.id).unwrap();
    assert_eq!(cat.repo_by_name("p/a").unwrap(), None);
    assert_eq!(cat.list_tags(r.id, None, 10).unwrap(), Vec::<String>::new());
    assert!(!cat.is_linked(r.id, &d(1)).unwrap());
    assert!(cat.is_linked(other.id, &d(1)).unwrap());
    assert!(!cat.blob_is_linked_anywhere(&d(10)).unwrap());
    assert!(cat.blob(&d(10)).unwrap().is_some(), "blobs are left to garbage collection");
    assert!(!cat.blob_is_referenced(&d(1)).unwrap(), "purge drops the repository's references");
}

fn catalog_detects_corruption(cat: &Catalog) {
    let (r, _) = cat.ensure_repo("p/a", "p").unwrap();
    let mut b = Batch::default();
    let mut key = r.id.to_be_bytes().to_vec();
    key.extend_from_slice(b"bad");
    let mut sealed = seal(br#"{"digest":"x"}"#);
    sealed[6] ^= 1;
    b.put(Tree::Tags, key, sealed);
    cat.index().apply(b).unwrap();
    let err = cat.tag(r.id, "bad").unwrap_err().to_string();
    assert!(err.contains("index corruption in tree tags") && err.contains("crc32 mismatch"), "{err}");
    // A value that passes its checksum but does not decode is also corruption, not a panic.
    let mut b = Batch::default();
    let mut key = r.id.to_be_bytes().to_vec();
    key.extend_from_slice(b"junk");
    b.put(Tree::Tags, key, seal(b"not json"));
    cat.index().apply(b).unwrap();
    let err = cat.tag(r.id, "junk").unwrap_err().to_string();
    assert!(err.contains("undecodable record"), "{err}");
}

/// Writers on this many threads at once in the concurrency tests.
const THREADS: usize = 16;

/// 16 threads committing at once share flushes: with a slow flush (3 ms), far fewer flushes than
/// commits happen, and every commit is there afterwards.
fn group_commit_shares_flushes(idx: Arc<dyn Index>) {
    const PER_THREAD: usize = 8;
    let faulty = Arc::new(FaultyIndex::new(idx).flush_delay(Duration::from_millis(3)));
    let cat = Catalog::new(faulty.clone());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let cat = &cat;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    cat.put(Tree::Users, format!("u{t:02}-{i}").as_bytes(), &(i as u64)).unwrap();
                }
            });
        }
    });
    let commits = (THREADS * PER_THREAD) as u64;
    let (applies, flushes) = faulty.counts();
    assert_eq!(applies, commits);
    assert_eq!(cat.flushes(), flushes);
    assert!(flushes * 2 <= commits, "{flushes} flushes for {commits} concurrent commits: no grouping");
    assert_eq!(cat.scan::<u64>(Tree::Users, b"", None, usize::MAX).unwrap().len() as u64, commits);
    eprintln!("  {commits} commits, {flushes} flushes");
}

/// Ids from one counter stay unique under concurrent allocation, including ids allocated inside
/// read-modify-write sequences (repositories).
fn concurrent_ids_are_unique(idx: Arc<dyn Index>) {
    let cat = Catalog::new(idx);
    let ids: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let cat = &cat;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..10 {
                        if i % 2 == 0 {
                            mine.push(cat.next_id("entity").unwrap());
                        } else {
                            mine.push(cat.ensure_repo(&format!("p/r{t}-{i}"), "p").unwrap().0.id);
                        }
                    }
                    cat.sync().unwrap();
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an id was handed out twice");
    assert_eq!(unique.last().copied(), Some(ids.len() as u64));
}

/// A manifest delete racing a push that re-points a tag from the deleted manifest to another one:
/// whatever the order, the tag ends on the new manifest (it was never the delete's to remove).
fn delete_manifest_keeps_a_repointed_tag(idx: Arc<dyn Index>) {
    let cat = Catalog::new(idx);
    let (r, _) = cat.ensure_repo("p/race", "p").unwrap();
    for round in 0..100u8 {
        let (old, new) = (d(round.wrapping_mul(2)), d(round.wrapping_mul(2).wrapping_add(1)));
        cat.put_manifest(r.id, &old, &manifest(None), Some(("t", "a"))).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| cat.put_manifest(r.id, &new, &manifest(None), Some(("t", "b"))).unwrap());
            s.spawn(|| assert!(cat.delete_manifest(r.id, &old).unwrap()));
        });
        let tag = cat.tag(r.id, "t").unwrap();
        assert_eq!(tag.map(|t| t.digest), Some(new.clone()), "round {round}: the re-pointed tag was deleted");
        assert!(cat.delete_manifest(r.id, &new).unwrap());
    }
}

/// A failed flush fails every commit waiting on it and poisons the catalog: later writes are
/// refused even though the next flush would work; reads go on.
fn failed_flush_poisons_every_waiter(idx: Arc<dyn Index>) {
    let faulty =
        Arc::new(FaultyIndex::new(idx).fail(IndexFaultOp::Flush, 1, false).flush_delay(Duration::from_millis(5)));
    let cat = Catalog::new(faulty.clone());
    let results: Vec<crate::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let cat = &cat;
                s.spawn(move || cat.put(Tree::Users, format!("u{t}").as_bytes(), &1u64))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(matches!(r, Err(crate::Error::Poisoned(why)) if why.contains("index flush failed")), "{r:?}");
    }
    // The failing flush, and at most one more that a second leader started beside it before the
    // failure was known (two flushes may be in flight).
    let flushed = faulty.counts().1;
    assert!((1..=2).contains(&flushed), "{flushed} flushes for one group of writers");
    assert!(matches!(cat.put(Tree::Users, b"later", &1u64), Err(crate::Error::Poisoned(_))));
    assert!(matches!(cat.next_id("entity"), Err(crate::Error::Poisoned(_))));
    assert!(matches!(cat.check_writable(), Err(crate::Error::Poisoned(_))));
    assert!(matches!(cat.sync(), Ok(()) | Err(crate::Error::Poisoned(_))));
    assert_eq!(faulty.counts().1, flushed, "nothing flushes after the failure");
    assert_eq!(cat.get::<u64>(Tree::Users, b"later").unwrap(), None);
    cat.get::<u64>(Tree::Users, b"u0").unwrap();
}
