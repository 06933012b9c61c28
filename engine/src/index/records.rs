//! The access model's records (users, teams, projects and external repositories, sharing
//! settings, access tokens, the trash, the audit log) as the daemon names them: by what they
//! are, never by tree or byte key. Which tree holds a record and how its key is built (integers
//! big-endian so they sort; the audit log newest first) is decided here, so the daemon never
//! builds index keys and a second index backend sees the same layout. It stores opaque serde
//! records and decides nothing about them.

use super::catalog::Catalog;
use super::Tree;
use crate::error::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One record of the access model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rec<'a> {
    /// A user, by name.
    User(&'a str),
    /// A team, by numeric id.
    Team(u64),
    /// A project or external repository, by entity id (`syn<N>`'s N).
    Entity(u64),
    /// The local sharing settings of an entity.
    Acl(u64),
    /// A personal access token, by token id.
    Token(&'a str),
    /// The trash record of an entity.
    Trash(u64),
    /// An audit event, by sequence number.
    Audit(u64),
}

/// A kind of record, for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecKind {
    Users,
    Teams,
    Entities,
    Acls,
    Tokens,
    Trash,
    /// Newest first.
    Audit,
}

impl RecKind {
    fn tree(self) -> Tree {
        match self {
            RecKind::Users => Tree::Users,
            RecKind::Teams => Tree::Teams,
            RecKind::Entities => Tree::Entities,
            RecKind::Acls => Tree::Acls,
            RecKind::Tokens => Tree::Tokens,
            RecKind::Trash => Tree::Trash,
            RecKind::Audit => Tree::Audit,
        }
    }
}

impl Rec<'_> {
    fn tree(&self) -> Tree {
        match self {
            Rec::User(_) => Tree::Users,
            Rec::Team(_) => Tree::Teams,
            Rec::Entity(_) => Tree::Entities,
            Rec::Acl(_) => Tree::Acls,
            Rec::Token(_) => Tree::Tokens,
            Rec::Trash(_) => Tree::Trash,
            Rec::Audit(_) => Tree::Audit,
        }
    }

    /// The key: names as bytes, ids big-endian (so they sort numerically), audit sequence
    /// numbers inverted so that a forward scan reads the newest first.
    fn key(&self) -> Vec<u8> {
        match self {
            Rec::User(s) | Rec::Token(s) => s.as_bytes().to_vec(),
            Rec::Team(n) | Rec::Entity(n) | Rec::Acl(n) | Rec::Trash(n) => n.to_be_bytes().to_vec(),
            Rec::Audit(seq) => (u64::MAX - seq).to_be_bytes().to_vec(),
        }
    }
}

/// The numeric id in a big-endian key (0 for a key of another shape, which this layout never
/// writes).
fn id_of(key: &[u8]) -> u64 {
    key.get(..8).and_then(|k| <[u8; 8]>::try_from(k).ok()).map(u64::from_be_bytes).unwrap_or(0)
}

impl Catalog {
    pub fn record<T: DeserializeOwned>(&self, r: Rec<'_>) -> Result<Option<T>> {
        self.get(r.tree(), &r.key())
    }

    /// Writes a record; durable when it returns.
    pub fn put_record<T: Serialize>(&self, r: Rec<'_>, value: &T) -> Result<()> {
        self.put(r.tree(), &r.key(), value)
    }

    /// Writes a record only if there is none; false if there was.
    pub fn insert_record<T: Serialize>(&self, r: Rec<'_>, value: &T) -> Result<bool> {
        self.insert_new(r.tree(), &r.key(), value)
    }

    pub fn remove_record(&self, r: Rec<'_>) -> Result<()> {
        self.remove(r.tree(), &r.key())
    }

    /// Adds the deletion of a record to a batch of [`Catalog::write`].
    pub fn delete_record_into(&self, b: &mut super::Batch, r: Rec<'_>) {
        b.delete(r.tree(), r.key());
    }

