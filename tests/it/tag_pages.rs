//! Tag listings by push time from the push-time index (issue 11): the REST listing pages with a
//! cursor and a `Link` header in exact (time, tag) order both ways, ties in push time broken by
//! tag; the portal's "newest push first" and its Docker tab read the same index and counts; all
//! on a data directory whose index was built at start, and kept by pushes and deletes after.

use crate::api_util::*;
use crate::common::*;
use crate::portal::Browser;
use serde_json::{json, Value};
use stowage_engine::index::codec::encode;
use stowage_engine::index::{Batch, Tree};

/// Push times given to the tags: three share 200.
const TIMES: [(&str, i64); 6] = [("a", 100), ("b", 200), ("c", 200), ("d", 200), ("e", 300), ("f", 50)];

/// A server whose syn1/app has the tags of [`TIMES`] (one manifest) with exactly those push
/// times, its time index and counts wiped as in a data directory from before them, so the
/// server builds them at start. Returns the server, the manifest digest and its size.
async fn server_with_timed_tags() -> (TestServer, String, usize) {
    let s = TestServer::start();
    let (digest, m) = push_image(&s, "syn1/app", "a", b"layer").await;
    for (t, _) in &TIMES[1..] {
        let r = client()
            .put(s.v2(&format!("syn1/app/manifests/{t}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(m.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "tag {t}");
    }
    let dir = s.stop();
    {
        let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir.path())).unwrap();
        let cat = engine.catalog();
        let repo = cat.repo_by_name("syn1/app").unwrap().unwrap().id;
        let mut b = Batch::default();
        for (t, time) in TIMES {
            let mut rec = cat.tag(repo, t).unwrap().unwrap();
            rec.time = time;
            let mut k = repo.to_be_bytes().to_vec();
            k.extend_from_slice(t.as_bytes());
            b.put(Tree::Tags, k, encode(&rec));
        }
        for tree in [Tree::TagsByTime, Tree::TagCounts] {
            cat.index()
                .for_each_key(tree, b"", &mut |k| {
                    b.delete(tree, k.to_vec());
                    true
                })
                .unwrap();
        }
        b.delete(Tree::Meta, b"index/tags_by_time".to_vec());
        cat.index().apply(b).unwrap();
        cat.sync().unwrap();
    }
    (TestServer::start_in(dir, |_| {}), digest, m.len())
}

/// GET of a tag listing: status, body, Link header.
async fn page(s: &TestServer, path_and_query: &str) -> (u16, Value, Option<String>) {
    let r = client().get(format!("{}{path_and_query}", s.url)).send().await.unwrap();
    let st = r.status().as_u16();
    let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_string());
    (st, r.json().await.unwrap(), link)
}

fn tags_of(v: &Value) -> Vec<&str> {
    v["tags"].as_array().unwrap().iter().map(|t| t["tag"].as_str().unwrap()).collect()
}

/// Walks every page from `first`, following `next`; checks the Link header says the same.
/// Returns each page's tags and each `next`.
async fn walk(s: &TestServer, first: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let (mut pages, mut nexts) = (Vec::new(), Vec::new());
    let mut url = first.to_string();
    for _ in 0..10 {
        let (st, v, link) = page(s, &url).await;
        assert_eq!(st, 200, "{url}: {v}");
        assert_eq!(v["total"], 6, "{url}");
        pages.push(tags_of(&v).into_iter().map(str::to_string).collect());
        match v.get("next").and_then(Value::as_str) {
            Some(n) => {
                assert_eq!(link.as_deref(), Some(format!("<{n}>; rel=\"next\"").as_str()), "{url}");
                nexts.push(n.to_string());
                url = n.to_string();
            }
            None => {
                assert_eq!(link, None, "{url}: no Link on the last page");
                return (pages, nexts);
            }
        }
    }
    panic!("more than 10 pages from {first}");
}

