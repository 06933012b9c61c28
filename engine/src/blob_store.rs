//! Blob files under `<root>/<alg>/<2 hex>/<hex>`, committed crash-safely and read as `Bytes`.
//!
//! A commit is: fsync the temp file, hard-link it into place, fsync the directory (and the parent,
//! when the two-hex directory was just made), as in garage `block/manager.rs`. Reads map the file
//! (blobs are immutable, never truncated, so the mapping cannot fault) and hand out zero-copy
//! `Bytes` slices. Paths are built only from a validated [`Digest`].

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::io::IoBackend;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct BlobStore {
    root: PathBuf,
    /// Directories under `root` whose entry in their parent this process has made durable. A
    /// directory that merely exists may have been made by a concurrent commit whose parent fsync
    /// has not returned yet, or by an earlier run that crashed before it.
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

/// Whether a commit stored new bytes or found them already present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    New,
    AlreadyPresent,
}

impl BlobStore {
    pub fn new(root: PathBuf) -> BlobStore {
        BlobStore { root, durable_dirs: Mutex::new(HashSet::new()) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.relative_path())
    }

    /// Links a fully written temp file into place. The caller has fsynced `temp`'s data, and removes
    /// `temp` only once the blob is recorded: a hard link rather than a rename, so a crash between
    /// this and the index write leaves the upload whole and resumable (the linked file is then an
    /// unrecorded orphan) instead of an upload whose file vanished. If the blob already exists
    /// (same digest, so same bytes) nothing is linked.
    pub fn commit(&self, io: &dyn IoBackend, temp: &Path, digest: &Digest) -> Result<Committed> {
        let dest = self.path(digest);
        if dest.exists() {
            return Ok(Committed::AlreadyPresent);
        }
        let dir = dest.parent().ok_or_else(|| Error::io(&dest, std::io::Error::other("blob path has no parent")))?;
        self.make_dir_durable(io, dir)?;
        match io.hard_link(temp, &dest) {
            Ok(()) => {}
            // A concurrent commit of the same bytes won.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Committed::AlreadyPresent),
            Err(e) => return Err(Error::io(&dest, e)),
        }
        io.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Committed::New)
    }

    /// Makes `dir` (the two-hex directory) and the algorithm directory above it exist durably:
    /// each level not yet known durable is created if missing and its parent fsynced, once per
    /// directory and process. Without this the blob's name could vanish with its directory.
    fn make_dir_durable(&self, io: &dyn IoBackend, dir: &Path) -> Result<()> {
        let rel =
            dir.strip_prefix(&self.root).map_err(|_| Error::io(dir, std::io::Error::other("outside the store")))?;
        let mut level = self.root.clone();
        for part in rel.components() {
            level.push(part);
            if self.durable_dirs.lock().contains(&level) {
                continue;
            }
            io.create_dir_all(&level).map_err(|e| Error::io(&level, e))?;
            let parent = level.parent().unwrap_or(&self.root);
            io.sync_dir(parent).map_err(|e| Error::io(parent, e))?;
            self.durable_dirs.lock().insert(level.clone());
        }
        Ok(())
    }

    /// The whole blob, or `start..=end` of it, as one zero-copy `Bytes` over a read-only mapping.
    pub fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<Bytes> {
        let BlobFile { file, len, path } = self.open(digest)?;
        let (start, end) = match range {
            Some((s, e)) if s > e || e >= len => return Err(Error::RangeNotSatisfiable { start: s, end: e, len }),
            Some(r) => r,
            None if len == 0 => return Ok(Bytes::new()),
            None => (0, len - 1),
        };
        if len < SMALL_READ_BYTES {
            // Small blobs (manifests, configs): one read beats setting up a mapping.
            let whole = Bytes::from(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
            if whole.len() as u64 != len {
                return Err(Error::io(&path, std::io::Error::other("blob changed size while being read")));
            }
            return Ok(whole.slice(start as usize..=end as usize));
        }
        // Map only the requested bytes, populated up front: the whole range is about to be sent,
        // and faulting it in page by page on the sending thread costs more than one populate.
        // SAFETY: blob files are immutable once committed and never truncated or rewritten in
        // place (GC unlinks them, which keeps the mapped inode alive), so the mapping stays valid.
        let map =
            unsafe { memmap2::MmapOptions::new().offset(start).len((end - start + 1) as usize).populate().map(&file) }
                .map_err(|e| Error::io(&path, e))?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Bytes::from_owner(map))
    }

    /// Opens a blob for reading in pieces ([`BlobFile::span`]), for bodies streamed in bounded
    /// pieces rather than mapped whole.
    pub fn open(&self, digest: &Digest) -> Result<BlobFile> {
        let path = self.path(digest);
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobUnknown(digest.clone()),
            _ => Error::io(&path, e),
        })?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Ok(BlobFile { file, len, path })
    }

    /// Removes a blob file (garbage collection). Missing files are fine. Not made durable: a file
    /// that comes back after a crash has no record and is an orphan for the next collection.
    pub fn remove(&self, io: &dyn IoBackend, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match io.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Every blob file in the store with its modification time: for the orphan sweep of GC.
    pub fn walk(&self, f: &mut dyn FnMut(Digest, std::time::SystemTime)) -> Result<()> {
        for alg in ["sha256", "sha512"] {
            let alg_dir = self.root.join(alg);
            let Ok(dirs) = std::fs::read_dir(&alg_dir) else { continue };
            for d in dirs.flatten() {
                let Ok(files) = std::fs::read_dir(d.path()) else { continue };
                for file in files.flatten() {
                    let name = file.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let Ok(digest) = format!("{alg}:{name}").parse::<Digest>() else { continue };
                    let mtime = file.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                    f(digest, mtime);
                }
            }
        }
        Ok(())
    }
}

