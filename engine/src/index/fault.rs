//! A fault-injecting wrapper around any [`Index`], for tests, as `io::fault` is for the I/O seam:
//! the Nth `apply` or `flush` fails, once or from then on (a dead disk), and `flush` can be slowed
//! down to a chosen latency so tests can see group commit share flushes. It counts what passes
//! through. Without a fault it must behave exactly like the index it wraps (the shared suite runs
//! against it), and it must never be used outside tests and benchmarks.

use super::{Batch, Entry, Index, Tree};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which operation to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexFaultOp {
    Apply,
    Flush,
}

pub struct FaultyIndex {
    inner: Arc<dyn Index>,
    fault: Option<(IndexFaultOp, u64, bool)>,
    flush_delay: Duration,
    applies: AtomicU64,
    flushes: AtomicU64,
}

impl FaultyIndex {
    /// Passes everything through, counting.
    pub fn new(inner: Arc<dyn Index>) -> FaultyIndex {
        FaultyIndex {
            inner,
            fault: None,
            flush_delay: Duration::ZERO,
            applies: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// Fails operation number `nth` (1-based) of kind `op`; with `sticky`, every later one too.
    pub fn fail(mut self, op: IndexFaultOp, nth: u64, sticky: bool) -> FaultyIndex {
        self.fault = Some((op, nth, sticky));
        self
    }

    /// Makes every flush take at least `delay`, like a slow disk.
    pub fn flush_delay(mut self, delay: Duration) -> FaultyIndex {
        self.flush_delay = delay;
        self
    }

    /// How many applies (including compare-and-swaps) and flushes were attempted so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.applies.load(Ordering::SeqCst), self.flushes.load(Ordering::SeqCst))
    }

    fn check(&self, op: IndexFaultOp) -> Result<()> {
        let counter = match op {
            IndexFaultOp::Apply => &self.applies,
            IndexFaultOp::Flush => &self.flushes,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Some((fop, nth, sticky)) if fop == op && (n == nth || (sticky && n > nth)) => {
                Err(Error::Index(format!("injected {op:?} failure (operation {n})")))
            }
            _ => Ok(()),
        }
    }
}

impl Index for FaultyIndex {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(tree, key)
    }

    fn scan(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        self.inner.scan(tree, prefix, after, limit)
    }

    fn scan_keys(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        self.inner.scan_keys(tree, prefix, after, limit)
    }

    fn scan_keys_rev(&self, tree: Tree, prefix: &[u8], before: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        self.inner.scan_keys_rev(tree, prefix, before, limit)
    }

    fn for_each_key(&self, tree: Tree, prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        self.inner.for_each_key(tree, prefix, f)
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        self.check(IndexFaultOp::Apply)?;
        self.inner.apply(batch)
    }

    fn compare_and_swap(&self, tree: Tree, key: &[u8], old: Option<&[u8]>, new: Option<Vec<u8>>) -> Result<bool> {
        self.check(IndexFaultOp::Apply)?;
        self.inner.compare_and_swap(tree, key, old, new)
    }

    fn flush(&self) -> Result<()> {
        self.check(IndexFaultOp::Flush)?;
        if !self.flush_delay.is_zero() {
            std::thread::sleep(self.flush_delay);
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_suite_passes_through() {
        super::super::suite::run_all(&|| {
            let inner = std::sync::Arc::new(super::super::mem::MemIndex::new());
            (Box::new(super::FaultyIndex::new(inner)), Box::new(()))
        });
    }
}
