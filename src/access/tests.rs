//! The rules table of DESIGN.md section 2, row by row, as data: each row builds a `Caller` and
//! `RepoFacts` directly and states the exact outcome (`Ok` or the `Denial` message the user sees).
//! No store, no I/O: these are the rules alone.

#![allow(clippy::unwrap_used)]

use super::rules::{
    can, decide, effective, level, AccessType, Acl, AclEntry, Caller, CallerUser, Denial, Principal, RegistryAction,
    RepoFacts, Scope,
};
use std::collections::BTreeSet;

use RegistryAction::{Delete, Pull, Push};

const ALL_SCOPES: [Scope; 3] = [Scope::View, Scope::Download, Scope::Modify];

fn user(name: &str) -> Principal {
    Principal::User(name.to_string())
}

/// An ACL from (principal, level name) pairs.
fn acl(entries: &[(Principal, &str)]) -> Acl {
    Acl { entries: entries.iter().map(|(p, l)| AclEntry { principal: p.clone(), access: level(l).unwrap() }).collect() }
}

/// An ACL entry with an exact set of access types (not a named level).
fn acl_exact(p: Principal, access: &[AccessType]) -> Acl {
    Acl { entries: vec![AclEntry { principal: p, access: access.iter().copied().collect() }] }
}

fn scopes(s: &[Scope]) -> BTreeSet<Scope> {
    s.iter().copied().collect()
}

/// A user who logged in with a password (every scope).
fn login(name: &str, certified: bool) -> Caller {
    Caller {
        user: Some(CallerUser { name: name.into(), certified, admin: false, teams: vec![], via_token: false }),
        scopes: scopes(&ALL_SCOPES),
    }
}

/// A user who logged in with a personal access token carrying `s`.
fn via_token(name: &str, certified: bool, s: &[Scope]) -> Caller {
    Caller {
        user: Some(CallerUser { name: name.into(), certified, admin: false, teams: vec![], via_token: true }),
        scopes: scopes(s),
    }
}

fn in_teams(mut c: Caller, teams: &[u64]) -> Caller {
    if let Some(u) = c.user.as_mut() {
        u.teams = teams.to_vec();
    }
    c
}

/// An administrator: not certified and on no ACL, to show that neither matters.
fn admin() -> Caller {
    Caller {
        user: Some(CallerUser { name: "root".into(), certified: false, admin: true, teams: vec![], via_token: false }),
        scopes: scopes(&ALL_SCOPES),
    }
}

/// Repository `syn3/app`, existing, inheriting the project's ACL.
fn repo(project_acl: Acl) -> RepoFacts {
    RepoFacts {
        name: "syn3/app".into(),
        project_id: "syn3".into(),
        project_exists: true,
        project_acl,
        repo_exists: true,
        repo_acl: None,
        trashed: None,
    }
}

/// `syn3/app` does not exist yet: a push would create it in project syn3.
fn new_repo(project_acl: Acl) -> RepoFacts {
    RepoFacts { repo_exists: false, ..repo(project_acl) }
}

/// `syn3/app` with local sharing settings.
fn local(project_acl: Acl, repo_acl: Acl) -> RepoFacts {
    RepoFacts { repo_acl: Some(repo_acl), ..repo(project_acl) }
}

fn trashed(f: RepoFacts, what: &str) -> RepoFacts {
    RepoFacts { trashed: Some(what.into()), ..f }
}

/// `syn999/app`: the first component names no project (missing, or a repository's id).
fn no_project() -> RepoFacts {
    RepoFacts {
        name: "syn999/app".into(),
        project_id: "syn999".into(),
        project_exists: false,
        project_acl: Acl::default(),
        repo_exists: false,
        repo_acl: None,
        trashed: None,
    }
}

const NO_DOWNLOAD: &str = "bob has no download permission on syn3";
const NO_EDIT: &str = "bob has no edit permission on syn3";
const NO_DELETE: &str = "bob has no delete permission on syn3";
const NOT_CERTIFIED: &str = "user carol is not certified; only certified users may push (ask an administrator)";
const IN_TRASH: &str = "syn3/app is in the trash; restore it to use it again";
const PROJECT_IN_TRASH: &str = "project syn3 is in the trash; restore it to use it again";
const NO_PROJECT: &str = "project syn999 does not exist; create it first or check the project id in the image name";
const LACKS_DOWNLOAD: &str =
    "the access token used to log in lacks the download scope; create a token with download or log in with a password";