#[tokio::test]
async fn rest_tags_by_push_time_page_with_cursors_in_exact_order() {
    let (s, digest, size) = server_with_timed_tags().await;
    let id = repo_id(&s, "syn1/app").await;
    let base = format!("/api/v1/repositories/{id}/tags");

    // Newest first: 300, then the three at 200 by tag backwards, then 100 and 50.
    let (st, v, link) = page(&s, &format!("{base}?sort=created&order=desc&limit=2")).await;
    assert_eq!(st, 200);
    let next = format!("{base}?sort=created&order=desc&limit=2&cursor=200%3Ad");
    let row = |t: &str, time: i64| {
        json!({ "tag": t, "digest": digest, "pushed": time, "pusher": "admin",
                "media_type": "application/vnd.oci.image.manifest.v1+json", "size": size })
    };
    assert_eq!(
        v,
        json!({ "repository": id, "name": "syn1/app", "total": 6, "tags": [row("e", 300), row("d", 200)], "next": next })
    );
    assert_eq!(link, Some(format!("<{next}>; rel=\"next\"")));
    let (pages, nexts) = walk(&s, &format!("{base}?sort=created&order=desc&limit=2")).await;
    assert_eq!(pages, [vec!["e", "d"], vec!["c", "b"], vec!["a", "f"]]);
    assert_eq!(nexts[1], format!("{base}?sort=created&order=desc&limit=2&cursor=200%3Ab"));

    // Oldest first: ties at 200 by tag forwards; a cursor in the middle of the tie.
    let (pages, nexts) = walk(&s, &format!("{base}?sort=created&limit=2")).await;
    assert_eq!(pages, [vec!["f", "a"], vec!["b", "c"], vec!["d", "e"]]);
    assert_eq!(
        nexts,
        [
            format!("{base}?sort=created&order=asc&limit=2&cursor=100%3Aa"),
            format!("{base}?sort=created&order=asc&limit=2&cursor=200%3Ac")
        ]
    );
    let (pages, _) = walk(&s, &format!("{base}?sort=created&order=asc&limit=4")).await;
    assert_eq!(pages, [vec!["f", "a", "b", "c"], vec!["d", "e"]]);
    // Offsets still work, from the start or from a cursor.
    let (_, v, _) = page(&s, &format!("{base}?sort=created&order=desc&offset=3&limit=2")).await;
    assert_eq!(tags_of(&v), ["b", "a"]);
    let (_, v, _) = page(&s, &format!("{base}?sort=created&order=desc&cursor=300%3Ae&offset=1&limit=1")).await;
    assert_eq!(tags_of(&v), ["c"]);
    assert_eq!(v["next"], format!("{base}?sort=created&order=desc&limit=1&cursor=200%3Ac"));

    // By name, both ways.
    let (pages, nexts) = walk(&s, &format!("{base}?order=desc&limit=4")).await;
    assert_eq!(pages, [vec!["f", "e", "d", "c"], vec!["b", "a"]]);
    assert_eq!(nexts, [format!("{base}?sort=tag&order=desc&limit=4&cursor=200%3Ac")]);
    let (pages, _) = walk(&s, &format!("{base}?limit=5")).await;
    assert_eq!(pages, [vec!["a", "b", "c", "d", "e"], vec!["f"]]);

    // Kept by writes after the build: a new push is newest, a deleted tag is gone everywhere.
    push_image(&s, "syn1/app", "g", b"other layer").await;
    let r = client().delete(s.v2("syn1/app/manifests/c")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let (_, v, _) = page(&s, &format!("{base}?sort=created&order=desc&limit=3")).await;
    assert_eq!((tags_of(&v), v["total"].clone()), (vec!["g", "e", "d"], json!(6)));
    let (_, v, _) = page(&s, &format!("{base}?sort=created&limit=3&cursor=100%3Aa")).await;
    assert_eq!(tags_of(&v), ["b", "d", "e"]);
    // limit=0: an empty page and no next link (it would never advance).
    let (_, v, link) = page(&s, &format!("{base}?sort=created&limit=0")).await;
    assert_eq!((tags_of(&v), v.get("next"), link), (vec![], None, None));

    // Refusals: a cursor that is not one, or far too long.
    for q in ["sort=created&cursor=abc", "sort=created&cursor=x%3Aa", "sort=created&cursor=".to_string().as_str()] {
        let (st, v, _) = page(&s, &format!("{base}?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_error(&v, "bad_request");
        assert!(v["error"]["message"].as_str().unwrap().contains("give the one from `next`"), "{v}");
    }
    let (st, v, _) = page(&s, &format!("{base}?cursor={}", "a".repeat(301))).await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_request");
}

#[tokio::test]
async fn portal_newest_push_first_and_the_docker_tab_read_the_index() {
    let (s, _, _) = server_with_timed_tags().await;
    let mut b = Browser::new(&s);
    b.sign_in("admin", ADMIN_PASSWORD).await;
    let names = |p: &crate::portal::Page| p.texts("tbody tr td:first-child a");
    let p = b.get("/syn1/app?sort=pushed&order=desc&limit=2").await;
    assert_eq!(p.status, 200);
    assert_eq!(names(&p), ["e", "d"]);
    assert_eq!(p.attr("a[rel=next]", "href").unwrap(), "/syn1/app?sort=pushed&order=desc&offset=2&limit=2");
    let p = b.get("/syn1/app?sort=pushed&order=desc&offset=2&limit=2").await;
    assert_eq!(names(&p), ["c", "b"]);
    let p = b.get("/syn1/app?sort=pushed&order=desc&offset=4&limit=2").await;
    assert_eq!(names(&p), ["a", "f"]);
    assert_eq!(p.attr("a[rel=next]", "href"), None);
    assert_eq!(names(&b.get("/syn1/app?sort=pushed&order=asc&limit=3").await), ["f", "a", "b"]);
    assert_eq!(names(&b.get("/syn1/app?sort=tag&order=desc&offset=1&limit=2").await), ["e", "d"]);
    // The Docker tab: the tag count and the last push from the count record and the index.
    let p = b.get("/syn1").await;
    assert_eq!(p.status, 200);
    let rows = p.texts("tbody tr td");
    assert_eq!(rows[..2], ["syn1/app".to_string(), "6".to_string()], "{rows:?}");
    assert_eq!(p.attr("tbody tr td time", "datetime").unwrap(), "1970-01-01T00:05:00Z");
    // A tag deleted: one fewer; the newest deleted: the last push is the next newest.
    assert_eq!(client().delete(s.v2("syn1/app/manifests/e")).send().await.unwrap().status(), 202);
    let p = b.get("/syn1").await;
    assert_eq!(p.texts("tbody tr td")[1], "5");
    assert_eq!(p.attr("tbody tr td time", "datetime").unwrap(), "1970-01-01T00:03:20Z");
}

fn repo_names(v: &Value) -> Vec<String> {
    v["repositories"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

/// Walks a project's repository pages from `first`, following `next` (and checking `Link`).
async fn walk_repos(s: &TestServer, first: String) -> (Vec<Vec<String>>, Vec<String>) {
    let (mut pages, mut nexts) = (Vec::new(), Vec::new());
    let mut url = first;
    for _ in 0..10 {
        let (st, v, link) = page(s, &url).await;
        assert_eq!(st, 200, "{url}: {v}");
        pages.push(repo_names(&v));
        match v.get("next").and_then(Value::as_str) {
            Some(n) => {
                assert_eq!(link.as_deref(), Some(format!("<{n}>; rel=\"next\"").as_str()));
                nexts.push(n.to_string());
                url = n.to_string();
            }
            None => {
                assert_eq!(link, None);
                return (pages, nexts);
            }
        }
    }
    panic!("more than 10 pages from {url}");
}

#[tokio::test]
async fn project_repositories_page_by_name_then_externals() {
    let s = TestServer::start();
    for r in ["syn1/d", "syn1/b", "syn1/a", "syn1/c"] {
        push_image(&s, r, "v1", r.as_bytes()).await;
    }
    let mut xids = Vec::new();
    for x in ["quay.io/org/one", "quay.io/org/two"] {
        let (st, v) =
            post(&client(), &api(&s, "projects/syn1/external-repositories"), json!({ "repository_name": x })).await;
        assert_eq!(st, 201, "{v}");
        xids.push(v["id"].as_str().unwrap().trim_start_matches("syn").to_string());
    }
    let base = "/api/v1/projects/syn1/repositories";
    let names = repo_names;
    let (pages, nexts) = walk_repos(&s, format!("{base}?limit=2")).await;
    assert_eq!(pages, [vec!["syn1/a", "syn1/b"], vec!["syn1/c", "syn1/d"], vec!["quay.io/org/one", "quay.io/org/two"]]);
    assert_eq!(nexts, [format!("{base}?limit=2&cursor=r%3Asyn1%2Fb"), format!("{base}?limit=2&cursor=x%3A0")]);
    let (pages, nexts) = walk_repos(&s, format!("{base}?limit=3")).await;
    assert_eq!(pages, [vec!["syn1/a", "syn1/b", "syn1/c"], vec!["syn1/d", "quay.io/org/one", "quay.io/org/two"]]);
    assert_eq!(nexts, [format!("{base}?limit=3&cursor=r%3Asyn1%2Fc")]);
    let (pages, nexts) = walk_repos(&s, format!("{base}?limit=5")).await;
    assert_eq!(pages, [vec!["syn1/a", "syn1/b", "syn1/c", "syn1/d", "quay.io/org/one"], vec!["quay.io/org/two"]]);
    assert_eq!(nexts, [format!("{base}?limit=5&cursor=x%3A{}", xids[0])]);
    // Without a limit: everything on one page (up to 100), the exact body of before.
    let (st, v, link) = page(&s, base).await;
    assert_eq!((st, link), (200, None));
    assert_eq!(keys(&v), ["repositories"]);
    assert_eq!(names(&v).len(), 6);
    for q in ["cursor=q%3A1", "cursor=x%3Aabc", "cursor=r", "limit=x"] {
        let (st, v, _) = page(&s, &format!("{base}?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_error(&v, "bad_request");
    }
    // Data from before the externals index: it is built at start, the listing is the same.
    let dir = s.stop();
    {
        let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir.path())).unwrap();
        let cat = engine.catalog();
        let mut b = Batch::default();
        let mut n = 0;
        cat.index()
            .for_each_key(Tree::ProjectExternals, b"", &mut |k| {
                b.delete(Tree::ProjectExternals, k.to_vec());
                n += 1;
                true
            })
            .unwrap();
        assert_eq!(n, 2, "one entry per external repository");
        b.delete(Tree::Meta, b"index/project_externals".to_vec());
        cat.index().apply(b).unwrap();
        cat.sync().unwrap();
        assert!(cat.project_externals(1, None, 10).unwrap().is_empty());
    }
    let s = TestServer::start_in(dir, |_| {});
    let (pages, _) = walk_repos(&s, format!("{base}?limit=3")).await;
    assert_eq!(pages, [vec!["syn1/a", "syn1/b", "syn1/c"], vec!["syn1/d", "quay.io/org/one", "quay.io/org/two"]]);
    // A purged external repository leaves the listing and the index.
    let x1 = format!("syn{}", xids[0]);
    assert_eq!(delete(&client(), &api(&s, &format!("entities/{x1}"))).await.0, 200);
    assert_eq!(delete(&client(), &api(&s, &format!("trash/{x1}"))).await.0, 204);
    let (_, v, _) = page(&s, base).await;
    assert_eq!(names(&v), ["syn1/a", "syn1/b", "syn1/c", "syn1/d", "quay.io/org/two"]);

    // The portal's Docker tab pages the same way.
    let mut b = Browser::new(&s);
    b.sign_in("admin", ADMIN_PASSWORD).await;
    let p = b.get("/syn1?limit=2").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.texts("tbody tr td:first-child a"), ["syn1/a", "syn1/b"]);
    assert_eq!(p.attr("a[rel=next]", "href").unwrap(), "/syn1?limit=2&cursor=r%3Asyn1%2Fb");
    let p = b.get("/syn1?limit=2&cursor=r%3Asyn1%2Fb").await;
    assert_eq!(p.texts("tbody tr td:first-child a"), ["syn1/c", "syn1/d"]);
    crate::portal::check_page("/syn1?limit=2", &p.html);
    // The purge took the external repository's index entry along.
    let dir = s.stop();
    let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir.path())).unwrap();
    assert_eq!(engine.catalog().project_externals(1, None, 10).unwrap(), [xids[1].parse::<u64>().unwrap()]);
}
