//! The engine's error type. It names what went wrong in storage terms only; the daemon maps it to
//! HTTP in one place. It must never carry an HTTP status or header.

use crate::digest::Digest;
use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An upload chunk started somewhere other than the end of the data received so far.
    #[error("upload chunk starts at offset {got} but the upload has {expected} bytes; resume at {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The bytes received do not hash to the digest the client promised.
    #[error("upload content hashes to {computed}, not the {expected} the client declared")]
    DigestMismatch { expected: Digest, computed: Digest },
    /// The upload session does not exist (never started, finished, cancelled or expired).
    #[error("upload {0} is unknown, finished, cancelled or expired; start a new upload")]
    UploadUnknown(String),
    /// Another request is appending to the same upload right now.
    #[error("upload {0} is being written by another request; retry after it finishes")]
    UploadBusy(String),
    /// A blob would pass the configured size limit. Refused before the bytes are written.
    #[error("blob would be {size} bytes, over the limit of {limit} bytes per blob")]
    BlobTooLarge { size: u64, limit: u64 },
    #[error("blob {0} is not in the store")]
    BlobUnknown(Digest),
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(Digest),
    #[error("repository {0} does not exist")]
    RepositoryUnknown(String),
    /// A requested byte range does not lie within the blob.
    #[error("range {start}-{end} is outside the blob of {len} bytes")]
    RangeNotSatisfiable { start: u64, end: u64, len: u64 },
    /// A write or fsync failed earlier; the engine refuses writes until restarted, because the state
    /// of the page cache after a failed fsync cannot be trusted (fsyncgate, Rebello et al. ATC '20).
    #[error("storage is poisoned after a failed fsync ({0}); writes are refused until the server is restarted and the disk checked")]
    Poisoned(String),
    /// A stored value failed its checksum or did not decode.
    #[error("index corruption in tree {tree} at key {key}: {what}")]
    Corrupt { tree: &'static str, key: String, what: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("index error: {0}")]
    Index(String),
    /// Scrub found the stored bytes damaged (or gone) and moved them aside. Pushing the same
    /// content again heals it.
    #[error("blob {0} failed its integrity check and is quarantined; push the same content again to restore it")]
    Quarantined(Digest),
    /// A push would take a project past its storage quota. `needed` is the logical size the push
    /// adds.
    #[error("project {project} is over its storage quota of {quota} bytes: it uses {usage} bytes and this push needs {needed} more; purge repositories of the project, or ask an administrator to raise the quota")]
    QuotaExceeded { project: String, quota: u64, usage: u64, needed: u64 },
    /// The index was written by a newer Stowage. Opening it would risk misreading it.
    #[error("the index in {path} has format version {found}, but this Stowage reads versions up to {supported}; run the newer Stowage that wrote it, or restore a backup made by this version")]
    IndexTooNew { path: PathBuf, found: u64, supported: u64 },
    /// A backup or restore was asked for something it cannot do (bad destination, incomplete
    /// or damaged backup, non-empty restore target). The message says what to change.
    #[error("{0}")]
    Backup(String),
    /// The writer thread went away (panicked or engine shut down).
    #[error("the upload writer stopped unexpectedly")]
    WriterGone,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// True for errors caused by the disk being full, so callers can answer "storage full" rather
    /// than a generic failure.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}
