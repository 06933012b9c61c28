//! Account and team rules of the REST API whose answers Schemathesis checked against the OpenAPI
//! document: a well-formed request refused by a rule is 403, by the state of a thing 409, for a
//! missing thing 404 (never 400, which means the request itself is malformed), and lengths are
//! counted in characters as `minLength`/`maxLength` count them.

use crate::api_util::*;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn administrators_cannot_delete_or_disable_themselves() {
    let s = TestServer::start();
    let (st, v) = delete(&client(), &api(&s, "users/admin")).await;
    assert_eq!(st, 403, "{v}");
    assert_error(&v, "forbidden");
    let (st, v) = put(&client(), &api(&s, "users/admin/disabled"), json!({ "disabled": true })).await;
    assert_eq!(st, 403, "{v}");
    assert_error(&v, "forbidden");
    let (st, v) = get(&client(), &api(&s, "users/admin")).await;
    assert_eq!((st, &v["disabled"]), (200, &json!(false)), "still there and enabled: {v}");
}

#[tokio::test]
async fn changing_your_own_password_needs_the_current_one() {
    let s = TestServer::start();
    create_user(&s, "dora", "dora-password").await;
    let dora = client_as("dora", "dora-password");
    let url = api(&s, "users/dora/password");
    for body in [
        json!({ "new_password": "dora-new-password" }),
        json!({ "current_password": null, "new_password": "dora-new-password" }),
        json!({ "current_password": "not-her-password", "new_password": "dora-new-password" }),
    ] {
        let (st, v) = put(&dora, &url, body.clone()).await;
        assert_eq!(st, 403, "{body}: {v}");
        assert_error(&v, "forbidden");
    }
    let (st, v) =
        put(&dora, &url, json!({ "current_password": "dora-password", "new_password": "dora-new-password" })).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = get(&dora, &api(&s, "users/dora")).await;
    assert_eq!(st, 401, "the old password stops working");
    // An administrator sets it without the current one.
    let (st, v) = put(&client(), &url, json!({ "new_password": "dora-third-password" })).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = get(&client_as("dora", "dora-third-password"), &api(&s, "users/dora")).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn a_team_keeps_at_least_one_manager() {
    let s = TestServer::start();
    let (st, t) = post(&client(), &api(&s, "teams"), json!({ "name": "ops" })).await;
    assert_eq!(st, 201, "{t}");
    let (st, v) = delete(&client(), &api(&s, &format!("teams/{}/managers/admin", t["id"]))).await;
    assert_eq!(st, 409, "{v}");
    assert_error(&v, "conflict");
}

#[tokio::test]
async fn lengths_are_counted_in_characters() {
    let s = TestServer::start();
    // 128 two-byte characters: 256 bytes, within the documented maxLength of 128.
    let name = "é".repeat(128);
    let (st, v) = post(&client(), &api(&s, "teams"), json!({ "name": name })).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(&client(), &api(&s, "teams"), json!({ "name": "é".repeat(129) })).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(&client(), &api(&s, "projects"), json!({ "name": "ü".repeat(256) })).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(&client(), &api(&s, "tokens"), json!({ "name": "ß".repeat(128), "scopes": ["view"] })).await;
    assert_eq!(st, 201, "{v}");
    // Passwords: 8 to 1024 characters, whatever their bytes.
    let (st, v) =
        post(&client(), &api(&s, "users"), json!({ "username": "short", "password": "ééééééé" /* 7 chars */ })).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(&client(), &api(&s, "users"), json!({ "username": "long", "password": "é".repeat(1024) })).await;
    assert_eq!(st, 201, "{v}");
}

#[tokio::test]
async fn external_repository_names_have_a_slash_inside() {
    let s = TestServer::start();
    let url = api(&s, "projects/syn1/external-repositories");
    for bad in ["0/", "/a", "a/b/", "ab"] {
        let (st, v) = post(&client(), &url, json!({ "repository_name": bad })).await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert_error(&v, "bad_request");
    }
    let (st, v) = post(&client(), &url, json!({ "repository_name": "a/b" })).await;
    assert_eq!(st, 201, "{v}");
}
