//! Secondary indexes of the access model (issue 11): a caller's teams come from the membership
//! index, which is built at start for a data directory written before it existed.

use crate::auth_tokens::{create_user, set_acl};
use crate::common::*;
use serde_json::json;
use stowage_engine::index::{Batch, Tree};

async fn pull_status(s: &TestServer, user: &str, pw: &str) -> u16 {
    client_as(user, pw).get(s.v2("syn1/app/manifests/v1")).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn team_access_survives_a_restart_on_data_written_before_the_membership_index() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    create_user(&s, "dana", "dana-password-123").await;
    let r = client().post(format!("{}/api/v1/teams", s.url)).json(&json!({ "name": "ops" })).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let team = r.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap();
    let r = client().put(format!("{}/api/v1/teams/{team}/members/dana", s.url)).send().await.unwrap();
    assert!(r.status().is_success(), "add member: {}", r.status());
    set_acl(&s, "syn1", &[(&format!("team:{team}"), "download")]).await;
    assert_eq!(pull_status(&s, "dana", "dana-password-123").await, 200, "access through the team");

    // Take the index back to before memberships were indexed: no entries, no marker.
    let dir = s.stop();
    {
        let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir.path())).unwrap();
        let cat = engine.catalog();
        let mut keys = Vec::new();
        cat.index()
            .for_each_key(Tree::Members, b"", &mut |k| {
                keys.push(k.to_vec());
                true
            })
            .unwrap();
        assert_eq!(keys.len(), 4, "two members (the creator and dana), indexed both ways");
        let mut b = Batch::default();
        for k in keys {
            b.delete(Tree::Members, k);
        }
        b.delete(Tree::Meta, b"index/members".to_vec());
        cat.index().apply(b).unwrap();
        cat.sync().unwrap();
        assert!(cat.teams_of("dana").unwrap().is_empty());
    }
    let s = TestServer::start_in(dir, |_| {});
    assert_eq!(pull_status(&s, "dana", "dana-password-123").await, 200, "the index was built at start");

    // Leaving the team ends the access at once.
    let r = client().delete(format!("{}/api/v1/teams/{team}/members/dana", s.url)).send().await.unwrap();
    assert!(r.status().is_success(), "remove member: {}", r.status());
    assert_eq!(pull_status(&s, "dana", "dana-password-123").await, 403);
}
