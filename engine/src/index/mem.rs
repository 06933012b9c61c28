//! An in-memory [`Index`] over a `BTreeMap`: the reference model the shared suite checks sled
//! against, and a fast backend for tests.
//!
//! Plain ([`MemIndex::new`]) it is not durable and `flush` does nothing. In durable-snapshot mode
//! ([`MemIndex::durable`]) it models sled's promise exactly and no more: `flush` makes every batch
//! applied before it durable; [`MemIndex::reboot`] simulates power loss and returns the index a
//! restart would find, holding the durable state plus, if asked, a prefix of the batches applied
//! after the last flush (sled's log recovers a prefix of what it had written). With a [`Power`]
//! shared with the I/O model, writes and flushes fail once the power is cut. It must never be used
//! where data has to survive the process.

use super::{prefix_successor, Batch, Entry, Index, Op, Tree};
use crate::error::{Error, Result};
use crate::io::fault::Power;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

type Key = (Tree, Vec<u8>);
type Map = BTreeMap<Key, Vec<u8>>;

#[derive(Default)]
pub struct MemIndex {
    map: RwLock<Map>,
    durability: Option<Durability>,
}

/// What survives a simulated crash.
struct Durability {
    power: Option<Arc<Power>>,
    state: Mutex<Durable>,
}

#[derive(Default)]
struct Durable {
    /// The state as of the last flush.
    flushed: Map,
    /// Writes applied since, in apply order, one entry per batch.
    unflushed: Vec<Vec<Op>>,
}

impl MemIndex {
    /// Not durable: `flush` does nothing.
    pub fn new() -> MemIndex {
        MemIndex::default()
    }

    /// Durable-snapshot mode, empty. With `power`, writes and flushes fail while it is off.
    pub fn durable(power: Option<Arc<Power>>) -> MemIndex {
        MemIndex {
            map: RwLock::new(Map::new()),
            durability: Some(Durability { power, state: Mutex::new(Durable::default()) }),
        }
    }

    /// Simulates power loss and restart: cuts this index's power (if it has one) so it accepts
    /// no more writes or flushes, and returns a new durable-mode index on `power` (the rebooted
    /// machine's) holding what a restart would find: the state of the last flush plus the first
    /// `keep_unflushed` batches applied after it (0 for a strict crash; more are clamped). Plain
    /// indexes lose everything.
    pub fn reboot(&self, keep_unflushed: usize, power: Option<Arc<Power>>) -> MemIndex {
        let Some(d) = &self.durability else { return MemIndex::new() };
        if let Some(p) = &d.power {
            p.cut();
        }
        let st = d.state.lock();
        let mut map = st.flushed.clone();
        for ops in st.unflushed.iter().take(keep_unflushed) {
            apply_ops(&mut map, ops.iter().cloned());
        }
        MemIndex {
            map: RwLock::new(map.clone()),
            durability: Some(Durability { power, state: Mutex::new(Durable { flushed: map, unflushed: Vec::new() }) }),
        }
    }

    /// How many applied batches are not yet flushed (durable mode).
    pub fn unflushed(&self) -> usize {
        self.durability.as_ref().map(|d| d.state.lock().unflushed.len()).unwrap_or(0)
    }

    fn powered(&self) -> Result<()> {
        match self.durability.as_ref().and_then(|d| d.power.as_ref()) {
            Some(p) if !p.tick() => Err(Error::Index("power lost (simulated)".into())),
            _ => Ok(()),
        }
    }

    /// Records applied ops for the durable model. Called with the map's write lock held, so the
    /// log order is the apply order.
    fn log(&self, ops: Vec<Op>) {
        if let Some(d) = &self.durability {
            d.state.lock().unflushed.push(ops);
        }
    }
}

fn apply_ops(map: &mut Map, ops: impl IntoIterator<Item = Op>) {
    for op in ops {
        match op {
            Op::Put { tree, key, value } => {
                map.insert((tree, key), value);
            }
            Op::Delete { tree, key } => {
                map.remove(&(tree, key));
            }
        }
    }
}

fn bounds(tree: Tree, prefix: &[u8], after: Option<&[u8]>) -> (Bound<Key>, Bound<Key>) {
    let start = match after {
        Some(a) if a > prefix => Bound::Excluded((tree, a.to_vec())),
        _ => Bound::Included((tree, prefix.to_vec())),
    };
    let end = match prefix_successor(prefix) {
        Some(s) => Bound::Excluded((tree, s)),
        None => match Tree::ALL.iter().find(|t| **t > tree) {
            Some(next) => Bound::Excluded((*next, Vec::new())),
            None => Bound::Unbounded,
        },
    };
    (start, end)
}