const LACKS_MODIFY: &str =
    "the access token used to log in lacks the modify scope; create a token with modify or log in with a password";
const HIDDEN_PULL: &str =
    "syn3/app does not exist, or bob may not pull it; check the project id in the image name or ask the project's owner to share it with you";
const HIDDEN_PUSH: &str =
    "syn3/app does not exist, or bob may not push to it; check the project id in the image name or ask the project's owner to share it with you";
const HIDDEN_PUSH_CAROL: &str =
    "syn3/app does not exist, or carol may not push to it; check the project id in the image name or ask the project's owner to share it with you";
const HIDDEN_MISSING_PULL: &str =
    "syn999/app does not exist, or bob may not pull it; check the project id in the image name or ask the project's owner to share it with you";
const HIDDEN_MISSING_PUSH: &str =
    "syn999/app does not exist, or bob may not push to it; check the project id in the image name or ask the project's owner to share it with you";
const HIDDEN_MISSING_DELETE: &str =
    "syn999/app does not exist, or bob may not delete from it; check the project id in the image name or ask the project's owner to share it with you";
const LOGIN_PULL: &str = "authentication required to pull syn3/app; run docker login";
const LOGIN_PUSH: &str = "authentication required to push to syn3/app; run docker login";
const LOGIN_DELETE: &str = "authentication required to delete from syn3/app; run docker login";

struct Row {
    what: &'static str,
    caller: Caller,
    action: RegistryAction,
    facts: RepoFacts,
    /// None: allowed; Some(message): refused with exactly this message.
    denied: Option<&'static str>,
}

fn row(
    what: &'static str,
    caller: Caller,
    action: RegistryAction,
    facts: RepoFacts,
    denied: Option<&'static str>,
) -> Row {
    Row { what, caller, action, facts, denied }
}

