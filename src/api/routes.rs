//! The REST route table, as data: method, path, what the credential must be, and the OpenAPI
//! operation. The router, the scopes stated in the served OpenAPI document and the credential
//! test table (tests/it/api_credentials.rs) are all built from [`ROUTES`], so no route can exist
//! without its permission row. This module only describes and matches; it never decides on
//! entities (that is `access::rules`) and never touches the index.

use crate::access::rules::Scope;
use crate::auth::CredentialKind;
use http::Method;

/// What the credential of a request must carry for a route, before any per-entity rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: served to anyone.
    Nothing,
    /// A read: the `view` scope.
    View,
    /// A change: the `modify` scope.
    Modify,
    /// An account change: a password login. Access tokens never, whatever their scopes.
    Password,
}

impl Need {
    /// The name used in the OpenAPI document (`x-stowage-credential`) and the README.
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Nothing => "none",
            Need::View => "view",
            Need::Modify => "modify",
            Need::Password => "password",
        }
    }
}

/// Every REST operation; one arm of `App::dispatch` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    GetOpenApi,
    CreateUser,
    ListUsers,
    GetUser,
    CertifyUser,
    SetPassword,
    DisableUser,
    DeleteUser,
    CreateTeam,
    GetTeam,
    AddTeamMember,
    RemoveTeamMember,
    AddTeamManager,
    RemoveTeamManager,
    CreateToken,
    ListTokens,
    RevokeToken,
    CreateProject,
    ListProjects,
    GetProject,
    ProjectRepositories,
    CreateExternalRepository,
    ProjectUsage,
    GetAcl,
    PutAcl,
    DeleteAcl,
    TrashEntity,
    FindRepository,
    GetRepository,
    RepositoryTags,
    RepositoryCommits,
    AddCommit,
    ListTrash,
    RestoreTrash,
    PurgeTrash,
    CollectGarbage,
    ListAudit,
    SetQuota,
    Backup,
    Scrub,
    ListQuarantine,
}

/// One row of the route table.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    /// The OpenAPI path, with `{name}` for a path parameter.
    pub path: &'static str,
    pub op: Op,
    /// The OpenAPI `operationId`.
    pub operation_id: &'static str,
    pub need: Need,
    /// Anonymous callers may reach the handler (which then shows only public things, or, for
    /// `createUser`, allows self-registration when it is on). Otherwise anonymous gets 401.
    pub anonymous: bool,
    /// Only administrators.
    pub admin: bool,
}

const fn r(
    method: &'static str,
    path: &'static str,
    op: Op,
    operation_id: &'static str,
    need: Need,
    anonymous: bool,
    admin: bool,
) -> Route {
    Route { method, path, op, operation_id, need, anonymous, admin }
}

use Need::{Modify, Nothing, Password, View};

