//! A fault-injecting wrapper around any [`IoBackend`], for tests: the Nth write, flush or fsync
//! fails with a chosen errno (EIO, ENOSPC). Counting is global across writers of one wrapper, so a
//! test can say "the third fsync of the run fails".
//!
//! With [`Faulty::with_power_loss`] it also models power loss (redb's crash tests and ALICE,
//! Pillai et al., OSDI '14, do the same): it remembers what was written but not yet synced and
//! which names were changed but not made durable by a directory fsync, and [`Faulty::crash`]
//! rewrites the directory tree to what a power loss could leave (see `disk`). A shared [`Power`]
//! cuts the disk and the simulated index at the same instant, at once or after N more operations.
//! Test code only: nothing in the engine may depend on it.

mod disk;

pub use disk::{Crash, Power};

use super::{BlobWriter, IoBackend};
use bytes::Bytes;
use disk::{powered, DiskModel};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
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

/// The power-loss side: the power supply and what the disk holds durably.
struct PowerLoss {
    power: Arc<Power>,
    disk: Mutex<DiskModel>,
    /// Held shared by every modelled operation while it runs, exclusively by [`Faulty::crash`]:
    /// no write can land after the crash has decided what the disk holds.
    fence: RwLock<()>,
}

/// Keeps a crash out while one operation runs.
type Fence<'a> = Option<RwLockReadGuard<'a, ()>>;

impl PowerLoss {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        self.disk.lock().synced_file(file)
    }
}

struct State {
    /// None: no injected failure, only counting (and the power-loss model, if any).
    op: Option<FaultOp>,
    /// 1-based index of the operation that fails; later ones of that kind fail too when `sticky`.
    nth: u64,
    errno: i32,
    sticky: bool,
    writes: AtomicU64,
    syncs: AtomicU64,
    power_loss: Option<PowerLoss>,
}

impl State {
    fn check(&self, op: FaultOp) -> io::Result<Fence<'_>> {
        let counter = match op {
            FaultOp::Write => &self.writes,
            FaultOp::Sync => &self.syncs,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if self.op == Some(op) && (n == self.nth || (self.sticky && n > self.nth)) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        self.powered()
    }

    /// Fails with EIO once the modelled power is off; else returns the fence to hold while the
    /// operation runs.
    fn powered(&self) -> io::Result<Fence<'_>> {
        match &self.power_loss {
            Some(pl) => {
                let fence = pl.fence.read();
                powered(&pl.power)?;
                Ok(Some(fence))
            }
            None => Ok(None),
        }
    }

    fn synced(&self, file: &File) -> io::Result<()> {
        match &self.power_loss {
            Some(pl) => pl.sync_file(file),
            None => Ok(()),
        }
    }
}

impl Faulty {
    /// Fails operation number `nth` (1-based) of kind `op` with `errno`; with `sticky`, every later
    /// one of that kind fails too (a dead disk).
    pub fn new(inner: Arc<dyn IoBackend>, op: FaultOp, nth: u64, errno: i32, sticky: bool) -> Faulty {
        Faulty::build(inner, Some(op), nth, errno, sticky)
    }

    /// Injects no failure; with [`Faulty::with_power_loss`], a disk that only loses power.
    pub fn reliable(inner: Arc<dyn IoBackend>) -> Faulty {
        Faulty::build(inner, None, 0, 0, false)
    }

    fn build(inner: Arc<dyn IoBackend>, op: Option<FaultOp>, nth: u64, errno: i32, sticky: bool) -> Faulty {
        let state =
            State { op, nth, errno, sticky, writes: AtomicU64::new(0), syncs: AtomicU64::new(0), power_loss: None };
        Faulty { inner, state: Arc::new(state) }
    }

