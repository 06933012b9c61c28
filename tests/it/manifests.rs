//! Manifests (distribution-spec v1.1 end-3, end-7, end-9) of every supported media type, and the
//! ways a manifest push is refused.

use crate::common::*;
use crate::spec::*;
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Pushes a config and one layer; returns their descriptors' (digest, size).
async fn push_parts(s: &TestServer, name: &str, layer: &[u8]) -> ((String, usize), (String, usize)) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(s, name, config).await;
    let l = push_blob(s, name, layer).await;
    ((c, config.len()), (l, layer.len()))
}

fn docker_manifest(config: &(String, usize), layer: &(String, usize)) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": config.0, "size": config.1 },
        "layers": [{ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer.0, "size": layer.1 }],
    }))
    .unwrap()
}

fn index(media_type: &str, children: &[(&str, &str, usize)]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": children.iter().map(|(mt, d, n)| json!({
            "mediaType": mt, "digest": d, "size": n,
            "platform": { "architecture": "amd64", "os": "linux" } })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Asserts GET and HEAD of `reference` answer with `bytes` as `media_type`.
async fn assert_served(s: &TestServer, name: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let url = s.v2(&format!("{name}/manifests/{reference}"));
    let r = client().get(&url).header("accept", media_type).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {reference}");
    assert_eq!(header(&r, "content-type"), media_type);
    assert_eq!(header(&r, "docker-content-digest"), sha256(bytes));
    assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes);
    let r = client().head(&url).header("accept", media_type).send().await.unwrap();
    assert_eq!(r.status(), 200, "HEAD {reference}");
    assert_eq!(header(&r, "content-type"), media_type);
    assert_eq!(header(&r, "docker-content-digest"), sha256(bytes));
    assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    assert_empty(r).await;
}

/// Asserts a 201 manifest push answer.
fn assert_created(r: &reqwest::Response, name: &str, bytes: &[u8]) {
    assert_eq!(r.status(), 201, "{:?}", r.headers());
    let d = sha256(bytes);
    assert_eq!(header(r, "location"), format!("/v2/{name}/manifests/{d}"));
    assert_eq!(header(r, "docker-content-digest"), d);
}

#[tokio::test]
async fn oci_manifest_by_tag_and_digest() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    assert_created(&r, "syn1/app", &m);
    assert_empty(r).await;
    assert_served(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    assert_served(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn oci_manifest_put_by_digest() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let r = put_manifest(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await;
    assert_created(&r, "syn1/app", &m);
    assert_served(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await;
    // No tag was created.
    let r = client().get(s.v2("syn1/app/tags/list")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":[]}"#);
}

#[tokio::test]
async fn docker_schema2_manifest() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = docker_manifest(&c, &l);
    let r = put_manifest(&s, "syn1/app", "latest", DOCKER_MANIFEST, &m).await;
    assert_created(&r, "syn1/app", &m);
    assert_served(&s, "syn1/app", "latest", DOCKER_MANIFEST, &m).await;
    assert_served(&s, "syn1/app", &sha256(&m), DOCKER_MANIFEST, &m).await;
}

#[tokio::test]
async fn docker_manifest_list() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let child = docker_manifest(&c, &l);
    let r = put_manifest(&s, "syn1/app", &sha256(&child), DOCKER_MANIFEST, &child).await;
    assert_eq!(r.status(), 201);
    let list = index(DOCKER_LIST, &[(DOCKER_MANIFEST, &sha256(&child), child.len())]);
    let r = put_manifest(&s, "syn1/app", "multi", DOCKER_LIST, &list).await;
    assert_created(&r, "syn1/app", &list);
    assert_served(&s, "syn1/app", "multi", DOCKER_LIST, &list).await;
    assert_served(&s, "syn1/app", &sha256(&list), DOCKER_LIST, &list).await;
}

#[tokio::test]
async fn oci_index_with_its_children() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let child = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let r = put_manifest(&s, "syn1/app", &sha256(&child), OCI_MANIFEST, &child).await;
    assert_eq!(r.status(), 201);
    let idx = index(OCI_INDEX, &[(OCI_MANIFEST, &sha256(&child), child.len())]);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_INDEX, &idx).await;
    assert_created(&r, "syn1/app", &idx);
    assert_served(&s, "syn1/app", "v1", OCI_INDEX, &idx).await;
    assert_served(&s, "syn1/app", &sha256(&idx), OCI_INDEX, &idx).await;
}

