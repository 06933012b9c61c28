//! The caches of the daemon, each bounded: the manifest bytes by digest (content-addressed, so
//! never stale), and small read caches for the hot request paths (authorization, manifest by tag,
//! blob HEAD), each entry stamped with the write generation of the scope it was read from
//! (`stowage_engine::index::scopes`): authorizations with that of the user, token, repository
//! name, repository and project they read (`access::reads`), manifests and blob sizes with their
//! repository's. An entry is used only while no write has happened in its scope
//! since it was read, so a revoked permission, a trashed repository or a moved tag is seen by the
//! very next request, while a push to one repository leaves every other repository's entries hot.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stowage_engine::Digest;

pub struct GenCache<K, V> {
    map: Mutex<HashMap<K, (u64, Instant, V)>>,
    hits: AtomicU64,
    misses: AtomicU64,
    max_entries: usize,
    /// Entries also age out, for facts that change with time rather than by writes (token expiry).
    max_age: Duration,
}

impl<K: Hash + Eq, V: Clone> GenCache<K, V> {
    pub fn new(max_entries: usize, max_age: Duration) -> GenCache<K, V> {
        GenCache {
            map: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            max_entries,
            max_age,
        }
    }

    /// The value cached for `key`, if it is young enough and was read at the generation that
    /// `current` gives for it now (the generation of the entry's scope, which may depend on the
    /// value: the repository it belongs to).
    pub fn get(&self, key: &K, current: impl FnOnce(&V) -> u64) -> Option<V> {
        let hit = {
            let map = self.map.lock();
            map.get(key).and_then(|(g, at, v)| (at.elapsed() < self.max_age && *g == current(v)).then(|| v.clone()))
        };
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Lookups answered from the cache, and not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Caches `value`, read at `generation` (which the caller took BEFORE reading it).
    pub fn put(&self, key: K, generation: u64, value: V) {
        let mut map = self.map.lock();
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(key, (generation, Instant::now(), value));
    }
}

/// Content-addressed cache of manifest bytes: a digest's bytes never change, so entries are never
/// stale; the cache is dropped whole when it passes its byte budget.
pub struct ManifestCache {
    map: Mutex<(HashMap<Digest, Bytes>, usize)>,
    budget_bytes: usize,
}

impl ManifestCache {
    pub fn new(budget_bytes: usize) -> ManifestCache {
        ManifestCache { map: Mutex::new((HashMap::new(), 0)), budget_bytes }
    }

    pub fn get(&self, d: &Digest) -> Option<Bytes> {
        self.map.lock().0.get(d).cloned()
    }

    pub fn put(&self, d: &Digest, b: Bytes) {
        let mut g = self.map.lock();
        if g.1 + b.len() > self.budget_bytes {
            g.0.clear();
            g.1 = 0;
        }
        g.1 += b.len();
        g.0.insert(d.clone(), b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_only_within_their_generation_and_age() {
        let c: GenCache<&str, u32> = GenCache::new(2, Duration::from_secs(60));
        c.put("a", 1, 10);
        assert_eq!(c.get(&"a", |_| 1), Some(10));
        assert_eq!(c.get(&"a", |_| 2), None, "a write since the read invalidates");
        assert_eq!(c.get(&"a", |v| u64::from(*v) - 9), Some(10), "the scope may depend on the value");
        c.put("b", 1, 20);
        c.put("c", 1, 30);
        assert_eq!(c.get(&"a", |_| 1), None, "full cache starts over");
        assert_eq!(c.get(&"c", |_| 1), Some(30));
        assert_eq!(c.hits_and_misses(), (3, 2));
        let young: GenCache<&str, u32> = GenCache::new(8, Duration::ZERO);
        young.put("a", 1, 10);
        assert_eq!(young.get(&"a", |_| 1), None, "aged out");
    }
}