/// An open, immutable blob file, read through a [`Span`]: one mapping of the span a response
/// sends, populated a stretch at a time on a blocking thread (the disk wait and the page faults
/// never land on the thread that sends the bytes) and released piece by piece as the pieces are
/// dropped: resident memory is bounded by the pieces alive, whatever the size of the blob.
pub struct BlobFile {
    file: File,
    len: u64,
    path: PathBuf,
}

impl BlobFile {
    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps `len` bytes at `start` for reading in pieces ([`Span`]): address space only, no page
    /// is read or mapped in yet, so this costs the same for 1 MiB and for 10 GiB. Cheap, but
    /// it takes the process's mapping lock: call it off the reactor.
    pub fn span(&self, start: u64, len: u64) -> Result<Span> {
        let end = start.checked_add(len).filter(|&e| e <= self.len && len > 0);
        let Some(end) = end else {
            return Err(Error::RangeNotSatisfiable { start, end: start.saturating_add(len), len: self.len });
        };
        let base = start - start % page_size() as u64;
        let map_len = usize::try_from(end - base)
            .map_err(|_| Error::io(&self.path, std::io::Error::other("span does not fit the address space")))?;
        // SAFETY: as in `read`: committed blobs are never truncated or rewritten in place.
        let map = unsafe { memmap2::MmapOptions::new().offset(base).len(map_len).map(&self.file) }
            .map_err(|e| Error::io(&self.path, e))?;
        // No MADV_SEQUENTIAL: with it the first fault reads a whole readahead window (8 MiB
        // here) before the first byte can go; cold time to first byte measured 2x worse.
        Ok(Span { map, base, path: self.path.clone() })
    }
}

/// A read-only mapping of one span of a blob, for one streamed response. Pages enter the
/// mapping only through [`Span::populate`] (blocking: it waits for the disk), and leave it when
/// the piece ([`Span::piece`]) that covers them is dropped (`MADV_DONTNEED`: the page-table
/// entries go, the file's pages stay in the page cache). So the resident part of the mapping is
/// what was populated and not yet dropped, whatever the span's size; the caller bounds that.
pub struct Span {
    map: memmap2::Mmap,
    /// File offset of the mapping's first byte (page aligned).
    base: u64,
    path: PathBuf,
}

impl Span {
    /// File offset just past the span's last byte.
    pub fn end(&self) -> u64 {
        self.base + self.map.len() as u64
    }

    /// Maps in (and reads from the disk when not cached) the file's bytes `from..to`. Blocking.
    pub fn populate(&self, from: u64, to: u64) -> Result<()> {
        let (off, len) = self.rel(from, to)?;
        #[cfg(target_os = "linux")]
        match self.map.advise_range(memmap2::Advice::PopulateRead, off, len) {
            Ok(()) => return Ok(()),
            // Kernels before 5.14 do not know MADV_POPULATE_READ: touch every page instead.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let first = off - off % page_size();
        for at in (first..off + len).step_by(page_size()) {
            // SAFETY: `at < off + len <= map.len()`; the read only faults the page in.
            let _ = unsafe { std::ptr::read_volatile(self.map.as_ptr().add(at.max(off))) };
        }
        Ok(())
    }

    /// The file's bytes `from..to` (populated by the caller) as zero-copy `Bytes`; `keep` lives
    /// exactly as long as they do (a memory-budget permit, say). When the bytes are dropped, the
    /// pages they alone cover leave the mapping. Pieces of one span must not overlap.
    pub fn piece<K: Send + Sync + 'static>(self: &Arc<Self>, from: u64, to: u64, keep: K) -> Result<Bytes> {
        let (off, len) = self.rel(from, to)?;
        Ok(Bytes::from_owner(Piece { span: self.clone(), off, len, _keep: keep }))
    }

    fn rel(&self, from: u64, to: u64) -> Result<(usize, usize)> {
        if from < self.base || from > to || to > self.end() {
            return Err(Error::RangeNotSatisfiable { start: from, end: to, len: self.end() });
        }
        // Both fit: the mapping's length is a usize.
        Ok(((from - self.base) as usize, (to - from) as usize))
    }
}

/// One piece of a [`Span`] handed to a response body.
struct Piece<K> {
    span: Arc<Span>,
    off: usize,
    len: usize,
    _keep: K,
}

impl<K> AsRef<[u8]> for Piece<K> {
    fn as_ref(&self) -> &[u8] {
        &self.span.map[self.off..self.off + self.len]
    }
}

impl<K> Drop for Piece<K> {
    fn drop(&mut self) {
        // Release the pages wholly inside this piece; a page shared with a neighbour is the
        // neighbour's to release too, except at the span's edges where there is none.
        let page = page_size();
        let map_len = self.span.map.len();
        let end = self.off + self.len;
        let from = if self.off == 0 { 0 } else { self.off.div_ceil(page) * page };
        let to = if end == map_len { map_len } else { end - end % page };
        if to > from {
            // SAFETY: nothing borrows these bytes any more (this piece was their only view, and
            // pieces do not overlap); on a shared read-only file mapping MADV_DONTNEED drops the
            // page-table entries only: a later access would read the file's bytes again.
            let _ =
                unsafe { self.span.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from) };
        }
    }
}

/// The size of a memory page (what `Span` pieces should be aligned to).
pub fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1))
}

/// Blobs smaller than this are read with one `read` instead of a mapping.
const SMALL_READ_BYTES: u64 = 64 * 1024;
