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

    // With download on syn2, but a token that grants nothing on the source: still an upload.
    set_acl(&s, "syn2", &[("user:bob", "download")]).await;
    let t = registry_token(&s, &bob, "repository:syn1/app:pull,push").await;
    assert_eq!(actions(&t, "syn1/app"), ["pull", "push"]);
    let r = mount(bearer(Method::POST, url.clone(), &t)).await.unwrap();
    assert_eq!(r.status(), 202, "mount with a token lacking pull on the source");

    // A token for both repositories mounts.
    let r = bob
        .get(s.v2("token"))
        .query(&[("scope", "repository:syn1/app:pull,push"), ("scope", "repository:syn2/private:pull")])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    let r = mount(bearer(Method::POST, url.clone(), t)).await.unwrap();
    assert_eq!(r.status(), 201, "mount with pull on the source");
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    // And with Basic credentials.
    let r =
        mount(bob.post(s.v2(&format!("syn1/other/blobs/uploads/?mount={digest}&from=syn2/private")))).await.unwrap();
    assert_eq!(r.status(), 201);
}
