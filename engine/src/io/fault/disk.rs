//! The power-loss model behind [`super::Faulty::with_power_loss`]: what a POSIX file system
//! promises across power loss, and nothing more. File data is durable up to the last fsync or
//! fdatasync of the file; a name (created, linked, renamed or removed) is durable once its
//! directory was fsynced. [`DiskModel::crash`] rewrites the real directory tree to one state a
//! power loss could leave: [`Crash::Strict`] keeps exactly the durable state and drops everything
//! written but not synced; [`Crash::Torn`] lets each unsynced change independently persist or not,
//! and keeps unsynced appended data up to a random cut, sometimes zero-filled (size updated, data
//! not), as ext4 can after a crash.
//!
//! File content is remembered per inode, with a generation bumped whenever the model sees a new
//! file created, so a recycled inode number never brings back another file's bytes. Only changes
//! made through the wrapper are modelled; tests must not create files under the modelled root
//! behind its back. Nothing here may run outside tests and fuzzing: it reads whole files at every
//! sync.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The power supply shared by the simulated disk and the simulated index (`index::mem` in
/// durable mode), so both lose power at the same instant.
#[derive(Debug)]
pub struct Power {
    on: AtomicBool,
    /// Operations left before the cut; 0 means no cut is scheduled.
    countdown: AtomicU64,
    /// Operations accounted for while the power was on, since creation.
    ticks: AtomicU64,
}

impl Power {
    pub fn new() -> std::sync::Arc<Power> {
        std::sync::Arc::new(Power { on: AtomicBool::new(true), countdown: AtomicU64::new(0), ticks: AtomicU64::new(0) })
    }

    /// Cuts the power now: every later modelled write, sync or namespace change fails.
    pub fn cut(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// Lets `n` more modelled operations (disk or index) succeed, then cuts the power.
    pub fn cut_after(&self, n: u64) {
        if n == 0 {
            self.cut();
        } else {
            self.countdown.store(n, Ordering::SeqCst);
        }
    }

    /// Power back on, no cut scheduled (after a simulated reboot).
    pub fn restore(&self) {
        self.countdown.store(0, Ordering::SeqCst);
        self.on.store(true, Ordering::SeqCst);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// How many modelled operations ran with power on so far: run a scenario once to learn how
    /// many cut points it has.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }

    /// Accounts for one modelled operation. False when the power is off (or goes off now).
    pub fn tick(&self) -> bool {
        if !self.is_on() {
            return false;
        }
        self.ticks.fetch_add(1, Ordering::SeqCst);
        let left = self.countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left == Ok(1) {
            // This was the last operation allowed: it still happens, everything after fails.
            self.cut();
        }
        true
    }
}

/// How a simulated power loss treats what was not made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Exactly the durable state survives.
    Strict,
    /// Each unsynced change may or may not survive, unsynced appends are cut at random; `seed`
    /// makes the choice repeatable.
    Torn { seed: u64 },
}

/// Identity of a file's content: inode number and the model's generation of that inode.
type FileId = (u64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    File(FileId),
    Dir,
}

pub(super) struct DiskModel {
    root: PathBuf,
    /// Paths under `root` left alone (another model owns them, e.g. the index).
    unmodelled: Vec<PathBuf>,
    generations: HashMap<u64, u64>,
    files: HashMap<FileId, Vec<u8>>,
    dirs: HashMap<PathBuf, BTreeMap<OsString, Node>>,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// Refuses an operation when the power is off.
pub(super) fn powered(power: &Power) -> io::Result<()> {
    if power.tick() {
        Ok(())
    } else {
        Err(eio())
    }
}

fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len() as usize;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file.read_at(&mut buf[done..], done as u64)?;
        if n == 0 {
            buf.truncate(done);
            break;
        }
        done += n;
    }
    Ok(buf)
}

impl DiskModel {
    /// Takes everything under `root` (but `unmodelled`) as durable, as after a clean boot.
    pub(super) fn new(root: &Path, unmodelled: &[PathBuf]) -> io::Result<DiskModel> {
        let mut m = DiskModel {
            root: root.to_path_buf(),
            unmodelled: unmodelled.iter().map(|p| root.join(p)).collect(),
            generations: HashMap::new(),
            files: HashMap::new(),
            dirs: HashMap::new(),
        };
        m.snapshot_tree(root)?;
        Ok(m)
    }

    fn modelled(&self, path: &Path) -> bool {
        path.starts_with(&self.root) && !self.unmodelled.iter().any(|u| path.starts_with(u))
    }

    fn id(&self, ino: u64) -> FileId {
        (ino, self.generations.get(&ino).copied().unwrap_or(0))
    }

    fn snapshot_tree(&mut self, dir: &Path) -> io::Result<()> {
        let listing = self.listing(dir)?;
        for (name, node) in &listing {
            let path = dir.join(name);
            match node {
                Node::Dir => self.snapshot_tree(&path)?,
                Node::File(id) => {
                    let content = std::fs::read(&path)?;
                    self.files.insert(*id, content);
                }
            }
        }
        self.dirs.insert(dir.to_path_buf(), listing);
        Ok(())
    }

