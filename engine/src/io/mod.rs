//! The I/O seam: how upload bytes reach the disk and how files are made durable.
//!
//! Two backends implement [`IoBackend`]: `uring` (io_uring, several writes in flight, owned buffers)
//! and `std_fs` (positional writes), chosen once at start-up by [`choose`] with a probe, because many
//! container hosts refuse io_uring. Wrappers in `fault` let tests fail the Nth write or fsync, and
//! simulate power loss. Nothing outside this module and its children names io_uring.
//!
//! Every change the engine makes to the file system under its data directory (creating, linking,
//! renaming, removing files and directories, writing, syncing) goes through this trait, so the
//! power-loss model in `fault` sees all of it. Reads do not.
//!
//! Contract common to every backend: writes of one [`BlobWriter`] land at increasing offsets; an
//! error from any write is reported no later than the next `flush`/`sync`; after an error the writer
//! must not be used again.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub mod fault;
pub mod std_fs;
#[cfg(target_os = "linux")]
pub mod uring;

/// A file being written sequentially. Owns the file and the buffers handed to it.
pub trait BlobWriter: Send {
    /// Queues `buf` to be written at the writer's current offset and advances the offset. May
    /// block while the backend's queue of in-flight writes is full. The buffer is owned until its
    /// write completes.
    fn write(&mut self, buf: Bytes) -> io::Result<()>;
    /// Queues `bufs`, in order, as one write where the backend can (`pwritev`, one io_uring
    /// `Writev`): one system call or one hand-off to the kernel's workers for a whole batch of
    /// request-body pieces instead of one per piece. Same contract as [`BlobWriter::write`].
    fn write_batch(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        for b in bufs {
            self.write(b)?;
        }
        Ok(())
    }
    /// Waits for every queued write; returns the offset after the last byte written.
    fn flush(&mut self) -> io::Result<u64>;
    /// `flush`, then `fdatasync` the file so its data is durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Starts write-out of what has been written since the last call, without waiting for it, so
    /// the disk works while data still streams in and the final `sync` has little left, and drops
    /// from the page cache what was written out steps ago (see [`Writeback`]). Not a durability
    /// barrier: `sync` still is. An error (`EIO`, `ENOSPC`) is treated as a write error: the
    /// writer must not be used again.
    fn start_writeback(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write-back of one sequentially written file, in steps, keeping its page cache bounded.
///
/// Each step starts write-out of the newly written range (`SYNC_FILE_RANGE_WRITE`, no wait) and
/// drops from the page cache (`POSIX_FADV_DONTNEED`, no wait either) what was handed to write-out
/// two steps or more before: those pages are clean by then unless the disk is slower than the
/// client, and pages still being written are simply kept (and dropped at a later step or after
/// the sync). After a sync everything handed to write-out is clean and is dropped too. An upload
/// of any size therefore holds about three steps of page cache, and the pages it frees are the
/// ones its next writes get back, still warm.
///
/// Without this a 1 GiB push grows the page cache by 1 GiB of pages never touched before; on a
/// VM whose free memory is returned to the host (free page reporting, Firecracker's balloon),
/// first touching such a page costs a fault on the host, and a profile of a 1 GiB push on this
/// kind of VM spent half the daemon's CPU there (about 2 s per GiB, inside
/// `copy_folio_from_iter_atomic`) against 0.25 s when the pages were warm. The price: a pull
/// right after the push reads from the disk rather than from the page cache. Nothing here waits
/// for the disk (an earlier version waited for the previous step's range: under load that put
/// the disk's latency into the push's pipeline).
pub(crate) struct Writeback {
    /// Where this writer started; pages before it are not this writer's to drop.
    start: u64,
    /// Write-out started for everything before this.
    kicked: u64,
    /// `kicked` after the previous step and after the one before it.
    earlier: [u64; 2],
}

impl Writeback {
    pub(crate) fn new(offset: u64) -> Writeback {
        Writeback { start: offset, kicked: offset, earlier: [offset; 2] }
    }

    /// One step, with `done` the offset before which every write has completed.
    pub(crate) fn step(&mut self, file: &File, done: u64) -> io::Result<()> {
        if done > self.kicked {
            sync_file_range(file, self.kicked, done, libc::SYNC_FILE_RANGE_WRITE)?;
        }
        // Handed to write-out two steps ago (or earlier): drop what of it is clean. The range
        // starts at `start` so that pages kept at an earlier step (still being written then)
        // get another chance; walking the already-empty part of the cache is cheap.
        let old = self.earlier[1];
        self.earlier = [self.kicked, self.earlier[0]];
        self.kicked = self.kicked.max(done);
        if old > self.start {
            fadvise_dontneed(file, self.start, old)?;
        }
        Ok(())
    }

    /// After a successful `fdatasync`: every page handed to write-out is clean; drop them all.
    pub(crate) fn after_sync(&mut self, file: &File) -> io::Result<()> {
        if self.kicked > self.start {
            fadvise_dontneed(file, self.start, self.kicked)?;
        }
        Ok(())
    }
}

/// `sync_file_range(flags)` on `[from, to)`.
fn sync_file_range(file: &File, from: u64, to: u64, flags: libc::c_uint) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else { return Ok(()) };
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), off, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        unsupported_is_ok(io::Error::last_os_error())
    }
}

