//! A fault-injecting wrapper around any [`IoBackend`], for tests: the Nth write, flush or fsync
//! fails with a chosen errno (EIO, ENOSPC). Counting is global across writers of one wrapper, so a
//! test can say "the third fsync of the run fails".

use super::{BlobWriter, IoBackend};
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which operation to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    Sync,
}

pub struct Faulty {
    inner: Arc<dyn IoBackend>,
    state: Arc<State>,
}

struct State {
    op: FaultOp,
    /// 1-based index of the operation that fails; later ones of that kind fail too when `sticky`.
    nth: u64,
    errno: i32,
    sticky: bool,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl State {
    fn check(&self, op: FaultOp) -> io::Result<()> {
        let counter = match op {
            FaultOp::Write => &self.writes,
            FaultOp::Sync => &self.syncs,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if op == self.op && (n == self.nth || (self.sticky && n > self.nth)) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

impl Faulty {
    /// Fails operation number `nth` (1-based) of kind `op` with `errno`; with `sticky`, every later
    /// one of that kind fails too (a dead disk).
    pub fn new(inner: Arc<dyn IoBackend>, op: FaultOp, nth: u64, errno: i32, sticky: bool) -> Faulty {
        Faulty {
            inner,
            state: Arc::new(State { op, nth, errno, sticky, writes: AtomicU64::new(0), syncs: AtomicU64::new(0) }),
        }
    }

    /// How many writes and syncs went through so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.state.writes.load(Ordering::SeqCst), self.state.syncs.load(Ordering::SeqCst))
    }
}

struct Writer {
    inner: Box<dyn BlobWriter>,
    state: Arc<State>,
}

impl BlobWriter for Writer {
    fn write(&mut self, buf: Bytes) -> io::Result<()> {
        self.state.check(FaultOp::Write)?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<u64> {
        self.inner.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        self.state.check(FaultOp::Sync)?;
        self.inner.sync()
    }

    fn start_writeback(&mut self) -> io::Result<()> {
        self.inner.start_writeback()
    }
}

impl IoBackend for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn writer(&self, file: File, offset: u64) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(Writer { inner: self.inner.writer(file, offset)?, state: self.state.clone() }))
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        self.state.check(FaultOp::Sync)?;
        self.inner.sync_file(file)
    }

    fn sync_file_all(&self, file: &File) -> io::Result<()> {
        self.state.check(FaultOp::Sync)?;
        self.inner.sync_file_all(file)
    }
}