fn check(rows: Vec<Row>) {
    let mut failures = Vec::new();
    for r in &rows {
        let got = decide(&r.caller, r.action, &r.facts).map_err(|d| d.to_string());
        let want = match r.denied {
            None => Ok(()),
            Some(m) => Err(m.to_string()),
        };
        if got != want {
            failures.push(format!("{} ({:?}): got {got:?}, want {want:?}", r.what, r.action));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn pull_needs_download_on_the_repository() {
    let bob = || login("bob", false);
    check(vec![
        row("download level", bob(), Pull, repo(acl(&[(user("bob"), "download")])), None),
        row("edit includes download", bob(), Pull, repo(acl(&[(user("bob"), "edit")])), None),
        row("view is not enough", bob(), Pull, repo(acl(&[(user("bob"), "view")])), Some(NO_DOWNLOAD)),
        row("not on the ACL", bob(), Pull, repo(acl(&[(user("alice"), "admin")])), Some(HIDDEN_PULL)),
        row("empty ACL", bob(), Pull, repo(Acl::default()), Some(HIDDEN_PULL)),
        row(
            "bare DOWNLOAD without READ still pulls",
            bob(),
            Pull,
            repo(acl_exact(user("bob"), &[AccessType::Download])),
            None,
        ),
        row(
            "pull needs no certification",
            login("carol", false),
            Pull,
            repo(acl(&[(user("carol"), "download")])),
            None,
        ),
        row("pull of a repository not pushed yet", bob(), Pull, new_repo(acl(&[(user("bob"), "download")])), None),
    ]);
}

#[test]
fn principals_user_team_authenticated_public() {
    let bob = || login("bob", true);
    check(vec![
        row("team member", in_teams(bob(), &[7]), Pull, repo(acl(&[(Principal::Team(7), "download")])), None),
        row(
            "other team",
            in_teams(bob(), &[8]),
            Pull,
            repo(acl(&[(Principal::Team(7), "download")])),
            Some(HIDDEN_PULL),
        ),
        row("no team", bob(), Pull, repo(acl(&[(Principal::Team(7), "download")])), Some(HIDDEN_PULL)),
        row("team grants push", in_teams(bob(), &[3, 7]), Push, repo(acl(&[(Principal::Team(7), "edit")])), None),
        row("authenticated pull", bob(), Pull, repo(acl(&[(Principal::Authenticated, "download")])), None),
        row("authenticated push", bob(), Push, repo(acl(&[(Principal::Authenticated, "edit")])), None),
        row("public pull, logged in", bob(), Pull, repo(acl(&[(Principal::Public, "download")])), None),
        row(
            "anonymous pull via public DOWNLOAD",
            Caller::anonymous(),
            Pull,
            repo(acl(&[(Principal::Public, "download")])),
            None,
        ),
        row(
            "anonymous, public view only",
            Caller::anonymous(),
            Pull,
            repo(acl(&[(Principal::Public, "view")])),
            Some(LOGIN_PULL),
        ),
        row(
            "anonymous is not authenticated",
            Caller::anonymous(),
            Pull,
            repo(acl(&[(Principal::Authenticated, "download")])),
            Some(LOGIN_PULL),
        ),
        row("anonymous, no ACL", Caller::anonymous(), Pull, repo(Acl::default()), Some(LOGIN_PULL)),
        row(
            "anonymous is not a user named anonymous",
            Caller::anonymous(),
            Pull,
            repo(acl(&[(user("anonymous"), "download")])),
            Some(LOGIN_PULL),
        ),
        row(
            "anonymous never pushes, even with public edit",
            Caller::anonymous(),
            Push,
            repo(acl(&[(Principal::Public, "edit")])),
            Some(LOGIN_PUSH),
        ),
        row(
            "anonymous never deletes, even with public admin",
            Caller::anonymous(),
            Delete,
            repo(acl(&[(Principal::Public, "admin")])),
            Some(LOGIN_DELETE),
        ),
        row(
            "entries add up",
            bob(),
            Push,
            repo(Acl {
                entries: vec![
                    AclEntry { principal: Principal::Public, access: level("download").unwrap() },
                    AclEntry { principal: user("bob"), access: [AccessType::Update].into_iter().collect() },
                ],
            }),
            None,
        ),
    ]);
}

#[test]
fn push_to_an_existing_repository_needs_certified_and_update() {
    let bob = || login("bob", true);
    let carol = || login("carol", false);
    check(vec![
        row("edit", bob(), Push, repo(acl(&[(user("bob"), "edit")])), None),
        row("download only", bob(), Push, repo(acl(&[(user("bob"), "download")])), Some(NO_EDIT)),
        row("not on the ACL", bob(), Push, repo(Acl::default()), Some(HIDDEN_PUSH)),
        row("UPDATE without CREATE is enough", bob(), Push, repo(acl_exact(user("bob"), &[AccessType::Update])), None),
        row(
            "CREATE without UPDATE is not",
            bob(),
            Push,
            repo(acl_exact(user("bob"), &[AccessType::Create, AccessType::Download])),
            Some(NO_EDIT),
        ),
        row("not certified", carol(), Push, repo(acl(&[(user("carol"), "admin")])), Some(NOT_CERTIFIED)),
        row("not certified, no permission either", carol(), Push, repo(Acl::default()), Some(HIDDEN_PUSH_CAROL)),
    ]);
}

#[test]
fn push_creating_a_repository_needs_create_on_an_existing_project() {
    let bob = || login("bob", true);
    check(vec![
        row("edit on the project", bob(), Push, new_repo(acl(&[(user("bob"), "edit")])), None),
        row("CREATE alone", bob(), Push, new_repo(acl_exact(user("bob"), &[AccessType::Create])), None),
        row(
            "UPDATE without CREATE",
            bob(),
            Push,
            new_repo(acl_exact(user("bob"), &[AccessType::Read, AccessType::Download, AccessType::Update])),
            Some(NO_EDIT),
        ),
        row("download on the project", bob(), Push, new_repo(acl(&[(user("bob"), "download")])), Some(NO_EDIT)),
        row(
            "not certified",
            login("carol", false),
            Push,
            new_repo(acl(&[(user("carol"), "edit")])),
            Some(NOT_CERTIFIED),
        ),
        row("missing project", bob(), Push, no_project(), Some(HIDDEN_MISSING_PUSH)),
        row("missing project, admin", admin(), Push, no_project(), Some(NO_PROJECT)),
        row("missing project, pull", bob(), Pull, no_project(), Some(HIDDEN_MISSING_PULL)),
        row("missing project, delete", bob(), Delete, no_project(), Some(HIDDEN_MISSING_DELETE)),
        row(
            "missing project, anonymous is asked to log in",
            Caller::anonymous(),
            Pull,
            no_project(),
            Some("authentication required to pull syn999/app; run docker login"),
        ),
    ]);
}

#[test]
fn delete_needs_delete_on_an_existing_repository() {
    let bob = || login("bob", true);
    check(vec![
        row("edit_delete", bob(), Delete, repo(acl(&[(user("bob"), "edit_delete")])), None),
        row("edit is not enough", bob(), Delete, repo(acl(&[(user("bob"), "edit")])), Some(NO_DELETE)),
        row("DELETE alone", bob(), Delete, repo(acl_exact(user("bob"), &[AccessType::Delete])), None),
        row("needs no certification", login("dave", false), Delete, repo(acl(&[(user("dave"), "edit_delete")])), None),
        row(
            "repository missing",
            bob(),
            Delete,
            new_repo(acl(&[(user("bob"), "admin")])),
            Some("repository syn3/app does not exist"),
        ),
    ]);
}

#[test]
fn the_trash_refuses_everything_even_admins() {
    let bob = || login("bob", true);
    let full = || acl(&[(user("bob"), "admin")]);
    let mut rows = Vec::new();
    for action in [Pull, Push, Delete] {
        rows.push(row("repository in the trash", bob(), action, trashed(repo(full()), "syn3/app"), Some(IN_TRASH)));
        rows.push(row(
            "repository in the trash, admin",
            admin(),
            action,
            trashed(repo(full()), "syn3/app"),
            Some(IN_TRASH),
        ));
        rows.push(row(
            "project in the trash",
            bob(),
            action,
            trashed(repo(full()), "project syn3"),
            Some(PROJECT_IN_TRASH),
        ));
        rows.push(row(
            "project in the trash, new repository",
            admin(),
            action,
            trashed(new_repo(full()), "project syn3"),
            Some(PROJECT_IN_TRASH),
        ));
        rows.push(row(
            "in the trash, anonymous without access is only asked to log in",
            Caller::anonymous(),
            action,
            trashed(repo(Acl::default()), "syn3/app"),
            Some(match action {
                Pull => LOGIN_PULL,
                Push => LOGIN_PUSH,
                Delete => LOGIN_DELETE,
            }),
        ));
        rows.push(row(
            "in the trash, anonymous with public access",
            Caller::anonymous(),
            action,
            trashed(repo(acl(&[(Principal::Public, "admin")])), "syn3/app"),
            Some(IN_TRASH),
        ));
    }
    check(rows);
}

#[test]
fn admins_bypass_permissions_and_certification() {
    let empty = || repo(Acl::default());
    check(vec![
        row("pull with no ACL", admin(), Pull, empty(), None),
        row("push with no ACL, not certified", admin(), Push, empty(), None),
        row("create with no ACL", admin(), Push, new_repo(Acl::default()), None),
        row("delete with no ACL", admin(), Delete, empty(), None),
        row("local ACL without the admin", admin(), Push, local(Acl::default(), acl(&[(user("bob"), "view")])), None),
        row(
            "delete of a missing repository",
            admin(),
            Delete,
            new_repo(Acl::default()),
            Some("repository syn3/app does not exist"),
        ),
    ]);
}

#[test]
fn a_local_acl_replaces_the_projects() {
    let bob = || login("bob", true);
    let project_edit = || acl(&[(user("bob"), "edit")]);
    check(vec![
        row("inherits the project's ACL", bob(), Push, repo(project_edit()), None),
        row(
            "local ACL grants what the project does not",
            bob(),
            Pull,
            local(Acl::default(), acl(&[(user("bob"), "download")])),
            None,
        ),
        row(
            "local ACL without bob hides the project's grant",
            bob(),
            Pull,
            local(project_edit(), acl(&[(user("carol"), "admin")])),
            Some(HIDDEN_PULL),
        ),
        row(
            "local view replaces project edit",
            bob(),
            Push,
            local(project_edit(), acl(&[(user("bob"), "view")])),
            Some("bob has no edit permission on syn3/app"),
        ),
        row(
            "an empty local ACL shares with nobody",
            bob(),
            Pull,
            local(acl(&[(Principal::Public, "admin")]), Acl::default()),
            Some(HIDDEN_PULL),
        ),
        row(
            "local edit_delete where the project has only view",
            bob(),
            Delete,
            local(acl(&[(user("bob"), "view")]), acl(&[(user("bob"), "edit_delete")])),
            None,
        ),
        row(
            "local public download for anonymous",
            Caller::anonymous(),
            Pull,
            local(Acl::default(), acl(&[(Principal::Public, "download")])),
            None,
        ),
        row(
            "local ACL takes public away from anonymous",
            Caller::anonymous(),
            Pull,
            local(acl(&[(Principal::Public, "download")]), acl(&[(user("bob"), "download")])),
            Some(LOGIN_PULL),
        ),
        row(
            // Only an existing repository can have sharing settings; a new one is the project's.
            "a new repository uses the project's ACL",
            bob(),
            Push,
            RepoFacts { repo_exists: false, ..local(project_edit(), Acl::default()) },
            None,
        ),
    ]);
}

#[test]
fn token_scopes_limit_what_a_login_may_do() {
    let all = || acl(&[(user("bob"), "admin")]);
    use Scope::{Download as D, Modify as M, View as V};
    check(vec![
        row("password login: pull", login("bob", true), Pull, repo(all()), None),
        row("password login: push", login("bob", true), Push, repo(all()), None),
        row("password login: delete", login("bob", true), Delete, repo(all()), None),
        row("download token: pull", via_token("bob", true, &[D]), Pull, repo(all()), None),
        row("download token: push", via_token("bob", true, &[D]), Push, repo(all()), Some(LACKS_MODIFY)),
        row("download token: create", via_token("bob", true, &[D]), Push, new_repo(all()), Some(LACKS_MODIFY)),
        row("download token: delete", via_token("bob", true, &[D]), Delete, repo(all()), Some(LACKS_MODIFY)),
        row("view token: pull", via_token("bob", true, &[V]), Pull, repo(all()), Some(LACKS_DOWNLOAD)),
        row("modify token: pull", via_token("bob", true, &[M]), Pull, repo(all()), Some(LACKS_DOWNLOAD)),
        row(
            "modify token: push needs download too",
            via_token("bob", true, &[M]),
            Push,
            repo(all()),
            Some(LACKS_DOWNLOAD),
        ),
        row("modify token: delete", via_token("bob", true, &[M]), Delete, repo(all()), None),
        row("download+modify token: push", via_token("bob", true, &[D, M]), Push, repo(all()), None),
        row("download+modify token: create", via_token("bob", true, &[D, M]), Push, new_repo(all()), None),
        row("view+modify token: push", via_token("bob", true, &[V, M]), Push, repo(all()), Some(LACKS_DOWNLOAD)),
        row(
            "scopes do not add permissions",
            via_token("bob", true, &[V, D, M]),
            Push,
            repo(acl(&[(user("bob"), "download")])),
            Some(NO_EDIT),
        ),
        row(
            "an uncertified token user is refused for certification after scopes",
            via_token("carol", false, &[D, M]),
            Push,
            repo(acl(&[(user("carol"), "edit")])),
            Some(NOT_CERTIFIED),
        ),
        row(
            "scopes also bind administrators",
            Caller { scopes: scopes(&[D]), ..admin() },
            Push,
            repo(Acl::default()),
            Some(LACKS_MODIFY),
        ),
    ]);
}

#[test]
fn only_a_login_request_wants_a_challenge() {
    let anon = decide(&Caller::anonymous(), Pull, &repo(Acl::default())).unwrap_err();
    assert!(anon.wants_login());
    assert_eq!(anon, Denial::LoginRequired { action: "pull", name: "syn3/app".into() });
    let known = decide(&login("bob", true), Pull, &repo(Acl::default())).unwrap_err();
    assert!(!known.wants_login());
    assert_eq!(known, Denial::NotVisible { user: "bob".into(), action: "pull", name: "syn3/app".into() });
    for d in [
        Denial::ProjectMissing("syn9".into()),
        Denial::InTrash("syn3/app".into()),
        Denial::NotCertified { user: "carol".into() },
        Denial::RepoMissing("syn3/app".into()),
        Denial::TokenScope { needed: "modify" },
    ] {
        assert!(!d.wants_login(), "{d}");
    }
}

#[test]
fn names_of_scopes_and_actions_are_the_wire_names() {
    // The token spec's action names, and the scope names of access tokens and the REST API.
    assert_eq!([Pull.as_str(), Push.as_str(), Delete.as_str()], ["pull", "push", "delete"]);
    assert_eq!(
        [Scope::View.as_str(), Scope::Download.as_str(), Scope::Modify.as_str()],
        ["view", "download", "modify"]
    );
    for s in [Scope::View, Scope::Download, Scope::Modify] {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "serde and as_str agree");
    }
}

#[test]
fn named_levels() {
    use AccessType::*;
    let set = |v: &[AccessType]| v.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(level("view"), Some(set(&[Read])));
    assert_eq!(level("download"), Some(set(&[Read, Download])));
    assert_eq!(level("edit"), Some(set(&[Read, Download, Create, Update])));
    assert_eq!(level("edit_delete"), Some(set(&[Read, Download, Create, Update, Delete])));
    assert_eq!(level("admin"), Some(set(&AccessType::ALL)));
    assert_eq!(level("Admin"), None);
    assert_eq!(level("owner"), None);
    assert_eq!(level(""), None);
}

#[test]
fn effective_is_the_union_of_matching_entries() {
    use AccessType::*;
    let a = Acl {
        entries: vec![
            AclEntry { principal: Principal::Public, access: [Read].into_iter().collect() },
            AclEntry { principal: Principal::Authenticated, access: [Download].into_iter().collect() },
            AclEntry { principal: Principal::Team(4), access: [Create].into_iter().collect() },
            AclEntry { principal: user("bob"), access: [Update].into_iter().collect() },
            AclEntry { principal: user("carol"), access: [Delete].into_iter().collect() },
        ],
    };
    let set = |v: &[AccessType]| v.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(effective(&Caller::anonymous(), &a), set(&[Read]));
    assert_eq!(effective(&login("dave", false), &a), set(&[Read, Download]));
    assert_eq!(effective(&login("bob", false), &a), set(&[Read, Download, Update]));
    assert_eq!(effective(&in_teams(login("bob", false), &[4]), &a), set(&[Read, Download, Create, Update]));
    assert_eq!(effective(&admin(), &Acl::default()), set(&AccessType::ALL));
}

#[test]
fn can_checks_permission_and_scope() {
    use AccessType::*;
    let a = acl(&[(user("bob"), "edit")]);
    assert!(can(&login("bob", false), &a, Read));
    assert!(can(&login("bob", false), &a, Update));
    assert!(!can(&login("bob", false), &a, Delete));
    assert!(!can(&login("carol", false), &a, Read));
    assert!(can(&via_token("bob", false, &[Scope::View]), &a, Read));
    assert!(!can(&via_token("bob", false, &[Scope::View]), &a, Download));
    assert!(!can(&via_token("bob", false, &[Scope::View]), &a, Update));
    assert!(can(&via_token("bob", false, &[Scope::Download]), &a, Download));
    assert!(!can(&via_token("bob", false, &[Scope::Download]), &a, Create));
    assert!(can(&via_token("bob", false, &[Scope::Modify]), &a, Update));
    assert!(can(&Caller::anonymous(), &acl(&[(Principal::Public, "view")]), Read));
    assert!(!can(&Caller::anonymous(), &acl(&[(Principal::Authenticated, "view")]), Read));
    assert!(!can(&Caller { scopes: BTreeSet::new(), ..login("bob", false) }, &a, Read));
    assert!(can(&admin(), &Acl::default(), ChangePermissions));
}

#[test]
fn principals_parse_and_print() {
    for s in ["user:bob", "team:12", "authenticated", "public"] {
        let p: Principal = s.parse().unwrap();
        assert_eq!(p.to_string(), s);
    }
    assert_eq!("team:12".parse::<Principal>(), Ok(Principal::Team(12)));
    for bad in ["user:", "team:x", "everyone", "", "User:bob"] {
        assert!(bad.parse::<Principal>().is_err(), "{bad:?} parsed");
    }
    let e: AclEntry =
        serde_json::from_str(r#"{"principal":"user:bob","access":["READ","CHANGE_PERMISSIONS"]}"#).unwrap();
    assert_eq!(e.principal, user("bob"));
    assert_eq!(e.access, [AccessType::Read, AccessType::ChangePermissions].into_iter().collect());
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"principal":"user:bob","access":["READ","CHANGE_PERMISSIONS"]}"#
    );
    assert!(serde_json::from_str::<Scope>(r#""download""#).is_ok());
}
