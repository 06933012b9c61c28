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
    /// Asks the kernel to start writing out what has been written so far, without waiting, so
    /// the final `sync` finds little left to do and the disk works while data still streams in.
    /// A hint: backends may do nothing, and a failure here changes nothing about durability.
    fn start_writeback(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write-back of one sequentially written file, in steps: each step starts write-out of the range
/// written since the previous one (`SYNC_FILE_RANGE_WRITE`, no wait), so the disk works while
/// data streams in and the final fdatasync has only the tail left.
///
/// Dropping the written pages from the page cache as the upload goes (`POSIX_FADV_DONTNEED`)
/// was tried: on this project's Firecracker test VM it cut a 1 GiB push's CPU from ~3.6 s to
/// ~1.9 s when the page cache had to grow into memory returned to the host, but a pull right
/// after the push then read from the disk and cost 1.8-2.5 s of CPU instead of 0.4 s, and 4x
/// the wall time; on a host without free page reporting it only moves the cost. Not kept.
pub(crate) struct Writeback {
    /// Write-out started for everything before this.
    kicked: u64,
}

impl Writeback {
    pub(crate) fn new(offset: u64) -> Writeback {
        Writeback { kicked: offset }
    }

    /// One step, with `done` the offset before which every write has completed.
    pub(crate) fn step(&mut self, file: &File, done: u64) -> io::Result<()> {
        if done > self.kicked {
            sync_file_range(file, self.kicked, done, libc::SYNC_FILE_RANGE_WRITE)?;
            self.kicked = done;
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
