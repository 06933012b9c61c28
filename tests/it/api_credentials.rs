//! Every REST route with every kind of credential (DESIGN.md section 2, "Credentials"). The
//! expected answer of each (route, credential) pair is computed from the route's row in
//! `stowage::api::routes::ROUTES`, and the routes are the table itself, so a route cannot be
//! added without being exercised here. Then the three exploits the credential model closed, as
//! regression tests: a view-only token creating an administrator, registry tokens minting access
//! tokens, and team members changing their own team.

use crate::api_openapi::{check as schema_check, document, resolve, sample_body, Ctx};
use crate::api_util::*;
use crate::common::*;
use serde_json::{json, Value};
use stowage::api::routes::{Need, Op, Route, ROUTES};

/// The 401 of the credential check for an anonymous caller.
const LOGIN_REQUIRED: &str = "log in: use Basic credentials (a password, or an access token) or Bearer <access token>";
const REGISTRY_TOKEN_REFUSED: &str =
    "registry tokens from /v2/token are good only for the registry; use a password or an access token";
const REFRESH_TOKEN_REFUSED: &str = "refresh tokens are accepted only at /v2/token";

/// How a request carries its credential.
#[derive(Clone)]
enum Carrier {
    Basic(String, String),
    Bearer(String),
    Nothing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Password,
    AccessToken,
    RegistryJwt,
    Refresh,
    Anonymous,
}

struct Cred {
    name: String,
    kind: Kind,
    /// Scopes of an access token (a password login has every scope).
    scopes: Vec<&'static str>,
    admin: bool,
    carrier: Carrier,
}

/// What the credential check must do with a (route, credential) pair.
#[derive(Debug)]
enum Expect {
    /// The handler runs.
    Handler,
    /// Refused before the handler: status and a fragment of the message.
    Refused(u16, &'static str),
}

/// The credential rule, restated from the table row (not by calling `routes::check`, which is
/// what is under test).
fn expected(route: &Route, c: &Cred) -> Expect {
    if route.need == Need::Nothing {
        return Expect::Handler;
    }
    match c.kind {
        Kind::RegistryJwt => return Expect::Refused(401, REGISTRY_TOKEN_REFUSED),
        Kind::Refresh => return Expect::Refused(401, REFRESH_TOKEN_REFUSED),
        Kind::Anonymous if route.anonymous => return Expect::Handler,
        Kind::Anonymous => return Expect::Refused(401, LOGIN_REQUIRED),
        Kind::Password | Kind::AccessToken => {}
    }
    let has = |s: &str| c.kind == Kind::Password || c.scopes.contains(&s);
    match route.need {
        Need::View if !has("view") => return Expect::Refused(403, "lacks the view scope"),
        Need::Modify if !has("modify") => return Expect::Refused(403, "lacks the modify scope"),
        Need::Password if c.kind != Kind::Password => return Expect::Refused(403, "needs a password login"),
        _ => {}
    }
    if route.admin && !c.admin {
        return Expect::Refused(403, "only administrators may use");
    }
    Expect::Handler
}

/// Whether an answer is a refusal by the credential check (as opposed to one by the handler's
/// per-entity rules, whose messages differ).
fn is_credential_refusal(status: u16, message: &str) -> bool {
    match status {
        401 => {
            message == LOGIN_REQUIRED || message == REGISTRY_TOKEN_REFUSED || message.starts_with(REFRESH_TOKEN_REFUSED)
        }
        403 => {
            (message.contains("the access token used lacks the") && message.contains("scope that"))
                || message.contains("needs a password login; access tokens cannot do it")
                || message.starts_with("only administrators may use ")
        }
        _ => false,
    }
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

async fn call(c: &Cred, method: &str, url: &str, body: Option<Value>) -> Answer {
    let mut rb = anonymous().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    rb = match &c.carrier {
        Carrier::Basic(u, p) => rb.basic_auth(u, Some(p)),
        Carrier::Bearer(t) => rb.bearer_auth(t),
        Carrier::Nothing => rb,
    };
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let www_authenticate = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e})"))
    };
    Answer { status, www_authenticate, body }
}

