//! Cached authorization decisions are invalidated by exactly the writes that could change them
//! (issue 11): every revocation path refuses the very next request after a cache hit, with the
//! exact status and error, while writes to other users, tokens, projects and repositories keep
//! the decision hot (counted by `stowage_cache_{hits,misses}_total{cache="authorization"}`).

use crate::api_util::{api, delete, post, put};
use crate::auth_tokens::{certify, registry_token, set_acl};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-1";
const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

/// The authorization cache's (hits, misses), read with a new anonymous registry token, so that
/// the read's own lookup is always one miss.
async fn auth_counts(s: &TestServer) -> (u64, u64) {
    let r = anonymous().get(s.v2("token")).query(&[("service", "stowage")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let r = anonymous().get(format!("{}/metrics", s.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let value = |metric: &str| -> u64 {
        let prefix = format!("{metric}{{cache=\"authorization\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in {text}"));
        line[prefix.len()..].parse().unwrap()
    };
    (value("stowage_cache_hits_total"), value("stowage_cache_misses_total"))
}

/// Sends the request; returns it and whether its authorization came from the cache. The
/// counts read after it adds one miss of its own.
async fn counted(s: &TestServer, rb: reqwest::RequestBuilder) -> (reqwest::Response, bool) {
    let c0 = auth_counts(s).await;
    let r = rb.send().await.unwrap();
    let c1 = auth_counts(s).await;
    let hit = match (c1.0 - c0.0, c1.1 - c0.1) {
        (1, 1) => true,
        (0, 2) => false,
        other => panic!("one lookup expected besides the counts' own miss: {other:?}"),
    };
    (r, hit)
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
}

/// A pull of `syn1/app:v1` (or another repository) with `auth` (None: anonymous).
fn pull(s: &TestServer, name: &str, auth: Option<&str>) -> reqwest::RequestBuilder {
    let rb = anonymous().get(s.v2(&format!("{name}/manifests/v1"))).header("accept", OCI);
    match auth {
        Some(a) => rb.header("authorization", a),
        None => rb,
    }
}

/// Makes `req` twice and asserts both answer `status`, the second from the cache: the decision
/// is hot, so a refusal that follows proves the write invalidated it (entries here live a
/// minute, so nothing ages out in between).
async fn warm(s: &TestServer, req: impl Fn() -> reqwest::RequestBuilder, status: u16) {
    let r = req().send().await.unwrap();
    assert_eq!(r.status(), status, "warming: {}", r.text().await.unwrap_or_default());
    let (r, hit) = counted(s, req()).await;
    assert_eq!(r.status(), status);
    assert!(hit, "the second identical request missed the authorization cache");
}

/// Asserts the response is the Distribution error `code` with exactly `message`.
async fn assert_refused(r: reqwest::Response, status: u16, code: &str, message: &str) {
    assert_eq!(r.status(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], code, "{v}");
    assert_eq!(v["errors"][0]["message"], message, "{v}");
}

const NOT_VISIBLE: &str = "syn1/app does not exist, or alice may not pull it; check the project id in the image name or ask the project's owner to share it with you";
const BAD_CREDENTIALS: &str = "incorrect username or password";
const BAD_TOKEN: &str = "the registry token is invalid or expired; log in again";

/// syn1/app:v1, syn1/other:v1 and syn2/app:v1 pushed by the admin; alice (certified, download on
/// syn1) and bob (certified, download on syn2) exist.
async fn setup() -> TestServer {
    let s = TestServer::start_with(|c| c.decision_max_age = Duration::from_secs(60));
    push_image(&s, "syn1/app", "v1", b"app layer").await;
    push_image(&s, "syn1/other", "v1", b"other layer").await;
    push_image(&s, "syn2/app", "v1", b"syn2 layer").await;
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    crate::api_util::create_user(&s, "bob", BOB_PW).await;
    certify(&s, "alice", true).await;
    certify(&s, "bob", true).await;
    set_acl(&s, "syn1", &[("user:alice", "download")]).await;
    set_acl(&s, "syn2", &[("user:bob", "download")]).await;
    s
}

/// A personal access token of `user`: (id, token).
async fn access_token(s: &TestServer, user: &str, pw: &str) -> (String, String) {
    let (st, v) = post(
        &client_as(user, pw),
        &api(s, "tokens"),
        json!({ "name": "ci", "scopes": ["view", "download", "modify"], "expires_in_days": 7 }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
}

fn ok(st_v: (u16, Value), status: u16) -> Value {
    assert_eq!(st_v.0, status, "{}", st_v.1);
    st_v.1
}

#[tokio::test]
async fn revoking_an_access_token_refuses_its_next_request_in_every_form() {
    let s = setup().await;
    let (id, pat) = access_token(&s, "alice", ALICE_PW).await;
    let jwt = registry_token(&s, &client_as("anyone", &pat), "repository:syn1/app:pull").await;
    let forms = [basic("anyone", &pat), format!("Bearer {pat}"), format!("Bearer {jwt}")];
    for f in &forms {
        warm(&s, || pull(&s, "syn1/app", Some(f)), 200).await;
    }
    ok(delete(&client_as("alice", ALICE_PW), &api(&s, &format!("tokens/{id}"))).await, 204);
    let r = pull(&s, "syn1/app", Some(&forms[0])).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(r#"Bearer realm="{}/v2/token",service="stowage",scope="repository:syn1/app:pull""#, s.url)
    );
    assert_refused(r, 401, "UNAUTHORIZED", BAD_CREDENTIALS).await;
    assert_refused(pull(&s, "syn1/app", Some(&forms[1])).send().await.unwrap(), 401, "UNAUTHORIZED", BAD_CREDENTIALS)
        .await;
    assert_refused(pull(&s, "syn1/app", Some(&forms[2])).send().await.unwrap(), 401, "UNAUTHORIZED", BAD_TOKEN).await;
    // The password still pulls.
    assert_eq!(pull(&s, "syn1/app", Some(&basic("alice", ALICE_PW))).send().await.unwrap().status(), 200);
}

/// Warms alice's password, access-token and registry-token pulls and her catalog; runs `write`;
/// asserts every one of them is refused at once.
async fn every_credential_ends(s: &TestServer, write: impl std::future::Future<Output = ()>) {
    let (_, pat) = access_token(s, "alice", ALICE_PW).await;
    let jwt = registry_token(s, &client_as("alice", ALICE_PW), "repository:syn1/app:pull").await;
    let password = basic("alice", ALICE_PW);
    let (via_pat, via_jwt) = (basic("x", &pat), format!("Bearer {jwt}"));
    let catalog = || anonymous().get(s.v2("_catalog")).header("authorization", &password);
    for a in [&password, &via_pat, &via_jwt] {
        warm(s, || pull(s, "syn1/app", Some(a)), 200).await;
    }
    warm(s, catalog, 200).await;
    write.await;
    assert_refused(pull(s, "syn1/app", Some(&password)).send().await.unwrap(), 401, "UNAUTHORIZED", BAD_CREDENTIALS)
        .await;
    assert_refused(pull(s, "syn1/app", Some(&via_pat)).send().await.unwrap(), 401, "UNAUTHORIZED", BAD_CREDENTIALS)
        .await;
    assert_refused(pull(s, "syn1/app", Some(&via_jwt)).send().await.unwrap(), 401, "UNAUTHORIZED", BAD_TOKEN).await;
    assert_refused(catalog().send().await.unwrap(), 401, "UNAUTHORIZED", BAD_CREDENTIALS).await;
}

#[tokio::test]
async fn a_password_change_refuses_the_next_request_of_every_credential() {
    let s = setup().await;
    let url = api(&s, "users/alice/password");
    every_credential_ends(&s, async {
        let body = json!({ "current_password": ALICE_PW, "new_password": "alice-password-2" });
        ok(put(&client_as("alice", ALICE_PW), &url, body).await, 200);
    })
    .await;
}

#[tokio::test]
async fn disabling_a_user_refuses_the_next_request_of_every_credential() {
    let s = setup().await;
    let url = api(&s, "users/alice/disabled");
    every_credential_ends(&s, async {
        ok(put(&client(), &url, json!({ "disabled": true })).await, 200);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_user_refuses_the_next_request_of_every_credential() {
    let s = setup().await;
    let url = api(&s, "users/alice");
    every_credential_ends(&s, async {
        ok(delete(&client(), &url).await, 204);
    })
    .await;
}

#[tokio::test]
async fn uncertifying_refuses_the_next_push() {
    let s = setup().await;
    set_acl(&s, "syn1", &[("user:alice", "edit")]).await;
    let a = basic("alice", ALICE_PW);
    let start = || anonymous().post(s.v2("syn1/app/blobs/uploads/")).header("authorization", &a);
    warm(&s, start, 202).await;
    certify(&s, "alice", false).await;
    assert_refused(
        start().send().await.unwrap(),
        403,
        "DENIED",
        "user alice is not certified; only certified users may push (ask an administrator)",
    )
    .await;
}

#[tokio::test]
async fn leaving_a_team_refuses_the_next_pull_the_team_allowed() {
    let s = setup().await;
    let team = ok(post(&client(), &api(&s, "teams"), json!({ "name": "readers" })).await, 201);
    let tid = team["id"].as_u64().unwrap();
    ok(put(&client(), &api(&s, &format!("teams/{tid}/members/alice")), json!({})).await, 200);
    set_acl(&s, "syn1", &[(&format!("team:{tid}"), "download")]).await;
    let a = basic("alice", ALICE_PW);
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    ok(delete(&client(), &api(&s, &format!("teams/{tid}/members/alice"))).await, 200);
    assert_refused(pull(&s, "syn1/app", Some(&a)).send().await.unwrap(), 403, "DENIED", NOT_VISIBLE).await;
}

#[tokio::test]
async fn a_project_acl_change_refuses_the_next_pull() {
    let s = setup().await;
    let a = basic("alice", ALICE_PW);
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    set_acl(&s, "syn1", &[("user:bob", "download")]).await;
    assert_refused(pull(&s, "syn1/app", Some(&a)).send().await.unwrap(), 403, "DENIED", NOT_VISIBLE).await;
}

#[tokio::test]
async fn a_project_acl_downgrade_refuses_the_next_push() {
    let s = setup().await;
    set_acl(&s, "syn1", &[("user:alice", "edit")]).await;
    let a = basic("alice", ALICE_PW);
    let start = || anonymous().post(s.v2("syn1/app/blobs/uploads/")).header("authorization", &a);
    warm(&s, start, 202).await;
    set_acl(&s, "syn1", &[("user:alice", "download")]).await;
    assert_refused(start().send().await.unwrap(), 403, "DENIED", "alice has no edit permission on syn1").await;
}

#[tokio::test]
async fn local_sharing_settings_refuse_the_next_pull_when_set_and_when_removed() {
    let s = setup().await;
    let id = crate::auth_tokens::repo_id(&s, "syn1/app").await;
    let a = basic("alice", ALICE_PW);
    // Set on the repository, without alice: refused.
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    set_acl(&s, &id, &[("user:bob", "download")]).await;
    assert_refused(pull(&s, "syn1/app", Some(&a)).send().await.unwrap(), 403, "DENIED", NOT_VISIBLE).await;
    // Alice only on the repository's own settings, then they are removed: the project's apply.
    set_acl(&s, "syn1", &[]).await;
    set_acl(&s, &id, &[("user:alice", "download")]).await;
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    ok(delete(&client(), &api(&s, &format!("entities/{id}/acl"))).await, 204);
    assert_refused(pull(&s, "syn1/app", Some(&a)).send().await.unwrap(), 403, "DENIED", NOT_VISIBLE).await;
}

#[tokio::test]
async fn removing_public_or_authenticated_access_refuses_the_next_pull() {
    let s = setup().await;
    set_acl(&s, "syn1", &[("public", "download"), ("authenticated", "download")]).await;
    warm(&s, || pull(&s, "syn1/app", None), 200).await;
    set_acl(&s, "syn1", &[("authenticated", "download")]).await;
    let r = pull(&s, "syn1/app", None).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(r#"Bearer realm="{}/v2/token",service="stowage",scope="repository:syn1/app:pull""#, s.url)
    );
    assert_refused(r, 401, "UNAUTHORIZED", "authentication required to pull syn1/app; run docker login").await;
    let a = basic("alice", ALICE_PW);
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    set_acl(&s, "syn1", &[]).await;
    assert_refused(pull(&s, "syn1/app", Some(&a)).send().await.unwrap(), 403, "DENIED", NOT_VISIBLE).await;
}

#[tokio::test]
async fn trashing_the_repository_or_its_project_refuses_the_next_pull() {
    let s = setup().await;
    let id = crate::auth_tokens::repo_id(&s, "syn1/app").await;
    let a = basic("alice", ALICE_PW);
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    ok(delete(&client(), &api(&s, &format!("entities/{id}"))).await, 200);
    assert_refused(
        pull(&s, "syn1/app", Some(&a)).send().await.unwrap(),
        403,
        "DENIED",
        "syn1/app is in the trash; restore it to use it again",
    )
    .await;
    ok(post(&client(), &api(&s, &format!("trash/{id}/restore")), json!({})).await, 200);
    warm(&s, || pull(&s, "syn1/app", Some(&a)), 200).await;
    ok(delete(&client(), &api(&s, "entities/syn1")).await, 200);
    assert_refused(
        pull(&s, "syn1/app", Some(&a)).send().await.unwrap(),
        403,
        "DENIED",
        "project syn1 is in the trash; restore it to use it again",
    )
    .await;
}

/// A repository name made: a push allowed by CREATE on the project needs UPDATE once the
/// repository exists, and the upload that made it is the write that must end the decision.
#[tokio::test]
async fn the_push_that_creates_a_repository_ends_the_decisions_made_before_it_existed() {
    let s = setup().await;
    let entries = json!({ "entries": [
        { "principal": "user:admin", "access": ["admin"] },
        { "principal": "user:alice", "access": ["READ", "DOWNLOAD", "CREATE"] },
    ]});
    ok(put(&client(), &api(&s, "entities/syn1/acl"), entries).await, 200);
    let a = basic("alice", ALICE_PW);
    let start = || anonymous().post(s.v2("syn1/fresh/blobs/uploads/")).header("authorization", &a);
    let (r, hit) = counted(&s, start()).await;
    assert_eq!(r.status(), 202, "CREATE on the project allows the first push");
    assert!(!hit);
    let (r, hit) = counted(&s, start()).await;
    assert!(!hit, "the repository made since is a write to what the decision read");
    assert_refused(r, 403, "DENIED", "alice has no edit permission on syn1").await;
}

/// Pulls as alice, makes one unrelated `write`, and asserts whether the next pull was answered
/// from the cache.
async fn stays_hot(s: &TestServer, what: &str, expect_hit: bool, write: impl std::future::Future<Output = ()>) {
    let a = basic("alice", ALICE_PW);
    assert_eq!(pull(s, "syn1/app", Some(&a)).send().await.unwrap().status(), 200);
    write.await;
    let (r, hit) = counted(s, pull(s, "syn1/app", Some(&a))).await;
    assert_eq!(r.status(), 200, "{what}");
    assert_eq!(hit, expect_hit, "{what}: answered from the cache");
}

#[tokio::test]
async fn unrelated_writes_keep_a_decision_hot() {
    let server = setup().await;
    let s = &server;
    // Warm every credential used below (password checks are cached for a minute).
    for (u, p) in [("admin", ADMIN_PASSWORD), ("alice", ALICE_PW), ("bob", BOB_PW)] {
        assert_eq!(client_as(u, p).get(api(s, "tokens")).send().await.unwrap().status(), 200);
    }
    let (bob_token, _) = access_token(s, "bob", BOB_PW).await;
    let other = crate::auth_tokens::repo_id(s, "syn1/other").await;
    let team = ok(post(&client(), &api(s, "teams"), json!({ "name": "ops" })).await, 201);
    let tid = team["id"].as_u64().unwrap();
    let bob = &client_as("bob", BOB_PW);
    let (bob_token, other) = (&bob_token, &other);

    stays_hot(s, "another user's new token", true, async {
        access_token(s, "bob", BOB_PW).await;
    })
    .await;
    stays_hot(s, "another user's token revoked", true, async {
        let (st, v) = delete(bob, &api(s, &format!("tokens/{bob_token}"))).await;
        assert_eq!(st, 204, "{v}");
    })
    .await;
    stays_hot(s, "a new token of alice's own (the request used her password)", true, async {
        access_token(s, "alice", ALICE_PW).await;
    })
    .await;
    stays_hot(s, "another project's sharing settings", true, async {
        set_acl(s, "syn2", &[("user:bob", "edit")]).await;
    })
    .await;
    stays_hot(s, "another repository's own sharing settings in the same project", true, async {
        set_acl(s, other, &[("user:bob", "edit")]).await;
    })
    .await;
    stays_hot(s, "another repository trashed and restored", true, async {
        ok(delete(&client(), &api(s, &format!("entities/{other}"))).await, 200);
        ok(post(&client(), &api(s, &format!("trash/{other}/restore")), json!({})).await, 200);
    })
    .await;
    stays_hot(s, "a user created", true, async {
        crate::api_util::create_user(s, "carol", "carol-password").await;
    })
    .await;
    stays_hot(s, "another user deleted", true, async {
        ok(delete(&client(), &api(s, "users/carol")).await, 204);
    })
    .await;
    stays_hot(s, "another user uncertified and certified", true, async {
        certify(s, "bob", false).await;
        certify(s, "bob", true).await;
    })
    .await;
    stays_hot(s, "another user's team membership", true, async {
        ok(put(&client(), &api(s, &format!("teams/{tid}/members/bob")), json!({})).await, 200);
        ok(delete(&client(), &api(s, &format!("teams/{tid}/members/bob"))).await, 200);
    })
    .await;
    stays_hot(s, "a new team", true, async {
        ok(post(&client(), &api(s, "teams"), json!({ "name": "team2" })).await, 201);
    })
    .await;
    stays_hot(s, "a new repository (a name made)", true, async {
        let d = push_blob(s, "syn1/new", b"new").await;
        assert!(d.starts_with("sha256:"));
    })
    .await;
    stays_hot(s, "a push to the repository itself", true, async {
        push_image(s, "syn1/app", "t2", b"app layer").await;
    })
    .await;
    // Coarse on purpose (see the note): any change to the project's settings, even one for
    // someone else, and any change to alice's memberships, decide again.
    stays_hot(s, "the same project's settings, for someone else", false, async {
        set_acl(s, "syn1", &[("user:alice", "download"), ("user:bob", "edit")]).await;
    })
    .await;
    stays_hot(s, "alice joins a team", false, async {
        ok(put(&client(), &api(s, &format!("teams/{tid}/members/alice")), json!({})).await, 200);
        ok(delete(&client(), &api(s, &format!("teams/{tid}/members/alice"))).await, 200);
    })
    .await;
}
