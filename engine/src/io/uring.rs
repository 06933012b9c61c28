//! io_uring backend: each writer owns a small ring and keeps up to `depth` writes in flight, so the
//! kernel copies and writes one chunk while the writer thread hashes the next.
//!
//! Buffers are `Bytes` owned by the writer until their completion arrives (the kernel reads them
//! asynchronously, so they must not move or be freed before then). This is the only file that
//! names io_uring.

use super::{BlobWriter, IoBackend};
use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

pub struct Uring {
    depth: u32,
}

impl Uring {
    /// Creates a ring and performs one write to a temp file, so a host that allows ring creation
    /// but refuses the operations (some seccomp profiles) is detected here and not mid-upload.
    pub fn probe(depth: u32) -> io::Result<Uring> {
        let depth = depth.clamp(1, 256);
        let file = tempfile_in_tmp()?;
        let mut w = UringWriter::new(file, 0, depth)?;
        w.write(Bytes::from_static(b"stowage io_uring probe"))?;
        if w.flush()? != 22 {
            return Err(io::Error::other("io_uring probe wrote the wrong number of bytes"));
        }
        Ok(Uring { depth })
    }
}

fn tempfile_in_tmp() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!("stowage-uring-probe-{}", uuid::Uuid::new_v4()));
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(crate::FILE_MODE).open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}

impl IoBackend for Uring {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn writer(&self, file: File, offset: u64) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(UringWriter::new(file, offset, self.depth)?))
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_file_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }
}

struct InFlight {
    bufs: Vec<Bytes>,
    /// The `iovec`s of a vectored write, pointing into `bufs` (empty for a single buffer).
    iov: Iovecs,
    offset: u64,
    len: usize,
}

/// `iovec`s handed to the kernel with a `Writev`.
struct Iovecs(Vec<libc::iovec>);

// SAFETY: the pointers refer to the `Bytes` of the same `InFlight`, which are `Send` and move
// with it; the vector is only read (by the kernel) while its write is in flight.
unsafe impl Send for Iovecs {}

struct UringWriter {
    ring: IoUring,
    file: File,
    offset: u64,
    depth: u32,
    /// Slot i holds the buffer of the write whose `user_data` is i.
    slots: Vec<Option<InFlight>>,
    in_flight: u32,
    error: Option<io::Error>,
    writeback: super::Writeback,
}

impl UringWriter {
    fn new(file: File, offset: u64, depth: u32) -> io::Result<UringWriter> {
        let ring = IoUring::new(depth.next_power_of_two())?;
        Ok(UringWriter {
            ring,
            file,
            offset,
            depth,
            slots: (0..depth).map(|_| None).collect(),
            in_flight: 0,
            error: None,
            writeback: super::Writeback::new(offset),
        })
    }

    /// Waits for at least `want` completions and reaps every completion available.
    fn reap(&mut self, want: u32) -> io::Result<()> {
        if want > 0 {
            self.ring.submit_and_wait(want as usize)?;
        }
        let mut done = Vec::new();
        for cqe in self.ring.completion() {
            done.push((cqe.user_data() as usize, cqe.result()));
        }
        for (slot, res) in done {
            let Some(f) = self.slots.get_mut(slot).and_then(Option::take) else {
                return Err(io::Error::other("io_uring completion for an unknown slot"));
            };
            self.in_flight -= 1;
            if res < 0 {
                self.error.get_or_insert(io::Error::from_raw_os_error(-res));
                continue;
            }
            let written = res as usize;
            if written < f.len {
                // Short write (rare on regular files): finish it synchronously at the right place.
                if let Err(e) = super::write_rest_at(&self.file, &f.bufs, f.offset, written) {
                    self.error.get_or_insert(e);
                }
            }
        }
        Ok(())
    }

    fn take_error(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl UringWriter {
    /// Submits one write of `bufs` (at most [`super::MAX_IOVECS`]) at the current offset.
    fn submit(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        let total: usize = bufs.iter().map(Bytes::len).sum();
        if total == 0 {
            return Ok(());
        }
        if self.in_flight == self.depth {
            self.reap(1)?;
        }
        self.take_error()?;
        let slot =
            self.slots.iter().position(Option::is_none).ok_or_else(|| io::Error::other("no free io_uring slot"))?;
        // A single write of a regular file is capped by the kernel near 2 GiB; request bodies arrive
        // in far smaller pieces and batches, but refuse anything whose length does not fit the SQE.
        let len = u32::try_from(total).map_err(|_| io::Error::other("write buffer over 4 GiB"))?;
        let fd = types::Fd(self.file.as_raw_fd());
        let mut f = InFlight { iov: Iovecs(Vec::new()), bufs, offset: self.offset, len: total };
        let entry = if f.bufs.len() == 1 {
            opcode::Write::new(fd, f.bufs[0].as_ptr(), len).offset(self.offset).build()
        } else {
            f.iov = Iovecs(super::iovecs(&f.bufs));
            opcode::Writev::new(fd, f.iov.0.as_ptr(), f.iov.0.len() as u32).offset(self.offset).build()
        };
        let entry = entry.user_data(slot as u64);
        // Moving `f` into the slot moves neither the `Bytes` data nor the iovec array (both on
        // the heap), so the pointers in `entry` stay valid.
        self.slots[slot] = Some(f);
        // SAFETY: the buffers (and iovecs) behind `entry` are owned by `self.slots[slot]` and are
        // neither moved nor dropped until its completion is reaped in `reap`, and the fd stays
        // open as long as `self`.
        unsafe {
            while self.ring.submission().push(&entry).is_err() {
                self.ring.submit()?;
            }
        }
        self.ring.submit()?;
        self.in_flight += 1;
        self.offset += total as u64;
        // Reap whatever already finished without waiting, so errors surface early.
        self.reap(0)
    }
}

impl BlobWriter for UringWriter {
    fn write(&mut self, buf: Bytes) -> io::Result<()> {
        self.submit(vec![buf])
    }

    fn write_batch(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        let mut bufs: Vec<Bytes> = bufs.into_iter().filter(|b| !b.is_empty()).collect();
        while bufs.len() > super::MAX_IOVECS {
            let rest = bufs.split_off(super::MAX_IOVECS);
            self.submit(std::mem::replace(&mut bufs, rest))?;
        }
        self.submit(bufs)
    }

    fn flush(&mut self) -> io::Result<u64> {
        while self.in_flight > 0 {
            self.reap(1)?;
        }
        self.take_error()?;
        Ok(self.offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    fn start_writeback(&mut self) -> io::Result<()> {
        // Only bytes whose writes completed are in the page cache: stop at the oldest in flight.
        let done = self.slots.iter().flatten().map(|f| f.offset).min().unwrap_or(self.offset);
        self.writeback.step(&self.file, done)
    }
}

impl Drop for UringWriter {
    fn drop(&mut self) {
        // The kernel may still read from our buffers: wait for every write before freeing them.
        while self.in_flight > 0 {
            if self.reap(1).is_err() {
                // The ring itself failed; leak the buffers rather than free memory the kernel may
                // still read.
                for s in self.slots.iter_mut() {
                    if let Some(f) = s.take() {
                        std::mem::forget(f);
                    }
                }
                break;
            }
        }
    }
}
