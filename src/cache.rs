//! The caches of the daemon, each bounded: the manifest bytes by digest (content-addressed, so
//! never stale), and small read caches for the hot request paths (authorization, manifest by tag, blob HEAD), keyed
//! by the catalog's write generation: an entry is used only while no write at all has happened
//! since it was read, so a revoked permission, a trashed repository or a moved tag is seen by the
//! very next request. Under a steady pull load nearly every lookup hits; any push or change simply
//! makes the next lookups read the index again.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};
use stowage_engine::Digest;

pub struct GenCache<K, V> {
    map: Mutex<HashMap<K, (u64, Instant, V)>>,
    max_entries: usize,
    /// Entries also age out, for facts that change with time rather than by writes (token expiry).
    max_age: Duration,
}

impl<K: Hash + Eq, V: Clone> GenCache<K, V> {
    pub fn new(max_entries: usize, max_age: Duration) -> GenCache<K, V> {
        GenCache { map: Mutex::new(HashMap::new()), max_entries, max_age }
    }

    /// The value cached for `key`, if it was read at generation `generation` and is young enough.
    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        let map = self.map.lock();
        let (g, at, v) = map.get(key)?;
        (*g == generation && at.elapsed() < self.max_age).then(|| v.clone())
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
        assert_eq!(c.get(&"a", 1), Some(10));
        assert_eq!(c.get(&"a", 2), None, "a write since the read invalidates");
        c.put("b", 1, 20);
        c.put("c", 1, 30);
        assert_eq!(c.get(&"a", 1), None, "full cache starts over");
        assert_eq!(c.get(&"c", 1), Some(30));
        let young: GenCache<&str, u32> = GenCache::new(8, Duration::ZERO);
        young.put("a", 1, 10);
        assert_eq!(young.get(&"a", 1), None, "aged out");
    }
}
