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
