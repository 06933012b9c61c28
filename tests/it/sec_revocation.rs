//! Credentials can be revoked: changing a password, disabling or deleting a user ends every
//! refresh token, registry token, access token and cached password check of that user at the next
//! request; refresh tokens live 7 days by default and work only at `/v2/token`.

use crate::api_util::{api, assert_error, delete, get, post, put};
use crate::auth_tokens::{certify, registry_token, set_acl};
use crate::common::*;
use base64::Engine as _;
use serde_json::{json, Value};

const ALICE_PW: &str = "alice-password-1";

/// Every kind of credential alice can hold: (access token, registry JWT, refresh token).
struct Held {
    pat: String,
    jwt: String,
    refresh: String,
}

async fn hold_everything(s: &TestServer) -> Held {
    let (st, v) = post(
        &client_as("alice", ALICE_PW),
        &api(s, "tokens"),
        json!({ "name": "laptop", "scopes": ["view", "download", "modify"], "expires_in_days": 30 }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let pat = v["token"].as_str().unwrap().to_string();
    let jwt = registry_token(s, &client_as("alice", ALICE_PW), "repository:syn1/app:pull").await;
    let refresh = refresh_token(s, "alice", ALICE_PW).await;
    Held { pat, jwt, refresh }
}

/// The OAuth2 password grant's refresh token.
async fn refresh_token(s: &TestServer, user: &str, pw: &str) -> String {
    let r = anonymous()
        .post(s.v2("token"))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", pw),
            ("service", "stowage"),
            ("client_id", "tests"),
            ("scope", "repository:syn1/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["refresh_token"].as_str().expect("refresh token").to_string()
}

async fn refresh_status(s: &TestServer, refresh: &str) -> u16 {
    anonymous()
        .post(s.v2("token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", "stowage"),
            ("scope", "repository:syn1/app:pull"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn pull_status(s: &TestServer, auth: &str) -> u16 {
    anonymous()
        .get(s.v2("syn1/app/manifests/v1"))
        .header("authorization", auth)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
}

/// The statuses each credential gets now: (password pull, token REST read, token pull, JWT pull,
/// refresh grant).
async fn statuses(s: &TestServer, pw: &str, h: &Held) -> [u16; 5] {
    let pat_rest = anonymous().get(api(s, "tokens")).bearer_auth(&h.pat).send().await.unwrap().status().as_u16();
    [
        pull_status(s, &basic("alice", pw)).await,
        pat_rest,
        pull_status(s, &basic("anything", &h.pat)).await,
        pull_status(s, &format!("Bearer {}", h.jwt)).await,
        refresh_status(s, &h.refresh).await,
    ]
}

async fn setup() -> TestServer {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"app layer").await;
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    certify(&s, "alice", true).await;
    set_acl(&s, "syn1", &[("user:alice", "download")]).await;
    s
}

#[tokio::test]
async fn a_password_change_ends_every_credential_of_the_user() {
    let s = setup().await;
    let h = hold_everything(&s).await;
    assert_eq!(statuses(&s, ALICE_PW, &h).await, [200, 200, 200, 200, 200], "all work before");

    // The current password is needed, and must be right.
    let alice = client_as("alice", ALICE_PW);
    let url = api(&s, "users/alice/password");
    let (st, v) = put(&alice, &url, json!({ "new_password": "alice-password-2" })).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error"]["message"], "give current_password to change your own password");
    let (st, v) = put(&alice, &url, json!({ "current_password": "wrong", "new_password": "alice-password-2" })).await;
    assert_eq!(st, 403, "{v}");
    assert_error(&v, "forbidden");
    // An access token may not change the password, whatever its scopes.
    let r = anonymous()
        .put(&url)
        .bearer_auth(&h.pat)
        .json(&json!({ "current_password": ALICE_PW, "new_password": "alice-password-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nor may another (non-admin) user change it.
    crate::api_util::create_user(&s, "mallory", "mallory-password").await;
    let (st, _) =
        put(&client_as("mallory", "mallory-password"), &url, json!({ "new_password": "mallory-owns-you" })).await;
    assert_eq!(st, 403);
    assert_eq!(statuses(&s, ALICE_PW, &h).await, [200, 200, 200, 200, 200], "refused changes change nothing");

    let (st, v) = put(&alice, &url, json!({ "current_password": ALICE_PW, "new_password": "alice-password-2" })).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(statuses(&s, ALICE_PW, &h).await, [401, 401, 401, 401, 401], "every old credential ends");
    assert_eq!(pull_status(&s, &basic("alice", "alice-password-2")).await, 200, "the new password works");

    // An administrator may set it without the current one; that ends the credentials too.
    let h2 = hold_everything2(&s, "alice-password-2").await;
    let (st, _) = put(&client(), &url, json!({ "new_password": "alice-password-3" })).await;
    assert_eq!(st, 200);
    assert_eq!(pull_status(&s, &format!("Bearer {}", h2)).await, 401);
    assert_eq!(pull_status(&s, &basic("alice", "alice-password-3")).await, 200);
}

/// A registry token of alice with password `pw`.
async fn hold_everything2(s: &TestServer, pw: &str) -> String {
    registry_token(s, &client_as("alice", pw), "repository:syn1/app:pull").await
}

#[tokio::test]
async fn disabling_ends_every_credential_and_enabling_does_not_revive_them() {
    let s = setup().await;
    let h = hold_everything(&s).await;
    let url = api(&s, "users/alice/disabled");
    // Only administrators, with a password login.
    let (st, _) = put(&client_as("alice", ALICE_PW), &url, json!({ "disabled": true })).await;
    assert_eq!(st, 403);
    let (st, v) = put(&client(), &url, json!({ "disabled": true })).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["disabled"], true);
    assert_eq!(statuses(&s, ALICE_PW, &h).await, [401, 401, 401, 401, 401]);
    // docker login fails clearly at the token endpoint.
    let r = client_as("alice", ALICE_PW).get(s.v2("token")).query(&[("service", "stowage")]).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let (st, v) = put(&client(), &url, json!({ "disabled": false })).await;
    assert_eq!(st, 200, "{v}");
    let s2 = statuses(&s, ALICE_PW, &h).await;
    assert_eq!(s2[0], 200, "the password works again");
    assert_eq!(&s2[1..], [401, 401, 401, 401], "old tokens stay dead");
    // The admin cannot lock itself out.
    let (st, _) = put(&client(), &api(&s, "users/admin/disabled"), json!({ "disabled": true })).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn a_deleted_user_leaves_nothing_a_new_user_of_the_same_name_could_use() {
    let s = setup().await;
    let h = hold_everything(&s).await;
    let (st, _) = delete(&client_as("alice", ALICE_PW), &api(&s, "users/alice")).await;
    assert_eq!(st, 403, "only administrators delete users");
    let (st, v) = delete(&client(), &api(&s, "users/alice")).await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(statuses(&s, ALICE_PW, &h).await, [401, 401, 401, 401, 401]);
    let (st, _) = get(&client(), &api(&s, "users/alice")).await;
    assert_eq!(st, 404);

    // Someone else takes the name: alice's old tokens are still dead, and the old sharing entry
    // for user:alice does not carry over.
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    let s2 = statuses(&s, ALICE_PW, &h).await;
    assert_eq!(s2[0], 403, "the new alice has no download permission on syn1");
    assert_eq!(&s2[1..], [401, 401, 401, 401]);
    let (_, acl) = get(&client(), &api(&s, "entities/syn1/acl")).await;
    assert!(!acl.to_string().contains("user:alice"), "{acl}");
}

#[tokio::test]
async fn refresh_tokens_last_seven_days_and_work_only_at_the_token_endpoint() {
    let s = setup().await;
    let refresh = refresh_token(&s, "alice", ALICE_PW).await;
    let p = refresh.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 7 * 86400);
    assert_eq!(refresh_status(&s, &refresh).await, 200);
    // Not on the registry, not on the REST API.
    assert_eq!(pull_status(&s, &format!("Bearer {refresh}")).await, 401);
    let r = anonymous().get(api(&s, "projects")).bearer_auth(&refresh).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "refresh tokens are accepted only at /v2/token; use a password or an access token"
    );

    // The lifetime is configurable.
    let s = TestServer::start_with(|c| c.refresh_ttl = std::time::Duration::from_secs(3600));
    let refresh = refresh_token(&s, "admin", ADMIN_PASSWORD).await;
    let p = refresh.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
}

#[tokio::test]
async fn registry_tokens_are_not_rest_credentials() {
    let s = setup().await;
    for jwt in [
        registry_token(&s, &client(), "repository:syn1/app:pull,push").await,
        registry_token(&s, &client_as("alice", ALICE_PW), "repository:syn1/app:pull").await,
    ] {
        for (m, path) in [("GET", "projects"), ("POST", "tokens"), ("POST", "users"), ("GET", "users/admin")] {
            let r = anonymous()
                .request(m.parse().unwrap(), api(&s, path))
                .bearer_auth(&jwt)
                .json(&json!({ "name": "x", "scopes": ["view"], "username": "eve", "password": "eve-password-1" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{m} {path}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                v["error"]["message"],
                "registry tokens from /v2/token are good only for the registry; use a password or an access token"
            );
        }
    }
    let (st, _) = get(&client(), &api(&s, "users/eve")).await;
    assert_eq!(st, 404, "no user was made");

    // On the registry a token does only what it lists: a pull token lists no catalog.
    let pull_only = registry_token(&s, &client(), "repository:syn1/app:pull").await;
    let r = anonymous().get(s.v2("_catalog")).bearer_auth(&pull_only).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let catalog = registry_token(&s, &client(), "registry:catalog:*").await;
    let r = anonymous().get(s.v2("_catalog")).bearer_auth(&catalog).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
