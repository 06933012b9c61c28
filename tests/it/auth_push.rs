//! Push rules over HTTP (DESIGN.md section 2): creating a repository needs CREATE on an existing
//! project named by the first path component, and a cross-repository mount needs pull on the
//! source (by the rules and by the token), else it is a normal upload.

use crate::auth_tokens::*;
use crate::common::*;
use reqwest::Method;

/// Starts an upload of `name` as bob with Basic credentials.
async fn start_upload(s: &TestServer, name: &str) -> reqwest::Response {
    client_as("bob", BOB_PASSWORD).post(s.v2(&format!("{name}/blobs/uploads/"))).send().await.unwrap()
}

#[tokio::test]
async fn creating_a_repository_needs_create_on_an_existing_project() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "latest", b"layer").await;
    let repo = repo_id(&s, "syn1/app").await;
    create_user(&s, "bob", BOB_PASSWORD).await;
    certify(&s, "bob", true).await;
    set_acl(&s, "syn1", &[("user:bob", "edit")]).await;

    let r = start_upload(&s, "syn1/new/image").await;
    assert_eq!(r.status(), 202, "edit on the project creates repositories");
    let r = start_upload(&s, "syn2/app").await;
    assert_eq!(r.status(), 403);
    // bob has no access at all to syn2: the answer is the same as for a project that does not
    // exist, so project ids cannot be probed.
    let hidden = |name: &str| {
        format!("{name} does not exist, or bob may not push to it; check the project id in the image name or ask the project's owner to share it with you")
    };
    assert_eq!(first_error(r).await, ("DENIED".to_string(), hidden("syn2/app")));
    let r = start_upload(&s, "syn999/app").await;
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await.1, hidden("syn999/app"));
    let missing = "project syn999 does not exist; create it first or check the project id in the image name";
    // The first component names a repository, not a project: refused the same way, even for
    // the admin.
    let r = client().post(s.v2(&format!("{repo}/app/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await.1, missing.replace("syn999", &repo));
    // A name that is not `<projectId>/...` at all.
    let r = client().post(s.v2("library/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn a_mount_needs_pull_on_the_source() {
    let s = TestServer::start();
    let digest = push_blob(&s, "syn2/private", b"a private layer").await;
    create_user(&s, "bob", BOB_PASSWORD).await;
    certify(&s, "bob", true).await;
    set_acl(&s, "syn1", &[("user:bob", "edit")]).await;
    let mount = |c: reqwest::RequestBuilder| c.send();
    let url = s.v2(&format!("syn1/app/blobs/uploads/?mount={digest}&from=syn2/private"));
    let bob = client_as("bob", BOB_PASSWORD);

    // No access to the source: a normal upload, and the blob is not reachable through syn1.
    let r = mount(bob.post(&url)).await.unwrap();
    assert_eq!(r.status(), 202, "mount without pull on the source");
    let r = bob.head(s.v2(&format!("syn1/app/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // With download on syn2, but a token that grants nothing on the source: a 401 challenge
    // naming both scopes, so a client that follows challenges asks for a token that mounts.
    set_acl(&s, "syn2", &[("user:bob", "download")]).await;
    let t = registry_token(&s, &bob, "repository:syn1/app:pull,push").await;
    assert_eq!(actions(&t, "syn1/app"), ["pull", "push"]);
    let r = mount(bearer(Method::POST, url.clone(), &t)).await.unwrap();
    assert_eq!(r.status(), 401, "mount with a token lacking pull on the source");
    let scope = "repository:syn1/app:pull,push repository:syn2/private:pull";
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(r#"Bearer realm="{}",service="stowage",scope="{scope}""#, s.v2("token")).as_str()
    );
    assert_eq!(
        first_error(r).await,
        (
            "UNAUTHORIZED".to_string(),
            format!("mounting from syn2/private needs pull on it; ask for a token with {scope}")
        )
    );
    // The upload of a token that lacks pull on a source the rules refuse stays a plain upload.
    let r = mount(bearer(Method::POST, s.v2(&format!("syn1/app/blobs/uploads/?mount={digest}&from=syn3/x")), &t))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Following the challenge: the challenge's scope, as one space-separated parameter.
    let r = bob.get(s.v2("token")).query(&[("scope", scope)]).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    assert_eq!(actions(t, "syn2/private"), ["pull"]);
    let r = mount(bearer(Method::POST, url.clone(), t)).await.unwrap();
    assert_eq!(r.status(), 201, "mount with pull on the source");
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    // And with Basic credentials.
    let r =
        mount(bob.post(s.v2(&format!("syn1/other/blobs/uploads/?mount={digest}&from=syn2/private")))).await.unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_mount_without_from_finds_a_repository_the_caller_may_pull() {
    let s = TestServer::start();
    let readable = push_blob(&s, "syn2/shared", b"a layer bob may pull").await;
    let hidden = push_blob(&s, "syn2/secret", b"a layer bob may not pull").await;
    create_user(&s, "bob", BOB_PASSWORD).await;
    certify(&s, "bob", true).await;
    set_acl(&s, "syn1", &[("user:bob", "edit")]).await;
    set_acl(&s, "syn2", &[("user:bob", "download")]).await;
    // syn2/secret has its own sharing settings, without bob.
    let secret = repo_id(&s, "syn2/secret").await;
    set_acl(&s, &secret, &[]).await;
    let bob = client_as("bob", BOB_PASSWORD);
    let url = |d: &str| s.v2(&format!("syn1/app/blobs/uploads/?mount={d}"));

    // Not readable to bob anywhere: an upload; the blob is not reachable through syn1.
    let r = bob.post(url(&hidden)).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(bob.head(s.v2(&format!("syn1/app/blobs/{hidden}"))).send().await.unwrap().status(), 404);
    // A token for the target only: no repository it may pull holds the blob, so an upload.
    let t = registry_token(&s, &bob, "repository:syn1/app:pull,push").await;
    assert_eq!(bearer(Method::POST, url(&readable), &t).send().await.unwrap().status(), 202);
    // Readable in syn2 with Basic credentials: mounted.
    let r = bob.post(url(&readable)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], format!("/v2/syn1/app/blobs/{readable}").as_str());
    assert_eq!(r.headers()["docker-content-digest"], readable.as_str());
    let r = bob.get(s.v2(&format!("syn1/app/blobs/{readable}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"a layer bob may pull");
    // Already in the target: mounted again (201), whatever the token lists elsewhere.
    assert_eq!(bearer(Method::POST, url(&readable), &t).send().await.unwrap().status(), 201);
    // A digest nobody holds: an upload.
    assert_eq!(bob.post(url(&sha256(b"never pushed"))).send().await.unwrap().status(), 202);
}

/// A client that sends a token again after the 401 challenge for an action it lacks (oras-py
/// 0.2 does: it only fetches a new token after a 403) gets 403 with the same challenge and
/// `error="insufficient_scope"` (RFC 6750 §3.1); the first answer stays the 401 that docker and
/// containerd follow. Neither answer lets the token do more.
#[tokio::test]
async fn a_token_sent_again_after_its_challenge_gets_403_insufficient_scope() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "latest", b"layer").await;
    create_user(&s, "bob", BOB_PASSWORD).await;
    certify(&s, "bob", true).await;
    set_acl(&s, "syn1", &[("user:bob", "edit")]).await;
    let bob = client_as("bob", BOB_PASSWORD);
    let pull = registry_token(&s, &bob, "repository:syn1/app:pull").await;
    let url = s.v2("syn1/app/blobs/uploads/");
    let scope = "repository:syn1/app:pull,push";
    let challenge = format!(r#"Bearer realm="{}",service="stowage",scope="{scope}""#, s.v2("token"));
    let message = "the token does not grant push on syn1/app; ask for a new token".to_string();

    let r = bearer(Method::POST, url.clone(), &pull).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], challenge.as_str());
    assert_eq!(first_error(r).await, ("UNAUTHORIZED".to_string(), message.clone()));
    for _ in 0..2 {
        let r = bearer(Method::POST, url.clone(), &pull).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["www-authenticate"], format!(r#"{challenge},error="insufficient_scope""#).as_str());
        assert_eq!(first_error(r).await, ("DENIED".to_string(), message.clone()));
    }
    // The token still pulls.
    let r = bearer(Method::GET, s.v2("syn1/app/manifests/latest"), &pull).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Another token (as a client that follows the challenge holds) gets the 401 first.
    let other = registry_token(&s, &bob, "repository:syn1/app:pull repository:syn1/other:pull").await;
    assert_eq!(bearer(Method::POST, url.clone(), &other).send().await.unwrap().status(), 401);
    // Following the challenge's scope gives a token that pushes.
    let push = registry_token(&s, &bob, scope).await;
    assert_eq!(bearer(Method::POST, url.clone(), &push).send().await.unwrap().status(), 202);
}
