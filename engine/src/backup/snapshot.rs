//! The index snapshot file of a backup: a magic line, the index format, then every entry as
//! (tree number, key length, key, value length, sealed value), an end marker with the entry
//! count, and a crc32 of every byte before it. Values stay sealed with their own crc32, so a
//! restore checks both. Reading bounds every length, so a damaged file cannot ask for huge
//! buffers. This module only encodes and decodes; it never decides what goes in a backup.

use super::io_err;
use crate::error::{Error, Result};
use crate::format::INDEX_FORMAT;
use crate::index::Tree;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

pub(super) const MAGIC: &[u8] = b"STOWAGE-INDEX-SNAPSHOT-1\n";
/// Bounds on a snapshot entry, checked on restore.
const MAX_KEY_BYTES: u32 = 64 << 10;
const MAX_VALUE_BYTES: u32 = 64 << 20;

/// Writes snapshot entries and counts them; the crc32 covers every byte before it.
pub(super) struct SnapshotWriter<W: Write> {
    pub(super) out: W,
    pub(super) crc: crc32fast::Hasher,
    pub(super) records: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub(super) fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    pub(super) fn entry(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.put(&[tree as u8])?;
        self.put(&(key.len() as u32).to_be_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_be_bytes())?;
        self.put(value)?;
        self.records += 1;
        Ok(())
    }

    pub(super) fn finish(mut self) -> std::io::Result<W> {
        self.put(&[0])?;
        let records = self.records.to_be_bytes();
        self.put(&records)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        Ok(self.out)
    }
}

/// Reads and checks a snapshot: magic, crc32 over the whole file, format version, entry bounds.
/// Calls `f` with each entry.
pub(super) fn read_snapshot(path: &Path, f: &mut dyn FnMut(Tree, Vec<u8>, Vec<u8>) -> Result<()>) -> Result<u64> {
    let damaged =
        |what: &str| Error::Backup(format!("{} is damaged or incomplete ({what}); use another backup", path.display()));
    // Pass 1: the checksum, before anything is applied.
    let len = std::fs::metadata(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Backup(format!(
                "{} is missing: not a complete Stowage backup (rerun `stowage admin backup` into it)",
                path.display()
            )),
            _ => Error::io(path, e),
        })?
        .len();
    if len < (MAGIC.len() + 8 + 1 + 8 + 4) as u64 {
        return Err(damaged("too short"));
    }
    let mut r = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut crc = crc32fast::Hasher::new();
    let mut left = len - 4;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        r.read_exact(&mut buf[..n]).map_err(io_err(path))?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored).map_err(io_err(path))?;
    if u32::from_be_bytes(stored) != crc.finalize() {
        return Err(damaged("checksum mismatch"));
    }
    // Pass 2: the entries.
    let mut r = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(io_err(path))?;
    if magic != MAGIC {
        return Err(Error::Backup(format!("{} is not a Stowage index snapshot", path.display())));
    }
    let mut u64b = [0u8; 8];
    r.read_exact(&mut u64b).map_err(io_err(path))?;
    let format = u64::from_be_bytes(u64b);
    if format > INDEX_FORMAT {
        return Err(Error::IndexTooNew { path: path.to_path_buf(), found: format, supported: INDEX_FORMAT });
    }
    let read_u32 = |r: &mut BufReader<File>| -> Result<u32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(io_err(path))?;
        Ok(u32::from_be_bytes(b))
    };
    let mut records = 0u64;
    loop {
        let mut t = [0u8; 1];
        r.read_exact(&mut t).map_err(io_err(path))?;
        if t[0] == 0 {
            break;
        }
        let tree = Tree::from_number(t[0]).ok_or_else(|| damaged("unknown tree"))?;
        let kl = read_u32(&mut r)?;
        if kl > MAX_KEY_BYTES {
            return Err(damaged("key too long"));
        }
        let mut key = vec![0u8; kl as usize];
        r.read_exact(&mut key).map_err(io_err(path))?;
        let vl = read_u32(&mut r)?;
        if vl > MAX_VALUE_BYTES {
            return Err(damaged("value too long"));
        }
        let mut value = vec![0u8; vl as usize];
        r.read_exact(&mut value).map_err(io_err(path))?;
        f(tree, key, value)?;
        records += 1;
    }
    r.read_exact(&mut u64b).map_err(io_err(path))?;
    if u64::from_be_bytes(u64b) != records {
        return Err(damaged("record count mismatch"));
    }
    Ok(records)
}