    /// Removes several records in one durable batch.
    pub fn remove_records(&self, rs: &[Rec<'_>]) -> Result<()> {
        let mut b = super::Batch::default();
        for r in rs {
            b.delete(r.tree(), r.key());
        }
        self.commit(b)
    }

    /// Every record of a kind, in key order. For administrative listings and rare rewrites, not
    /// for request paths.
    pub fn records<T: DeserializeOwned>(&self, kind: RecKind) -> Result<Vec<T>> {
        Ok(self.scan::<T>(kind.tree(), b"", None, usize::MAX)?.into_iter().map(|(_, v)| v).collect())
    }

    /// Every record of a numerically keyed kind (teams, entities, sharing settings, trash) with
    /// its id.
    pub fn records_by_id<T: DeserializeOwned>(&self, kind: RecKind) -> Result<Vec<(u64, T)>> {
        Ok(self.scan::<T>(kind.tree(), b"", None, usize::MAX)?.into_iter().map(|(k, v)| (id_of(&k), v)).collect())
    }

    /// At most `limit` records of a kind that sort after `after` (for the audit log: that are
    /// older than it).
    pub fn records_after<T: DeserializeOwned>(
        &self,
        kind: RecKind,
        after: Option<Rec<'_>>,
        limit: usize,
    ) -> Result<Vec<T>> {
        let key = after.map(|r| r.key());
        Ok(self.scan::<T>(kind.tree(), b"", key.as_deref(), limit)?.into_iter().map(|(_, v)| v).collect())
    }
}

/// In `meta`: present once `readers` holds the readers of every entity's sharing settings.
const READERS_BUILT: &[u8] = b"index/readers";

/// In `meta`: present once `members` holds every team's members.
const MEMBERS_BUILT: &[u8] = b"index/members";

/// In `meta`: present once `project_externals` lists every external repository.
const PROJECT_EXTERNALS_BUILT: &[u8] = b"index/project_externals";

fn project_external_key(project: u64, id: u64) -> Vec<u8> {
    let mut k = project.to_be_bytes().to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn member_key(user: &str, team: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 10);
    k.push(b'u');
    k.extend_from_slice(user.as_bytes());
    // User names never hold a 0 byte, so `u` ++ name ++ 0 is a prefix of that user's keys only.
    k.push(0);
    k.extend_from_slice(&team.to_be_bytes());
    k
}

fn team_member_key(team: u64, user: &str) -> Vec<u8> {
    let mut k = vec![b't'];
    k.extend_from_slice(&team.to_be_bytes());
    k.extend_from_slice(user.as_bytes());
    k
}

impl Catalog {
    /// Adds a record write to a batch of [`Catalog::write`].
    pub fn put_record_into<T: Serialize>(&self, b: &mut super::Batch, r: Rec<'_>, value: &T) {
        b.put(r.tree(), r.key(), super::codec::encode(value));
    }

    /// Adds to `b` what makes the membership index say that team `team` has exactly `members`
    /// (none: the team is gone). Call it inside [`Catalog::write`], which keeps the members read
    /// here current until the batch applies.
    pub fn set_team_members_into<'a>(
        &self,
        b: &mut super::Batch,
        team: u64,
        members: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let prefix = team_member_key(team, "");
        let mut old = std::collections::BTreeSet::new();
        self.index().for_each_key(Tree::Members, &prefix, &mut |k| {
            old.insert(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
            true
        })?;
        let new: std::collections::BTreeSet<&str> = members.into_iter().collect();
        for gone in old.iter().filter(|u| !new.contains(u.as_str())) {
            b.delete(Tree::Members, member_key(gone, team));
            b.delete(Tree::Members, team_member_key(team, gone));
        }
        for came in new.iter().filter(|u| !old.contains(**u)) {
            b.put(Tree::Members, member_key(came, team), super::codec::seal(b""));
            b.put(Tree::Members, team_member_key(team, came), super::codec::seal(b""));
        }
        Ok(())
    }

