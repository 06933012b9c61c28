//! Write generations scoped to what a write changed, so a cache of one repository's records is
//! not thrown away by a push to another. Every batch applied through the catalog bumps, before and
//! after it applies, the counters of the scopes its keys fall in:
//!
//! - `global`: the repository names (a repository made or purged changes which id a name means)
//!   and removed blob records (garbage collection);
//! - `access`: users, teams and memberships, entities, sharing settings, tokens, the trash;
//! - `repo`: one of [`REPO_STRIPES`] counters chosen by repository id, for the records keyed by
//!   repository (the repository record, links, manifests, tags and their indexes and counts,
//!   history, referrers).
//!
//! Uploads, counters, the audit log and the reverse indexes that only garbage collection reads
//! bump nothing. A value read while [`Scopes::repo`] (or [`Scopes::access`]) returned `s` is
//! current while it still returns `s`: each is the sum of the global counter and its own, and
//! both only grow. Striping bounds the memory whatever the number of repositories; two
//! repositories on one stripe only share invalidations. It decides nothing about caching itself.

use super::{Op, Tree};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for repository-scoped writes. Repository ids are handed out in sequence, so ids less
/// than this apart never share one.
pub const REPO_STRIPES: usize = 1024;

/// What a write to `tree` at `key` can change, for cache invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Nothing,
    Global,
    Access,
    Repo(u64),
}

pub(crate) fn scope_of(op: &Op) -> Scope {
    match op {
        Op::Put { tree, key, .. } => scope_of_key(*tree, key, false),
        Op::Delete { tree, key } => scope_of_key(*tree, key, true),
    }
}

pub(crate) fn scope_of_key(tree: Tree, key: &[u8], delete: bool) -> Scope {
    match tree {
        // Quotas are read from the index on every check, never cached.
        Tree::Meta | Tree::Uploads | Tree::Audit | Tree::LinksByBlob | Tree::RefsByBlob | Tree::Quotas => {
            Scope::Nothing
        }
        // A new blob record makes nothing cached wrong; a forgotten one may.
        Tree::Blobs if !delete => Scope::Nothing,
        // A blob quarantined or healed may be cached as servable (or not) in any repository.
        Tree::Blobs | Tree::RepoNames | Tree::Quarantine => Scope::Global,
        Tree::Users
        | Tree::Teams
        | Tree::Members
        | Tree::Readers
        | Tree::ProjectExternals
        | Tree::Acls
        | Tree::Tokens
        | Tree::Trash
        | Tree::Entities => Scope::Access,
        Tree::Repos
        | Tree::Links
        | Tree::Manifests
        | Tree::Tags
        | Tree::TagsByDigest
        | Tree::TagsByTime
        | Tree::TagCounts
        | Tree::History
        | Tree::Referrers => match key.get(..8).and_then(|k| <[u8; 8]>::try_from(k).ok()) {
            Some(id) => Scope::Repo(u64::from_be_bytes(id)),
            // Not a layout this catalog writes; be safe.
            None => Scope::Global,
        },
    }
}

pub struct Scopes {
    global: AtomicU64,
    access: AtomicU64,
    repos: Box<[AtomicU64]>,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            global: AtomicU64::new(0),
            access: AtomicU64::new(0),
            repos: (0..REPO_STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Scopes {
    fn stripe(&self, repo: u64) -> &AtomicU64 {
        &self.repos[(repo % REPO_STRIPES as u64) as usize]
    }

    /// The generation of the access model (and of repository names).
    pub fn access(&self) -> u64 {
        self.global.load(Ordering::Acquire) + self.access.load(Ordering::Acquire)
    }

    /// The generation of one repository's records (and of repository names).
    pub fn repo(&self, id: u64) -> u64 {
        self.global() + self.repo_only(id)
    }

    /// The global part alone: read it before looking a repository up by name, then add
    /// [`Scopes::repo_only`] of the id found, so a name re-pointed in between is noticed.
    pub fn global(&self) -> u64 {
        self.global.load(Ordering::Acquire)
    }

    /// The repository's own part of [`Scopes::repo`].
    pub fn repo_only(&self, id: u64) -> u64 {
        self.stripe(id).load(Ordering::Acquire)
    }

    /// Bumps every scope the ops fall in, once each.
    #[cfg(test)]
    fn bump<'a>(&self, ops: impl IntoIterator<Item = &'a Op>) {
        self.bump_touched(&Touched::of(ops.into_iter().map(scope_of)));
    }

    pub(crate) fn bump_touched(&self, t: &Touched) {
        if t.global {
            self.global.fetch_add(1, Ordering::AcqRel);
        }
        if t.access {
            self.access.fetch_add(1, Ordering::AcqRel);
        }
        for s in &t.stripes {
            self.repos[*s].fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The scopes a batch falls in, each once.
#[derive(Default)]
pub(crate) struct Touched {
    global: bool,
    access: bool,
    stripes: Vec<usize>,
}

impl Touched {
    pub(crate) fn of(scopes: impl IntoIterator<Item = Scope>) -> Touched {
        let mut t = Touched::default();
        for sc in scopes {
            match sc {
                Scope::Nothing => {}
                Scope::Global => t.global = true,
                Scope::Access => t.access = true,
                Scope::Repo(id) => {
                    let s = (id % REPO_STRIPES as u64) as usize;
                    // Batches name one repository or a few (a purge, a mount), so a linear
                    // check is enough.
                    if !t.stripes.contains(&s) {
                        t.stripes.push(s);
                    }
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(tree: Tree, key: Vec<u8>) -> Op {
        Op::Put { tree, key, value: Vec::new() }
    }

    #[test]
    fn a_write_bumps_only_its_own_scopes() {
        let s = Scopes::default();
        let (a, b, acc) = (s.repo(1), s.repo(2), s.access());
        s.bump(&[put(Tree::Tags, 1u64.to_be_bytes().to_vec()), put(Tree::Uploads, b"u".to_vec())]);
        assert_ne!(s.repo(1), a, "repository 1 was written");
        assert_eq!(s.repo(2), b, "repository 2 was not");
        assert_eq!(s.access(), acc, "nor was the access model");
        s.bump(&[put(Tree::Blobs, vec![1; 33])]);
        assert_eq!((s.repo(2), s.access()), (b, acc), "a new blob record changes nothing cached");
        s.bump(&[put(Tree::Acls, 5u64.to_be_bytes().to_vec())]);
        assert_eq!(s.repo(2), b);
        assert_ne!(s.access(), acc);
        let (b, acc) = (s.repo(2), s.access());
        s.bump(&[Op::Delete { tree: Tree::RepoNames, key: b"p/r".to_vec() }]);
        assert!(s.repo(2) > b && s.access() > acc, "a name's meaning changed: everything is stale");
        let b = s.repo(2);
        s.bump(&[Op::Delete { tree: Tree::Blobs, key: vec![1; 33] }]);
        assert!(s.repo(2) > b, "a forgotten blob may be cached anywhere");
        assert_eq!(s.repo(1 + REPO_STRIPES as u64), s.repo(1), "ids a stripe apart share a counter");
    }
}