/// An access token of `user`: the `stw_...` secret.
async fn access_token(s: &TestServer, c: &reqwest::Client, scopes: &[&str]) -> String {
    let (st, v) = post(c, &api(s, "tokens"), json!({ "name": "creds", "scopes": scopes, "expires_in_days": 1 })).await;
    assert_eq!(st, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// `POST /v2/token` with the password grant: (registry token, refresh token).
async fn oauth_tokens(s: &TestServer, user: &str, secret: &str) -> (String, String) {
    let r = anonymous()
        .post(s.v2("token"))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", secret),
            ("service", "stowage"),
            ("scope", "repository:syn1/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (v["access_token"].as_str().unwrap().to_string(), v["refresh_token"].as_str().unwrap().to_string())
}

/// `GET /v2/token` with Basic `user:secret`: the registry token.
async fn registry_jwt(s: &TestServer, user: &str, secret: &str) -> String {
    let r = anonymous()
        .get(s.v2("token"))
        .basic_auth(user, Some(secret))
        .query(&[("service", "stowage"), ("scope", "repository:syn1/app:pull")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

/// `POST /v2/token` with the refresh grant: a registry token minted from `refresh`.
async fn refreshed_jwt(s: &TestServer, refresh: &str) -> String {
    let r = anonymous()
        .post(s.v2("token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", "stowage"),
            ("scope", "repository:syn1/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

async fn credentials(s: &TestServer) -> Vec<Cred> {
    let admin = client();
    let basic = |u: &str, p: &str| Carrier::Basic(u.to_string(), p.to_string());
    let mut creds = vec![
        Cred {
            name: "admin password".into(),
            kind: Kind::Password,
            scopes: vec![],
            admin: true,
            carrier: basic("admin", ADMIN_PASSWORD),
        },
        Cred {
            name: "plain user password".into(),
            kind: Kind::Password,
            scopes: vec![],
            admin: false,
            carrier: basic("carol", "carol-password"),
        },
    ];
    for scopes in [&["view"][..], &["download"], &["modify"], &["view", "download", "modify"]] {
        let t = access_token(s, &admin, scopes).await;
        let name = scopes.join("+");
        creds.push(Cred {
            name: format!("admin token {name} (Bearer)"),
            kind: Kind::AccessToken,
            scopes: scopes.to_vec(),
            admin: true,
            carrier: Carrier::Bearer(t.clone()),
        });
        creds.push(Cred {
            name: format!("admin token {name} (Basic)"),
            kind: Kind::AccessToken,
            scopes: scopes.to_vec(),
            admin: true,
            carrier: basic("anything", &t),
        });
    }
    let jwt = registry_jwt(s, "admin", ADMIN_PASSWORD).await;
    let (_, refresh) = oauth_tokens(s, "admin", ADMIN_PASSWORD).await;
    creds.push(Cred {
        name: "admin registry JWT".into(),
        kind: Kind::RegistryJwt,
        scopes: vec![],
        admin: true,
        carrier: Carrier::Bearer(jwt),
    });
    creds.push(Cred {
        name: "admin refresh token".into(),
        kind: Kind::Refresh,
        scopes: vec![],
        admin: true,
        carrier: Carrier::Bearer(refresh),
    });
    creds.push(Cred {
        name: "anonymous".into(),
        kind: Kind::Anonymous,
        scopes: vec![],
        admin: false,
        carrier: Carrier::Nothing,
    });
    creds
}

/// An external repository of syn1 (cheap to make): its id.
async fn external_repo(s: &TestServer, name: &str) -> String {
    let (st, v) =
        post(&client(), &api(s, "projects/syn1/external-repositories"), json!({ "repository_name": name })).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// A new team of the admin; `bob` added in `role` ("members" or "managers") when given.
async fn team_with_bob(s: &TestServer, role: Option<&str>) -> String {
    let (st, t) = post(&client(), &api(s, "teams"), json!({ "name": "fresh" })).await;
    assert_eq!(st, 201, "{t}");
    let id = t["id"].to_string();
    if let Some(role) = role {
        let (st, v) = put(&client(), &api(s, &format!("teams/{id}/{role}/bob")), json!(null)).await;
        assert_eq!(st, 200, "{v}");
    }
    id
}

/// The URL of `route` with its placeholders filled. Destructive operations get a target of their
/// own (call `n`), so calls do not depend on each other.
async fn url_for(s: &TestServer, ctx: &Ctx, route: &Route, n: usize) -> String {
    let segs: Vec<&str> = route.path.trim_start_matches("/api/v1/").split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if !seg.starts_with('{') {
            out.push(seg.to_string());
            continue;
        }
        let parent = if i > 0 { segs[i - 1] } else { "" };
        let v = match (parent, *seg, route.op) {
            ("users", "{username}", Op::DeleteUser | Op::SetPassword | Op::DisableUser) => {
                let name = format!("target-{n}");
                create_user(s, &name, "target-password").await;
                name
            }
            ("users" | "members" | "managers", "{username}", _) => "bob".to_string(),
            ("teams", "{id}", Op::RemoveTeamMember) => team_with_bob(s, Some("members")).await,
            ("teams", "{id}", Op::RemoveTeamManager) => team_with_bob(s, Some("managers")).await,
            ("teams", "{id}", _) => ctx.team.clone(),
            ("tokens", "{id}", _) => {
                let (st, v) = post(&client(), &api(s, "tokens"), json!({ "name": "doomed", "scopes": ["view"] })).await;
                assert_eq!(st, 201, "{v}");
                v["id"].as_str().unwrap().to_string()
            }
            ("projects", "{id}", _) => "syn1".to_string(),
            ("entities", "{id}", Op::TrashEntity) => external_repo(s, &format!("example.org/trash/n{n}")).await,
            ("entities", "{id}", Op::DeleteAcl) => {
                let id = external_repo(s, &format!("example.org/acl/n{n}")).await;
                let acl = json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }] });
                let (st, v) = put(&client(), &api(s, &format!("entities/{id}/acl")), acl).await;
                assert_eq!(st, 200, "{v}");
                id
            }
            ("entities", "{id}", _) => ctx.repo.clone(),
            ("repositories", "{id}", Op::AddCommit) => ctx.external.clone(),
            ("repositories", "{id}", _) => ctx.repo.clone(),
            ("trash", "{id}", _) => {
                let id = external_repo(s, &format!("example.org/trashed/n{n}")).await;
                let (st, v) = delete(&client(), &api(s, &format!("entities/{id}"))).await;
                assert_eq!(st, 200, "{v}");
                id
            }
            (p, x, _) => panic!("no value for {x} after /{p}/ in {}: add one to api_credentials.rs", route.path),
        };
        out.push(v);
    }
    let mut url = api(s, &out.join("/"));
    if route.op == Op::FindRepository {
        url.push_str("?name=syn1/app");
    }
    url
}

/// The request body for call `n` of `route`: the sample of api_openapi.rs, made unique where a
/// repeat would conflict, and really disabling (a fresh user) where the sample is harmless.
fn body_for(doc: &Value, route: &Route, ctx: &Ctx, n: usize) -> Option<Value> {
    let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
    let schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()?;
    let mut b = sample_body(schema.rsplit('/').next().unwrap(), ctx);
    match route.op {
        Op::CreateUser => b["username"] = json!(format!("new-user-{n}")),
        Op::DisableUser => b["disabled"] = json!(true),
        _ => {}
    }
    Some(b)
}

#[tokio::test]
async fn every_route_with_every_kind_of_credential() {
    let s = TestServer::start();
    let doc = document(&s).await;
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let repo = repo_id(&s, "syn1/app").await;
    create_user(&s, "bob", "bob-password").await;
    create_user(&s, "carol", "carol-password").await;
    let team = team_with_bob(&s, Some("members")).await;
    let external = external_repo(&s, "docker.io/library/busybox").await;
    let ctx = Ctx { team, repo, external, backup_dest: tempfile::tempdir().unwrap() };
    let creds = credentials(&s).await;

    let mut failures = Vec::new();
    let mut n = 0;
    let mut calls = 0;
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{} undocumented", route.path));
        let success: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{} {}: one success status", route.method, route.path);
        for c in &creds {
            n += 1;
            let url = url_for(&s, &ctx, route, n).await;
            let body = body_for(&doc, route, &ctx, n);
            let a = call(c, route.method, &url, body).await;
            calls += 1;
            let what = format!("{} {url} with {}", route.method, c.name);
            let message = a.body["error"]["message"].as_str().unwrap_or("").to_string();
            if a.status >= 500 {
                failures.push(format!("{what}: {} {}", a.status, a.body));
                continue;
            }
            if !responses.contains_key(&a.status.to_string()) {
                failures.push(format!("{what}: status {} is not documented: {}", a.status, a.body));
            }
            if a.status == 401 && a.www_authenticate.as_deref() != Some("Basic realm=\"stowage\"") {
                failures.push(format!("{what}: 401 without the Basic challenge"));
            }
            match expected(route, c) {
                Expect::Refused(status, fragment) => {
                    let code = if status == 401 { "unauthorized" } else { "forbidden" };
                    if a.status != status || a.body["error"]["code"] != code || !message.contains(fragment) {
                        failures
                            .push(format!("{what}: want {status} {code} \"{fragment}\", got {} {}", a.status, a.body));
                    }
                }
                Expect::Handler if c.admin || route.need == Need::Nothing => {
                    // Valid sample inputs with an administrator's credential: the documented success.
                    if a.status.to_string() != *success[0] {
                        failures.push(format!("{what}: want {}, got {} {}", success[0], a.status, a.body));
                        continue;
                    }
                    let r = resolve(&doc, &responses[success[0].as_str()]);
                    if r["content"]["application/json"]["schema"].is_object() {
                        let mut errs = Vec::new();
                        schema_check(&doc, &r["content"]["application/json"]["schema"], &a.body, "body", &mut errs);
                        failures.extend(errs.into_iter().map(|e| format!("{what}: {e}")));
                    }
                }
                Expect::Handler => {
                    if is_credential_refusal(a.status, &message) {
                        failures.push(format!("{what}: refused by the credential check: {} {}", a.status, a.body));
                    }
                }
            }
        }
    }
    assert_eq!(calls, ROUTES.len() * creds.len());
    assert!(failures.is_empty(), "{} of {calls} calls failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_restated_rule_refuses_what_the_table_says() {
    // A check of the helper itself: each refusal kind occurs, so the big table test cannot pass
    // by expecting the handler everywhere.
    let all = |kind, admin| Cred { name: String::new(), kind, scopes: vec![], admin, carrier: Carrier::Nothing };
    let by_id = |id: &str| ROUTES.iter().find(|r| r.operation_id == id).unwrap();
    assert!(matches!(expected(by_id("getOpenApi"), &all(Kind::RegistryJwt, true)), Expect::Handler));
    assert!(matches!(expected(by_id("listProjects"), &all(Kind::RegistryJwt, true)), Expect::Refused(401, _)));
    assert!(matches!(expected(by_id("listProjects"), &all(Kind::Anonymous, false)), Expect::Handler));
    assert!(matches!(expected(by_id("createTeam"), &all(Kind::Anonymous, false)), Expect::Refused(401, _)));
    assert!(matches!(expected(by_id("listUsers"), &all(Kind::Password, false)), Expect::Refused(403, _)));
    let view = Cred { scopes: vec!["view"], ..all(Kind::AccessToken, true) };
    assert!(matches!(expected(by_id("createTeam"), &view), Expect::Refused(403, "lacks the modify scope")));
    assert!(matches!(expected(by_id("createToken"), &view), Expect::Refused(403, "needs a password login")));
}

#[tokio::test]
async fn a_view_only_token_of_an_admin_cannot_create_an_administrator() {
    let s = TestServer::start();
    let token = access_token(&s, &client(), &["view"]).await;
    for (how, c) in [("Basic", client_as("x", &token)), ("Bearer", bearer(&token))] {
        let (st, v) = post(
            &c,
            &api(&s, "users"),
            json!({ "username": "mallory", "password": "mallory-password", "admin": true }),
        )
        .await;
        assert_eq!(st, 403, "{how}: {v}");
        assert_error(&v, "forbidden");
        assert!(v["error"]["message"].as_str().unwrap().contains("needs a password login"), "{how}: {v}");
    }
    // Nobody called mallory exists, and the token cannot make an admin by another road either.
    let (st, v) = get(&client(), &api(&s, "users/mallory")).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) =
        put(&bearer(&token), &api(&s, "users/admin/password"), json!({ "new_password": "taken-over!!" })).await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = get(&client(), &api(&s, "users")).await;
    assert_eq!(st, 200, "the admin's password still works");
}

/// A client sending `Authorization: Bearer <token>`.
fn bearer(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

#[tokio::test]
async fn registry_tokens_cannot_mint_access_tokens() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let download = access_token(&s, &client(), &["download"]).await;
    let (st, before) = get(&client(), &api(&s, "tokens")).await;
    assert_eq!(st, 200);
    let (_, refresh) = oauth_tokens(&s, "admin", ADMIN_PASSWORD).await;
    let jwts = [
        ("JWT from a download-only access token", registry_jwt(&s, "anything", &download).await),
        ("JWT from the admin's password", registry_jwt(&s, "admin", ADMIN_PASSWORD).await),
        ("JWT minted from a refresh token", refreshed_jwt(&s, &refresh).await),
    ];
    for (what, jwt) in &jwts {
        // Each is a working registry credential...
        let r = anonymous().get(s.v2("syn1/app/tags/list")).bearer_auth(jwt).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what} pulls");
        // ...and no REST credential at all.
        let body = json!({ "name": "stolen", "scopes": ["view", "download", "modify"], "expires_in_days": 366 });
        for (st, v) in [post(&bearer(jwt), &api(&s, "tokens"), body).await, get(&bearer(jwt), &api(&s, "tokens")).await]
        {
            assert_eq!(st, 401, "{what}: {v}");
            assert_error(&v, "unauthorized");
            assert_eq!(v["error"]["message"], REGISTRY_TOKEN_REFUSED, "{what}");
        }
    }
    let (st, v) = get(&bearer(&refresh), &api(&s, "tokens")).await;
    assert_eq!(st, 401, "the refresh token itself: {v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with(REFRESH_TOKEN_REFUSED), "{v}");
    let (st, after) = get(&client(), &api(&s, "tokens")).await;
    assert_eq!(st, 200);
    assert_eq!(after, before, "no access token was minted");
}

#[tokio::test]
async fn only_managers_and_admins_change_a_team() {
    let s = TestServer::start();
    for u in ["dave", "erin", "frank"] {
        create_user(&s, u, &format!("{u}-password")).await;
    }
    let dave = client_as("dave", "dave-password");
    let erin = client_as("erin", "erin-password");
    let (st, t) = post(&dave, &api(&s, "teams"), json!({ "name": "builders" })).await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["managers"], json!(["dave"]), "the creator is the first manager");
    let team = |rest: &str| api(&s, &format!("teams/{}/{rest}", t["id"]));
    let (st, v) = put(&dave, &team("members/erin"), json!(null)).await;
    assert_eq!(st, 200, "the creator adds a member: {v}");

    // A plain member can neither add nor remove anyone, herself included, nor promote herself.
    for (m, path) in
        [("PUT", "members/frank"), ("DELETE", "members/dave"), ("DELETE", "members/erin"), ("PUT", "managers/erin")]
    {
        let (st, v) = send(&erin, m, &team(path), None).await;
        assert_eq!(st, 403, "member erin: {m} {path}: {v}");
        assert_error(&v, "forbidden");
    }
    let (_, v) = get(&dave, &api(&s, &format!("teams/{}", t["id"]))).await;
    assert_eq!(v["members"], json!(["dave", "erin"]), "unchanged: {v}");

    // Admins can; a manager can make another manager, who can then change members.
    let (st, v) = put(&client(), &team("members/frank"), json!(null)).await;
    assert_eq!(st, 200, "admin adds: {v}");
    let (st, v) = delete(&client(), &team("members/frank")).await;
    assert_eq!(st, 200, "admin removes: {v}");
    let (st, v) = put(&dave, &team("managers/erin"), json!(null)).await;
    assert_eq!(st, 200, "manager adds a manager: {v}");
    assert_eq!(v["managers"], json!(["dave", "erin"]));
    let (st, v) = put(&erin, &team("members/frank"), json!(null)).await;
    assert_eq!(st, 200, "the new manager adds: {v}");
    let (st, v) = delete(&erin, &team("members/frank")).await;
    assert_eq!(st, 200, "the new manager removes: {v}");
    let (st, v) = delete(&dave, &team("members/erin")).await;
    assert_eq!(st, 200, "the creator removes a member: {v}");
}