    /// The ids of the teams `user` is a member of, from the membership index: reads that user's
    /// entries only.
    pub fn teams_of(&self, user: &str) -> Result<Vec<u64>> {
        let mut prefix = vec![b'u'];
        prefix.extend_from_slice(user.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        self.index().for_each_key(Tree::Members, &prefix, &mut |k| {
            out.push(id_of(&k[prefix.len()..]));
            true
        })?;
        Ok(out)
    }

    /// Adds to `b` what moves entity `entity`'s entries in the readers index from the principals
    /// `old` to `new` (principal keys as the access model builds them; they must be prefix-free,
    /// so one principal's scan never meets another's keys). Call it inside [`Catalog::write`]
    /// with `old` read there.
    pub fn set_readers_into(&self, b: &mut super::Batch, entity: u64, old: &[Vec<u8>], new: &[Vec<u8>]) {
        let key = |p: &[u8]| {
            let mut k = p.to_vec();
            k.extend_from_slice(&entity.to_be_bytes());
            k
        };
        for p in old.iter().filter(|p| !new.contains(p)) {
            b.delete(Tree::Readers, key(p));
        }
        for p in new.iter().filter(|p| !old.contains(p)) {
            b.put(Tree::Readers, key(p), super::codec::seal(b""));
        }
    }

    /// The entities whose own sharing settings give `principal` READ: reads that principal's
    /// entries only.
    pub fn readable_by(&self, principal: &[u8]) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        self.index().for_each_key(Tree::Readers, principal, &mut |k| {
            out.push(id_of(&k[principal.len()..]));
            true
        })?;
        Ok(out)
    }

    /// Builds the readers index for a data directory that predates it, if it was never built:
    /// `acls` gives each entity with sharing settings and the principal keys they give READ.
    pub fn build_readers(&self, acls: impl FnOnce() -> Result<Vec<(u64, Vec<Vec<u8>>)>>) -> Result<bool> {
        if self.index().get(Tree::Meta, READERS_BUILT)?.is_some() {
            return Ok(false);
        }
        for chunk in acls()?.chunks(1_000) {
            self.write(|b| {
                for (id, readers) in chunk {
                    self.set_readers_into(b, *id, &[], readers);
                }
                Ok(())
            })?;
        }
        let mut b = super::Batch::default();
        b.put(Tree::Meta, READERS_BUILT, super::codec::encode(&1u8));
        self.apply_unwaited(b)?;
        Ok(true)
    }

    /// Writes an external repository's entity record and its entry under its project, in one
    /// durable batch.
    pub fn put_project_external<T: Serialize>(&self, project: u64, id: u64, value: &T) -> Result<()> {
        self.write(|b| {
            b.put(Rec::Entity(id).tree(), Rec::Entity(id).key(), super::codec::encode(value));
            b.put(Tree::ProjectExternals, project_external_key(project, id), super::codec::seal(b""));
            Ok(())
        })
    }

    /// Adds the removal of an external repository's entry under its project to a batch.
    pub fn delete_project_external_into(&self, b: &mut super::Batch, project: u64, id: u64) {
        b.delete(Tree::ProjectExternals, project_external_key(project, id));
    }

    /// Ids of the external repositories of `project`, ascending, after `after`, at most `limit`:
    /// reads only those entries.
    pub fn project_externals(&self, project: u64, after: Option<u64>, limit: usize) -> Result<Vec<u64>> {
        let prefix = project.to_be_bytes();
        let after = after.map(|a| project_external_key(project, a));
        Ok(self
            .index()
            .scan_keys(Tree::ProjectExternals, &prefix, after.as_deref(), limit)?
            .into_iter()
            .map(|k| id_of(&k[8..]))
            .collect())
    }

