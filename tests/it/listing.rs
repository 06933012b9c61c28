//! Listings (distribution-spec v1.1 end-8a, end-8b, end-12a, end-12b and `_catalog`): lexical
//! order, `n`/`last` pagination with `Link`, and referrers with the `artifactType` filter.

use crate::common::*;
use crate::spec::*;
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn get(s: &TestServer, path: &str) -> reqwest::Response {
    client().get(s.v2(path)).send().await.unwrap()
}

/// Tags `name` with one image under each of `tags`.
async fn tag_all(s: &TestServer, name: &str, tags: &[&str]) {
    let (_, m) = push_image(s, name, tags[0], b"layer").await;
    for t in &tags[1..] {
        assert_eq!(put_manifest(s, name, t, OCI_MANIFEST, &m).await.status(), 201);
    }
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let s = TestServer::start();
    tag_all(&s, "syn1/app", &["v2", "latest", "V1", "1.0", "v10", "a_b"]).await;
    let r = get(&s, "syn1/app/tags/list").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["1.0","V1","a_b","latest","v10","v2"]}"#);
}

#[tokio::test]
async fn tags_paginate_with_n_last_and_link() {
    let s = TestServer::start();
    tag_all(&s, "syn1/app", &["c", "a", "e", "b", "d"]).await;
    let r = get(&s, "syn1/app/tags/list?n=2").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "link"), r#"</v2/syn1/app/tags/list?n=2&last=b>; rel="next""#);
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["a","b"]}"#);
    let r = get(&s, "syn1/app/tags/list?n=2&last=b").await;
    assert_eq!(header(&r, "link"), r#"</v2/syn1/app/tags/list?n=2&last=d>; rel="next""#);
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["c","d"]}"#);
    let r = get(&s, "syn1/app/tags/list?n=2&last=d").await;
    assert!(r.headers().get("link").is_none(), "{:?}", r.headers());
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["e"]}"#);
    // Exactly filling the last page: no Link either.
    let r = get(&s, "syn1/app/tags/list?n=5").await;
    assert!(r.headers().get("link").is_none(), "{:?}", r.headers());
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["a","b","c","d","e"]}"#);
    // `last` alone, and a `last` that is not a tag.
    let r = get(&s, "syn1/app/tags/list?last=c").await;
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["d","e"]}"#);
    let r = get(&s, "syn1/app/tags/list?last=bb").await;
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["c","d","e"]}"#);
}

#[tokio::test]
async fn n_zero_is_an_empty_list() {
    let s = TestServer::start();
    tag_all(&s, "syn1/app", &["a", "b"]).await;
    let r = get(&s, "syn1/app/tags/list?n=0").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":[]}"#);
}

