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

async fn catalog_as(s: &TestServer, user: &str, pw: &str, query: &str) -> (Vec<String>, Option<String>) {
    let r = client_as(user, pw).get(s.v2(&format!("_catalog{query}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_string());
    let v: serde_json::Value = r.json().await.unwrap();
    let names = v["repositories"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    (names, link)
}

fn wipe(dir: &std::path::Path, tree: Tree, marker: &[u8]) {
    let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir)).unwrap();
    let cat = engine.catalog();
    let mut b = Batch::default();
    cat.index()
        .for_each_key(tree, b"", &mut |k| {
            b.delete(tree, k.to_vec());
            true
        })
        .unwrap();
    assert!(!b.is_empty(), "the index had entries to wipe");
    b.delete(Tree::Meta, marker.to_vec());
    cat.index().apply(b).unwrap();
    cat.sync().unwrap();
}

#[tokio::test]
async fn the_catalog_lists_from_the_readers_index_also_after_it_is_built_at_start() {
    let s = TestServer::start();
    for name in ["syn1/a", "syn1/b", "syn1/hidden", "syn2/x", "syn2/y"] {
        push_image(&s, name, "v1", name.as_bytes()).await;
    }
    create_user(&s, "erin", "erin-password-123").await;
    let r = client().post(format!("{}/api/v1/teams", s.url)).json(&json!({ "name": "readers" })).send().await.unwrap();
    let team = r.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap();
    let r = client().put(format!("{}/api/v1/teams/{team}/members/erin", s.url)).send().await.unwrap();
    assert!(r.status().is_success());
    // syn1 through the team; syn1/hidden has settings of its own that leave erin out; of syn2
    // only syn2/y, by name.
    set_acl(&s, "syn1", &[(&format!("team:{team}"), "view")]).await;
    let id_of = |name: &'static str| {
        let url = format!("{}/api/v1/repositories?name={name}", s.url);
        async move {
            let v: serde_json::Value = client().get(url).send().await.unwrap().json().await.unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    };
    set_acl(&s, &id_of("syn1/hidden").await, &[("user:admin", "admin")]).await;
    set_acl(&s, &id_of("syn2/y").await, &[("user:erin", "view")]).await;
    let expect = ["syn1/a", "syn1/b", "syn2/y"];
    let pw = "erin-password-123";
    assert_eq!(catalog_as(&s, "erin", pw, "").await.0, expect);
    let (first, link) = catalog_as(&s, "erin", pw, "?n=2").await;
    assert_eq!(first, ["syn1/a", "syn1/b"]);
    assert_eq!(link.as_deref(), Some(r#"</v2/_catalog?n=2&last=syn1/b>; rel="next""#));
    assert_eq!(catalog_as(&s, "erin", pw, "?n=2&last=syn1/b").await, (vec!["syn2/y".to_string()], None));

    let dir = s.stop();
    wipe(dir.path(), Tree::Readers, b"index/readers");
    let s = TestServer::start_in(dir, |_| {});
    assert_eq!(catalog_as(&s, "erin", pw, "").await.0, expect, "the readers index was built at start");
    // Revoking the project's settings takes syn1 out at once.
    set_acl(&s, "syn1", &[]).await;
    assert_eq!(catalog_as(&s, "erin", pw, "").await.0, ["syn2/y"]);
}