    /// Builds the project-to-external-repositories index for a data directory that predates it,
    /// from `externals` (project id, entity id), if it was never built, in durable batches of
    /// 1,000. Returns whether it built. Run before the first request.
    pub fn build_project_externals(&self, externals: impl FnOnce() -> Result<Vec<(u64, u64)>>) -> Result<bool> {
        if self.index().get(Tree::Meta, PROJECT_EXTERNALS_BUILT)?.is_some() {
            return Ok(false);
        }
        for chunk in externals()?.chunks(1_000) {
            let mut b = super::Batch::default();
            for (project, id) in chunk {
                b.put(Tree::ProjectExternals, project_external_key(*project, *id), super::codec::seal(b""));
            }
            self.commit(b)?;
        }
        // Not waited for, as in `build_tags_by_digest`.
        let mut b = super::Batch::default();
        b.put(Tree::Meta, PROJECT_EXTERNALS_BUILT, super::codec::encode(&1u8));
        self.apply_unwaited(b)?;
        Ok(true)
    }

    /// Builds the membership index for a data directory that predates it, from `teams` (each
    /// team's id and members), if it was never built; one durable batch per team. Returns whether
    /// it built. Run before the first request.
    pub fn build_members(&self, teams: impl FnOnce() -> Result<Vec<(u64, Vec<String>)>>) -> Result<bool> {
        if self.index().get(Tree::Meta, MEMBERS_BUILT)?.is_some() {
            return Ok(false);
        }
        for (id, members) in teams()? {
            self.write(|b| self.set_team_members_into(b, id, members.iter().map(String::as_str)))?;
        }
        // Not waited for, as in `build_tags_by_digest`: what it vouches for is durable already.
        let mut b = super::Batch::default();
        b.put(Tree::Meta, MEMBERS_BUILT, super::codec::encode(&1u8));
        self.apply_unwaited(b)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    #[test]
    fn records_round_trip_and_sort_as_the_layout_says() {
        let cat = Catalog::new(Arc::new(crate::index::mem::MemIndex::new()));
        for id in [3u64, 1, 300, 2] {
            cat.put_record(Rec::Entity(id), &format!("e{id}")).unwrap();
            cat.put_record(Rec::Audit(id), &id).unwrap();
        }
        assert_eq!(cat.record::<String>(Rec::Entity(300)).unwrap().as_deref(), Some("e300"));
        let ids: Vec<u64> = cat.records_by_id::<String>(RecKind::Entities).unwrap().into_iter().map(|x| x.0).collect();
        assert_eq!(ids, [1, 2, 3, 300], "ids sort numerically");
        assert_eq!(cat.records::<u64>(RecKind::Audit).unwrap(), [300, 3, 2, 1], "the audit log reads newest first");
        assert_eq!(cat.records_after::<u64>(RecKind::Audit, Some(Rec::Audit(3)), 10).unwrap(), [2, 1]);
        assert!(cat.insert_record(Rec::User("alice"), &1u8).unwrap());
        assert!(!cat.insert_record(Rec::User("alice"), &2u8).unwrap());
        cat.remove_records(&[Rec::User("alice"), Rec::Entity(1)]).unwrap();
        assert_eq!(cat.record::<u8>(Rec::User("alice")).unwrap(), None);
        assert_eq!(cat.record::<String>(Rec::Entity(1)).unwrap(), None);
    }

    #[test]
    fn purging_an_external_repository_removes_its_commit_history_with_its_records() {
        let cat = Catalog::new(Arc::new(crate::index::mem::MemIndex::new()));
        let d = crate::Digest::of(crate::Algorithm::Sha256, b"m");
        cat.put_record(Rec::Entity(9), &"quay.io/org/tool").unwrap();
        cat.append_commit(9, "v1", &d, "alice").unwrap();
        cat.append_commit(9, "v2", &d, "alice").unwrap();
        assert_eq!(cat.history(9, None, 10).unwrap().len(), 2);
        let had_record = cat
            .write(|b| {
                let r = cat.purge_repo_into(b, 9)?;
                cat.delete_record_into(b, Rec::Entity(9));
                Ok(r)
            })
            .unwrap();
        assert!(!had_record, "an external repository has no repository record");
        assert!(cat.history(9, None, 10).unwrap().is_empty());
        assert_eq!(cat.record::<String>(Rec::Entity(9)).unwrap(), None);
    }
}
