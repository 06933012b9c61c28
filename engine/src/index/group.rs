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
//! This module must never hold `applied` or `state` while flushing: writers would queue behind the
//! fsync and group commit would be gone.

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
    /// The highest ticket covered by a flush that has started (running, done or failed).
    started: u64,
    /// Flushes running now, at most [`MAX_FLUSHES_IN_FLIGHT`].
    in_flight: u32,
}

/// Flushes that may run at once. One would leave the disk idle between a flush's end and the
/// next leader's start (waking, re-applying, electing); two let the next group's flush start as
/// soon as its first write arrives, while the previous one is still running. Flushes may finish
/// out of order: each covers every write applied before it started, so `durable` only grows to
/// the target of whichever finished. More would mostly split groups: fsyncs of one file serialize
/// in the kernel anyway.
const MAX_FLUSHES_IN_FLIGHT: u32 = 2;

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
            state: Mutex::new(FlushState { durable: 0, started: 0, in_flight: 0 }),
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

    /// Runs `f` with the apply lock held: no batch applies until it returns, so what `f` reads
    /// is one point in the apply order (a consistent snapshot for backups, which sled's
    /// iterators alone are not). Writers wait meanwhile: keep `f` to reading and buffering.
    pub(crate) fn frozen<T>(&self, f: impl FnOnce(&dyn Index) -> Result<T>) -> Result<T> {
        let _applied = self.applied.lock();
        f(self.index.as_ref())
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
            if st.started >= pending.0 || st.in_flight >= MAX_FLUSHES_IN_FLIGHT {
                // A flush that covers this write is running, or no flush may start now.
                self.flushed.wait(&mut st);
                continue;
            }
            // Lead a flush. Read the target after taking leadership: every ticket up to it has
            // finished its apply, so the flush (which starts after) covers it. Taking `applied`
            // under `state` is safe: `apply` never takes `state`, and holds `applied` only briefly.
            let target = *self.applied.lock();
            st.started = st.started.max(target);
            st.in_flight += 1;
            let res = MutexGuard::unlocked(&mut st, || self.index.flush());
            st.in_flight -= 1;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            match res {
                // Not after a failure: once a flush has failed, a later one that reports success
                // proves nothing (fsyncgate), so nothing more becomes durable.
                Ok(()) if self.poison.check().is_ok() => st.durable = st.durable.max(target),
                Ok(()) => {}
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