#[tokio::test]
async fn oci_index_with_a_missing_child_is_manifest_blob_unknown() {
    let s = TestServer::start();
    let missing = sha256(b"no such manifest");
    let idx = index(OCI_INDEX, &[(OCI_MANIFEST, &missing, 100)]);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_INDEX, &idx).await;
    let msg = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(msg.contains(&missing), "{msg}");
    let r = client().get(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn artifact_manifest_with_empty_config_and_no_layers() {
    let s = TestServer::start();
    assert_eq!(sha256(EMPTY_JSON), EMPTY_DIGEST);
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
        "annotations": { "org.example.kind": "sbom" },
    }))
    .unwrap();
    let r = put_manifest(&s, "syn1/app", "sbom", OCI_MANIFEST, &m).await;
    assert_created(&r, "syn1/app", &m);
    assert_served(&s, "syn1/app", "sbom", OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn schema1_is_refused_with_a_message_naming_it() {
    let s = TestServer::start();
    let m = br#"{"schemaVersion":1,"name":"syn1/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    for ct in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ] {
        let r = put_manifest(&s, "syn1/app", "v1", ct, m).await;
        let msg = assert_error(r, 400, "MANIFEST_INVALID").await;
        assert!(msg.contains("schema 1"), "{ct}: {msg}");
    }
}

#[tokio::test]
async fn invalid_json_is_manifest_invalid() {
    let s = TestServer::start();
    for body in [
        &b"{not json"[..],
        b"[]",
        b"",
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
    ] {
        let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, body).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
}

#[tokio::test]
async fn put_by_a_digest_the_bytes_do_not_hash_to_is_digest_invalid() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let wrong = sha256(b"something else");
    let r = put_manifest(&s, "syn1/app", &wrong, OCI_MANIFEST, &m).await;
    let msg = assert_error(r, 400, "DIGEST_INVALID").await;
    assert!(msg.contains(&wrong) && msg.contains(&sha256(&m)), "{msg}");
    let r = client().get(s.v2(&format!("syn1/app/manifests/{wrong}"))).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_over_the_size_limit_is_413() {
    let s = TestServer::start_with(|s| s.max_manifest_bytes = 512);
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let mut v: serde_json::Value = serde_json::from_slice(&image_manifest((&c.0, c.1), &[(&l.0, l.1)], None)).unwrap();
    v["annotations"] = json!({ "pad": "x".repeat(600) });
    let m = serde_json::to_vec(&v).unwrap();
    let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    let msg = assert_error(r, 413, "SIZE_INVALID").await;
    assert!(msg.contains("512"), "{msg}");
}

#[tokio::test]
async fn default_manifest_limit_is_4_mib() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let mut v: serde_json::Value = serde_json::from_slice(&image_manifest((&c.0, c.1), &[(&l.0, l.1)], None)).unwrap();
    v["annotations"] = json!({ "pad": "x".repeat(4 << 20) });
    let m = serde_json::to_vec(&v).unwrap();
    let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    assert_error(r, 413, "SIZE_INVALID").await;
}

#[tokio::test]
async fn missing_layer_is_manifest_blob_unknown_naming_it() {
    let s = TestServer::start();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&s, "syn1/app", config).await;
    let missing = sha256(b"never pushed");
    let m = image_manifest((&c, config.len()), &[(&missing, 12)], None);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    let msg = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(msg.contains(&missing), "{msg}");
    assert!(!msg.contains(&c), "{msg}");
}

