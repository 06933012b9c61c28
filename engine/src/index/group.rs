//! Group commit: many writers, one index flush. A write is applied to the index at once (visible to
//! readers, not yet durable) and gets a ticket; the writer then waits until a flush that started
//! after its apply has finished. Whoever finds no flush running becomes the leader and flushes for
//! everybody who applied before it started; the others sleep and are woken when it ends. While one
//! flush runs, the next group gathers, so under load each fsync covers many commits (the leader /
//! follower scheme of database group commit, e.g. MySQL's binlog group commit).
//!
//! This rests on the [`Index`] contract that `flush` makes *every* write applied before it durable:
//! durability is a prefix of the apply order. Two consequences the callers rely on:
//! - A write that depends on an earlier one (it read it, or it uses an id the earlier one
//!   allocated) has a later ticket, so it can never become durable without the earlier one.
//! - Waiting needs no lock of the caller's: read-modify-write sequences hold their lock only while
//!   they read and apply, never across the flush.
//!
//! This module must never hold `applied` or `state` while flushing, and never hold `state` while
//! taking `applied`: the flush would serialize behind the locks and group commit would be gone.

use super::{Batch, Index};
use crate::error::Result;
use crate::poison::Poison;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A write applied to the index but not yet known to be durable. Pass it to
/// [`GroupCommit::wait`] before acknowledging anything that depends on it.
#[must_use = "a pending write is not durable until waited for"]
#[derive(Debug)]
pub(crate) struct Pending(u64);

struct FlushState {
    /// Every write with a ticket up to this one is durable.
    durable: u64,
    /// A leader is flushing right now.
    flushing: bool,
}

pub(crate) struct GroupCommit {
    index: Arc<dyn Index>,
    poison: Arc<Poison>,
    /// Tickets handed out so far. Applying and taking a ticket happen under this one lock, so the
    /// ticket order is the apply order and a ticket read under the lock covers every write that any
    /// reader could have seen.
    applied: Mutex<u64>,
    state: Mutex<FlushState>,
    flushed: Condvar,
    flushes: AtomicU64,
}

impl GroupCommit {
    pub(crate) fn new(index: Arc<dyn Index>, poison: Arc<Poison>) -> GroupCommit {
        GroupCommit {
            index,
            poison,
            applied: Mutex::new(0),
            state: Mutex::new(FlushState { durable: 0, flushing: false }),
            flushed: Condvar::new(),
            flushes: AtomicU64::new(0),
        }
    }

    /// Applies `batch` (all or nothing) and returns its ticket. An empty batch applies nothing and
    /// returns a ticket covering every write applied so far, so a caller that found its work
    /// already done (a blob someone else just recorded) still waits for that work to be durable.
    pub(crate) fn apply(&self, batch: Batch) -> Result<Pending> {
        self.poison.check()?;
        let mut applied = self.applied.lock();
        if batch.is_empty() {
            return Ok(Pending(*applied));
        }
        self.index.apply(batch)?;
        *applied += 1;
        Ok(Pending(*applied))
    }

    /// Runs `f` with the apply lock held, so that reads `f` does and the batch it returns are one
    /// atomic step against every other write of this process (counters, insert-if-absent). `f`
    /// must be quick and must not call back into the catalog.
    pub(crate) fn apply_with<T>(&self, f: impl FnOnce(&dyn Index) -> Result<(Batch, T)>) -> Result<(T, Pending)> {
        self.poison.check()?;
        let mut applied = self.applied.lock();
        let (batch, out) = f(self.index.as_ref())?;
        if batch.is_empty() {
            return Ok((out, Pending(*applied)));
        }
        self.index.apply(batch)?;
        *applied += 1;
        Ok((out, Pending(*applied)))
    }

    /// A ticket covering every write applied so far, without writing anything.
    pub(crate) fn barrier(&self) -> Pending {
        Pending(*self.applied.lock())
    }

    /// Blocks the calling thread until the write behind `pending` is durable: returns after the
    /// flush that covers it, leading that flush if none is running. A failed flush poisons the
    /// engine and fails every write it was to cover.
    pub(crate) fn wait(&self, pending: Pending) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.durable >= pending.0 {
                return Ok(());
            }
            // Poisoned (by this index or by a blob fsync): nothing more is acknowledged.
            self.poison.check()?;
            if st.flushing {
                self.flushed.wait(&mut st);
                continue;
            }
            st.flushing = true;
            let (target, res) = MutexGuard::unlocked(&mut st, || {
                // Read after taking leadership: every ticket up to `target` finished its apply
                // before this flush starts, so the flush covers it.
                let target = *self.applied.lock();
                (target, self.index.flush())
            });
            st.flushing = false;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            match res {
                Ok(()) => st.durable = st.durable.max(target),
                Err(e) => {
                    let err = self.poison.set(format!("index flush failed: {e}"));
                    self.flushed.notify_all();
                    return Err(err);
                }
            }
            self.flushed.notify_all();
        }
    }

    /// Index flushes done so far (each may cover many commits).
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.poison.check()
    }
}