#[tokio::test]
async fn tags_of_an_unknown_repository_is_name_unknown() {
    let s = TestServer::start();
    let r = get(&s, "syn1/nothing/tags/list").await;
    assert_error(r, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn catalog_paginates_with_link() {
    let s = TestServer::start();
    for name in ["syn2/b", "syn1/z", "syn1/a", "syn1/a/deep"] {
        push_blob(&s, name, b"x").await;
    }
    let r = get(&s, "_catalog").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.text().await.unwrap(), r#"{"repositories":["syn1/a","syn1/a/deep","syn1/z","syn2/b"]}"#);
    let r = get(&s, "_catalog?n=2").await;
    assert_eq!(header(&r, "link"), r#"</v2/_catalog?n=2&last=syn1/a/deep>; rel="next""#);
    assert_eq!(r.text().await.unwrap(), r#"{"repositories":["syn1/a","syn1/a/deep"]}"#);
    let r = get(&s, "_catalog?n=2&last=syn1/a/deep").await;
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.text().await.unwrap(), r#"{"repositories":["syn1/z","syn2/b"]}"#);
    let r = get(&s, "_catalog?n=0").await;
    assert_eq!(r.text().await.unwrap(), r#"{"repositories":[]}"#);
}

/// An artifact manifest about `subject` with the empty config.
fn artifact(artifact_type: &str, subject: (&str, usize), note: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.0, "size": subject.1 },
        "annotations": { "note": note },
    }))
    .unwrap()
}

#[tokio::test]
async fn referrers_list_artifacts_about_a_subject() {
    let s = TestServer::start();
    let (subject, sm) = push_image(&s, "syn1/app", "v1", b"layer").await;
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let sig = artifact("application/vnd.example.signature", (&subject, sm.len()), "sig");
    let sbom = artifact("application/vnd.example.sbom", (&subject, sm.len()), "sbom");
    for m in [&sig, &sbom] {
        let r = put_manifest(&s, "syn1/app", &sha256(m), OCI_MANIFEST, m).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "oci-subject"), subject);
        assert_eq!(header(&r, "docker-content-digest"), sha256(m));
    }
    // A push without a subject carries no OCI-Subject.
    let r = put_manifest(&s, "syn1/app", "v2", OCI_MANIFEST, &sm).await;
    assert!(r.headers().get("oci-subject").is_none());

    let r = get(&s, &format!("syn1/app/referrers/{subject}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/vnd.oci.image.index.v1+json");
    assert!(r.headers().get("oci-filters-applied").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    let mut got = v["manifests"].as_array().unwrap().clone();
    got.sort_by_key(|d| d["digest"].as_str().unwrap().to_string());
    let mut want = vec![
        json!({ "mediaType": OCI_MANIFEST, "digest": sha256(&sig), "size": sig.len(),
                "artifactType": "application/vnd.example.signature", "annotations": { "note": "sig" } }),
        json!({ "mediaType": OCI_MANIFEST, "digest": sha256(&sbom), "size": sbom.len(),
                "artifactType": "application/vnd.example.sbom", "annotations": { "note": "sbom" } }),
    ];
    want.sort_by_key(|d| d["digest"].as_str().unwrap().to_string());
    assert_eq!(got, want);

    let r = get(&s, &format!("syn1/app/referrers/{subject}?artifactType=application/vnd.example.sbom")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["manifests"],
        json!([want.iter().find(|d| d["artifactType"] == "application/vnd.example.sbom").unwrap()])
    );

    let r = get(&s, &format!("syn1/app/referrers/{subject}?artifactType=application/vnd.example.none")).await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["manifests"], json!([]));
}

#[tokio::test]
async fn image_manifest_referrer_uses_the_config_media_type() {
    let s = TestServer::start();
    let (subject, sm) = push_image(&s, "syn1/app", "v1", b"layer").await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let m = image_manifest((&sha256(config), config.len()), &[], Some((&subject, sm.len())));
    assert_eq!(put_manifest(&s, "syn1/app", "ref", OCI_MANIFEST, &m).await.status(), 201);
    let r = get(&s, &format!("syn1/app/referrers/{subject}")).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["manifests"],
        json!([{ "mediaType": OCI_MANIFEST, "digest": sha256(&m), "size": m.len(),
                 "artifactType": "application/vnd.oci.image.config.v1+json" }])
    );
}

#[tokio::test]
async fn referrer_pushed_before_its_subject() {
    let s = TestServer::start();
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let subject = sha256(b"subject not pushed yet");
    let m = artifact("application/vnd.example.signature", (&subject, 100), "early");
    let r = put_manifest(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "oci-subject"), subject);
    let v: serde_json::Value = get(&s, &format!("syn1/app/referrers/{subject}")).await.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn referrers_of_an_unknown_digest_is_an_empty_index() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let r = get(&s, &format!("syn1/app/referrers/{}", sha256(b"nothing"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [] })
    );
}

#[tokio::test]
async fn deleted_referrer_is_no_longer_listed() {
    let s = TestServer::start();
    let (subject, sm) = push_image(&s, "syn1/app", "v1", b"layer").await;
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let m = artifact("application/vnd.example.signature", (&subject, sm.len()), "sig");
    assert_eq!(put_manifest(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await.status(), 201);
    let r = client().delete(s.v2(&format!("syn1/app/manifests/{}", sha256(&m)))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = get(&s, &format!("syn1/app/referrers/{subject}")).await.json().await.unwrap();
    assert_eq!(v["manifests"], json!([]));
}