#[tokio::test]
async fn layer_of_another_repository_is_manifest_blob_unknown() {
    let s = TestServer::start();
    let (c, _) = push_parts(&s, "syn1/app", b"layer").await;
    let elsewhere = push_blob(&s, "syn1/other", b"other layer").await;
    let m = image_manifest((&c.0, c.1), &[(&elsewhere, 11)], None);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_MANIFEST, &m).await;
    let msg = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(msg.contains(&elsewhere), "{msg}");
}

#[tokio::test]
async fn unknown_tag_digest_and_repository() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let r = client().get(s.v2("syn1/app/manifests/nope")).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    let r = client().get(s.v2(&format!("syn1/app/manifests/{}", sha256(b"x")))).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    let r = client().head(s.v2("syn1/app/manifests/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_empty(r).await;
    let r = client().get(s.v2("syn1/nothing/manifests/v1")).send().await.unwrap();
    assert_error(r, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn delete_by_tag_removes_only_the_tag() {
    let s = TestServer::start();
    let (d, m) = push_image(&s, "syn1/app", "v1", b"layer").await;
    let r = put_manifest(&s, "syn1/app", "v2", OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201);
    let r = client().delete(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_empty(r).await;
    let r = client().get(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    assert_served(&s, "syn1/app", "v2", OCI_MANIFEST, &m).await;
    assert_served(&s, "syn1/app", &d, OCI_MANIFEST, &m).await;
    let r = client().delete(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn delete_by_digest_removes_the_manifest_and_its_tags() {
    let s = TestServer::start();
    let (d, m) = push_image(&s, "syn1/app", "v1", b"layer").await;
    put_manifest(&s, "syn1/app", "v2", OCI_MANIFEST, &m).await;
    let r = client().delete(s.v2(&format!("syn1/app/manifests/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    for reference in ["v1", "v2", d.as_str()] {
        let r = client().get(s.v2(&format!("syn1/app/manifests/{reference}"))).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }
    let r = client().get(s.v2("syn1/app/tags/list")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":[]}"#);
    let r = client().delete(s.v2(&format!("syn1/app/manifests/{d}"))).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn name_of_depth_nine() {
    let s = TestServer::start();
    let name = "syn1/a/b/c/d/e/f/g/h";
    let (d, m) = push_image(&s, name, "v1", b"deep layer").await;
    assert_served(&s, name, "v1", OCI_MANIFEST, &m).await;
    assert_served(&s, name, &d, OCI_MANIFEST, &m).await;
    let r = client().get(s.v2(&format!("{name}/tags/list"))).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), format!(r#"{{"name":"{name}","tags":["v1"]}}"#));
}

#[tokio::test]
async fn retagging_moves_the_tag() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "latest", b"one").await;
    let (d2, m2) = push_image(&s, "syn1/app", "latest", b"two").await;
    let r = client().get(s.v2("syn1/app/manifests/latest")).send().await.unwrap();
    assert_eq!(header(&r, "docker-content-digest"), d2);
    assert_eq!(r.bytes().await.unwrap().as_ref(), m2.as_slice());
}

#[tokio::test]
async fn put_and_get_by_sha512_digest() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let d = sha512(&m);
    let r = put_manifest(&s, "syn1/app", &d, OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/manifests/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/manifests/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
}

#[tokio::test]
async fn media_type_that_disagrees_with_content_type_is_manifest_invalid() {
    let s = TestServer::start();
    let (c, l) = push_parts(&s, "syn1/app", b"layer").await;
    let m = image_manifest((&c.0, c.1), &[(&l.0, l.1)], None);
    let r = put_manifest(&s, "syn1/app", "v1", OCI_INDEX, &m).await;
    let msg = assert_error(r, 400, "MANIFEST_INVALID").await;
    assert!(msg.contains("Content-Type"), "{msg}");
}

#[tokio::test]
async fn invalid_tag_is_refused() {
    let s = TestServer::start();
    let (_, m) = push_image(&s, "syn1/app", "v1", b"layer").await;
    let long = "a".repeat(129);
    for tag in ["-lead", ".dot", long.as_str()] {
        let r = put_manifest(&s, "syn1/app", tag, OCI_MANIFEST, &m).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
}