    fn listing(&self, dir: &Path) -> io::Result<BTreeMap<OsString, Node>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let path = e.path();
            if !self.modelled(&path) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)?;
            let node = if meta.is_dir() { Node::Dir } else { Node::File(self.id(meta.ino())) };
            out.insert(e.file_name(), node);
        }
        Ok(out)
    }

    /// A file was created at `file` (a new inode): whatever the model knew of an earlier file
    /// with the same inode number is not its content.
    pub(super) fn created(&mut self, file: &File) -> io::Result<()> {
        let ino = file.metadata()?.ino();
        *self.generations.entry(ino).or_insert(0) += 1;
        Ok(())
    }

    /// `file` was fsynced or fdatasynced: its current content is durable.
    pub(super) fn synced_file(&mut self, file: &File) -> io::Result<()> {
        let meta = file.metadata()?;
        if meta.is_dir() {
            // Directories are synced by path (`synced_dir`); a bare handle names no path.
            return Ok(());
        }
        let content = read_all(file)?;
        self.files.insert(self.id(meta.ino()), content);
        Ok(())
    }

    /// `dir` was fsynced: its current names are durable.
    pub(super) fn synced_dir(&mut self, dir: &Path) -> io::Result<()> {
        if !self.modelled(dir) && dir != self.root {
            return Ok(());
        }
        let listing = self.listing(dir)?;
        self.dirs.insert(dir.to_path_buf(), listing);
        Ok(())
    }

    /// Rewrites the tree under the root to a state power loss could leave, then takes that state
    /// as durable (the machine rebooted). Call with no modelled operation in flight. Returns how
    /// many paths it changed.
    pub(super) fn crash(&mut self, mode: Crash) -> io::Result<usize> {
        let mut rng = Rng(match mode {
            Crash::Strict => 1,
            Crash::Torn { seed } => seed | 1,
        });
        let root = self.root.clone();
        let changed = self.reconcile(&root, mode, &mut rng)?;
        self.files.clear();
        self.dirs.clear();
        self.snapshot_tree(&root)?;
        Ok(changed)
    }

    fn reconcile(&mut self, dir: &Path, mode: Crash, rng: &mut Rng) -> io::Result<usize> {
        let torn = matches!(mode, Crash::Torn { .. });
        let durable = self.dirs.get(dir).cloned().unwrap_or_default();
        let current = self.listing(dir)?;
        let mut changed = 0;
        for (name, node) in &current {
            let path = dir.join(name);
            match (durable.get(name), node) {
                (Some(Node::Dir), Node::Dir) => changed += self.reconcile(&path, mode, rng)?,
                (Some(Node::File(want)), Node::File(have)) => {
                    changed += self.settle_file(&path, *want, Some(*have), mode, rng)?;
                }
                // A name that was never made durable (or changed kind): gone, unless a torn crash
                // happens to keep it.
                (_, Node::Dir) if torn && rng.coin() => changed += self.reconcile(&path, mode, rng)?,
                (_, Node::File(have)) if torn && rng.coin() => {
                    changed += self.settle_file(&path, *have, Some(*have), mode, rng)?;
                }
                (_, Node::Dir) => {
                    std::fs::remove_dir_all(&path)?;
                    changed += 1;
                }
                (_, Node::File(_)) => {
                    std::fs::remove_file(&path)?;
                    changed += 1;
                }
            }
        }
        for (name, node) in &durable {
            if current.contains_key(name) || (torn && rng.coin()) {
                continue;
            }
            // Removed (or renamed away) but the removal was never made durable: it comes back.
            let path = dir.join(name);
            changed += 1;
            match node {
                Node::Dir => {
                    std::fs::create_dir(&path)?;
                    self.reconcile(&path, mode, rng)?;
                }
                Node::File(id) => {
                    let content = self.files.get(id).cloned().unwrap_or_default();
                    std::fs::write(&path, content)?;
                    let ino = std::fs::metadata(&path)?.ino();
                    *self.generations.entry(ino).or_insert(0) += 1;
                }
            }
        }
        Ok(changed)
    }

    /// Gives the file at `path` the content of `want` as power loss leaves it. `have` is the file's
    /// current identity.
    fn settle_file(
        &mut self,
        path: &Path,
        want: FileId,
        have: Option<FileId>,
        mode: Crash,
        rng: &mut Rng,
    ) -> io::Result<usize> {
        let durable = self.files.get(&want).cloned().unwrap_or_default();
        let current = std::fs::read(path)?;
        let mut target = durable.clone();
        if matches!(mode, Crash::Torn { .. }) && have == Some(want) && current.starts_with(&durable) {
            // Unsynced appends: some prefix of them made it, maybe as zeros.
            let extra = &current[durable.len()..];
            let keep = rng.below(extra.len() as u64 + 1) as usize;
            if rng.coin() {
                target.extend_from_slice(&extra[..keep]);
            } else {
                target.resize(durable.len() + keep, 0);
            }
        }
        if current == target {
            return Ok(0);
        }
        // In place, so every name of the inode (hard links) sees the same content, as on a disk.
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(0)?;
        f.write_all_at(&target, 0)?;
        Ok(1)
    }
}

/// xorshift64: the torn crash's coin flips, repeatable from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
