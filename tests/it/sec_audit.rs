//! The audit trail: security-relevant events are appended with time, actor, client address and
//! target, and administrators read them newest first, filtered and paginated, over REST and with
//! `stowage admin audit`.

use crate::api_util::{api, delete, get, post, put};
use crate::auth_tokens::set_acl;
use crate::common::*;
use serde_json::{json, Value};

const ALICE_PW: &str = "alice-password-1";

/// Waits until the audit log holds `n` events matching `query` (failed logins are appended
/// without waiting, so the log may trail the answer by a moment).
async fn events(s: &TestServer, query: &str, at_least: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (st, v) = get(&client(), &api(s, &format!("audit?{query}"))).await;
        assert_eq!(st, 200, "{v}");
        let list = v["events"].as_array().unwrap().clone();
        if list.len() >= at_least {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {at_least} audit events for {query}");
}

#[tokio::test]
async fn security_events_are_recorded_and_readable_by_administrators() {
    let s = TestServer::start();
    crate::api_util::create_user(&s, "alice", ALICE_PW).await;
    let r = client().put(api(&s, "users/alice/certified")).json(&json!({ "certified": true })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A failed and a successful login of alice.
    let r = client_as("alice", "not-her-password").get(api(&s, "projects")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let alice = client_as("alice", ALICE_PW);
    let (st, tok) = post(&alice, &api(&s, "tokens"), json!({ "name": "ci", "scopes": ["download"] })).await;
    assert_eq!(st, 201);
    let token_id = tok["id"].as_str().unwrap().to_string();
    let (st, _) = delete(&alice, &api(&s, &format!("tokens/{token_id}"))).await;
    assert_eq!(st, 204);
    set_acl(&s, "syn1", &[("user:alice", "download")]).await;
    let (st, _) = delete(&client(), &api(&s, "entities/syn2")).await;
    assert_eq!(st, 200);
    let (st, _) = post(&client(), &api(&s, "trash/syn2/restore"), json!(null)).await;
    assert_eq!(st, 200);
    let (st, _) = put(&client(), &api(&s, "users/alice/disabled"), json!({ "disabled": true })).await;
    assert_eq!(st, 200);

    let all = events(&s, "limit=1000", 10).await;
    let seen: Vec<(String, String, String, String)> = all
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap().to_string();
            (f("action"), f("actor"), f("target"), f("outcome"))
        })
        .collect();
    let has = |action: &str, actor: &str, target: &str, outcome: &str| {
        assert!(
            seen.iter().any(|x| x == &(action.into(), actor.into(), target.into(), outcome.into())),
            "no {action} by {actor} on {target} ({outcome}) in {seen:?}"
        );
    };
    has("user.create", "admin", "alice", "ok");
    has("user.certify", "admin", "alice", "ok");
    has("login", "alice", "alice", "failed");
    has("login", "alice", "alice", "ok");
    has("token.create", "alice", &token_id, "ok");
    has("token.revoke", "alice", &token_id, "ok");
    has("acl.set", "admin", "syn1", "ok");
    has("entity.trash", "admin", "syn2", "ok");
    has("entity.restore", "admin", "syn2", "ok");
    has("user.disable", "admin", "alice", "ok");
    for e in &all {
        assert_eq!(e["address"], "127.0.0.1", "{e}");
        assert!(e["time"].as_i64().unwrap() > 1_700_000_000);
    }
    // Newest first, strictly.
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

    // Filters and pages.
    let by_alice = events(&s, "actor=alice&limit=1000", 4).await;
    assert!(by_alice.iter().all(|e| e["actor"] == "alice"));
    let on_token = events(&s, &format!("target={token_id}"), 2).await;
    assert_eq!(on_token.len(), 2);
    let (_, page1) = get(&client(), &api(&s, "audit?limit=3")).await;
    assert_eq!(page1["events"].as_array().unwrap().len(), 3);
    let next = page1["next_before"].as_i64().unwrap();
    let (_, page2) = get(&client(), &api(&s, &format!("audit?limit=3&before={next}"))).await;
    assert_eq!(page2["events"][0]["seq"].as_i64().unwrap(), seqs[3], "the next page starts where the last ended");

    // Administrators only.
    crate::api_util::create_user(&s, "bob", "bob-password-12").await;
    let (st, _) = get(&client_as("bob", "bob-password-12"), &api(&s, "audit")).await;
    assert_eq!(st, 403);
    let (st, _) = get(&anonymous(), &api(&s, "audit")).await;
    assert_eq!(st, 401);

    // The admin command prints the same log.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["admin", "--url", &s.url, "--user", "admin", "--password", ADMIN_PASSWORD])
        .args(["audit", "--actor", "alice", "--limit", "1000"])
        .env_remove("STOWAGE_URL")
        .env_remove("STOWAGE_USER")
        .env_remove("STOWAGE_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), by_alice.len());
}
