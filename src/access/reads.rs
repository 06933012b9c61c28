//! What a cached authorization decision read from the access model, named as the writes that
//! change it name it (`stowage_engine::index::scopes::AccessKey`), so that the decision cache is
//! invalidated by exactly those writes and by nothing else. The rules (`rules::decide`) read:
//!
//! - the caller: the user record (password hash, credential generation, disabled, certified,
//!   admin) and the user's team memberships (`caller_for`): [`AccessKey::User`];
//! - the personal access token the credential rests on (revoked, expiry, scopes, owner):
//!   [`AccessKey::Token`];
//! - the repository name, which says whether the repository exists and which id it has:
//!   [`AccessKey::RepoName`];
//! - the repository and its project by id: entity record, sharing settings, trash record:
//!   [`AccessKey::Entity`] of each.
//!
//! Team records themselves (names, managers) are not read by a decision; membership is, through
//! the membership index, whose entries name the user. Whatever else the access model holds moves
//! only its own keys, and a write of a key layout the engine cannot attribute moves every stamp.

use crate::auth::Authenticated;
use stowage_engine::index::scopes::{AccessKey, Scopes};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionReads {
    user: Option<String>,
    token: Option<String>,
    /// The repository name asked for (a decision on it read whether, and as which id, it exists).
    name: Option<String>,
    /// The project named by the first component, when it is an entity id.
    project: Option<u64>,
    /// The repository's id, when it existed.
    repo: Option<u64>,
}

impl DecisionReads {
    /// What deciding for `who` on repository `repo` (name and id if it existed; None for actions
    /// on no repository) read.
    pub fn of(who: &Authenticated, repo: Option<(&crate::oci::RepositoryName, Option<u64>)>) -> DecisionReads {
        DecisionReads {
            user: who.caller.user.as_ref().map(|u| u.name.clone()),
            token: who.token.clone(),
            name: repo.map(|(n, _)| n.as_str().to_string()),
            project: repo.and_then(|(n, _)| super::store::parse_entity_id(n.project())),
            repo: repo.and_then(|(_, id)| id),
        }
    }

    /// The generation of everything read: it moves with any write to it (see
    /// `Scopes::access_keys` for the fence to take around the read).
    pub fn stamp(&self, scopes: &Scopes) -> u64 {
        let keys = [
            self.user.as_deref().map(AccessKey::User),
            self.token.as_deref().map(AccessKey::Token),
            self.name.as_deref().map(AccessKey::RepoName),
            self.project.map(AccessKey::Entity),
            self.repo.map(AccessKey::Entity),
        ];
        scopes.access_keys(keys.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::access::rules::{Caller, CallerUser};
    use crate::auth::CredentialKind;
    use std::sync::Arc;
    use stowage_engine::index::records::Rec;
    use stowage_engine::index::{mem::MemIndex, Tree};
    use stowage_engine::Catalog;

    fn who(user: Option<&str>, token: Option<&str>) -> Authenticated {
        let user = user.map(|n| CallerUser {
            name: n.to_string(),
            certified: true,
            admin: false,
            teams: vec![],
            via_token: token.is_some(),
        });
        let kind = if user.is_some() { CredentialKind::Password } else { CredentialKind::Anonymous };
        Authenticated {
            caller: Caller { user, ..Caller::anonymous() },
            kind,
            claims: None,
            token: token.map(str::to_string),
        }
    }

    /// Each write, and whether it is to something a decision by alice with token `tok1` on
    /// `syn1/app` (id 9 in project 1) read.
    type Write = Box<dyn Fn(&Catalog)>;

    fn writes() -> Vec<(&'static str, Write, bool)> {
        vec![
            ("alice's record", Box::new(|c| c.put_record(Rec::User("alice"), &1).unwrap()), true),
            ("alice's token", Box::new(|c| c.put_record(Rec::Token("tok1"), &1).unwrap()), true),
            ("the project's settings", Box::new(|c| c.put_record(Rec::Acl(1), &1).unwrap()), true),
            ("the project's record", Box::new(|c| c.put_record(Rec::Entity(1), &1).unwrap()), true),
            ("the repository's trash", Box::new(|c| c.put_record(Rec::Trash(9), &1).unwrap()), true),
            ("the repository's settings", Box::new(|c| c.remove_record(Rec::Acl(9)).unwrap()), true),
            ("the name", Box::new(|c| c.put(Tree::RepoNames, b"syn1/app", &9u64).unwrap()), true),
            ("bob's record", Box::new(|c| c.put_record(Rec::User("bob"), &1).unwrap()), false),
            ("another token", Box::new(|c| c.put_record(Rec::Token("tok2"), &1).unwrap()), false),
            ("another project's settings", Box::new(|c| c.put_record(Rec::Acl(2), &1).unwrap()), false),
            ("another repository's trash", Box::new(|c| c.put_record(Rec::Trash(10), &1).unwrap()), false),
            ("another name", Box::new(|c| c.put(Tree::RepoNames, b"syn1/other", &10u64).unwrap()), false),
        ]
    }

    #[test]
    fn a_decision_goes_stale_with_a_write_to_what_it_read_and_with_nothing_else() {
        let cat = Catalog::new(Arc::new(MemIndex::new()));
        let name: crate::oci::RepositoryName = "syn1/app".parse().unwrap();
        let alice = DecisionReads::of(&who(Some("alice"), Some("tok1")), Some((&name, Some(9))));
        for (what, write, read) in writes() {
            let before = alice.stamp(cat.scopes());
            write(&cat);
            assert_eq!(alice.stamp(cat.scopes()) != before, read, "{what}");
        }
        // Anonymous, on a repository that did not exist: the user and token play no part, the
        // name does (the repository made later has an id and settings of its own).
        let anonymous = DecisionReads::of(&who(None, None), Some((&name, None)));
        for (what, write, read) in writes() {
            let before = anonymous.stamp(cat.scopes());
            write(&cat);
            let expected = read
                && !matches!(
                    what,
                    "alice's record" | "alice's token" | "the repository's trash" | "the repository's settings"
                );
            assert_eq!(anonymous.stamp(cat.scopes()) != before, expected, "anonymous: {what}");
        }
        // No repository (the catalog, /v2/): only the credential.
        let catalog = DecisionReads::of(&who(Some("alice"), None), None);
        for (what, write, _) in writes() {
            let before = catalog.stamp(cat.scopes());
            write(&cat);
            assert_eq!(catalog.stamp(cat.scopes()) != before, what == "alice's record", "catalog: {what}");
        }
    }
}
