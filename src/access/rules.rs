//! The permission rules of DESIGN.md section 2, as pure functions over plain values: no I/O, so
//! every row of the rules table is a unit test. The store (`access::store`) gathers the facts
//! (caller, ACLs, trash, existence); these functions decide.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The access types of an ACL entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessType {
    Read,
    Download,
    Create,
    Update,
    Delete,
    ChangePermissions,
}

impl AccessType {
    pub const ALL: [AccessType; 6] = [
        AccessType::Read,
        AccessType::Download,
        AccessType::Create,
        AccessType::Update,
        AccessType::Delete,
        AccessType::ChangePermissions,
    ];
}

/// A named permission level, as a set of access types.
pub fn level(name: &str) -> Option<BTreeSet<AccessType>> {
    use AccessType::*;
    let v: &[AccessType] = match name {
        "view" => &[Read],
        "download" => &[Read, Download],
        "edit" => &[Read, Download, Create, Update],
        "edit_delete" => &[Read, Download, Create, Update, Delete],
        "admin" => &AccessType::ALL,
        _ => return None,
    };
    Some(v.iter().copied().collect())
}

/// Who an ACL entry is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    User(String),
    Team(u64),
    /// Any logged-in user.
    Authenticated,
    /// Anyone, logged in or not.
    Public,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(u) => write!(f, "user:{u}"),
            Principal::Team(t) => write!(f, "team:{t}"),
            Principal::Authenticated => f.write_str("authenticated"),
            Principal::Public => f.write_str("public"),
        }
    }
}

impl std::str::FromStr for Principal {
    type Err = String;

    fn from_str(s: &str) -> Result<Principal, String> {
        match s {
            "authenticated" => Ok(Principal::Authenticated),
            "public" => Ok(Principal::Public),
            _ => {
                if let Some(u) = s.strip_prefix("user:").filter(|u| !u.is_empty()) {
                    Ok(Principal::User(u.to_string()))
                } else if let Some(t) = s.strip_prefix("team:") {
                    t.parse().map(Principal::Team).map_err(|_| format!("team id in {s:?} must be a number"))
                } else {
                    Err(format!("principal {s:?} must be user:<name>, team:<id>, authenticated or public"))
                }
            }
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Principal, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub principal: Principal,
    pub access: BTreeSet<AccessType>,
}

/// Sharing settings of a project or repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub entries: Vec<AclEntry>,
}

/// Personal-access-token scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    View,
    Download,
    Modify,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::View => "view",
            Scope::Download => "download",
            Scope::Modify => "modify",
        }
    }
}

/// The caller of a request, as the rules see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// None: anonymous.
    pub user: Option<CallerUser>,
    /// Scopes of the credential: every scope for a password login; a token's own otherwise.
    pub scopes: BTreeSet<Scope>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerUser {
    pub name: String,
    pub certified: bool,
    pub admin: bool,
    pub teams: Vec<u64>,
    /// True when the login used a personal access token (scopes then limit the caller).
    pub via_token: bool,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller { user: None, scopes: [Scope::View, Scope::Download].into_iter().collect() }
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.admin)
    }

    pub fn name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("anonymous")
    }
}

/// What the caller may do on an entity whose benefactor ACL is `acl`.
pub fn effective(caller: &Caller, acl: &Acl) -> BTreeSet<AccessType> {
    if caller.is_admin() {
        return AccessType::ALL.into_iter().collect();
    }
    let mut out = BTreeSet::new();
    for e in &acl.entries {
        let applies = match (&e.principal, &caller.user) {
            (Principal::Public, _) => true,
            (Principal::Authenticated, Some(_)) => true,
            (Principal::User(n), Some(u)) => n == &u.name,
            (Principal::Team(t), Some(u)) => u.teams.contains(t),
            _ => false,
        };
        if applies {
            out.extend(e.access.iter().copied());
        }
    }
    out
}

/// A registry action on a repository, as in DESIGN.md section 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryAction {
    Pull,
    Push,
    Delete,
}

impl RegistryAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryAction::Pull => "pull",
            RegistryAction::Push => "push",
            RegistryAction::Delete => "delete",
        }
    }

    /// The verb of a "log in to ..." message.
    fn verb(self) -> &'static str {
        match self {
            RegistryAction::Pull => "pull",
            RegistryAction::Push => "push to",
            RegistryAction::Delete => "delete from",
        }
    }
}

/// The facts about a repository name that the rules need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoFacts {
    /// `syn123/app`.
    pub name: String,
    /// `syn123`.
    pub project_id: String,
    /// The first path component names an existing project (not a repository, not missing).
    pub project_exists: bool,
    /// The project's ACL.
    pub project_acl: Acl,
    /// The repository exists (None: a push would create it).
    pub repo_exists: bool,
    /// The repository's own ACL ("local sharing settings"), if set.
    pub repo_acl: Option<Acl>,
    /// The repository or its project is in the trash.
    pub trashed: Option<String>,
}

