//! The index seam: an ordered key-value store with named trees and atomic batches, behind the
//! [`Index`] trait so sled (beta software) stays replaceable, e.g. by a replicated database for a
//! multi-node deployment. The typed records of the registry live in [`catalog`], written once
//! against this trait for every backend.
//!
//! Contract: keys sort bytewise (so callers build them big-endian); values are opaque to the backend
//! and arrive already sealed with a crc32 by [`codec`]; `apply` is all-or-nothing; after `flush`
//! returns, every applied batch survives a crash. Nothing here may name sled except `sled_index`.

pub mod catalog;
pub mod codec;
pub mod fault;
pub(crate) mod group;
pub mod mem;
pub mod records;
pub mod scopes;
pub mod sled_index;
#[doc(hidden)]
pub mod suite;

use crate::error::Result;

/// The named trees. Each is a separate key space. The numbers are the on-disk key prefixes of the
/// sled backend: never renumber a tree, and never reuse a retired number (22 and 26, once the
/// unused `projects` and `sessions` trees, may hold keys in old data directories); add new trees
/// at new numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tree {
    Meta = 1,
    Repos = 2,
    RepoNames = 3,
    Blobs = 4,
    Links = 5,
    LinksByBlob = 6,
    Manifests = 7,
    Tags = 8,
    History = 9,
    Referrers = 10,
    Uploads = 11,
    RefsByBlob = 12,
    Users = 20,
    Teams = 21,
    Acls = 23,
    Tokens = 24,
    Trash = 25,
    Entities = 27,
    /// Security events, newest first: key `u64::MAX - seq`, big-endian.
    Audit = 28,
    /// Blobs scrub found damaged: digest key -> `QuarantineRecord`. Index format 2.
    Quarantine = 29,
    /// Per-project storage quotas: project id -> bytes (u64). Index format 2.
    Quotas = 30,
    /// Which tags point at a manifest: repo id ++ digest key ++ tag -> (). Built on open when an
    /// older data directory lacks it.
    TagsByDigest = 31,
    /// Team memberships both ways: `u` ++ user ++ 0 ++ team id and `t` ++ team id ++ user -> ().
    Members = 32,
    /// Who may read what: principal key ++ entity id -> () for every entity whose own sharing
    /// settings give that principal READ (listings in the caller's visibility).
    Readers = 33,
    /// Tags by push time: repo id ++ push time (i64, sign bit flipped, big-endian) ++ tag -> (),
    /// so listings newest first read only their page. Built on open when an older data
    /// directory lacks it.
    TagsByTime = 34,
    /// How many tags a repository has: repo id -> u64, kept in the batch of every tag write.
    TagCounts = 35,
    /// The external repositories of a project: project id ++ entity id -> (), so a project's
    /// listing reads only its own. Built at start when an older data directory lacks it.
    ProjectExternals = 36,
}

impl Tree {
    pub const ALL: [Tree; 27] = [
        Tree::Meta,
        Tree::Repos,
        Tree::RepoNames,
        Tree::Blobs,
        Tree::Links,
        Tree::LinksByBlob,
        Tree::Manifests,
        Tree::Tags,
        Tree::History,
        Tree::Referrers,
        Tree::Uploads,
        Tree::RefsByBlob,
        Tree::Users,
        Tree::Teams,
        Tree::Acls,
        Tree::Tokens,
        Tree::Trash,
        Tree::Entities,
        Tree::Audit,
        Tree::Quarantine,
        Tree::Quotas,
        Tree::TagsByDigest,
        Tree::Members,
        Tree::Readers,
        Tree::TagsByTime,
        Tree::TagCounts,
        Tree::ProjectExternals,
    ];

    /// The tree whose on-disk number is `n` (snapshots store trees by number).
    pub fn from_number(n: u8) -> Option<Tree> {
        Tree::ALL.iter().copied().find(|t| *t as u8 == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Repos => "repos",
            Tree::RepoNames => "repo_names",
            Tree::Blobs => "blobs",
            Tree::Links => "links",
            Tree::LinksByBlob => "links_by_blob",
            Tree::Manifests => "manifests",
            Tree::Tags => "tags",
            Tree::History => "history",
            Tree::Referrers => "referrers",
            Tree::Uploads => "uploads",
            Tree::RefsByBlob => "refs_by_blob",
            Tree::Users => "users",
            Tree::Teams => "teams",
            Tree::Acls => "acls",
            Tree::Tokens => "tokens",
            Tree::Trash => "trash",
            Tree::Entities => "entities",
            Tree::Audit => "audit",
            Tree::Quarantine => "quarantine",
            Tree::Quotas => "quotas",
            Tree::TagsByDigest => "tags_by_digest",
            Tree::Members => "members",
            Tree::Readers => "readers",
            Tree::TagsByTime => "tags_by_time",
            Tree::TagCounts => "tag_counts",
            Tree::ProjectExternals => "project_externals",
        }
    }
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put { tree: Tree, key: Vec<u8>, value: Vec<u8> },
    Delete { tree: Tree, key: Vec<u8> },
}

/// Writes applied atomically by [`Index::apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put { tree, key: key.into(), value });
        self
    }

    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete { tree, key: key.into() });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An entry returned by a scan: key (without the tree) and sealed value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered, durable key-value store with named trees.
pub trait Index: Send + Sync + 'static {
    /// Backend name for logs.
    fn name(&self) -> &'static str;
    /// The sealed value at `key`, if any.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Entries of `tree` whose key starts with `prefix` and sorts strictly after `after` (when
    /// given), in ascending key order, at most `limit` of them. Must seek to the start key rather
    /// than scan from the beginning of the prefix, so pagination stays cheap.
    fn scan(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>>;
    /// Like [`Index::scan`] but returns keys only, for listings that need no values (tag names).
    fn scan_keys(&self, tree: Tree, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        Ok(self.scan(tree, prefix, after, limit)?.into_iter().map(|(k, _)| k).collect())
    }
    /// Keys of `tree` starting with `prefix` that sort strictly before `before` (when given), in
    /// descending key order, at most `limit` of them. Must seek to the end key (newest-first
    /// listings read only their page).
    fn scan_keys_rev(&self, tree: Tree, prefix: &[u8], before: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>>;
    /// Calls `f` with every key of `tree` starting with `prefix` in order, values not decoded;
    /// stops when `f` returns false. For large mark phases (GC) that must not collect everything.
    fn for_each_key(&self, tree: Tree, prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> Result<()>;
    /// Applies every op of `batch` or none.
    fn apply(&self, batch: Batch) -> Result<()>;
    /// Sets `key` to `new` only if its current value equals `old` (None: absent). Returns whether
    /// the swap happened.
    fn compare_and_swap(&self, tree: Tree, key: &[u8], old: Option<&[u8]>, new: Option<Vec<u8>>) -> Result<bool>;
    /// Makes every write applied before the call durable: after a crash, the index holds at least
    /// every batch applied before a successful `flush` began. Group commit depends on this prefix
    /// guarantee. May be called while other threads apply; an error means durability is unknown
    /// (the engine poisons itself).
    fn flush(&self) -> Result<()>;
}

/// The smallest byte string greater than every string that starts with `prefix` (None when the
/// prefix is all 0xff or empty: no upper bound).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}
