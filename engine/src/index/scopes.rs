//! Write generations scoped to what a write changed, so a cache of one repository's records is
//! not thrown away by a push to another. Every batch applied through the catalog bumps, before and
//! after it applies, the counters of the scopes its keys fall in:
//!
//! - `global`: the repository names (a repository made or purged changes which id a name means)
//!   and removed blob records (garbage collection);
//! - `access`: every write to the access model (users, teams and memberships, entities, sharing
//!   settings, tokens, the trash). With `global` it says only that SOME such write (or a name)
//!   happened: the fence of [`Scopes::access_keys`]. Each of those writes, and each repository
//!   name, also bumps one of [`ACCESS_STRIPES`] counters chosen by what it names ([`AccessKey`]:
//!   a user, a token, an entity, a repository name, a team), or, for a key of a layout this
//!   module does not know, the `unscoped` counter that every [`Scopes::access_keys`] includes
//!   (fails safe);
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

/// Counters for access-model writes, chosen by a hash of what the write names.
pub const ACCESS_STRIPES: usize = 4096;

/// One thing a value read from the access model depends on, named as the writes that change it
/// name it: an authorization decision depends on the caller's user (record and team
/// memberships), the access token its credential rests on, the repository name (which id it
/// means), the repository and its project (entity record, sharing settings, trash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKey<'a> {
    User(&'a str),
    Token(&'a str),
    Entity(u64),
    RepoName(&'a str),
    Team(u64),
}

impl AccessKey<'_> {
    fn stripe(self) -> usize {
        let id;
        let (tag, bytes): (u8, &[u8]) = match self {
            AccessKey::User(u) => (b'u', u.as_bytes()),
            AccessKey::Token(t) => (b'k', t.as_bytes()),
            AccessKey::RepoName(n) => (b'n', n.as_bytes()),
            AccessKey::Entity(e) => {
                id = e.to_be_bytes();
                (b'e', &id)
            }
            AccessKey::Team(t) => {
                id = t.to_be_bytes();
                (b't', &id)
            }
        };
        // FNV-1a: stable, cheap, no allocation. Colliding keys only share invalidations.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(&tag).chain(bytes) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % ACCESS_STRIPES as u64) as usize
    }
}

/// What a write to `tree` at `key` can change, for cache invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Nothing,
    Global,
    /// An access-model write this module cannot attribute: every access-scoped value is stale.
    Access,
    /// An access-model write to what the stripe's [`AccessKey`]s name.
    AccessKey(usize),
    /// A repository name made or removed: global (which id a name means), and its access stripe.
    RepoName(usize),
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
        Tree::Blobs | Tree::Quarantine => Scope::Global,
        Tree::RepoNames => Scope::RepoName(AccessKey::RepoName(&String::from_utf8_lossy(key)).stripe()),
        Tree::Users
        | Tree::Teams
        | Tree::Members
        | Tree::Readers
        | Tree::ProjectExternals
        | Tree::Acls
        | Tree::Tokens
        | Tree::Trash
        | Tree::Entities => match access_key(tree, key) {
            Some(k) => Scope::AccessKey(k.stripe()),
            None => Scope::Access,
        },
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

/// What an access-model record names, from its key (the layouts of `records.rs`); None for a
/// key of another layout.
fn access_key(tree: Tree, key: &[u8]) -> Option<AccessKey<'_>> {
    let id = |k: &[u8]| <[u8; 8]>::try_from(k).ok().map(u64::from_be_bytes);
    let text = |k| std::str::from_utf8(k).ok();
    match tree {
        Tree::Users => text(key).map(AccessKey::User),
        Tree::Tokens => text(key).map(AccessKey::Token),
        Tree::Entities | Tree::Acls | Tree::Trash => id(key).map(AccessKey::Entity),
        Tree::Teams => id(key).map(AccessKey::Team),
        // principal ++ entity id: the entity's sharing settings changed.
        Tree::Readers => id(key.get(key.len().checked_sub(8)?..)?).map(AccessKey::Entity),
        // `u` ++ user ++ 0 ++ team id, and `t` ++ team id ++ user: the user's teams changed.
        Tree::Members => match key.split_first()? {
            (b'u', rest) => {
                let (user, team) = rest.split_at(rest.len().checked_sub(9)?);
                (team.first() == Some(&0)).then_some(())?;
                text(user).map(AccessKey::User)
            }
            (b't', rest) => text(rest.get(8..)?).map(AccessKey::User),
            _ => None,
        },
        _ => None,
    }
}

