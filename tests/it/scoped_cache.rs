//! The hot-path caches are invalidated per scope (issue 11): a push to one repository keeps
//! every other repository's entries hot, while a change to the repository itself, the trash and
//! sharing settings still act on the very next request.

use crate::common::*;

async fn counts(s: &TestServer, cache: &str) -> (u64, u64) {
    let text = anonymous().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let value = |metric: &str| -> u64 {
        let prefix = format!("{metric}{{cache=\"{cache}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in {text}"));
        line[prefix.len()..].parse().unwrap()
    };
    (value("stowage_cache_hits_total"), value("stowage_cache_misses_total"))
}

async fn get_status(s: &TestServer, path: &str) -> u16 {
    client().get(s.v2(path)).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_push_to_one_repository_keeps_another_repositorys_entries_hot() {
    let s = TestServer::start();
    push_image(&s, "syn1/a", "v1", b"layer of a").await;
    let (_, _) = push_image(&s, "syn1/b", "v1", b"layer of b").await;
    let layer_b = sha256(b"layer of b");
    assert_eq!(get_status(&s, "syn1/b/manifests/v1").await, 200);
    assert_eq!(client().head(s.v2(&format!("syn1/b/blobs/{layer_b}"))).send().await.unwrap().status(), 200);
    let (m0, b0) = (counts(&s, "manifest_by_reference").await, counts(&s, "blob_size").await);

    // Pushes to syn1/a: blobs, a manifest and a new tag.
    push_image(&s, "syn1/a", "v2", b"another layer of a").await;
    assert_eq!(get_status(&s, "syn1/b/manifests/v1").await, 200);
    assert_eq!(client().head(s.v2(&format!("syn1/b/blobs/{layer_b}"))).send().await.unwrap().status(), 200);
    let (m1, b1) = (counts(&s, "manifest_by_reference").await, counts(&s, "blob_size").await);
    assert_eq!((m1.0 - m0.0, m1.1 - m0.1), (1, 0), "manifest of syn1/b answered from the cache");
    assert_eq!((b1.0 - b0.0, b1.1 - b0.1), (1, 0), "blob size of syn1/b answered from the cache");

    // A change to syn1/b itself is seen at once: the tag moves.
    let (moved, _) = push_image(&s, "syn1/b", "v1", b"new layer of b").await;
    let r = client().get(s.v2("syn1/b/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), moved);
    let m2 = counts(&s, "manifest_by_reference").await;
    assert_eq!(m2.1 - m1.1, 1, "the moved tag was read again");
}

#[tokio::test]
async fn trash_and_a_deleted_tag_act_on_the_next_request_after_a_hit() {
    let s = TestServer::start();
    push_image(&s, "syn1/a", "v1", b"layer of a").await;
    push_image(&s, "syn1/b", "v1", b"layer of b").await;
    push_image(&s, "syn1/b", "v2", b"layer 2 of b").await;
    for _ in 0..2 {
        assert_eq!(get_status(&s, "syn1/a/manifests/v1").await, 200);
        assert_eq!(get_status(&s, "syn1/b/manifests/v2").await, 200);
    }
    let (hits, _) = counts(&s, "manifest_by_reference").await;
    assert!(hits >= 2, "the second round hit the cache: {hits}");

    // Deleting a tag of syn1/b: the next GET of it is a 404.
    let r = client().delete(s.v2("syn1/b/manifests/v2")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(get_status(&s, "syn1/b/manifests/v2").await, 404);

    // Trashing syn1/a: refused at once, while syn1/b still answers.
    let r = client().get(format!("{}/api/v1/repositories?name=syn1/a", s.url)).send().await.unwrap();
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = client().delete(format!("{}/api/v1/entities/{id}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(s.v2("syn1/a/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_codes(r).await, ["DENIED"]);
    assert_eq!(get_status(&s, "syn1/b/manifests/v1").await, 200);
}