/// Why a request is refused. Messages say which rule failed and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// Anonymous caller where a login would help: answer 401 with a challenge.
    #[error("authentication required to {action} {name}; run docker login")]
    LoginRequired { action: &'static str, name: String },
    /// A logged-in caller who may not READ the repository (or its project): the same answer
    /// whether it exists, is in the trash or never existed, so ids cannot be probed.
    #[error("{name} does not exist, or {user} may not {action} it; check the project id in the image name or ask the project's owner to share it with you")]
    NotVisible { user: String, action: &'static str, name: String },
    /// Only administrators (who may see everything) are told plainly.
    #[error("project {0} does not exist; create it first or check the project id in the image name")]
    ProjectMissing(String),
    #[error("{0} is in the trash; restore it to use it again")]
    InTrash(String),
    #[error("user {user} is not certified; only certified users may push (ask an administrator)")]
    NotCertified { user: String },
    #[error("{user} has no {level} permission on {entity}")]
    NoPermission { user: String, level: &'static str, entity: String },
    #[error("repository {0} does not exist")]
    RepoMissing(String),
    #[error("the access token used to log in lacks the {needed} scope; create a token with {needed} or log in with a password")]
    TokenScope { needed: &'static str },
}

impl Denial {
    /// True when a login (or a fresh token) might change the answer: 401 instead of 403.
    pub fn wants_login(&self) -> bool {
        matches!(self, Denial::LoginRequired { .. })
    }
}

fn need_scope(caller: &Caller, scope: Scope, name: &'static str) -> Result<(), Denial> {
    if caller.scopes.contains(&scope) {
        Ok(())
    } else {
        Err(Denial::TokenScope { needed: name })
    }
}

/// Decides a registry action on a repository (the table of DESIGN.md section 2). The order of
/// checks decides which message a caller sees: existence and trash first (they are facts about
/// the repository, not about the caller), then identity, then scopes and permissions.
pub fn decide(caller: &Caller, action: RegistryAction, f: &RepoFacts) -> Result<(), Denial> {
    let login_required = || Denial::LoginRequired { action: action.verb(), name: f.name.clone() };
    let (acl, entity) = match &f.repo_acl {
        Some(a) if f.repo_exists => (a, f.name.as_str()),
        _ => (&f.project_acl, f.project_id.as_str()),
    };
    if !f.project_exists && caller.is_admin() {
        return Err(Denial::ProjectMissing(f.project_id.clone()));
    }
    let have = if f.project_exists { effective(caller, acl) } else { BTreeSet::new() };
    if have.is_empty() {
        // Whoever has no access at all to the repository learns nothing about whether it (or its project)
        // exists or is in the trash: anonymous callers are asked to log in, others get one
        // answer for all three cases.
        return Err(match &caller.user {
            None => login_required(),
            Some(u) => Denial::NotVisible { user: u.name.clone(), action: action.verb(), name: f.name.clone() },
        });
    }
    if let Some(what) = &f.trashed {
        return Err(Denial::InTrash(what.clone()));
    }
    let user_name = caller.name().to_string();
    let denied = |level: &'static str, ent: &str| -> Denial {
        if caller.user.is_none() {
            login_required()
        } else {
            Denial::NoPermission { user: user_name.clone(), level, entity: ent.to_string() }
        }
    };
    match action {
        RegistryAction::Pull => {
            if !have.contains(&AccessType::Download) {
                return Err(denied("download", entity));
            }
            need_scope(caller, Scope::Download, "download")
        }
        RegistryAction::Push => {
            let Some(u) = &caller.user else {
                return Err(login_required());
            };
            need_scope(caller, Scope::Download, "download")?;
            need_scope(caller, Scope::Modify, "modify")?;
            if !u.certified && !u.admin {
                return Err(Denial::NotCertified { user: u.name.clone() });
            }
            let needed = if f.repo_exists { AccessType::Update } else { AccessType::Create };
            if !have.contains(&needed) {
                return Err(denied("edit", entity));
            }
            Ok(())
        }
        RegistryAction::Delete => {
            if caller.user.is_none() {
                return Err(login_required());
            }
            need_scope(caller, Scope::Modify, "modify")?;
            if !f.repo_exists {
                return Err(Denial::RepoMissing(f.name.clone()));
            }
            if !have.contains(&AccessType::Delete) {
                return Err(denied("delete", entity));
            }
            Ok(())
        }
    }
}

/// May the caller see (READ) an entity with this benefactor ACL? For listings and the REST API.
pub fn can(caller: &Caller, acl: &Acl, access: AccessType) -> bool {
    let needed_scope = match access {
        AccessType::Read => Scope::View,
        AccessType::Download => Scope::Download,
        _ => Scope::Modify,
    };
    let scoped = caller.scopes.contains(&needed_scope) || (needed_scope == Scope::View && !caller.scopes.is_empty());
    scoped && effective(caller, acl).contains(&access)
}