pub struct Scopes {
    global: AtomicU64,
    access: AtomicU64,
    /// Access-model writes no [`AccessKey`] could be found for.
    unscoped: AtomicU64,
    repos: Box<[AtomicU64]>,
    access_stripes: Box<[AtomicU64]>,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            global: AtomicU64::new(0),
            access: AtomicU64::new(0),
            unscoped: AtomicU64::new(0),
            repos: (0..REPO_STRIPES).map(|_| AtomicU64::new(0)).collect(),
            access_stripes: (0..ACCESS_STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Scopes {
    fn stripe(&self, repo: u64) -> &AtomicU64 {
        &self.repos[(repo % REPO_STRIPES as u64) as usize]
    }

    /// Moves with every write to the access model (and to repository names, and with `global`).
    pub fn access(&self) -> u64 {
        self.global.load(Ordering::Acquire) + self.access.load(Ordering::Acquire)
    }

    /// The generation of what `keys` name in the access model: it moves with every write to them
    /// (and with writes this module cannot attribute), not with writes to anything else.
    ///
    /// The keys a read depends on are often learned by the read itself (a token names its user, a
    /// name its repository id), so it cannot be taken before the read. Instead: take
    /// [`Scopes::access`] (the fence) before reading, this after, and the fence again; the value
    /// is a valid stamp for what was read only if the fence did not move. Every write bumps the
    /// fence before its stripes, and (again) after it applies, so a write the read may have
    /// missed either moved the fence in between or bumps the stripes after this was taken.
    pub fn access_keys<'a>(&self, keys: impl IntoIterator<Item = AccessKey<'a>>) -> u64 {
        keys.into_iter().fold(self.unscoped.load(Ordering::Acquire), |sum, k| {
            sum.wrapping_add(self.access_stripes[k.stripe()].load(Ordering::Acquire))
        })
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
        // The fence (`global`, `access`) first: see `access_keys`.
        if t.global {
            self.global.fetch_add(1, Ordering::AcqRel);
        }
        if t.access {
            self.access.fetch_add(1, Ordering::AcqRel);
        }
        if t.unscoped {
            self.unscoped.fetch_add(1, Ordering::AcqRel);
        }
        for s in &t.stripes {
            self.repos[*s].fetch_add(1, Ordering::AcqRel);
        }
        for s in &t.access_stripes {
            self.access_stripes[*s].fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The scopes a batch falls in, each once.
#[derive(Default)]
pub(crate) struct Touched {
    global: bool,
    access: bool,
    unscoped: bool,
    stripes: Vec<usize>,
    access_stripes: Vec<usize>,
}

impl Touched {
    pub(crate) fn of(scopes: impl IntoIterator<Item = Scope>) -> Touched {
        let mut t = Touched::default();
        for sc in scopes {
            match sc {
                Scope::Nothing => {}
                Scope::Global => t.global = true,
                Scope::Access => (t.access, t.unscoped) = (true, true),
                Scope::AccessKey(s) => {
                    t.access = true;
                    t.access_stripes.push(s);
                }
                Scope::RepoName(s) => {
                    t.global = true;
                    t.access_stripes.push(s);
                }
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
        // Batches may name thousands (a user's tokens, a rebuilt index): each stripe once.
        t.access_stripes.sort_unstable();
        t.access_stripes.dedup();
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

#[cfg(test)]
mod access_tests {
    use super::*;

    fn put(tree: Tree, key: &[u8]) -> Op {
        Op::Put { tree, key: key.to_vec(), value: Vec::new() }
    }

    fn member_keys(user: &str, team: u64) -> [Vec<u8>; 2] {
        let mut u = vec![b'u'];
        u.extend_from_slice(user.as_bytes());
        u.push(0);
        u.extend_from_slice(&team.to_be_bytes());
        let mut t = vec![b't'];
        t.extend_from_slice(&team.to_be_bytes());
        t.extend_from_slice(user.as_bytes());
        [u, t]
    }

    /// Two keys, checked to be on different stripes, so the assertions below never pass or fail
    /// by a hash collision.
    fn apart<'a>(a: AccessKey<'a>, b: AccessKey<'a>) -> (AccessKey<'a>, AccessKey<'a>) {
        assert_ne!(a.stripe(), b.stripe(), "pick keys on different stripes: {a:?} {b:?}");
        (a, b)
    }

    #[test]
    fn each_access_write_moves_exactly_the_keys_it_names() {
        use AccessKey::*;
        let s = Scopes::default();
        let (alice, bob) = apart(User("alice"), User("bob"));
        let (t1, t2) = apart(Token("tok1"), Token("tok2"));
        let (e5, e6) = apart(Entity(5), Entity(6));
        let (n1, n2) = apart(RepoName("syn1/a"), RepoName("syn1/b"));
        let all = [alice, bob, t1, t2, e5, e6, n1, n2, Team(7)];
        let snapshot = |s: &Scopes| all.map(|k| s.access_keys([k]));
        // Each write, and the keys (indexes into `all`) it must move; every other key stays.
        let ten = 10u64.to_be_bytes();
        let five = 5u64.to_be_bytes();
        let mut readers_key = b"u:alice\0".to_vec();
        readers_key.extend_from_slice(&five);
        let [mu, mt] = member_keys("alice", 3);
        let cases: Vec<(Op, &[usize])> = vec![
            (put(Tree::Users, b"alice"), &[0]),
            (Op::Delete { tree: Tree::Users, key: b"bob".to_vec() }, &[1]),
            (put(Tree::Tokens, b"tok1"), &[2]),
            (put(Tree::Acls, &five), &[4]),
            (put(Tree::Trash, &five), &[4]),
            (Op::Delete { tree: Tree::Entities, key: five.to_vec() }, &[4]),
            (put(Tree::Readers, &readers_key), &[4]),
            (put(Tree::Members, &mu), &[0]),
            (Op::Delete { tree: Tree::Members, key: mt }, &[0]),
            (put(Tree::RepoNames, b"syn1/a"), &[6]),
            (put(Tree::Teams, &7u64.to_be_bytes()), &[8]),
            (put(Tree::Acls, &ten), &[]),
            (put(Tree::Tags, &five), &[]),
            (put(Tree::Repos, &five), &[]),
            (put(Tree::Audit, &five), &[]),
            (put(Tree::Uploads, b"x"), &[]),
            (put(Tree::Quotas, b"syn5"), &[]),
        ];
        for (op, moved) in cases {
            let (before, fence) = (snapshot(&s), s.access());
            s.bump([&op]);
            let after = snapshot(&s);
            for (i, k) in all.iter().enumerate() {
                // Entity 10 may share a stripe with one of the keys watched; that is allowed.
                if matches!(&op, Op::Put { tree: Tree::Acls, key, .. } if key == &ten) && after[i] != before[i] {
                    assert_eq!(Entity(10).stripe(), k.stripe(), "{op:?} moved {k:?}");
                    continue;
                }
                assert_eq!(after[i] != before[i], moved.contains(&i), "{op:?} and {k:?}");
            }
            let access_tree = !matches!(
                &op,
                Op::Put { tree: Tree::Tags | Tree::Repos | Tree::Audit | Tree::Uploads | Tree::Quotas, .. }
            );
            assert_eq!(s.access() != fence, access_tree, "{op:?} moves the fence iff it is an access write");
        }
    }

    #[test]
    fn a_key_of_an_unknown_layout_moves_every_access_key() {
        let s = Scopes::default();
        let keys = [AccessKey::User("alice"), AccessKey::Entity(5)];
        for op in [
            put(Tree::Acls, b"short"),
            put(Tree::Members, b"x-not-a-member-key"),
            put(Tree::Members, b"u\x01\x02"),
            put(Tree::Members, b"uabcdefghij"),
            put(Tree::Readers, b"1234567"),
            put(Tree::Users, &[0xff, 0xfe]),
            put(Tree::Teams, b""),
        ] {
            let (before, fence) = (keys.map(|k| s.access_keys([k])), s.access());
            s.bump([&op]);
            let after = keys.map(|k| s.access_keys([k]));
            assert!(after[0] != before[0] && after[1] != before[1], "{op:?} fails safe");
            assert_ne!(s.access(), fence);
        }
    }

    #[test]
    fn a_stamp_sums_its_keys_and_each_stripe_is_bumped_once_per_batch() {
        let s = Scopes::default();
        let (a, b) = (AccessKey::User("alice"), AccessKey::Token("t"));
        assert_eq!(s.access_keys([a, b]), 0);
        // Named twice in one batch: its stripe moves once.
        s.bump(&[put(Tree::Users, b"alice"), put(Tree::Users, b"alice")]);
        assert_eq!(s.access_keys([a]), 1);
        s.bump(&[put(Tree::Tokens, b"t")]);
        assert_eq!(s.access_keys([a, b]), 2);
        assert_eq!(s.access_keys([]), 0);
    }
}

#[cfg(test)]
mod spread_tests {
    use super::*;
    use std::collections::HashSet;

    /// 1,000 keys over 4,096 stripes: about 885 distinct for a good hash. A weak one (say, OR
    /// instead of XOR in FNV) folds many keys together, which costs needless invalidations.
    #[test]
    fn keys_spread_over_the_stripes() {
        let entities: HashSet<usize> = (0..1000u64).map(|i| AccessKey::Entity(i).stripe()).collect();
        let names: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
        let users: HashSet<usize> = names.iter().map(|n| AccessKey::User(n).stripe()).collect();
        assert!(entities.len() > 820 && users.len() > 820, "{} {}", entities.len(), users.len());
        // The kinds are told apart: the same bytes as a user and as a token differ somewhere.
        let apart = names.iter().filter(|n| AccessKey::User(n).stripe() != AccessKey::Token(n).stripe()).count();
        assert!(apart > 990, "{apart}");
    }
}
