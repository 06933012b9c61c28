//! What a caller may learn and touch: uploads belong to their starter, entities the caller may
//! not see get one answer whether they exist, are trashed or never existed, storage use lists
//! only readable repositories, and malformed token requests get 400 naming the mistake.

use crate::api_util::{api, get, post};
use crate::auth_tokens::{certify, first_error, set_acl};
use crate::common::*;
use serde_json::{json, Value};

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-12";

async fn two_users(s: &TestServer) {
    crate::api_util::create_user(s, "alice", ALICE_PW).await;
    crate::api_util::create_user(s, "bob", BOB_PW).await;
    certify(s, "alice", true).await;
    certify(s, "bob", true).await;
}

#[tokio::test]
async fn an_upload_belongs_to_the_user_who_started_it() {
    let s = TestServer::start();
    two_users(&s).await;
    set_acl(&s, "syn1", &[("user:alice", "edit"), ("user:bob", "edit")]).await;
    let alice = client_as("alice", ALICE_PW);
    let bob = client_as("bob", BOB_PW);
    let r = alice.post(s.v2("syn1/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let url = format!("{}{loc}", s.url);
    let r = alice.patch(&url).body(b"alice's data".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 202);

    // bob may push to syn1/app, but not into alice's upload: not continued, inspected,
    // finished or cancelled, and the answer is that of an unknown upload.
    let digest = sha256(b"alice's data");
    let attempts = [
        bob.get(&url),
        bob.patch(&url).body(b"bob's data".to_vec()),
        bob.put(format!("{url}?digest={digest}")),
        bob.delete(&url),
    ];
    for req in attempts {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(first_error(r).await.0, "BLOB_UPLOAD_UNKNOWN");
    }
    // An unknown id gets exactly the same.
    let other = format!("{}/v2/syn1/app/blobs/uploads/{}", s.url, uuid_like());
    let r = bob.get(&other).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(first_error(r).await.0, "BLOB_UPLOAD_UNKNOWN");

    // Administrators may inspect it; alice finishes it untouched.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-11");
    let r = alice.put(format!("{url}?digest={digest}")).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

fn uuid_like() -> &'static str {
    "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
}

#[tokio::test]
async fn a_caller_without_access_cannot_tell_existing_trashed_and_missing_apart() {
    let s = TestServer::start();
    two_users(&s).await;
    // syn1/app exists; syn2 exists (bob has no access to either); a third project goes to the
    // trash; syn999 never existed.
    push_image(&s, "syn1/app", "v1", b"layer").await;
    push_image(&s, "syn2/app", "v1", b"layer").await;
    let (_, p) = post(&client(), &api(&s, "projects"), json!({ "name": "doomed" })).await;
    let doomed = p["id"].as_str().unwrap().to_string();
    push_image(&s, &format!("{doomed}/app"), "v1", b"layer").await;
    let r = client().delete(api(&s, &format!("entities/{doomed}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let bob = client_as("bob", BOB_PW);

    // REST: one answer for all, naming only what was asked.
    for id in ["syn2", doomed.as_str(), "syn999"] {
        for path in [format!("projects/{id}"), format!("projects/{id}/repositories"), format!("entities/{id}/acl")] {
            let (st, v) = get(&bob, &api(&s, &path)).await;
            assert_eq!(st, 404, "{path}");
            assert_eq!(
                v,
                json!({ "error": { "code": "not_found", "message": format!("{id} does not exist or you may not see it") } }),
                "{path}"
            );
        }
    }
    for name in ["syn2/app", "syn999/app", &format!("{doomed}/app")] {
        let (st, v) = get(&bob, &api(&s, &format!("repositories?name={name}"))).await;
        assert_eq!(st, 404);
        assert_eq!(v["error"]["message"], format!("{name} does not exist or you may not see it"));
    }
    // Anonymous: asked to log in, whatever the id.
    for id in ["syn2", doomed.as_str(), "syn999"] {
        let (st, v) = get(&anonymous(), &api(&s, &format!("projects/{id}"))).await;
        assert_eq!((st, v["error"]["message"].clone()), (401, json!(format!("log in to see {id}"))));
    }

    // Registry: the same DENIED message, with only the asked-for name in it.
    for name in ["syn2/app", "syn999/app", &format!("{doomed}/app")] {
        let r = bob.get(s.v2(&format!("{name}/manifests/v1"))).send().await.unwrap();
        assert_eq!(r.status(), 403, "{name}");
        assert_eq!(
            first_error(r).await,
            (
                "DENIED".to_string(),
                format!("{name} does not exist, or bob may not pull it; check the project id in the image name or ask the project's owner to share it with you")
            )
        );
    }
    // Someone who may see the project is told plainly that it is in the trash.
    let r = client().get(s.v2(&format!("{doomed}/app/manifests/v1"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(first_error(r).await.1, format!("project {doomed} is in the trash; restore it to use it again"));
}

#[tokio::test]
async fn storage_use_lists_only_repositories_the_caller_may_read() {
    let s = TestServer::start();
    two_users(&s).await;
    push_image(&s, "syn1/open", "v1", b"open layer").await;
    push_image(&s, "syn1/secret", "v1", b"secret layer").await;
    set_acl(&s, "syn1", &[("user:bob", "view")]).await;
    let secret = crate::api_util::repo_id(&s, "syn1/secret").await;
    // syn1/secret gets its own sharing settings without bob.
    set_acl(&s, &secret, &[]).await;
    let (st, v) = get(&client_as("bob", BOB_PW), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(st, 200, "{v}");
    let names: Vec<&str> = v["repositories"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["syn1/open"]);
    assert_eq!(v["logical_bytes"], v["repositories"][0]["logical_bytes"], "the total counts only what is listed");
    assert!(v.get("physical_bytes_all_projects").is_none());
    let (_, all) = get(&client(), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(all["repositories"].as_array().unwrap().len(), 2, "admins see everything");
}

#[tokio::test]
async fn malformed_token_requests_get_400_saying_what_was_wrong() {
    let s = TestServer::start();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("service", "stowage"), ("scope", "repository:syn1/app")], "no actions"),
        (&[("service", "stowage"), ("scope", "nonsense")], "no resource type"),
        (&[("service", "stowage"), ("scope", "repository:Syn1/App:pull")], "malformed"),
        (&[("service", "stowage"), ("scope", "repository:syn1/app:fly")], "unknown action \"fly\""),
        (&[("service", "stowage"), ("scope", "bucket:syn1/app:pull")], "resource type must be repository or registry"),
        (&[("service", "stowage"), ("scope", "registry:catalog:pull")], "registry:catalog:*"),
        (
            &[("service", "somebody-else"), ("scope", "repository:syn1/app:pull")],
            "service \"somebody-else\" is not served here",
        ),
    ];
    for (params, want) in cases {
        for c in [client(), anonymous()] {
            let r = c.get(s.v2("token")).query(params).send().await.unwrap();
            assert_eq!(r.status(), 400, "{params:?}");
            let v: Value = r.json().await.unwrap();
            let msg = v["errors"][0]["message"].as_str().unwrap_or("");
            assert!(msg.contains(want), "{params:?}: {msg}");
        }
    }
    // The OAuth2 form is checked the same way.
    let r = anonymous()
        .post(s.v2("token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("service", "stowage"),
            ("scope", "repository:syn1/app:pull,teleport"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Too many scopes in one request.
    let many: Vec<(&str, String)> = (0..33).map(|i| ("scope", format!("repository:syn1/app{i}:pull"))).collect();
    let r = client().get(s.v2("token")).query(&many).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Well-formed requests still work, with or without a service.
    let r = client().get(s.v2("token")).query(&[("scope", "repository:syn1/app:pull")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_user_without_read_is_refused_every_entity_route_as_if_it_did_not_exist() {
    let s = TestServer::start();
    two_users(&s).await;
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let repo = crate::api_util::repo_id(&s, "syn1/app").await;
    let (_, x) =
        post(&client(), &api(&s, "projects/syn1/external-repositories"), json!({ "repository_name": "quay.io/o/t" }))
            .await;
    let external = x["id"].as_str().unwrap().to_string();
    let bob = client_as("bob", BOB_PW);
    let acl = json!({ "entries": [{ "principal": "user:bob", "access": ["admin"] }] });
    let commit = json!({ "tag": "v1", "digest": sha256(b"m") });
    let calls: Vec<(&str, String, Option<Value>, String)> = vec![
        ("GET", "projects/syn1".into(), None, "syn1".into()),
        ("GET", "projects/syn1/repositories".into(), None, "syn1".into()),
        ("GET", "projects/syn1/usage".into(), None, "syn1".into()),
        (
            "POST",
            "projects/syn1/external-repositories".into(),
            Some(json!({ "repository_name": "a.io/b/c" })),
            "syn1".into(),
        ),
        ("GET", "entities/syn1/acl".into(), None, "syn1".into()),
        ("PUT", "entities/syn1/acl".into(), Some(acl.clone()), "syn1".into()),
        ("PUT", format!("entities/{repo}/acl"), Some(acl), repo.clone()),
        ("DELETE", format!("entities/{repo}/acl"), None, repo.clone()),
        ("DELETE", format!("entities/{repo}"), None, repo.clone()),
        ("DELETE", "entities/syn1".into(), None, "syn1".into()),
        ("GET", format!("repositories/{repo}"), None, repo.clone()),
        ("GET", format!("repositories/{repo}/tags"), None, repo.clone()),
        ("GET", format!("repositories/{repo}/commits"), None, repo.clone()),
        ("POST", format!("repositories/{external}/commits"), Some(commit), external.clone()),
    ];
    for (m, path, body, id) in calls {
        let (st, v) = crate::api_util::send(&bob, m, &api(&s, &path), body).await;
        assert_eq!(st, 404, "{m} {path}: {v}");
        assert_eq!(v["error"]["message"], format!("{id} does not exist or you may not see it"), "{m} {path}");
    }
    // The trash: someone else's trashed entity is not in bob's trash.
    let r = client().delete(api(&s, &format!("entities/{repo}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for (m, path) in [("POST", format!("trash/{repo}/restore")), ("DELETE", format!("trash/{repo}"))] {
        let (st, v) = crate::api_util::send(&bob, m, &api(&s, &path), None).await;
        assert_eq!(st, 404, "{m} {path}: {v}");
        assert_eq!(v["error"]["message"], format!("{repo} is not in your trash"), "{m} {path}");
    }
    // Nothing changed: the admin still sees the repository in the trash and syn1's own settings.
    let (_, t) = get(&client(), &api(&s, "trash")).await;
    assert_eq!(t["items"][0]["id"], repo.as_str());
    let (_, a) = get(&client(), &api(&s, "entities/syn1/acl")).await;
    assert!(!a.to_string().contains("user:bob"), "{a}");
}
