//! An in-memory [`Index`] over a `BTreeMap`: the reference model the shared suite checks sled
//! against, and a fast backend for tests. Not durable: `flush` does nothing.

use super::{prefix_successor, Batch, Entry, Index, Op, Tree};
use crate::error::Result;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::ops::Bound;

type Key = (Tree, Vec<u8>);

#[derive(Default)]
pub struct MemIndex {
    map: RwLock<BTreeMap<Key, Vec<u8>>>,
}

impl MemIndex {
    pub fn new() -> MemIndex {
        MemIndex::default()
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
        "memory"
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(&(tree, key.to_vec())).cloned())
    }

    fn scan(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let map = self.map.read();
        Ok(map.range(bounds(tree, prefix, after)).take(limit).map(|((_, k), v)| (k.clone(), v.clone())).collect())
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
        let mut map = self.map.write();
        for op in batch.ops {
            match op {
                Op::Put { tree, key, value } => {
                    map.insert((tree, key), value);
                }
                Op::Delete { tree, key } => {
                    map.remove(&(tree, key));
                }
            }
        }
        Ok(())
    }

    fn compare_and_swap(&self, tree: Tree, key: &[u8], old: Option<&[u8]>, new: Option<Vec<u8>>) -> Result<bool> {
        let mut map = self.map.write();
        let k = (tree, key.to_vec());
        if map.get(&k).map(Vec::as_slice) != old {
            return Ok(false);
        }
        match new {
            Some(v) => map.insert(k, v),
            None => map.remove(&k),
        };
        Ok(true)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_suite() {
        super::super::suite::run_all(&|| (Box::new(super::MemIndex::new()), Box::new(())));
    }
}