/// The REST API. Order does not matter: paths never overlap.
pub const ROUTES: &[Route] = &[
    r("GET", "/api/v1/openapi.json", Op::GetOpenApi, "getOpenApi", Nothing, true, false),
    r("POST", "/api/v1/users", Op::CreateUser, "createUser", Password, true, false),
    r("GET", "/api/v1/users", Op::ListUsers, "listUsers", View, false, true),
    r("GET", "/api/v1/users/{username}", Op::GetUser, "getUser", View, false, false),
    r("DELETE", "/api/v1/users/{username}", Op::DeleteUser, "deleteUser", Password, false, true),
    r("PUT", "/api/v1/users/{username}/certified", Op::CertifyUser, "certifyUser", Password, false, true),
    r("PUT", "/api/v1/users/{username}/password", Op::SetPassword, "setPassword", Password, false, false),
    r("PUT", "/api/v1/users/{username}/disabled", Op::DisableUser, "disableUser", Password, false, true),
    r("POST", "/api/v1/teams", Op::CreateTeam, "createTeam", Modify, false, false),
    r("GET", "/api/v1/teams/{id}", Op::GetTeam, "getTeam", View, false, false),
    r("PUT", "/api/v1/teams/{id}/members/{username}", Op::AddTeamMember, "addTeamMember", Modify, false, false),
    r(
        "DELETE",
        "/api/v1/teams/{id}/members/{username}",
        Op::RemoveTeamMember,
        "removeTeamMember",
        Modify,
        false,
        false,
    ),
    r("PUT", "/api/v1/teams/{id}/managers/{username}", Op::AddTeamManager, "addTeamManager", Modify, false, false),
    r(
        "DELETE",
        "/api/v1/teams/{id}/managers/{username}",
        Op::RemoveTeamManager,
        "removeTeamManager",
        Modify,
        false,
        false,
    ),
    r("POST", "/api/v1/tokens", Op::CreateToken, "createToken", Password, false, false),
    r("GET", "/api/v1/tokens", Op::ListTokens, "listTokens", View, false, false),
    r("DELETE", "/api/v1/tokens/{id}", Op::RevokeToken, "revokeToken", Modify, false, false),
    r("POST", "/api/v1/projects", Op::CreateProject, "createProject", Modify, false, false),
    r("GET", "/api/v1/projects", Op::ListProjects, "listProjects", View, true, false),
    r("GET", "/api/v1/projects/{id}", Op::GetProject, "getProject", View, true, false),
    r(
        "GET",
        "/api/v1/projects/{id}/repositories",
        Op::ProjectRepositories,
        "listProjectRepositories",
        View,
        true,
        false,
    ),
    r(
        "POST",
        "/api/v1/projects/{id}/external-repositories",
        Op::CreateExternalRepository,
        "createExternalRepository",
        Modify,
        false,
        false,
    ),
    r("GET", "/api/v1/projects/{id}/usage", Op::ProjectUsage, "projectUsage", View, true, false),
    r("GET", "/api/v1/entities/{id}/acl", Op::GetAcl, "getAcl", View, true, false),
    r("PUT", "/api/v1/entities/{id}/acl", Op::PutAcl, "putAcl", Modify, false, false),
    r("DELETE", "/api/v1/entities/{id}/acl", Op::DeleteAcl, "deleteAcl", Modify, false, false),
    r("DELETE", "/api/v1/entities/{id}", Op::TrashEntity, "trashEntity", Modify, false, false),
    r("GET", "/api/v1/repositories", Op::FindRepository, "findRepository", View, true, false),
    r("GET", "/api/v1/repositories/{id}", Op::GetRepository, "getRepository", View, true, false),
    r("GET", "/api/v1/repositories/{id}/tags", Op::RepositoryTags, "listTags", View, true, false),
    r("GET", "/api/v1/repositories/{id}/commits", Op::RepositoryCommits, "listCommits", View, true, false),
    r("POST", "/api/v1/repositories/{id}/commits", Op::AddCommit, "addCommit", Modify, false, false),
    r("GET", "/api/v1/trash", Op::ListTrash, "listTrash", View, false, false),
    r("POST", "/api/v1/trash/{id}/restore", Op::RestoreTrash, "restoreEntity", Modify, false, false),
    r("DELETE", "/api/v1/trash/{id}", Op::PurgeTrash, "purgeEntity", Modify, false, false),
    r("POST", "/api/v1/gc", Op::CollectGarbage, "collectGarbage", Modify, false, true),
    r("GET", "/api/v1/audit", Op::ListAudit, "listAudit", View, false, true),
    r("PUT", "/api/v1/projects/{id}/quota", Op::SetQuota, "setProjectQuota", Modify, false, true),
    r("POST", "/api/v1/admin/backup", Op::Backup, "backup", Modify, false, true),
    r("POST", "/api/v1/admin/scrub", Op::Scrub, "scrub", Modify, false, true),
    r("GET", "/api/v1/admin/quarantine", Op::ListQuarantine, "listQuarantine", View, false, true),
];

/// The outcome of matching a request path against the table.
#[derive(Debug)]
pub enum Match {
    /// The route and its path parameters, in order.
    Found(&'static Route, Vec<String>),
    /// The path exists but not with this method: the methods it has (for `Allow`).
    WrongMethod(Vec<&'static str>),
    NotFound,
}

/// Matches decoded path segments (after `/api/v1/`) and a method against [`ROUTES`].
pub fn find(method: &Method, segs: &[String]) -> Match {
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, segs) else { continue };
        if route.method == method.as_str() {
            return Match::Found(route, params);
        }
        allowed.push(route.method);
    }
    if allowed.is_empty() {
        Match::NotFound
    } else {
        Match::WrongMethod(allowed)
    }
}

