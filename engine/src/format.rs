//! The index format version, kept in the index itself (`meta` tree, key `format_version`), and
//! the upgrades from older versions, run at open before anything else reads the index.
//!
//! Versions:
//! - 1: every index written before the version was recorded (no `format_version` key).
//! - 2: records the version; adds the `quarantine` and `quotas` trees (new trees at new numbers,
//!   so a format-1 index needs no rewriting, only the stamp), and the secondary indexes
//!   `tags_by_digest`, `members`, `readers`, `tags_by_time` and `tag_counts`, which
//!   `Engine::open_with` and the catalog build from the primary records when a data directory
//!   lacks them (a marker in `meta` per index says it is complete).
//!
//! An index newer than [`INDEX_FORMAT`] is refused, never opened: an older binary could
//! misread records it does not know, and its writes could break the newer format. This module
//! must never rewrite records it does not understand.

use crate::error::{Error, Result};
use crate::index::catalog::Catalog;
use crate::index::Tree;
use std::path::Path;

/// The format this build writes.
pub const INDEX_FORMAT: u64 = 2;

const KEY: &[u8] = b"format_version";

/// The version recorded in the index: `None` for a new, empty index, 1 for an index from before
/// versions were recorded.
pub fn recorded_version(catalog: &Catalog) -> Result<Option<u64>> {
    if let Some(v) = catalog.get::<u64>(Tree::Meta, KEY)? {
        return Ok(Some(v));
    }
    for tree in Tree::ALL {
        if !catalog.index().scan_keys(tree, b"", None, 1)?.is_empty() {
            return Ok(Some(1));
        }
    }
    Ok(None)
}

/// Brings the index to [`INDEX_FORMAT`], or refuses it if it is newer. Returns the version it
/// was at (None when new). Each step is one durable write, so a crash between steps leaves an
/// index at an intermediate version that the next start continues from.
pub fn upgrade(catalog: &Catalog, path: &Path) -> Result<Option<u64>> {
    let found = recorded_version(catalog)?;
    let Some(mut v) = found else {
        catalog.put(Tree::Meta, KEY, &INDEX_FORMAT)?;
        return Ok(None);
    };
    if v > INDEX_FORMAT {
        return Err(Error::IndexTooNew { path: path.to_path_buf(), found: v, supported: INDEX_FORMAT });
    }
    while v < INDEX_FORMAT {
        // 1 -> 2: the new trees start empty; only the version is written.
        let next = v + 1;
        catalog.put(Tree::Meta, KEY, &next)?;
        tracing::info!(from = v, to = next, index = %path.display(), "index format upgraded");
        v = next;
    }
    Ok(found)
}