    /// Adds the power-loss model over the tree under `root`, taking what is there now as durable.
    /// Paths under `root` named in `unmodelled` (relative, e.g. `index` when another model owns
    /// it) are left alone. Every later write, sync and name change through this wrapper is
    /// refused with EIO while `power` is off.
    pub fn with_power_loss(mut self, root: &Path, unmodelled: &[PathBuf], power: Arc<Power>) -> io::Result<Faulty> {
        let disk = Mutex::new(DiskModel::new(root, unmodelled)?);
        let state = Arc::get_mut(&mut self.state).ok_or_else(|| io::Error::other("wrapper already in use"))?;
        state.power_loss = Some(PowerLoss { power, disk, fence: RwLock::new(()) });
        Ok(self)
    }

    /// Simulates power loss: waits for modelled operations in progress, cuts the power and
    /// rewrites the tree to a state it could leave, per `mode`. Returns how many paths changed.
    /// Every later operation through this wrapper fails, so threads of the old engine that still
    /// run cannot touch the disk again: reopen on a new wrapper with a new [`Power`] (the rebooted
    /// machine), never by restoring this one's.
    pub fn crash(&self, mode: Crash) -> io::Result<usize> {
        let pl = self.state.power_loss.as_ref().ok_or_else(|| io::Error::other("no power-loss model"))?;
        let _no_more_writes = pl.fence.write();
        pl.power.cut();
        let changed = pl.disk.lock().crash(mode)?;
        Ok(changed)
    }

    /// How many writes and syncs went through so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.state.writes.load(Ordering::SeqCst), self.state.syncs.load(Ordering::SeqCst))
    }
}

struct Writer {
    inner: Box<dyn BlobWriter>,
    state: Arc<State>,
    /// A second handle on the file, to read what a sync made durable (power-loss model only).
    file: Option<File>,
}

impl BlobWriter for Writer {
    fn write(&mut self, buf: Bytes) -> io::Result<()> {
        let _fence = self.state.check(FaultOp::Write)?;
        self.inner.write(buf)?;
        if self.file.is_some() {
            // Under the power-loss model a write must be done when it returns, so that the fence
            // keeps it from landing after a crash (io_uring would complete it later).
            self.inner.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<u64> {
        self.inner.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        let _fence = self.state.check(FaultOp::Sync)?;
        self.inner.sync()?;
        match &self.file {
            Some(f) => self.state.synced(f),
            None => Ok(()),
        }
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
        let copy = match &self.state.power_loss {
            Some(_) => Some(file.try_clone()?),
            None => None,
        };
        Ok(Box::new(Writer { inner: self.inner.writer(file, offset)?, state: self.state.clone(), file: copy }))
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        let _fence = self.state.check(FaultOp::Sync)?;
        self.inner.sync_file(file)?;
        self.state.synced(file)
    }

    fn sync_file_all(&self, file: &File) -> io::Result<()> {
        let _fence = self.state.check(FaultOp::Sync)?;
        self.inner.sync_file_all(file)?;
        self.state.synced(file)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let _fence = self.state.check(FaultOp::Sync)?;
        self.inner.sync_dir(dir)?;
        match &self.state.power_loss {
            Some(pl) => pl.disk.lock().synced_dir(dir),
            None => Ok(()),
        }
    }

    fn open_or_create(&self, path: &Path) -> io::Result<File> {
        let _fence = self.state.powered()?;
        let Some(pl) = &self.state.power_loss else { return self.inner.open_or_create(path) };
        // Under the model's lock, so the existence check and the creation are one step for it.
        let mut disk = pl.disk.lock();
        let existed = path.exists();
        let file = self.inner.open_or_create(path)?;
        if !existed {
            disk.created(&file)?;
        }
        Ok(file)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _fence = self.state.powered()?;
        self.inner.hard_link(from, to)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _fence = self.state.powered()?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let _fence = self.state.powered()?;
        self.inner.remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let _fence = self.state.powered()?;
        self.inner.create_dir_all(path)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        let _fence = self.state.powered()?;
        self.inner.set_len(file, len)
    }
}