impl Index for MemIndex {
    fn name(&self) -> &'static str {
        if self.durability.is_some() {
            "memory-durable"
        } else {
            "memory"
        }
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(&(tree, key.to_vec())).cloned())
    }

    fn scan(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let map = self.map.read();
        Ok(map.range(bounds(tree, prefix, after)).take(limit).map(|((_, k), v)| (k.clone(), v.clone())).collect())
    }

    fn scan_keys_rev(&self, tree: Tree, prefix: &[u8], before: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let (start, mut end) = bounds(tree, prefix, None);
        match before {
            Some(b) if b <= prefix => return Ok(Vec::new()),
            Some(b) if prefix_successor(prefix).is_none_or(|s| b < s.as_slice()) => {
                end = Bound::Excluded((tree, b.to_vec()))
            }
            _ => {}
        }
        let map = self.map.read();
        Ok(map.range((start, end)).rev().take(limit).map(|((_, k), _)| k.clone()).collect())
    }

    fn for_each_key(&self, tree: Tree, prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let map = self.map.read();
        for ((_, k), _) in map.range(bounds(tree, prefix, None)) {
            if !f(k) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        self.powered()?;
        let mut map = self.map.write();
        if self.durability.is_some() {
            self.log(batch.ops.clone());
        }
        apply_ops(&mut map, batch.ops);
        Ok(())
    }

    fn compare_and_swap(&self, tree: Tree, key: &[u8], old: Option<&[u8]>, new: Option<Vec<u8>>) -> Result<bool> {
        self.powered()?;
        let mut map = self.map.write();
        let k = (tree, key.to_vec());
        if map.get(&k).map(Vec::as_slice) != old {
            return Ok(false);
        }
        let op = match new {
            Some(value) => Op::Put { tree, key: key.to_vec(), value },
            None => Op::Delete { tree, key: key.to_vec() },
        };
        self.log(vec![op.clone()]);
        apply_ops(&mut map, [op]);
        Ok(true)
    }

    fn flush(&self) -> Result<()> {
        let Some(d) = &self.durability else { return Ok(()) };
        // Take the log under the map's read lock: no apply runs meanwhile, so everything applied
        // before this point is in the log, and nothing after it.
        let _map = self.map.read();
        let mut st = d.state.lock();
        // Checked under the state lock that `reboot` takes after cutting the power: a flush that
        // reports success is in what the reboot finds.
        self.powered()?;
        let ops: Vec<Vec<Op>> = std::mem::take(&mut st.unflushed);
        for batch in ops {
            apply_ops(&mut st.flushed, batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shared_suite() {
        super::super::suite::run_all(&|| (Box::new(MemIndex::new()), Box::new(())));
    }

    #[test]
    fn shared_suite_durable_mode() {
        super::super::suite::run_all(&|| (Box::new(MemIndex::durable(None)), Box::new(())));
    }

    fn put(idx: &MemIndex, k: &[u8], v: &[u8]) {
        let mut b = Batch::default();
        b.put(Tree::Tags, k.to_vec(), v.to_vec());
        idx.apply(b).unwrap();
    }

    #[test]
    fn reboot_keeps_what_was_flushed_and_a_chosen_prefix_of_the_rest() {
        let idx = MemIndex::durable(None);
        put(&idx, b"a", b"1");
        assert!(idx.compare_and_swap(Tree::Tags, b"b", None, Some(b"1".to_vec())).unwrap());
        idx.flush().unwrap();
        put(&idx, b"a", b"2");
        put(&idx, b"c", b"1");
        assert_eq!(idx.unflushed(), 2);
        let strict = idx.reboot(0, None);
        assert_eq!(strict.get(Tree::Tags, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(strict.get(Tree::Tags, b"b").unwrap(), Some(b"1".to_vec()));
        assert_eq!(strict.get(Tree::Tags, b"c").unwrap(), None);
        let torn = idx.reboot(1, None);
        assert_eq!(torn.get(Tree::Tags, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(torn.get(Tree::Tags, b"c").unwrap(), None, "only a prefix of the unflushed batches");
        // The rebooted index is durable from its start.
        assert_eq!(torn.reboot(0, None).get(Tree::Tags, b"a").unwrap(), Some(b"2".to_vec()));
    }

    /// Every commit is in the durable state by the time it returns, with writers on many threads
    /// sharing flushes.
    #[test]
    fn commits_return_only_after_their_flush() {
        let idx = Arc::new(MemIndex::durable(None));
        let cat = crate::Catalog::new(idx.clone());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (cat, idx) = (&cat, &idx);
                s.spawn(move || {
                    for i in 0..20u64 {
                        let key = format!("t{t}-{i}");
                        cat.put(Tree::Users, key.as_bytes(), &i).unwrap();
                        let id = cat.next_id("n").unwrap();
                        let after_crash = idx.reboot(0, None);
                        assert!(after_crash.get(Tree::Users, key.as_bytes()).unwrap().is_some(), "{key} not durable");
                        // The id is not durable on its own (next_id never flushes) ...
                        cat.put(Tree::Teams, &id.to_be_bytes(), &i).unwrap();
                        // ... but it is with the record that uses it.
                        let after_crash = crate::Catalog::new(Arc::new(idx.reboot(0, None)));
                        assert!(after_crash.get::<u64>(Tree::Teams, &id.to_be_bytes()).unwrap().is_some());
                        assert!(after_crash.next_id("n").unwrap() > id, "id {id} would be handed out again");
                    }
                });
            }
        });
        assert!(cat.flushes() > 0);
    }

    #[test]
    fn power_cut_refuses_writes_and_flushes() {
        let power = Power::new();
        let idx = MemIndex::durable(Some(power.clone()));
        power.cut_after(2);
        put(&idx, b"a", b"1");
        idx.flush().unwrap();
        let mut b = Batch::default();
        b.put(Tree::Tags, b"x".to_vec(), b"1".to_vec());
        assert!(idx.apply(b).is_err());
        assert!(idx.flush().is_err());
        assert_eq!(idx.get(Tree::Tags, b"a").unwrap(), Some(b"1".to_vec()), "reads still work");
        power.restore();
        let after = idx.reboot(5, None);
        assert!(!power.is_on(), "reboot cuts the power");
        power.restore();
        assert_eq!(after.get(Tree::Tags, b"a").unwrap(), Some(b"1".to_vec()));
        put(&after, b"z", b"1");
    }
}
