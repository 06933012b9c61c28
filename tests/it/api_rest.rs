//! Scenario tests of the REST API under `/api/v1/` (DESIGN.md section 3): exact statuses and
//! bodies.

use crate::api_util::*;
use crate::common::*;
use serde_json::{json, Value};

const ALL_ACCESS: [&str; 6] = ["READ", "DOWNLOAD", "CREATE", "UPDATE", "DELETE", "CHANGE_PERMISSIONS"];

fn names(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {v}"))
        .iter()
        .map(|x| x[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn users_create_get_certify() {
    let s = TestServer::start();
    let (st, v) =
        post(&client(), &api(&s, "users"), json!({ "username": "alice", "password": "alice-password" })).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(keys(&v), ["admin", "certified", "created", "disabled", "id", "username"]);
    assert_eq!(v["username"], "alice");
    assert_eq!(v["certified"], false);
    assert_eq!(v["admin"], false);
    assert!(v["id"].is_u64() && v["created"].is_i64(), "{v}");
    let alice_id = v["id"].clone();

    let (st, v) =
        post(&client(), &api(&s, "users"), json!({ "username": "alice", "password": "another-password" })).await;
    assert_eq!(st, 409);
    assert_error(&v, "conflict");
    for bad in ["Alice", "", "-alice", "a b", "al/ice"] {
        let (st, v) = post(&client(), &api(&s, "users"), json!({ "username": bad, "password": "long-enough" })).await;
        assert_eq!(st, 400, "username {bad:?}");
        assert_error(&v, "bad_request");
    }
    let (st, v) = post(&client(), &api(&s, "users"), json!({ "username": "shorty", "password": "short" })).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) =
        post(&client(), &api(&s, "users"), json!({ "username": "x", "password": "long-enough", "role": "x" })).await;
    assert_eq!(st, 400, "unknown fields are refused");
    assert_error(&v, "bad_request");
    let (st, v) = post(&client(), &api(&s, "users"), json!({ "username": "nopass" })).await;
    assert_eq!(st, 400, "password is required");
    assert_error(&v, "bad_request");

    let alice = client_as("alice", "alice-password");
    let (st, v) =
        post(&alice, &api(&s, "users"), json!({ "username": "mallory", "password": "mallory-password" })).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");
    let (st, v) =
        post(&anonymous(), &api(&s, "users"), json!({ "username": "mallory", "password": "mallory-password" })).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");

    // Self: the whole record. Others: only the public part, unless admin.
    let (st, v) = get(&alice, &api(&s, "users/alice")).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["admin", "certified", "created", "disabled", "id", "username"]);
    assert_eq!(v["id"], alice_id);
    let (st, v) = get(&alice, &api(&s, "users/admin")).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["certified", "id", "username"]);
    assert_eq!(v["username"], "admin");
    let (st, v) = get(&client(), &api(&s, "users/admin")).await;
    assert_eq!(st, 200);
    assert_eq!(v["admin"], true);
    let (st, v) = get(&client(), &api(&s, "users/alice")).await;
    assert_eq!(st, 200);
    assert_eq!(v["admin"], false);
    let (st, v) = get(&client(), &api(&s, "users/nobody")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = get(&anonymous(), &api(&s, "users/alice")).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");

    // Certification.
    let (st, v) = put(&alice, &api(&s, "users/alice/certified"), json!({ "certified": true })).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");
    let (st, v) = put(&client(), &api(&s, "users/alice/certified"), json!({ "certified": true })).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["certified"], true);
    assert_eq!(v["username"], "alice");
    let (_, v) = get(&alice, &api(&s, "users/alice")).await;
    assert_eq!(v["certified"], true);
    let (st, v) = put(&client(), &api(&s, "users/alice/certified"), json!({ "certified": false })).await;
    assert_eq!(st, 200);
    assert_eq!(v["certified"], false);
    let (st, v) = put(&client(), &api(&s, "users/alice/certified"), json!({ "certified": "yes" })).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = put(&client(), &api(&s, "users/nobody/certified"), json!({ "certified": true })).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");

    // Admin may create certified users and administrators.
    let (st, v) = post(
        &client(),
        &api(&s, "users"),
        json!({ "username": "carol", "password": "carol-password", "certified": true, "admin": true }),
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!((v["certified"].clone(), v["admin"].clone()), (json!(true), json!(true)));
}

#[tokio::test]
async fn teams_and_members() {
    let s = TestServer::start();
    create_user(&s, "alice", "alice-password").await;
    create_user(&s, "bob", "bob-password").await;
    create_user(&s, "carol", "carol-password").await;
    let alice = client_as("alice", "alice-password");
    let (st, t) = post(&alice, &api(&s, "teams"), json!({ "name": "devs" })).await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(keys(&t), ["id", "managers", "members", "name"]);
    assert_eq!(t["name"], "devs");
    assert_eq!(t["members"], json!(["alice"]));
    let id = t["id"].as_u64().expect("numeric team id");

    let (st, v) = get(&client_as("bob", "bob-password"), &api(&s, &format!("teams/{id}"))).await;
    assert_eq!(st, 200);
    assert_eq!(v, t);
    let (st, v) = put(&alice, &api(&s, &format!("teams/{id}/members/bob")), json!(null)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["members"], json!(["alice", "bob"]));
    let (st, v) =
        put(&client_as("carol", "carol-password"), &api(&s, &format!("teams/{id}/members/carol")), json!(null)).await;
    assert_eq!(st, 403, "non-members may not add themselves");
    assert_error(&v, "forbidden");
    let (st, v) = put(&alice, &api(&s, &format!("teams/{id}/members/nobody")), json!(null)).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = delete(&client(), &api(&s, &format!("teams/{id}/members/bob"))).await;
    assert_eq!(st, 200, "admins may change any team");
    assert_eq!(v["members"], json!(["alice"]));
    let (st, v) = delete(&client(), &api(&s, &format!("teams/{id}/members/bob"))).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (_, v) = get(&alice, &api(&s, &format!("teams/{id}"))).await;
    assert_eq!(v["members"], json!(["alice"]));

    let (st, v) = get(&alice, &api(&s, "teams/devs")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = get(&alice, &api(&s, "teams/999")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = post(&alice, &api(&s, "teams"), json!({ "name": "  " })).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = post(&anonymous(), &api(&s, "teams"), json!({ "name": "anons" })).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");
}

#[tokio::test]
async fn projects_create_list_get() {
    let s = TestServer::start();
    let (st, v) = post(&client(), &api(&s, "projects"), json!({ "name": "third" })).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(keys(&v), ["created", "created_by", "id", "kind", "name"]);
    assert_eq!(v["id"], "syn3");
    assert_eq!(v["kind"], "project");
    assert_eq!(v["name"], "third");
    assert_eq!(v["created_by"], "admin");

    create_user(&s, "alice", "alice-password").await;
    let alice = client_as("alice", "alice-password");
    let (st, v) = post(&alice, &api(&s, "projects"), json!({ "name": "alices" })).await;
    assert_eq!(st, 201);
    assert_eq!(v["id"], "syn4");
    assert_eq!(v["created_by"], "alice");

    let (st, v) = get(&alice, &api(&s, "projects")).await;
    assert_eq!(st, 200);
    assert_eq!(names(&v, "projects", "id"), ["syn4"], "alice sees only what she may READ");
    let (_, v) = get(&client(), &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn1", "syn2", "syn3", "syn4"], "admin sees all");
    let (_, v) = get(&anonymous(), &api(&s, "projects")).await;
    assert_eq!(v, json!({ "projects": [] }));

    let (st, v) = get(&alice, &api(&s, "projects/syn4")).await;
    assert_eq!(st, 200);
    assert_eq!(v["name"], "alices");
    let (st, v) = get(&alice, &api(&s, "projects/syn1")).await;
    assert_eq!(st, 404, "not visible");
    assert_error(&v, "not_found");
    let (st, v) = get(&anonymous(), &api(&s, "projects/syn1")).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");

    // Shared with alice: now listed.
    let (st, v) = put(
        &client(),
        &api(&s, "entities/syn1/acl"),
        json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }, { "principal": "user:alice", "access": ["view"] }] }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = get(&alice, &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn1", "syn4"]);
    // Public: anonymous sees it too.
    let (st, _) = put(
        &client(),
        &api(&s, "entities/syn2/acl"),
        json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }, { "principal": "public", "access": ["view"] }] }),
    )
    .await;
    assert_eq!(st, 200);
    let (_, v) = get(&anonymous(), &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn2"]);

    let (st, v) = get(&client(), &api(&s, "projects/third")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = get(&client(), &api(&s, "projects/syn999")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = post(&client(), &api(&s, "projects"), json!({ "name": "" })).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = post(&anonymous(), &api(&s, "projects"), json!({ "name": "anon" })).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");
}

#[tokio::test]
async fn sharing_settings_inherit_local_revert() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let repo = repo_id(&s, "syn1/app").await;
    create_user(&s, "alice", "alice-password").await;
    let alice = client_as("alice", "alice-password");
    let acl_url = api(&s, &format!("entities/{repo}/acl"));

    let (st, v) = get(&client(), &acl_url).await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({ "entity": repo, "benefactor": "syn1", "inherited": true,
                "entries": [{ "principal": "user:admin", "access": ALL_ACCESS }] })
    );
    let (_, v) = get(&client(), &api(&s, "entities/syn1/acl")).await;
    assert_eq!(v["benefactor"], "syn1");
    assert_eq!(v["inherited"], false);
    let (_, v) = get(&client(), &api(&s, &format!("repositories/{repo}"))).await;
    assert_eq!(v["local_sharing"], false);
    let (st, _) = get(&alice, &api(&s, &format!("repositories/{repo}"))).await;
    assert_eq!(st, 404);

    // PUT on the repository: local settings.
    let (st, v) = put(
        &client(),
        &acl_url,
        json!({ "entries": [
            { "principal": "user:admin", "access": ["admin"] },
            { "principal": "user:alice", "access": ["download"] },
            { "principal": "authenticated", "access": ["READ"] },
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({ "entity": repo, "benefactor": repo, "inherited": false, "entries": [
            { "principal": "user:admin", "access": ALL_ACCESS },
            { "principal": "user:alice", "access": ["READ", "DOWNLOAD"] },
            { "principal": "authenticated", "access": ["READ"] },
        ]})
    );
    let (_, g) = get(&client(), &acl_url).await;
    assert_eq!(g, v);
    let (_, v) = get(&client(), &api(&s, &format!("repositories/{repo}"))).await;
    assert_eq!(v["local_sharing"], true);
    let (st, v) = get(&alice, &api(&s, &format!("repositories/{repo}"))).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = get(&alice, &api(&s, "projects/syn1")).await;
    assert_eq!(st, 404, "the project is still not shared");
    // Alice may read but not change the settings.
    let (st, v) = put(&alice, &acl_url, json!({ "entries": [] })).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");
    let (st, v) = delete(&alice, &acl_url).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");

    // Invalid settings are refused and change nothing.
    let bad = [
        json!({ "entries": [{ "principal": "everyone", "access": ["READ"] }] }),
        json!({ "entries": [{ "principal": "user:", "access": ["READ"] }] }),
        json!({ "entries": [{ "principal": "team:x", "access": ["READ"] }] }),
        json!({ "entries": [{ "principal": "user:alice", "access": ["FLY"] }] }),
        json!({ "entries": [{ "principal": "user:alice" }] }),
        json!({ "entries": [{ "principal": "user:alice", "access": "READ" }] }),
        json!({}),
    ];
    for b in bad {
        let (st, v) = put(&client(), &acl_url, b.clone()).await;
        assert_eq!(st, 400, "{b}: {v}");
        assert_error(&v, "bad_request");
    }
    // Well-formed entries naming someone who does not exist: 404, naming them.
    for (who, missing) in [("user:nobody", "user nobody"), ("team:999", "team 999")] {
        let (st, v) = put(&client(), &acl_url, json!({ "entries": [{ "principal": who, "access": ["READ"] }] })).await;
        assert_eq!(st, 404, "{who}: {v}");
        assert_error(&v, "not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains(missing), "{v}");
    }
    let (_, v) = get(&client(), &acl_url).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 3, "unchanged: {v}");

    // DELETE reverts to the project's.
    let (st, v) = delete(&client(), &acl_url).await;
    assert_eq!(st, 204);
    assert_eq!(v, Value::Null, "no body");
    let (_, v) = get(&client(), &acl_url).await;
    assert_eq!(v["inherited"], true);
    assert_eq!(v["benefactor"], "syn1");
    assert_eq!(v["entries"], json!([{ "principal": "user:admin", "access": ALL_ACCESS }]));
    let (st, _) = get(&alice, &api(&s, &format!("repositories/{repo}"))).await;
    assert_eq!(st, 404);

    // A project's settings must keep someone with CHANGE_PERMISSIONS; a project cannot inherit.
    let (st, v) = put(
        &client(),
        &api(&s, "entities/syn1/acl"),
        json!({ "entries": [{ "principal": "user:alice", "access": ["edit_delete"] }] }),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert_error(&v, "conflict");
    let (_, v) = get(&client(), &api(&s, "entities/syn1/acl")).await;
    assert_eq!(v["entries"], json!([{ "principal": "user:admin", "access": ALL_ACCESS }]), "unchanged");
    let (st, v) = delete(&client(), &api(&s, "entities/syn1/acl")).await;
    assert_eq!(st, 409, "{v}");
    assert_error(&v, "conflict");
    // With a team.
    let (_, t) = post(&client(), &api(&s, "teams"), json!({ "name": "readers" })).await;
    let tid = t["id"].as_u64().unwrap();
    let (st, v) = put(
        &client(),
        &api(&s, "entities/syn1/acl"),
        json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }, { "principal": format!("team:{tid}"), "access": ["view"] }] }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = get(&alice, &api(&s, "projects/syn1")).await;
    assert_eq!(st, 404);
    let (st, _) = put(&client(), &api(&s, &format!("teams/{tid}/members/alice")), json!(null)).await;
    assert_eq!(st, 200);
    let (st, v) = get(&alice, &api(&s, "projects/syn1")).await;
    assert_eq!(st, 200, "team members read: {v}");

    let (st, v) = get(&client(), &api(&s, "entities/nope/acl")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = get(&client(), &api(&s, "entities/syn999/acl")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn project_repositories_managed_and_external() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    push_image(&s, "syn1/tools/cli", "v1", b"cli layer").await;
    push_image(&s, "syn2/elsewhere", "v1", b"other").await;
    let (st, x) = post(
        &client(),
        &api(&s, "projects/syn1/external-repositories"),
        json!({ "repository_name": "docker.io/library/alpine" }),
    )
    .await;
    assert_eq!(st, 201, "{x}");
    assert_eq!(keys(&x), ["created", "created_by", "id", "kind", "local_sharing", "name", "project"]);
    assert_eq!(x["kind"], "external_repository");
    assert_eq!(x["name"], "docker.io/library/alpine");
    assert_eq!(x["project"], "syn1");
    assert_eq!(x["created_by"], "admin");
    assert_eq!(x["local_sharing"], false);

    let (st, v) = get(&client(), &api(&s, "projects/syn1/repositories")).await;
    assert_eq!(st, 200);
    assert_eq!(names(&v, "repositories", "name"), ["syn1/app", "syn1/tools/cli", "docker.io/library/alpine"]);
    assert_eq!(names(&v, "repositories", "kind"), ["repository", "repository", "external_repository"]);
    let managed = &v["repositories"][0];
    assert_eq!(keys(managed), ["created", "id", "kind", "local_sharing", "logical_bytes", "name", "project"]);
    assert_eq!(managed["project"], "syn1");
    assert_eq!(v["repositories"][2], x);
    let (_, v) = get(&client(), &api(&s, "projects/syn2/repositories")).await;
    assert_eq!(names(&v, "repositories", "name"), ["syn2/elsewhere"]);
    let (_, v) = post(&client(), &api(&s, "projects"), json!({ "name": "empty" })).await;
    let (st, v) = get(&client(), &api(&s, &format!("projects/{}/repositories", v["id"].as_str().unwrap()))).await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({ "repositories": [] }));

    for bad in ["alpine", "", "docker.io/library/al pine"] {
        let (st, v) =
            post(&client(), &api(&s, "projects/syn1/external-repositories"), json!({ "repository_name": bad })).await;
        assert_eq!(st, 400, "{bad:?}");
        assert_error(&v, "bad_request");
    }
    create_user(&s, "alice", "alice-password").await;
    let alice = client_as("alice", "alice-password");
    let (st, v) =
        post(&alice, &api(&s, "projects/syn1/external-repositories"), json!({ "repository_name": "a/b" })).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = get(&alice, &api(&s, "projects/syn1/repositories")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    // A repository id is not a project.
    let rid = repo_id(&s, "syn1/app").await;
    let (st, v) = get(&client(), &api(&s, &format!("projects/{rid}/repositories"))).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn repository_by_id_and_by_name() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let (st, by_name) = get(&client(), &api(&s, "repositories?name=syn1/app")).await;
    assert_eq!(st, 200, "{by_name}");
    assert_eq!(keys(&by_name), ["created", "id", "kind", "local_sharing", "logical_bytes", "name", "project", "pull"]);
    assert_eq!(by_name["kind"], "repository");
    assert_eq!(by_name["name"], "syn1/app");
    assert_eq!(by_name["project"], "syn1");
    assert_eq!(by_name["pull"], format!("docker pull {}/syn1/app:<tag>", s.host));
    assert!(by_name["logical_bytes"].as_u64().unwrap() > 0);
    let id = by_name["id"].as_str().unwrap();
    assert!(id.starts_with("syn"));
    let (st, by_id) = get(&client(), &api(&s, &format!("repositories/{id}"))).await;
    assert_eq!(st, 200);
    assert_eq!(by_id, by_name);

    let (st, v) = get(&client(), &api(&s, "repositories")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = get(&client(), &api(&s, "repositories?name=syn1/missing")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = get(&client(), &api(&s, "repositories/syn1")).await;
    assert_eq!(st, 404, "a project is not a repository");
    assert_error(&v, "not_found");
    let (st, v) = get(&client(), &api(&s, "repositories/app")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
    let (st, v) = get(&anonymous(), &api(&s, &format!("repositories/{id}"))).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");

    let (_, x) = post(
        &client(),
        &api(&s, "projects/syn1/external-repositories"),
        json!({ "repository_name": "quay.io/org/tool" }),
    )
    .await;
    let (st, v) = get(&client(), &api(&s, &format!("repositories/{}", x["id"].as_str().unwrap()))).await;
    assert_eq!(st, 200);
    assert_eq!(v, x);
}

/// Pushes v1, v2, then v1 again with other content, a second apart; returns the three digests.
async fn three_pushes(s: &TestServer) -> (String, String, String, Vec<u8>) {
    let (d1, _) = push_image(s, "syn1/app", "v1", b"first").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (d2, _) = push_image(s, "syn1/app", "v2", b"second").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (d3, m3) = push_image(s, "syn1/app", "v1", b"third").await;
    (d1, d2, d3, m3)
}

#[tokio::test]
async fn tags_current_digest_sort_page() {
    let s = TestServer::start();
    let (_d1, d2, d3, m3) = three_pushes(&s).await;
    let id = repo_id(&s, "syn1/app").await;
    let tags = |q: &str| api(&s, &format!("repositories/{id}/tags{q}"));
    let (st, v) = get(&client(), &tags("")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["name", "repository", "tags", "total"]);
    assert_eq!(v["repository"], id.as_str());
    assert_eq!(v["name"], "syn1/app");
    assert_eq!(v["total"], 2);
    assert_eq!(names(&v, "tags", "tag"), ["v1", "v2"]);
    assert_eq!(names(&v, "tags", "digest"), [d3.clone(), d2.clone()], "current digest of each tag");
    let t = &v["tags"][0];
    assert_eq!(keys(t), ["digest", "media_type", "pushed", "pusher", "size", "tag"]);
    assert_eq!(t["media_type"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(t["size"], m3.len());
    assert_eq!(t["pusher"], "admin");
    assert!(v["tags"][0]["pushed"].as_i64().unwrap() > v["tags"][1]["pushed"].as_i64().unwrap());

    let order = |v: &Value| names(v, "tags", "tag");
    assert_eq!(order(&get(&client(), &tags("?sort=tag")).await.1), ["v1", "v2"]);
    assert_eq!(order(&get(&client(), &tags("?order=desc")).await.1), ["v2", "v1"]);
    assert_eq!(order(&get(&client(), &tags("?sort=created")).await.1), ["v2", "v1"]);
    assert_eq!(order(&get(&client(), &tags("?sort=created&order=desc")).await.1), ["v1", "v2"]);
    assert_eq!(order(&get(&client(), &tags("?sort=created&order=asc")).await.1), ["v2", "v1"]);
    let (_, v) = get(&client(), &tags("?limit=1")).await;
    assert_eq!((order(&v), v["total"].clone()), (vec!["v1".to_string()], json!(2)));
    assert_eq!(order(&get(&client(), &tags("?offset=1")).await.1), ["v2"]);
    assert_eq!(order(&get(&client(), &tags("?limit=1&offset=1&order=desc")).await.1), ["v1"]);
    assert!(order(&get(&client(), &tags("?offset=5")).await.1).is_empty());
    assert!(order(&get(&client(), &tags("?limit=0")).await.1).is_empty());
    for q in ["?sort=size", "?order=up", "?limit=x", "?offset=-1"] {
        let (st, v) = get(&client(), &tags(q)).await;
        assert_eq!(st, 400, "{q}");
        assert_error(&v, "bad_request");
    }
    let (st, v) = get(&client(), &api(&s, "repositories/syn1/tags")).await;
    assert_eq!(st, 404, "a project has no tags");
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn commits_history_and_external_commits() {
    let s = TestServer::start();
    let (d1, d2, d3, _) = three_pushes(&s).await;
    let id = repo_id(&s, "syn1/app").await;
    let url = api(&s, &format!("repositories/{id}/commits"));
    let (st, v) = get(&client(), &url).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["commits", "repository"]);
    assert_eq!(v["repository"], id.as_str());
    let c = v["commits"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = c
        .iter()
        .map(|c| (c["tag"].as_str().unwrap(), c["digest"].as_str().unwrap(), c["pusher"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("v1", d1.as_str(), "admin"), ("v2", d2.as_str(), "admin"), ("v1", d3.as_str(), "admin")]);
    assert_eq!(keys(&c[0]), ["digest", "pusher", "seq", "tag", "time"]);
    let seqs: Vec<u64> = c.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let times: Vec<i64> = c.iter().map(|c| c["time"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let (_, v) = get(&client(), &format!("{url}?limit=2")).await;
    assert_eq!(names(&v, "commits", "digest"), [d1.clone(), d2.clone()]);
    let (_, v) = get(&client(), &format!("{url}?after={}", seqs[0])).await;
    assert_eq!(names(&v, "commits", "digest"), [d2.clone(), d3.clone()]);
    let (st, v) = get(&client(), &format!("{url}?after=x")).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");

    // A project has no commits.
    let (st, v) = get(&client(), &api(&s, "repositories/syn1/commits")).await;
    assert_eq!(st, 404, "{v}");
    assert_error(&v, "not_found");
    let (st, v) = post(&client(), &api(&s, "repositories/syn1/commits"), json!({ "tag": "v3", "digest": d1 })).await;
    assert_eq!(st, 404, "{v}");
    assert_error(&v, "not_found");

    // Managed repositories get commits only from pushes.
    let (st, v) = post(&client(), &url, json!({ "tag": "v3", "digest": d1 })).await;
    assert_eq!(st, 409, "{v}");
    assert_error(&v, "conflict");

    let (_, x) = post(
        &client(),
        &api(&s, "projects/syn1/external-repositories"),
        json!({ "repository_name": "docker.io/library/alpine" }),
    )
    .await;
    let xid = x["id"].as_str().unwrap();
    let xurl = api(&s, &format!("repositories/{xid}/commits"));
    let digest = sha256(b"alpine manifest");
    let (st, v) = post(&client(), &xurl, json!({ "tag": "3.19", "digest": digest })).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(keys(&v), ["digest", "pusher", "seq", "tag", "time"]);
    assert_eq!(
        (v["tag"].as_str(), v["digest"].as_str(), v["pusher"].as_str()),
        (Some("3.19"), Some(digest.as_str()), Some("admin"))
    );
    let (st, h) = get(&client(), &xurl).await;
    assert_eq!(st, 200);
    assert_eq!(h["commits"], json!([v]));
    let (_, t) = get(&client(), &api(&s, &format!("repositories/{xid}/tags"))).await;
    assert_eq!(names(&t, "tags", "digest"), [digest.as_str()]);
    assert_eq!(t["tags"][0]["size"], Value::Null, "unknown for external repositories");
    for b in [
        json!({ "tag": "3.19", "digest": "sha256:nothex" }),
        json!({ "tag": "bad tag", "digest": digest }),
        json!({ "tag": "3.19" }),
    ] {
        let (st, v) = post(&client(), &xurl, b.clone()).await;
        assert_eq!(st, 400, "{b}");
        assert_error(&v, "bad_request");
    }
    // Only with UPDATE.
    create_user(&s, "alice", "alice-password").await;
    let (st, _) = put(
        &client(),
        &api(&s, &format!("entities/{xid}/acl")),
        json!({ "entries": [{ "principal": "user:alice", "access": ["download"] }] }),
    )
    .await;
    assert_eq!(st, 200);
    let alice = client_as("alice", "alice-password");
    let (st, v) = get(&alice, &xurl).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(&alice, &xurl, json!({ "tag": "3.20", "digest": digest })).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");
}

#[tokio::test]
async fn trash_restore_purge() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let id = repo_id(&s, "syn1/app").await;
    let (st, t) = delete(&client(), &api(&s, &format!("entities/{id}"))).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(keys(&t), ["deleted_at", "deleted_by", "id", "kind", "name"]);
    assert_eq!(
        (t["id"].as_str(), t["kind"].as_str(), t["name"].as_str(), t["deleted_by"].as_str()),
        (Some(id.as_str()), Some("repository"), Some("syn1/app"), Some("admin"))
    );
    let (st, v) = get(&client(), &api(&s, "trash")).await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({ "items": [t] }));

    let (st, v) = get(&client(), &api(&s, &format!("repositories/{id}"))).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("trash"), "{v}");
    let (st, v) = get(&client(), &api(&s, "repositories?name=syn1/app")).await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("trash"), "{v}");
    let (_, v) = get(&client(), &api(&s, "projects/syn1/repositories")).await;
    assert_eq!(v, json!({ "repositories": [] }));
    let (st, _) = delete(&client(), &api(&s, &format!("entities/{id}"))).await;
    assert_eq!(st, 404, "already in the trash");

    // Someone else's trash is not theirs to see or restore.
    create_user(&s, "alice", "alice-password").await;
    let alice = client_as("alice", "alice-password");
    let (_, v) = get(&alice, &api(&s, "trash")).await;
    assert_eq!(v, json!({ "items": [] }));
    let (st, v) = post(&alice, &api(&s, &format!("trash/{id}/restore")), json!(null)).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = delete(&alice, &api(&s, &format!("trash/{id}"))).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");

    let (st, v) = post(&client(), &api(&s, &format!("trash/{id}/restore")), json!(null)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["kind"], "repository");
    let (st, _) = get(&client(), &api(&s, &format!("repositories/{id}"))).await;
    assert_eq!(st, 200);
    let (_, v) = get(&client(), &api(&s, "trash")).await;
    assert_eq!(v, json!({ "items": [] }));
    let (st, _) = post(&client(), &api(&s, &format!("trash/{id}/restore")), json!(null)).await;
    assert_eq!(st, 404, "not in the trash any more");

    // Purge.
    let (st, _) = delete(&client(), &api(&s, &format!("entities/{id}"))).await;
    assert_eq!(st, 200);
    let (st, v) = delete(&client(), &api(&s, &format!("trash/{id}"))).await;
    assert_eq!(st, 204);
    assert_eq!(v, Value::Null);
    let (_, v) = get(&client(), &api(&s, "trash")).await;
    assert_eq!(v, json!({ "items": [] }));
    let (st, v) = get(&client(), &api(&s, "repositories?name=syn1/app")).await;
    assert_eq!(st, 404);
    assert!(!v["error"]["message"].as_str().unwrap().contains("trash"), "gone, not trashed: {v}");
    let (st, _) = get(&client(), &api(&s, &format!("repositories/{id}"))).await;
    assert_eq!(st, 404);
    let (st, _) = post(&client(), &api(&s, &format!("trash/{id}/restore")), json!(null)).await;
    assert_eq!(st, 404);
    let r = client().get(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 404, "purged images are gone from the registry too");

    // A project: out of the listing while trashed, back after restore.
    let (st, v) = delete(&client(), &api(&s, "entities/syn2")).await;
    assert_eq!(st, 200);
    assert_eq!(v["kind"], "project");
    let (_, v) = get(&client(), &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn1"]);
    let (st, v) = get(&client(), &api(&s, "projects/syn2")).await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("trash"), "{v}");
    let (st, v) = post(&client(), &api(&s, "trash/syn2/restore"), json!(null)).await;
    assert_eq!(st, 200);
    assert_eq!(v["kind"], "project");
    let (_, v) = get(&client(), &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn1", "syn2"]);

    let (st, v) = delete(&alice, &api(&s, "entities/syn1")).await;
    assert_eq!(st, 404, "not visible to alice");
    assert_error(&v, "not_found");
    let (st, v) = delete(&anonymous(), &api(&s, "entities/syn1")).await;
    assert_eq!(st, 401);
    assert_error(&v, "unauthorized");
}

#[tokio::test]
async fn tokens_create_list_revoke() {
    let s = TestServer::start();
    let (st, t) = post(
        &client(),
        &api(&s, "tokens"),
        json!({ "name": "ci", "scopes": ["view", "download"], "expires_in_days": 30 }),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(keys(&t), ["created", "expires", "id", "name", "revoked", "scopes", "token"]);
    assert_eq!(t["name"], "ci");
    assert_eq!(t["scopes"], json!(["view", "download"]));
    assert_eq!(t["revoked"], false);
    assert_eq!(t["expires"].as_i64().unwrap() - t["created"].as_i64().unwrap(), 30 * 86400);
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("stw_"), "{secret}");
    let id = t["id"].as_str().unwrap().to_string();

    let (st, v) = get(&client(), &api(&s, "tokens")).await;
    assert_eq!(st, 200);
    let mut listed = t.clone();
    listed.as_object_mut().unwrap().remove("token");
    assert_eq!(v, json!({ "tokens": [listed] }), "listed without the secret");
    assert!(!v.to_string().contains(&secret[4..]), "no part of the secret is listed");

    // The token works as a Basic password (any username) and as a Bearer token.
    let via_basic = client_as("whoever", &secret);
    let (st, v) = get(&via_basic, &api(&s, "tokens")).await;
    assert_eq!(st, 200, "{v}");
    let bearer = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap())].into_iter().collect(),
        )
        .build()
        .unwrap();
    let (st, v) = get(&bearer, &api(&s, "users/admin")).await;
    assert_eq!(st, 200, "{v}");
    // Tokens cannot mint tokens.
    let (st, v) = post(&via_basic, &api(&s, "tokens"), json!({ "name": "more", "scopes": ["view"] })).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");

    // Defaults and validation.
    let (st, v) = post(&client(), &api(&s, "tokens"), json!({ "name": "default", "scopes": ["modify"] })).await;
    assert_eq!(st, 201);
    assert_eq!(v["expires"].as_i64().unwrap() - v["created"].as_i64().unwrap(), 90 * 86400);
    for b in [
        json!({ "name": "x", "scopes": [] }),
        json!({ "name": "x", "scopes": ["root"] }),
        json!({ "name": "", "scopes": ["view"] }),
        json!({ "name": "x", "scopes": ["view"], "expires_in_days": 0 }),
        json!({ "name": "x", "scopes": ["view"], "expires_in_days": 3651 }),
        json!({ "name": "x" }),
    ] {
        let (st, v) = post(&client(), &api(&s, "tokens"), b.clone()).await;
        assert_eq!(st, 400, "{b}");
        assert_error(&v, "bad_request");
    }

    // Others cannot revoke it.
    create_user(&s, "alice", "alice-password").await;
    let alice = client_as("alice", "alice-password");
    let (st, v) = delete(&alice, &api(&s, &format!("tokens/{id}"))).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (_, v) = get(&alice, &api(&s, "tokens")).await;
    assert_eq!(v, json!({ "tokens": [] }));

    let (st, v) = delete(&client(), &api(&s, &format!("tokens/{id}"))).await;
    assert_eq!(st, 204);
    assert_eq!(v, Value::Null);
    let (_, v) = get(&client(), &api(&s, "tokens")).await;
    let revoked = v["tokens"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).unwrap();
    assert_eq!(revoked["revoked"], true);
    let r = via_basic.get(api(&s, "tokens")).send().await.unwrap();
    assert_eq!(r.status(), 401, "a revoked token no longer logs in");
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stowage\"");
    assert_error(&r.json().await.unwrap(), "unauthorized");
    let (st, _) = get(&bearer, &api(&s, "users/admin")).await;
    assert_eq!(st, 401);
    let (st, v) = delete(&client(), &api(&s, "tokens/nope")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn usage_counts_logical_bytes() {
    let s = TestServer::start();
    let config_len = br#"{"architecture":"amd64","os":"linux"}"#.len() as u64;
    let (_, m1) = push_image(&s, "syn1/app", "v1", b"layer-one").await;
    let (_, m2) = push_image(&s, "syn1/other", "v1", b"layer-two!").await;
    let app = config_len + 9 + m1.len() as u64;
    let other = config_len + 10 + m2.len() as u64;
    let (st, v) = get(&client(), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["logical_bytes", "physical_bytes_all_projects", "project", "quota", "repositories"]);
    assert_eq!(v["quota"], Value::Null, "no quota set");
    assert_eq!(v["project"], "syn1");
    assert_eq!(v["logical_bytes"], app + other);
    let mut repos = v["repositories"].as_array().unwrap().clone();
    repos.sort_by_key(|r| r["name"].as_str().unwrap().to_string());
    assert_eq!(
        repos,
        [json!({ "name": "syn1/app", "logical_bytes": app }), json!({ "name": "syn1/other", "logical_bytes": other })]
    );
    // The config blob is stored once.
    assert_eq!(v["physical_bytes_all_projects"], app + other - config_len);

    // Pushing the same layer again under another tag adds only the new manifest.
    let (_, m3) = push_image(&s, "syn1/app", "v2", b"layer-one").await;
    assert_eq!(m3, m1, "same content, same manifest");
    let (_, v) = get(&client(), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(v["logical_bytes"], app + other);

    let (_, v) = get(&client(), &api(&s, "projects/syn2/usage")).await;
    assert_eq!((v["logical_bytes"].clone(), v["repositories"].clone()), (json!(0), json!([])));

    // Non-admins with READ see their project's use, not the whole store's.
    create_user(&s, "alice", "alice-password").await;
    let (st, _) = put(
        &client(),
        &api(&s, "entities/syn1/acl"),
        json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }, { "principal": "user:alice", "access": ["view"] }] }),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = get(&client_as("alice", "alice-password"), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["logical_bytes", "project", "repositories"]);
    let (st, v) = get(&client_as("alice", "alice-password"), &api(&s, "projects/syn2/usage")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
}

#[tokio::test]
async fn gc_admin_only() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let (st, v) = post(&client(), &api(&s, "gc"), json!(null)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["blobs_deleted", "blobs_marked", "blobs_scanned", "bytes_freed", "orphan_files_deleted"]);
    assert_eq!(v["blobs_deleted"], 0, "everything is referenced");
    assert!(v["blobs_scanned"].as_u64().unwrap() >= 3, "{v}");
    create_user(&s, "alice", "alice-password").await;
    let (st, v) = post(&client_as("alice", "alice-password"), &api(&s, "gc"), json!(null)).await;
    assert_eq!(st, 403);
    assert_error(&v, "forbidden");
    let r = anonymous().post(api(&s, "gc")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stowage\"");
    assert_error(&r.json().await.unwrap(), "unauthorized");
}

#[tokio::test]
async fn errors_limits_and_authentication() {
    let s = TestServer::start();
    // Unknown routes and methods.
    for (m, p) in [("GET", "nope"), ("GET", ""), ("GET", "users/admin/extra")] {
        let (st, v) = send(&client(), m, &api(&s, p), None).await;
        assert_eq!(st, 404, "{m} {p}");
        assert_error(&v, "not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains("is not an API route"), "{v}");
    }
    // A known path with a method it lacks: 405 with the methods it has.
    for (m, p, allow) in [
        ("DELETE", "projects", "POST, GET"),
        ("PATCH", "users/admin", "GET, DELETE"),
        ("POST", "users/admin", "GET, DELETE"),
    ] {
        let r = client().request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), api(&s, p)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{m} {p}");
        assert_eq!(r.headers()["allow"], allow, "{m} {p}");
        let v: Value = r.json().await.unwrap();
        assert_error(&v, "method_not_allowed");
    }
    // Every response is JSON.
    let r = client().get(api(&s, "projects")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = client().get(api(&s, "nope")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");

    // Malformed JSON.
    for body in ["{", "not json", "", "[]", "{\"name\": 5}"] {
        let r = client()
            .post(api(&s, "projects"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        assert_error(&r.json().await.unwrap(), "bad_request");
    }
    // Oversize body.
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    let r =
        client().post(api(&s, "projects")).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_error(&r.json().await.unwrap(), "too_large");
    // Just under the limit is read (and refused for its content, not its size).
    let near = format!("{{\"name\":\"{}\"}}", "x".repeat(60 * 1024));
    let r = client().post(api(&s, "projects")).body(near).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Deeply nested JSON.
    let deep = format!("{{\"name\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    let r = client().post(api(&s, "projects")).body(deep).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_error(&v, "bad_request");
    assert!(v["error"]["message"].as_str().unwrap().contains("deeper"), "{v}");
    let deep = "[".repeat(100_000);
    let r = client().put(api(&s, "entities/syn1/acl")).body(deep).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let deep = "{\"entries\":".repeat(5_000);
    let r = client().put(api(&s, "entities/syn1/acl")).body(deep).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Brackets inside strings do not count as nesting.
    let (st, v) = post(&client(), &api(&s, "projects"), json!({ "name": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" })).await;
    assert_eq!(st, 201, "{v}");

    // Unauthenticated and bad credentials.
    let r = anonymous().get(api(&s, "tokens")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stowage\"");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_error(&r.json().await.unwrap(), "unauthorized");
    for c in [
        client_as("admin", "wrong password"),
        client_as("nobody", "whatever-password"),
        client_as("admin", "stw_bogus_token"),
    ] {
        let r = c.get(api(&s, "projects")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stowage\"");
        assert_error(&r.json().await.unwrap(), "unauthorized");
    }
    for h in ["Bearer not-a-token", "Bearer stw_nope", "Digest abc", "Basic !!!"] {
        let r = anonymous().get(api(&s, "projects")).header("authorization", h).send().await.unwrap();
        assert_eq!(r.status(), 401, "{h}");
        assert_error(&r.json().await.unwrap(), "unauthorized");
    }
    // The document is public.
    let r = anonymous().get(api(&s, "openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn purging_a_project_purges_everything_in_it() {
    let s = TestServer::start();
    push_image(&s, "syn2/app", "v1", b"layer").await;
    let rid = repo_id(&s, "syn2/app").await;
    let (_, x) = post(
        &client(),
        &api(&s, "projects/syn2/external-repositories"),
        json!({ "repository_name": "quay.io/org/tool" }),
    )
    .await;
    let xid = x["id"].as_str().unwrap().to_string();
    // The external repository first, then its project.
    let (st, _) = delete(&client(), &api(&s, &format!("entities/{xid}"))).await;
    assert_eq!(st, 200);
    let (st, _) = delete(&client(), &api(&s, "entities/syn2")).await;
    assert_eq!(st, 200);
    let (_, v) = get(&client(), &api(&s, "trash")).await;
    let mut trashed = names(&v, "items", "id");
    trashed.sort();
    assert_eq!(trashed, ["syn2".to_string(), xid.clone()]);
    let (st, v) = delete(&client(), &api(&s, "trash/syn2")).await;
    assert_eq!(st, 204, "{v}");
    let (_, v) = get(&client(), &api(&s, "trash")).await;
    assert_eq!(v, json!({ "items": [] }), "nothing of the project is left in the trash");
    for id in ["syn2", rid.as_str(), xid.as_str()] {
        let (st, v) = get(&client(), &api(&s, &format!("entities/{id}/acl"))).await;
        assert_eq!(st, 404, "{id}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().contains("trash"), "{v}");
    }
    let (st, _) = get(&client(), &api(&s, "repositories?name=syn2/app")).await;
    assert_eq!(st, 404);
    let (_, v) = get(&client(), &api(&s, "projects")).await;
    assert_eq!(names(&v, "projects", "id"), ["syn1"]);
}