fn match_path(pattern: &str, segs: &[String]) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.trim_start_matches("/api/v1/").split('/').collect();
    if pat.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segs) {
        if p.starts_with('{') {
            params.push(s.clone());
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

/// Why a credential may not use a route, before any per-entity rule: (status, code, message).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credential where one is needed: 401.
    LoginRequired,
    /// The credential lacks what the route needs: 403 with the reason.
    Lacks(String),
}

/// Checks the credential of a caller against a route: kind, scopes and the admin flag. Pure, so
/// it can be fuzzed and table-tested. `user` is None for anonymous callers.
pub fn check(
    route: &Route,
    kind: CredentialKind,
    scopes: &std::collections::BTreeSet<Scope>,
    admin: bool,
) -> Result<(), Refusal> {
    if route.need == Need::Nothing {
        return Ok(());
    }
    if kind == CredentialKind::Anonymous {
        return if route.anonymous { Ok(()) } else { Err(Refusal::LoginRequired) };
    }
    // Registry tokens never reach this far (the REST API refuses them first); refuse them here
    // too, so this function alone is the whole credential rule.
    if kind == CredentialKind::RegistryToken {
        return Err(Refusal::LoginRequired);
    }
    let scope_missing = |s: &str| {
        Refusal::Lacks(format!(
            "the access token used lacks the {s} scope that {} {} needs; use a token with {s} or a password",
            route.method, route.path
        ))
    };
    match route.need {
        Need::Nothing => {}
        Need::View if !scopes.contains(&Scope::View) => return Err(scope_missing("view")),
        Need::Modify if !scopes.contains(&Scope::Modify) => return Err(scope_missing("modify")),
        Need::Password if kind != CredentialKind::Password => {
            return Err(Refusal::Lacks(format!(
                "{} {} changes an account and needs a password login; access tokens cannot do it",
                route.method, route.path
            )))
        }
        Need::View | Need::Modify | Need::Password => {}
    }
    if route.admin && !admin {
        return Err(Refusal::Lacks(format!("only administrators may use {} {}", route.method, route.path)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::BTreeSet;

    fn segs(p: &str) -> Vec<String> {
        p.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    #[test]
    fn every_route_matches_itself_and_only_itself() {
        for route in ROUTES {
            let concrete = route.path.trim_start_matches("/api/v1/").replace('{', "x").replace('}', "");
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            match find(&method, &segs(&concrete)) {
                Match::Found(found, params) => {
                    assert_eq!(found.operation_id, route.operation_id, "{}", route.path);
                    assert_eq!(params.len(), route.path.matches('{').count());
                }
                other => panic!("{} {} did not match itself: {other:?}", route.method, route.path),
            }
        }
        let ids: BTreeSet<&str> = ROUTES.iter().map(|r| r.operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones_and_unknown_paths_are_not_found() {
        match find(&Method::PATCH, &segs("users/bob")) {
            Match::WrongMethod(m) => assert_eq!(m, vec!["GET", "DELETE"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find(&Method::GET, &segs("users/bob/extra")), Match::NotFound));
        assert!(matches!(find(&Method::GET, &segs("")), Match::NotFound));
    }

    #[test]
    fn the_readme_states_what_every_route_needs() {
        let readme = include_str!("../../README.md");
        for r in ROUTES {
            let need = match r.need {
                Need::Nothing => "none".to_string(),
                Need::Password => "password login".to_string(),
                n => format!("`{}`", n.as_str()),
            };
            let row = format!("| `{} {}` | {need} |", r.method, r.path);
            assert!(readme.contains(&row), "README lacks the row {row}");
            if r.admin {
                let line = readme.lines().find(|l| l.starts_with(&row)).unwrap_or("");
                assert!(line.contains("administrators"), "README: {} {} is for administrators", r.method, r.path);
            }
        }
    }

    #[test]
    fn credential_check_follows_the_table() {
        let all: BTreeSet<Scope> = [Scope::View, Scope::Download, Scope::Modify].into();
        let view: BTreeSet<Scope> = [Scope::View].into();
        let download: BTreeSet<Scope> = [Scope::Download].into();
        let modify: BTreeSet<Scope> = [Scope::Modify].into();
        let route = |id: &str| ROUTES.iter().find(|r| r.operation_id == id).unwrap();
        use CredentialKind::*;
        // The exploit: an admin's view-only token creating users.
        assert!(matches!(check(route("createUser"), AccessToken, &view, true), Err(Refusal::Lacks(_))));
        assert!(matches!(check(route("createUser"), AccessToken, &all, true), Err(Refusal::Lacks(_))));
        assert_eq!(check(route("createUser"), Password, &all, true), Ok(()));
        assert_eq!(check(route("createUser"), Anonymous, &BTreeSet::new(), false), Ok(()), "self-registration");
        assert!(matches!(check(route("listProjects"), AccessToken, &download, false), Err(Refusal::Lacks(_))));
        assert_eq!(check(route("listProjects"), AccessToken, &view, false), Ok(()));
        assert!(matches!(check(route("createProject"), AccessToken, &view, false), Err(Refusal::Lacks(_))));
        assert_eq!(check(route("createProject"), AccessToken, &modify, false), Ok(()));
        assert_eq!(check(route("createProject"), Anonymous, &BTreeSet::new(), false), Err(Refusal::LoginRequired));
        assert!(matches!(check(route("createToken"), AccessToken, &all, false), Err(Refusal::Lacks(_))));
        assert!(matches!(check(route("collectGarbage"), Password, &all, false), Err(Refusal::Lacks(_))));
        assert_eq!(check(route("collectGarbage"), Password, &all, true), Ok(()));
        assert!(matches!(check(route("listAudit"), AccessToken, &modify, true), Err(Refusal::Lacks(_))));
        for r in ROUTES.iter().filter(|r| r.need != Need::Nothing) {
            assert!(check(r, RegistryToken, &all, true).is_err(), "{}: registry tokens never", r.path);
        }
    }
}
