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
