//! Token auth end to end (Docker token spec and DESIGN.md section 2): challenges, the token
//! endpoint (GET with Basic, OAuth2 POST with password and refresh grants), granted actions in the
//! JWT, personal access tokens and their revocation, forged tokens, and that trash and ACL
//! changes act on tokens already issued.

use crate::common::*;
use base64::Engine as _;
use serde_json::{json, Value};
use stowage::auth::jwt::{Claims, Keys};

pub(crate) const BOB_PASSWORD: &str = "bob-password-123";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Part `i` (0 header, 1 payload) of a JWT, decoded.
fn jwt_part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).expect("jwt part");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).expect("base64url"))
        .expect("jwt json")
}

/// The actions a token grants on `name`.
pub(crate) fn actions(token: &str, name: &str) -> Vec<String> {
    let p = jwt_part(token, 1);
    let entries = p["access"].as_array().expect("access array");
    let e: Vec<&Value> = entries.iter().filter(|e| e["type"] == "repository" && e["name"] == name).collect();
    assert_eq!(e.len(), 1, "one access entry for {name}: {p}");
    e[0]["actions"].as_array().expect("actions").iter().map(|a| a.as_str().expect("str").to_string()).collect()
}

pub(crate) async fn create_user(s: &TestServer, name: &str, password: &str) {
    let r = client()
        .post(format!("{}/api/v1/users", s.url))
        .json(&json!({ "username": name, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "create user: {}", r.text().await.unwrap_or_default());
}

pub(crate) async fn certify(s: &TestServer, name: &str, certified: bool) {
    let r = client()
        .put(format!("{}/api/v1/users/{name}/certified", s.url))
        .json(&json!({ "certified": certified }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "certify: {}", r.text().await.unwrap_or_default());
}

/// Replaces the ACL of `id`, keeping the admin's entry.
pub(crate) async fn set_acl(s: &TestServer, id: &str, entries: &[(&str, &str)]) {
    let mut list = vec![json!({ "principal": "user:admin", "access": ["admin"] })];
    list.extend(entries.iter().map(|(p, a)| json!({ "principal": p, "access": [a] })));
    let r = client()
        .put(format!("{}/api/v1/entities/{id}/acl", s.url))
        .json(&json!({ "entries": list }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "set acl: {}", r.text().await.unwrap_or_default());
}

pub(crate) async fn repo_id(s: &TestServer, name: &str) -> String {
    let r = client().get(format!("{}/api/v1/repositories?name={name}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().expect("repository id").to_string()
}

/// A personal access token of `user`: (id, token).
async fn access_token(s: &TestServer, user: &str, password: &str, scopes: &[&str]) -> (String, String) {
    let r = client_as(user, password)
        .post(format!("{}/api/v1/tokens", s.url))
        .json(&json!({ "name": "ci", "scopes": scopes, "expires_in_days": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "create token: {}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.unwrap();
    (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
}

/// `GET /v2/token` with `c`'s credentials: the registry token, asserting 200.
pub(crate) async fn registry_token(s: &TestServer, c: &reqwest::Client, scope: &str) -> String {
    let r = c.get(s.v2("token")).query(&[("service", "stowage"), ("scope", scope)]).send().await.unwrap();
    assert_eq!(r.status(), 200, "token: {}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().expect("token").to_string()
}

pub(crate) fn bearer(method: reqwest::Method, url: String, token: &str) -> reqwest::RequestBuilder {
    anonymous().request(method, url).bearer_auth(token)
}

async fn get_manifest(s: &TestServer, token: &str) -> reqwest::Response {
    bearer(reqwest::Method::GET, s.v2("syn1/app/manifests/latest"), token)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
}

pub(crate) fn challenge(s: &TestServer, scope: Option<&str>) -> String {
    let mut c = format!(r#"Bearer realm="{}/v2/token",service="stowage""#, s.url);
    if let Some(sc) = scope {
        c.push_str(&format!(r#",scope="{sc}""#));
    }
    c
}

pub(crate) fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The first error of a Distribution API error body: (code, message).
pub(crate) async fn first_error(r: reqwest::Response) -> (String, String) {
    let v: Value = r.json().await.expect("error body is JSON");
    let e = &v["errors"][0];
    (e["code"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())
}

/// A server with `syn1/app:latest` pushed by the admin and user bob (not certified) holding
/// `bob_level` on project syn1. Returns the server and the manifest bytes.
async fn setup(bob_level: &str) -> (TestServer, Vec<u8>) {
    let s = TestServer::start();
    let (_, m) = push_image(&s, "syn1/app", "latest", b"layer-of-app").await;
    create_user(&s, "bob", BOB_PASSWORD).await;
    set_acl(&s, "syn1", &[("user:bob", bob_level)]).await;
    (s, m)
}

#[tokio::test]
async fn anonymous_requests_get_bearer_challenges() {
    let s = TestServer::start();
    let r = anonymous().get(s.v2("")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, None));
    let r = anonymous().get(s.v2("syn1/app/manifests/latest")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull")));
    assert_eq!(first_error(r).await.0, "UNAUTHORIZED");
    let r = anonymous().post(s.v2("syn1/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull,push")));
    let r = anonymous().get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("registry:catalog:*")));
    // With credentials, /v2/ answers.
    assert_eq!(client().get(s.v2("")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn anonymous_pull_of_a_public_repository() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "latest", b"public layer").await;
    // Without public access an anonymous token grants nothing.
    let t = registry_token(&s, &anonymous(), "repository:syn1/app:pull,push").await;
    assert!(actions(&t, "syn1/app").is_empty());
    assert_eq!(jwt_part(&t, 1)["sub"], "");
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull")));
    set_acl(&s, "syn1", &[("public", "download")]).await;
    let t = registry_token(&s, &anonymous(), "repository:syn1/app:pull,push").await;
    assert_eq!(actions(&t, "syn1/app"), ["pull"]);
    assert_eq!(get_manifest(&s, &t).await.status(), 200);
    let r = anonymous().get(s.v2("syn1/app/manifests/latest")).header("accept", OCI_MANIFEST).send().await.unwrap();
    assert_eq!(r.status(), 200, "anonymous pull without a token, via public DOWNLOAD");
    // Never a push.
    let r = bearer(reqwest::Method::POST, s.v2("syn1/app/blobs/uploads/"), &t).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_token_lists_exactly_the_granted_actions() {
    let (s, _) = setup("download").await;
    let r = client_as("bob", BOB_PASSWORD)
        .get(s.v2("token"))
        .query(&[("service", "stowage"), ("scope", "repository:syn1/app:pull,push")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let v: Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    assert_eq!(v["access_token"], t);
    assert_eq!(v["expires_in"], 900);
    let issued = v["issued_at"].as_str().expect("issued_at");
    let issued = time::OffsetDateTime::parse(issued, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("issued_at {issued:?} is not RFC 3339: {e}"));
    assert!((time::OffsetDateTime::now_utc() - issued).whole_seconds().abs() < 60);
    let h = jwt_part(t, 0);
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].as_str().is_some_and(|k| k.len() == 43), "kid is an RFC 7638 thumbprint: {h}");
    let p = jwt_part(t, 1);
    assert_eq!(p["sub"], "bob");
    assert_eq!(p["aud"], "stowage");
    assert_eq!(p["iss"], "stowage");
    assert_eq!(p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(), 900);
    assert_eq!(p["access"], json!([{ "type": "repository", "name": "syn1/app", "actions": ["pull"] }]));

    // The admin gets every action asked for, in several scopes at once; a project that does not
    // exist yields an entry with no actions; the catalog scope is granted to users.
    let r = client()
        .get(s.v2("token"))
        .query(&[
            ("service", "stowage"),
            ("scope", "repository:syn1/app:pull,push,delete"),
            ("scope", "repository:syn999/x:pull"),
            ("scope", "registry:catalog:*"),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    assert_eq!(actions(t, "syn1/app"), ["pull", "push", "delete"]);
    assert!(actions(t, "syn999/x").is_empty());
    let access = jwt_part(t, 1)["access"].clone();
    assert!(access.as_array().unwrap().iter().any(|e| e["type"] == "registry" && e["name"] == "catalog"), "{access}");

    // Scope `*` expands to what the rules grant.
    let t = registry_token(&s, &client_as("bob", BOB_PASSWORD), "repository:syn1/app:*").await;
    assert_eq!(actions(&t, "syn1/app"), ["pull"]);
}

#[tokio::test]
async fn a_pull_token_pulls_and_pushes_are_refused_by_rule_or_challenged() {
    let (s, m) = setup("download").await;
    let bob = client_as("bob", BOB_PASSWORD);
    let t = registry_token(&s, &bob, "repository:syn1/app:pull").await;
    assert_eq!(get_manifest(&s, &t).await.status(), 200);
    let tags = bearer(reqwest::Method::GET, s.v2("syn1/app/tags/list"), &t).send().await.unwrap();
    assert_eq!(tags.status(), 200);
    let put = |t: String| {
        let m = m.clone();
        let url = s.v2("syn1/app/manifests/bob");
        async move {
            bearer(reqwest::Method::PUT, url, &t).header("content-type", OCI_MANIFEST).body(m).send().await.unwrap()
        }
    };

    // Not certified: the rules refuse, so 403 naming the rule (a new token would not help).
    let r = put(t.clone()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        first_error(r).await,
        (
            "DENIED".to_string(),
            "user bob is not certified; only certified users may push (ask an administrator)".to_string()
        )
    );
    // Certified but only download on syn1.
    certify(&s, "bob", true).await;
    let r = put(t.clone()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await, ("DENIED".to_string(), "bob has no edit permission on syn1".to_string()));
    let r = bearer(reqwest::Method::POST, s.v2("syn1/app/blobs/uploads/"), &t).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // With edit the rules allow it, but this token lacks push: 401 sending the client for one.
    set_acl(&s, "syn1", &[("user:bob", "edit")]).await;
    let r = put(t.clone()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull,push")));
    let t2 = registry_token(&s, &bob, "repository:syn1/app:pull,push").await;
    assert_eq!(actions(&t2, "syn1/app"), ["pull", "push"]);
    assert_eq!(put(t2.clone()).await.status(), 201);
    // Delete: not granted by edit; a token asking for it does not get it.
    let t3 = registry_token(&s, &bob, "repository:syn1/app:delete").await;
    assert!(actions(&t3, "syn1/app").is_empty());
    let r = bearer(reqwest::Method::DELETE, s.v2("syn1/app/manifests/bob"), &t3).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await.1, "bob has no delete permission on syn1");
    // A token for one repository says nothing about another.
    push_image(&s, "syn1/other", "latest", b"other layer").await;
    let r = bearer(reqwest::Method::GET, s.v2("syn1/other/tags/list"), &t).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/other:pull")));
}

#[tokio::test]
async fn bad_credentials_are_401_at_the_token_endpoint() {
    let (s, _) = setup("download").await;
    for (u, p) in [("bob", "wrong-password"), ("nobody", BOB_PASSWORD), ("bob", "")] {
        let r =
            client_as(u, p).get(s.v2("token")).query(&[("scope", "repository:syn1/app:pull")]).send().await.unwrap();
        assert_eq!(r.status(), 401, "{u}:{p}");
        assert_eq!(first_error(r).await.0, "UNAUTHORIZED");
    }
    // Bearer is not a login at the token endpoint.
    let r = anonymous().get(s.v2("token")).bearer_auth("x").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Bad Basic credentials on a registry request: the challenge, not a 500.
    let r = client_as("bob", "wrong-password").get(s.v2("syn1/app/tags/list")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull")));
}

#[tokio::test]
async fn access_tokens_log_in_with_any_username_and_revocation_acts_at_once() {
    let (s, _) = setup("edit").await;
    certify(&s, "bob", true).await;
    let (id, pat) = access_token(&s, "bob", BOB_PASSWORD, &["download"]).await;
    // Any username; the token's scopes cut the grant to pull although bob may edit.
    let via_pat = client_as("whoever", &pat);
    let t = registry_token(&s, &via_pat, "repository:syn1/app:pull,push").await;
    assert_eq!(jwt_part(&t, 1)["sub"], "bob");
    assert_eq!(actions(&t, "syn1/app"), ["pull"]);
    assert_eq!(get_manifest(&s, &t).await.status(), 200);
    // Basic with the access token straight on a registry request, too.
    assert_eq!(via_pat.get(s.v2("syn1/app/tags/list")).send().await.unwrap().status(), 200);
    // The push the scope forbids is a rule failure: 403 naming the scope.
    let r = via_pat.post(s.v2("syn1/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        first_error(r).await.1,
        "the access token used to log in lacks the modify scope; create a token with modify or log in with a password"
    );
    // A download+modify token may push.
    let (_, pat2) = access_token(&s, "bob", BOB_PASSWORD, &["download", "modify"]).await;
    let t2 = registry_token(&s, &client_as("x", &pat2), "repository:syn1/app:pull,push").await;
    assert_eq!(actions(&t2, "syn1/app"), ["pull", "push"]);

    // Revoke: the access token and the registry token minted from it stop at once.
    let r = client_as("bob", BOB_PASSWORD).delete(format!("{}/api/v1/tokens/{id}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = via_pat.get(s.v2("token")).query(&[("scope", "repository:syn1/app:pull")]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(first_error(r).await.0, "UNAUTHORIZED");
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 401, "a JWT minted from a revoked access token");
    assert!(www_authenticate(&r).starts_with("Bearer realm="));
    assert_eq!(via_pat.get(s.v2("syn1/app/tags/list")).send().await.unwrap().status(), 401);
    // The other token is untouched.
    assert_eq!(get_manifest(&s, &t2).await.status(), 200);
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "latest", b"layer").await;
    let good = registry_token(&s, &client(), "repository:syn1/app:pull").await;
    assert_eq!(get_manifest(&s, &good).await.status(), 200);
    let parts: Vec<&str> = good.split('.').collect();
    let payload = jwt_part(&good, 1);
    let header = jwt_part(&good, 0);
    let enc = |v: &Value| b64url(v.to_string().as_bytes());
    let mut forged: Vec<(&str, String)> = Vec::new();

    // One character of the payload changed.
    let mut p = parts[1].to_string().into_bytes();
    let i = p.len() / 2;
    p[i] = if p[i] == b'A' { b'B' } else { b'A' };
    forged.push(("tampered payload", format!("{}.{}.{}", parts[0], String::from_utf8(p).unwrap(), parts[2])));
    // Payload with more actions, original signature.
    let mut more = payload.clone();
    more["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    forged.push(("widened access", format!("{}.{}.{}", parts[0], enc(&more), parts[2])));
    // alg none.
    let none = json!({ "alg": "none", "typ": "JWT" });
    forged.push(("alg none", format!("{}.{}.", enc(&none), parts[1])));
    forged.push(("alg none, no signature part", format!("{}.{}", enc(&none), parts[1])));
    // HS256 with a guessed secret and with the server's public key as the secret.
    let claims: Claims = serde_json::from_value(payload.clone()).unwrap();
    let server_keys = Keys::load_or_create(s.dir.path()).expect("the server's key");
    assert_eq!(header["kid"], server_keys.kid.as_str());
    let hs = |secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(server_keys.kid.clone());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    forged.push(("HS256 guessed secret", hs(b"secret")));
    forged.push(("HS256 public JWK as secret", hs(server_keys.jwk.to_string().as_bytes())));
    forged.push(("HS256 public x as secret", hs(server_keys.jwk["x"].as_str().unwrap().as_bytes())));
    // Another ES256 key.
    let rng = ring::rand::SystemRandom::new();
    let other = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("key");
    let other = Keys::from_pkcs8(other.as_ref()).unwrap();
    forged.push(("another ES256 key", other.sign(&claims).unwrap()));
    // The server's own key, with a wrong audience, a wrong issuer, expired, or not yet valid.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = |f: &dyn Fn(&mut Claims)| {
        let mut c = claims.clone();
        f(&mut c);
        server_keys.sign(&c).unwrap()
    };
    forged.push(("wrong audience", signed(&|c| c.aud = "other-registry".into())));
    forged.push(("wrong issuer", signed(&|c| c.iss = "evil".into())));
    forged.push(("expired", signed(&|c| c.exp = now - 120)));
    forged.push(("not yet valid", signed(&|c| c.nbf = now + 600)));
    forged.push(("refresh token as access token", signed(&|c| c.typ = Some("refresh".into()))));
    forged.push(("unknown user", signed(&|c| c.sub = "mallory".into())));
    forged.push(("garbage", "not-a-jwt".into()));

    // Control: the crafting path itself works, so the refusals above are about the defects.
    let control = signed(&|c| c.jti = "control".into());
    assert_eq!(get_manifest(&s, &control).await.status(), 200, "re-signed control token");
    for (what, t) in forged {
        let r = get_manifest(&s, &t).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(www_authenticate(&r), challenge(&s, Some("repository:syn1/app:pull")), "{what}");
        assert_eq!(first_error(r).await.0, "UNAUTHORIZED", "{what}");
    }
}

#[tokio::test]
async fn oauth2_password_and_refresh_grants() {
    let (s, _) = setup("download").await;
    let form = |pairs: &[(&str, &str)]| anonymous().post(s.v2("token")).form(pairs).send();
    let r = form(&[
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", BOB_PASSWORD),
        ("service", "stowage"),
        ("client_id", "test"),
        ("scope", "repository:syn1/app:pull"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let access = v["access_token"].as_str().expect("access_token").to_string();
    let refresh = v["refresh_token"].as_str().expect("refresh_token").to_string();
    assert_eq!(actions(&access, "syn1/app"), ["pull"]);
    assert_eq!(get_manifest(&s, &access).await.status(), 200);
    // The refresh token is not an access token.
    assert_eq!(get_manifest(&s, &refresh).await.status(), 401);

    let r = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "stowage"),
        ("client_id", "test"),
        ("scope", "repository:syn1/app:pull,push"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let access2 = v["access_token"].as_str().expect("access_token").to_string();
    assert_ne!(access2, access);
    assert_eq!(actions(&access2, "syn1/app"), ["pull"]);
    assert_eq!(jwt_part(&access2, 1)["sub"], "bob");
    assert_eq!(get_manifest(&s, &access2).await.status(), 200);

    // Bad password, forged refresh token, an access token as refresh token, unknown grant.
    let r = form(&[("grant_type", "password"), ("username", "bob"), ("password", "nope-nope"), ("service", "stowage")])
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(first_error(r).await.0, "UNAUTHORIZED");
    for bad in [format!("{refresh}x"), access.clone()] {
        let r =
            form(&[("grant_type", "refresh_token"), ("refresh_token", &bad), ("service", "stowage")]).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = form(&[("grant_type", "client_credentials"), ("service", "stowage")]).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A refresh token minted from a revoked access token stops working.
    let (id, pat) = access_token(&s, "bob", BOB_PASSWORD, &["download"]).await;
    let r = form(&[("grant_type", "password"), ("username", "x"), ("password", &pat), ("service", "stowage")])
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let refresh = v["refresh_token"].as_str().expect("refresh_token").to_string();
    client_as("bob", BOB_PASSWORD).delete(format!("{}/api/v1/tokens/{id}", s.url)).send().await.unwrap();
    let r =
        form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("service", "stowage")]).await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn trash_and_acl_changes_act_on_issued_tokens() {
    let (s, _) = setup("download").await;
    let t = registry_token(&s, &client_as("bob", BOB_PASSWORD), "repository:syn1/app:pull").await;
    assert_eq!(get_manifest(&s, &t).await.status(), 200);
    let id = repo_id(&s, "syn1/app").await;

    let r = client().delete(format!("{}/api/v1/entities/{id}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "trash: {}", r.text().await.unwrap_or_default());
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        first_error(r).await,
        ("DENIED".to_string(), "syn1/app is in the trash; restore it to use it again".to_string())
    );
    // No new token for it either.
    let t_trash = registry_token(&s, &client_as("bob", BOB_PASSWORD), "repository:syn1/app:pull").await;
    assert!(actions(&t_trash, "syn1/app").is_empty());
    let r = client().post(format!("{}/api/v1/trash/{id}/restore", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "restore: {}", r.text().await.unwrap_or_default());
    assert_eq!(get_manifest(&s, &t).await.status(), 200);

    // The whole project in the trash.
    let r = client().delete(format!("{}/api/v1/entities/syn1", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await.1, "project syn1 is in the trash; restore it to use it again");
    let r = client().post(format!("{}/api/v1/trash/syn1/restore", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get_manifest(&s, &t).await.status(), 200);

    // Local sharing settings on the repository replace the project's at once.
    create_user(&s, "carol", "carol-password-123").await;
    set_acl(&s, &id, &[("user:carol", "download")]).await;
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        first_error(r).await.1,
        "syn1/app does not exist, or bob may not pull it; check the project id in the image name or ask the project's owner to share it with you"
    );
    let r = client().delete(format!("{}/api/v1/entities/{id}/acl", s.url)).send().await.unwrap();
    assert!(r.status().is_success(), "revert to inheritance: {}", r.status());
    assert_eq!(get_manifest(&s, &t).await.status(), 200);

    // Removing bob's entry from the project refuses his existing token at once.
    set_acl(&s, "syn1", &[]).await;
    let r = get_manifest(&s, &t).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        first_error(r).await,
        (
            "DENIED".to_string(),
            "syn1/app does not exist, or bob may not pull it; check the project id in the image name or ask the project's owner to share it with you".to_string()
        )
    );
}

#[tokio::test]
async fn the_catalog_shows_only_readable_repositories() {
    let s = TestServer::start();
    for name in ["syn1/app", "syn1/secret", "syn2/other", "syn1/gone"] {
        push_image(&s, name, "latest", name.as_bytes()).await;
    }
    create_user(&s, "bob", BOB_PASSWORD).await;
    set_acl(&s, "syn1", &[("user:bob", "view")]).await;
    let secret = repo_id(&s, "syn1/secret").await;
    set_acl(&s, &secret, &[]).await;
    let gone = repo_id(&s, "syn1/gone").await;
    assert_eq!(client().delete(format!("{}/api/v1/entities/{gone}", s.url)).send().await.unwrap().status(), 200);

    let list = |r: Value| -> Vec<String> {
        r["repositories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let bob = client_as("bob", BOB_PASSWORD);
    let r = bob.get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(list(r.json().await.unwrap()), ["syn1/app"]);
    let t = registry_token(&s, &bob, "registry:catalog:*").await;
    let r = bearer(reqwest::Method::GET, s.v2("_catalog"), &t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(list(r.json().await.unwrap()), ["syn1/app"]);
    let r = client().get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(list(r.json().await.unwrap()), ["syn1/app", "syn1/secret", "syn2/other"], "trash is not listed");
    // An access token with only the download scope still sees what bob may read.
    let (_, pat) = access_token(&s, "bob", BOB_PASSWORD, &["download"]).await;
    let r = client_as("x", &pat).get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(list(r.json().await.unwrap()), ["syn1/app"]);
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id() {
    let s = TestServer::start();
    create_user(&s, "bob", BOB_PASSWORD).await;
    let dir = s.stop();
    let settings = stowage::config::Settings::for_data_dir(dir.path());
    let engine = stowage_engine::Engine::open(settings.engine.clone()).expect("reopen the engine");
    let store = stowage::access::store::Store::new(engine);
    for name in ["admin", "bob"] {
        let u = store.user(name).unwrap().expect("user");
        assert!(u.password_hash.starts_with("$argon2id$"), "{name}: {}", u.password_hash);
        assert!(!u.password_hash.contains(BOB_PASSWORD) && !u.password_hash.contains(ADMIN_PASSWORD));
    }
    assert!(stowage::auth::secrets::verify_password(BOB_PASSWORD, &store.user("bob").unwrap().unwrap().password_hash));
}
