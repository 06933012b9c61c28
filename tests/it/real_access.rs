//! Projects, sharing settings and token auth with the real Docker CLI: what each user may do and
//! the exact reason docker shows when refused.

use crate::clients::{self, api, build_image, image_ids, pushed_digest, DockerImages, DockerUser};
use crate::common::{TestServer, ADMIN_PASSWORD};
use serde_json::json;

const ALICE_PW: &str = "alice-pw-123456";
const BOB_PW: &str = "bob-pw-123456";
const CAROL_PW: &str = "carol-pw-123456";

fn create_user(s: &TestServer, name: &str, pw: &str, certified: bool) {
    let (st, v) = api(
        "POST",
        &format!("{}/api/v1/users", s.url),
        "admin",
        ADMIN_PASSWORD,
        Some(json!({"username": name, "password": pw})),
    );
    assert_eq!(st, 201, "create user {name}: {v}");
    if certified {
        let (st, v) = api(
            "PUT",
            &format!("{}/api/v1/users/{name}/certified", s.url),
            "admin",
            ADMIN_PASSWORD,
            Some(json!({"certified": true})),
        );
        assert!(st == 200 || st == 204, "certify {name}: {st} {v}");
    }
}

fn set_acl(s: &TestServer, entity: &str, entries: serde_json::Value) {
    let (st, v) = api(
        "PUT",
        &format!("{}/api/v1/entities/{entity}/acl", s.url),
        "alice",
        ALICE_PW,
        Some(json!({"entries": entries})),
    );
    assert!(st == 200 || st == 204, "set acl of {entity}: {st} {v}");
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_access_projects_sharing_tokens_and_trash() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    create_user(&s, "alice", ALICE_PW, true);
    create_user(&s, "bob", BOB_PW, true);
    create_user(&s, "carol", CAROL_PW, false);

    // alice creates a project: the next entity id after syn1 and syn2.
    let (st, v) =
        api("POST", &format!("{}/api/v1/projects", s.url), "alice", ALICE_PW, Some(json!({"name": "alice-project"})));
    assert_eq!(st, 201, "create project: {v}");
    let proj = v["id"].as_str().expect("project id").to_string();
    assert_eq!(proj, "syn3", "{v}");

    let alice = DockerUser::new();
    alice.login(&s.host, "alice", ALICE_PW).expect_ok().expect_contains(&["Login Succeeded"]);
    let app = format!("{}/{proj}/app:1", s.host);
    build_image(&images, &app, "access.txt", &clients::unique("access"));
    let (app_id, app_layers) = image_ids(&app);
    let digest = pushed_digest(&alice.push(&app).expect_ok());

    // bob: logged in, but the project is not shared with him.
    let bob = DockerUser::new();
    bob.login(&s.host, "bob", BOB_PW).expect_ok();
    clients::run("docker", &["rmi", "-f", &app]).expect_ok();
    let out = bob.pull(&app).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    // The same answer as for a project that does not exist, so ids cannot be probed.
    out.expect_contains(&["denied", &format!("{proj}/app does not exist, or bob may not pull it")]);

    // Shared for download: bob pulls.
    set_acl(
        &s,
        &proj,
        json!([{"principal": "user:alice", "access": ["admin"]}, {"principal": "user:bob", "access": ["download"]}]),
    );
    bob.pull(&app).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(image_ids(&app), (app_id.clone(), app_layers.clone()));

    // carol may edit, but is not certified: no push.
    set_acl(
        &s,
        &proj,
        json!([
            {"principal": "user:alice", "access": ["admin"]},
            {"principal": "user:bob", "access": ["download"]},
            {"principal": "user:carol", "access": ["download", "edit"]},
        ]),
    );
    let carol = DockerUser::new();
    carol.login(&s.host, "carol", CAROL_PW).expect_ok();
    let carol_tag = format!("{}/{proj}/app:carol", s.host);
    images.track(&carol_tag);
    clients::run("docker", &["tag", &app, &carol_tag]).expect_ok();
    let out = carol.push(&carol_tag).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "user carol is not certified"]);
    carol.pull(&app).expect_ok();

    // bob's access token with only the download scope: login and pull work, push does not, even
    // with edit permission.
    let (st, v) = api(
        "POST",
        &format!("{}/api/v1/tokens", s.url),
        "bob",
        BOB_PW,
        Some(json!({"name": "ci", "scopes": ["download"], "expires_in_days": 1})),
    );
    assert_eq!(st, 201, "create token: {v}");
    let token = v["token"].as_str().expect("token").to_string();
    set_acl(
        &s,
        &proj,
        json!([
            {"principal": "user:alice", "access": ["admin"]},
            {"principal": "user:bob", "access": ["edit"]},
            {"principal": "user:carol", "access": ["download", "edit"]},
        ]),
    );
    let bob_token = DockerUser::new();
    bob_token.login(&s.host, "anything", &token).expect_ok().expect_contains(&["Login Succeeded"]);
    clients::run("docker", &["rmi", "-f", &app]).expect_ok();
    bob_token.pull(&app).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
    let bob_tag = format!("{}/{proj}/app:bob", s.host);
    images.track(&bob_tag);
    clients::run("docker", &["tag", &app, &bob_tag]).expect_ok();
    let out = bob_token.push(&bob_tag).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "lacks the modify scope"]);
    // With his password bob may push (he has edit and is certified).
    bob.push(&bob_tag).expect_ok();

    // The repository goes to the trash: no pull, no push, even for its owner.
    let (st, v) = api("GET", &format!("{}/api/v1/repositories?name={proj}/app", s.url), "alice", ALICE_PW, None);
    assert_eq!(st, 200, "find repository: {v}");
    let repo = v["id"].as_str().expect("repository id").to_string();
    let (st, v) = api("DELETE", &format!("{}/api/v1/entities/{repo}", s.url), "alice", ALICE_PW, None);
    assert!(st == 200 || st == 204, "trash repository: {st} {v}");
    clients::run("docker", &["rmi", "-f", &bob_tag, &carol_tag]).expect_ok();
    clients::run("docker", &["rmi", "-f", &app]).expect_ok();
    let out = alice.pull(&app).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "trash"]);
    let alice_tag = format!("{}/{proj}/app:2", s.host);
    build_image(&images, &alice_tag, "access2.txt", &clients::unique("access2"));
    let out = alice.push(&alice_tag).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "trash"]);

    // Restored: pulls work again.
    let (st, v) = api("POST", &format!("{}/api/v1/trash/{repo}/restore", s.url), "alice", ALICE_PW, None);
    assert!(st == 200 || st == 204, "restore: {st} {v}");
    alice.pull(&app).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(image_ids(&app), (app_id, app_layers));
    bob.pull(&app).expect_ok();
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_login_with_a_bad_password_fails() {
    clients::require("docker");
    let s = TestServer::start();
    create_user(&s, "alice", ALICE_PW, true);
    let alice = DockerUser::new();
    let out = alice.login(&s.host, "alice", "not-the-password").expect_fail();
    eprintln!("docker said:\n{}", out.all());
    let all = out.all().to_lowercase();
    assert!(
        all.contains("unauthorized") || all.contains("incorrect username or password"),
        "docker login output:\n{}",
        out.all()
    );
    // Nothing was stored for the failed login; the right password works.
    alice.login(&s.host, "alice", ALICE_PW).expect_ok().expect_contains(&["Login Succeeded"]);
    let out = DockerUser::new().login(&s.host, "nobody", "whatever").expect_fail();
    assert!(
        out.all().to_lowercase().contains("unauthorized") || out.all().contains("incorrect username or password"),
        "{}",
        out.all()
    );
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_push_to_a_missing_project_and_anonymous_pull_are_refused() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    create_user(&s, "alice", ALICE_PW, true);
    let alice = DockerUser::new();
    alice.login(&s.host, "alice", ALICE_PW).expect_ok();

    // No project syn99: the push is refused, naming what was asked for.
    let missing = format!("{}/syn99/app:1", s.host);
    images.track(&missing);
    clients::run("docker", &["tag", &clients::base_image(), &missing]).expect_ok();
    let out = alice.push(&missing).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "syn99/app does not exist, or alice may not push to it"]);

    // alice may not push into admin's project syn1 either.
    let foreign = format!("{}/syn1/app:1", s.host);
    images.track(&foreign);
    clients::run("docker", &["tag", &clients::base_image(), &foreign]).expect_ok();
    let out = alice.push(&foreign).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["denied", "syn1/app does not exist, or alice may not push to it"]);

    // admin pushes it; a client that never logged in cannot pull it.
    let admin = DockerUser::new();
    admin.login(&s.host, "admin", ADMIN_PASSWORD).expect_ok();
    let digest = pushed_digest(&admin.push(&foreign).expect_ok());
    clients::run("docker", &["rmi", "-f", &foreign]).expect_ok();
    let out = DockerUser::new().pull(&foreign).expect_fail();
    eprintln!("docker said:\n{}", out.all());
    out.expect_contains(&["unauthorized", "authentication required to pull syn1/app; run docker login"]);
    admin.pull(&foreign).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
}