/// A file system that cannot do write-back steps (`EINVAL`, `ESPIPE`, `ENOSYS`, `EOPNOTSUPP`)
/// makes them no-ops; anything else (`EIO`, `ENOSPC`) is a write error.
fn unsupported_is_ok(e: io::Error) -> io::Result<()> {
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ESPIPE | libc::ENOSYS | libc::EOPNOTSUPP) => Ok(()),
        _ => Err(e),
    }
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)` on `[from, to)`: drops the clean cached pages there.
fn fadvise_dontneed(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else { return Ok(()) };
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        unsupported_is_ok(io::Error::from_raw_os_error(rc))
    }
}

/// At most this many buffers go into one vectored write (`IOV_MAX` is 1024 on Linux).
pub(crate) const MAX_IOVECS: usize = 64;

/// The `iovec`s of `bufs`, for `pwritev` or an io_uring `Writev`. They point into `bufs`, which
/// must stay alive and unmoved (the `Bytes` heap data does not move) while they are in use.
pub(crate) fn iovecs(bufs: &[Bytes]) -> Vec<libc::iovec> {
    bufs.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect()
}

/// Writes whatever of `bufs` lies past the first `done` bytes at `offset + done`, synchronously:
/// the rest of a short vectored write.
pub(crate) fn write_rest_at(file: &File, bufs: &[Bytes], offset: u64, done: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (mut skip, mut at) = (done, offset + done as u64);
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        file.write_all_at(&b[skip..], at)?;
        at += (b.len() - skip) as u64;
        skip = 0;
    }
    Ok(())
}

/// A storage backend. Implementations must be cheap to share across threads.
pub trait IoBackend: Send + Sync + 'static {
    /// Short name for logs and benchmarks (`io_uring` or `std_fs`).
    fn name(&self) -> &'static str;
    /// Starts writing `file` at `offset`.
    fn writer(&self, file: File, offset: u64) -> io::Result<Box<dyn BlobWriter>>;
    /// Makes the contents of `file` durable (fdatasync).
    fn sync_file(&self, file: &File) -> io::Result<()>;
    /// Makes the directory entries of `dir` durable (fsync of the directory), so a rename into it
    /// survives power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = File::open(dir)?;
        self.sync_file_all(&d)
    }
    /// fsync (data and metadata) of a file or directory handle.
    fn sync_file_all(&self, file: &File) -> io::Result<()>;
    /// Opens `path` for reading and writing, creating it empty and private ([`crate::FILE_MODE`])
    /// if absent (never truncating). A new file's name is durable only after `sync_dir` of its
    /// directory.
    fn open_or_create(&self, path: &Path) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::FILE_MODE)
            .open(path)
    }
    /// Gives the file at `from` a second name `to` (fails with `AlreadyExists` if `to` exists).
    /// Durable only after `sync_dir` of `to`'s directory.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    /// Renames `from` over `to`. Durable only after `sync_dir` of the directories involved.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    /// Removes a file's name. Durable only after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    /// Sets the length of `file` (cuts an upload back to its durable offset). Durable only after
    /// the next sync of the file.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
    /// Creates a directory and its missing parents, private ([`crate::DIR_MODE`]). Durable only
    /// after `sync_dir` of each parent (see [`create_dir_durable`]).
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        crate::create_private_dir(path)
    }
}

/// Creates `dir` and any missing parents one level at a time, fsyncing the parent of each new
/// level, so the whole path survives power loss.
pub fn create_dir_durable(io: &dyn IoBackend, dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.is_dir()).collect();
    for d in missing.into_iter().rev() {
        match io.create_dir_all(d) {
            Ok(()) => {}
            // Made meanwhile by a concurrent commit; its parent sync is ours to repeat anyway.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            io.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Which backend to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IoChoice {
    /// io_uring when the kernel allows it, else plain files.
    #[default]
    Auto,
    /// io_uring or fail.
    IoUring,
    /// Plain positional writes.
    StdFs,
}

/// Picks the backend at start-up. `Auto` probes io_uring by creating a ring and doing one write;
/// a refusal (seccomp, old kernel, `io_uring_disabled`) falls back to plain files.
pub fn choose(choice: IoChoice, queue_depth: u32) -> io::Result<Arc<dyn IoBackend>> {
    match choice {
        IoChoice::StdFs => Ok(Arc::new(std_fs::StdFs)),
        #[cfg(target_os = "linux")]
        IoChoice::IoUring => Ok(Arc::new(uring::Uring::probe(queue_depth)?)),
        #[cfg(not(target_os = "linux"))]
        IoChoice::IoUring => Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring needs Linux")),
        IoChoice::Auto => {
            #[cfg(target_os = "linux")]
            match uring::Uring::probe(queue_depth) {
                Ok(u) => return Ok(Arc::new(u)),
                Err(e) => tracing::warn!(error = %e, "io_uring refused by this host; using plain file writes"),
            }
            Ok(Arc::new(std_fs::StdFs))
        }
    }
}
