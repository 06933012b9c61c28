//! The engine's write gate. Once any fsync fails (a blob file, a directory, or an index flush), the
//! page cache and the index can no longer be trusted to match the disk (fsyncgate; Rebello et al.,
//! "Can Applications Recover from fsync Failures?", ATC '20), so every later write is refused with
//! [`Error::Poisoned`] until the process restarts. One gate is shared by the blob side and the
//! index side, so a failure on either stops both. It must never be cleared while the process runs.

use crate::error::{Error, Result};
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Poison {
    /// Why the engine was poisoned: the first failure wins, later ones are only logged.
    why: Mutex<Option<String>>,
}

impl Poison {
    /// Ok while no fsync has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.why.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Records a failed fsync and returns the error to hand the caller.
    pub(crate) fn set(&self, why: String) -> Error {
        tracing::error!(%why, "storage poisoned; refusing every write until restart");
        let first = self.why.lock().get_or_insert(why).clone();
        Error::Poisoned(first)
    }
}
