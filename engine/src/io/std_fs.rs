//! Plain positional-write backend: the fallback when io_uring is refused. Each `write` is a
//! synchronous `pwrite` loop; nothing is in flight between calls.

use super::{BlobWriter, IoBackend};
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub struct StdFs;

struct Writer {
    file: File,
    offset: u64,
    writeback: super::Writeback,
}

impl BlobWriter for Writer {
    fn write(&mut self, buf: Bytes) -> io::Result<()> {
        self.file.write_all_at(&buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn write_batch(&mut self, bufs: Vec<Bytes>) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;
        for group in bufs.chunks(super::MAX_IOVECS) {
            let total: usize = group.iter().map(Bytes::len).sum();
            let iov = super::iovecs(group);
            let off = i64::try_from(self.offset).map_err(|_| io::Error::other("offset over i64"))?;
            // SAFETY: the iovecs point into `group`, alive and unmoved for the call; the fd is ours.
            let n = unsafe { libc::pwritev(self.file.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int, off) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // Short (or interrupted) write: the rest one buffer at a time.
            let n = usize::try_from(n).unwrap_or(0);
            if n < total {
                super::write_rest_at(&self.file, group, self.offset, n)?;
            }
            self.offset += total as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<u64> {
        Ok(self.offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn start_writeback(&mut self) -> io::Result<()> {
        self.writeback.step(&self.file, self.offset)
    }
}

impl IoBackend for StdFs {
    fn name(&self) -> &'static str {
        "std_fs"
    }

    fn writer(&self, file: File, offset: u64) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(Writer { file, offset, writeback: super::Writeback::new(offset) }))
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_file_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }
}
