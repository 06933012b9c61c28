//! The sled backend of [`Index`]. All trees share one sled tree, each key prefixed by its tree's
//! byte, so a [`Batch`] spanning trees is one atomic `apply_batch`. This is the only file that
//! names sled.

use super::{prefix_successor, Batch, Entry, Index, Op, Tree};
use crate::error::{Error, Result};
use std::ops::Bound;
use std::path::Path;

pub struct SledIndex {
    db: sled::Db,
}

fn err(e: sled::Error) -> Error {
    Error::Index(e.to_string())
}

fn full_key(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(tree as u8);
    k.extend_from_slice(key);
    k
}

impl SledIndex {
    /// Opens (or creates) the index in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledIndex> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(err)?;
        Ok(SledIndex { db })
    }

    fn range(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>) -> sled::Iter {
        let start = match after {
            Some(a) if a > prefix => Bound::Excluded(full_key(tree, a)),
            _ => Bound::Included(full_key(tree, prefix)),
        };
        let end = match prefix_successor(&full_key(tree, prefix)) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        self.db.range::<Vec<u8>, _>((start, end))
    }
}

impl Index for SledIndex {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(full_key(tree, key)).map_err(err)?.map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.range(tree, prefix, after).take(limit) {
            let (k, v) = item.map_err(err)?;
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn scan_keys(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.range(tree, prefix, after).keys().take(limit) {
            out.push(item.map_err(err)?[1..].to_vec());
        }
        Ok(out)
    }

    fn scan_keys_rev(&self, tree: Tree, prefix: &[u8], before: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let succ = prefix_successor(&full_key(tree, prefix));
        let end = match before {
            Some(b) if b <= prefix => return Ok(Vec::new()),
            Some(b) if succ.as_deref().is_none_or(|s| full_key(tree, b).as_slice() < s) => {
                Bound::Excluded(full_key(tree, b))
            }
            _ => match succ {
                Some(s) => Bound::Excluded(s),
                None => Bound::Unbounded,
            },
        };
        let start = Bound::Included(full_key(tree, prefix));
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.db.range::<Vec<u8>, _>((start, end)).keys().rev().take(limit) {
            out.push(item.map_err(err)?[1..].to_vec());
        }
        Ok(out)
    }

    fn for_each_key(&self, tree: Tree, prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        for item in self.range(tree, prefix, None) {
            let (k, _) = item.map_err(err)?;
            if !f(&k[1..]) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        let mut b = sled::Batch::default();
        for op in batch.ops {
            match op {
                Op::Put { tree, key, value } => b.insert(full_key(tree, &key), value),
                Op::Delete { tree, key } => b.remove(full_key(tree, &key)),
            }
        }
        self.db.apply_batch(b).map_err(err)
    }

    fn compare_and_swap(&self, tree: Tree, key: &[u8], old: Option<&[u8]>, new: Option<Vec<u8>>) -> Result<bool> {
        Ok(self.db.compare_and_swap(full_key(tree, key), old, new).map_err(err)?.is_ok())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_suite() {
        super::super::suite::run_all(&|| {
            let dir = tempfile::tempdir().unwrap();
            let idx = super::SledIndex::open(&dir.path().join("index"), 64 << 20).unwrap();
            (Box::new(idx), Box::new(dir))
        });
    }
}
