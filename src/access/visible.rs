//! Listings in the caller's visibility, from the readers index (`Tree::Readers` in the engine):
//! which entities' own sharing settings give a principal READ. A caller who sees few
//! repositories makes `_catalog` read those, never every repository name. This module builds
//! the principal keys and answers "which repository names may this caller see"; the rules
//! themselves stay in [`super::rules`], and every candidate is re-checked with them.

use super::rules::{AccessType, Acl, Caller, Principal};
use super::store::{parse_entity_id, syn, Store};

/// The key of a principal in the readers index. Prefix-free: a one-byte kind, then a name ended
/// by a 0 byte (user names never hold one) or a fixed-width team id.
pub fn principal_key(p: &Principal) -> Vec<u8> {
    match p {
        Principal::Public => vec![b'P'],
        Principal::Authenticated => vec![b'A'],
        Principal::User(name) => {
            let mut k = vec![b'U'];
            k.extend_from_slice(name.as_bytes());
            k.push(0);
            k
        }
        Principal::Team(id) => {
            let mut k = vec![b'T'];
            k.extend_from_slice(&id.to_be_bytes());
            k
        }
    }
}

/// The principals an ACL gives READ, as index keys, each once.
pub fn readers_of(acl: &Acl) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for e in &acl.entries {
        let k = principal_key(&e.principal);
        if e.access.contains(&AccessType::Read) && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every principal a caller acts as.
fn principals(caller: &Caller) -> Vec<Principal> {
    let mut out = vec![Principal::Public];
    if let Some(u) = &caller.user {
        out.push(Principal::Authenticated);
        out.push(Principal::User(u.name.clone()));
        out.extend(u.teams.iter().map(|t| Principal::Team(*t)));
    }
    out
}

impl Store {
    /// The entities whose own sharing settings give one of the caller's principals READ (a
    /// superset of nothing the rules would refuse: callers re-check trash and scopes).
    pub fn readable_entities(&self, caller: &Caller) -> stowage_engine::Result<std::collections::BTreeSet<u64>> {
        let mut ids = std::collections::BTreeSet::new();
        for p in principals(caller) {
            ids.extend(self.cat().readable_by(&principal_key(&p))?);
        }
        Ok(ids)
    }

    /// Names of the managed repositories a non-admin caller may READ, sorted, after `last`, at
    /// most `limit`:
    /// read from the entities whose sharing settings name one of the caller's principals (the
    /// projects, with their inheriting repositories, and repositories with settings of their
    /// own), each re-checked against the rules (trash, local settings). Administrators see
    /// everything and are listed from the names themselves.
    pub fn visible_repo_names<E: From<stowage_engine::Error>>(
        &self,
        caller: &Caller,
        last: Option<&str>,
        limit: usize,
        visible: impl Fn(&str) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Vec<String>, E> {
        let ids = self.readable_entities(caller)?;
        let mut names = std::collections::BTreeSet::new();
        for id in ids {
            if let Some(r) = self.cat().repo(id)? {
                // A repository with settings of its own.
                names.insert(r.name);
                continue;
            }
            if self.project(id)?.is_none() {
                continue;
            }
            // A project: its repositories that inherit (the others are listed by their own
            // settings, if those let the caller in).
            let prefix = format!("{}/", syn(id));
            let start = match last {
                Some(l) if l >= prefix.as_str() => l.to_string(),
                _ => syn(id),
            };
            let mut after = Some(start);
            loop {
                let page = self.cat().list_repo_names(after.as_deref(), 256)?;
                let Some((final_name, _)) = page.last() else { break };
                after = Some(final_name.clone());
                let mut done = false;
                for (name, rid) in page {
                    if !name.starts_with(&prefix) {
                        done = true;
                        break;
                    }
                    if self.acl(rid)?.is_none() {
                        names.insert(name);
                    }
                }
                if done {
                    break;
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            if last.is_some_and(|l| name.as_str() <= l) {
                continue;
            }
            // The project part must name a project (parse_entity_id), and the rules have the
            // last word (trash of the repository or its project).
            if name.split('/').next().and_then(parse_entity_id).is_some() && visible(&name)? {
                out.push(name);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
