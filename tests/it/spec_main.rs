//! What distribution-spec's main branch adds beyond v1.1, and the corners of v1.1 that real
//! clients meet: referrers for any well-formed digest, manifests with non-distributable layers,
//! manifest PUT by digest with `tag` parameters (`OCI-Tag`), manifests by a sha512 digest,
//! `digest-algorithm`, the upload cancel flow (end-14) and `Range` semantics.

use crate::common::*;
use crate::spec::*;
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DATA: &[u8] = b"0123456789abcdefghij";

async fn get(s: &TestServer, path: &str) -> reqwest::Response {
    client().get(s.v2(path)).send().await.unwrap()
}

#[tokio::test]
async fn referrers_answer_an_empty_index_for_any_well_formed_digest() {
    let s = TestServer::start();
    let empty = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] });
    // A repository that does not exist yet, in a project that does.
    for q in ["", "?artifactType=application/vnd.example.sbom"] {
        let r = get(&s, &format!("syn1/not-yet/referrers/{}{q}", sha256(b"x"))).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), OCI_INDEX);
        if q.is_empty() {
            assert!(r.headers().get("oci-filters-applied").is_none());
        } else {
            assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
        }
        assert_eq!(r.json::<serde_json::Value>().await.unwrap(), empty);
    }
    // A sha512 subject.
    let r = get(&s, &format!("syn1/not-yet/referrers/{}", sha512(b"x"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), empty);
    // A digest that is not well formed is still refused.
    assert_error(get(&s, "syn1/not-yet/referrers/sha256:abc").await, 400, "DIGEST_INVALID").await;
    // Anonymous callers still meet the pull check first.
    let r = anonymous().get(s.v2(&format!("syn1/not-yet/referrers/{}", sha256(b"x")))).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// An image manifest whose second layer is `layer` (a JSON descriptor).
fn manifest_with(config: &str, config_len: usize, pushed: (&str, usize), layer: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len },
        "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": pushed.0, "size": pushed.1 },
            layer,
        ],
    }))
    .unwrap()
}

#[tokio::test]
async fn non_distributable_layers_need_not_be_pushed() {
    let s = TestServer::start();
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    let c = push_blob(&s, "syn1/win", config).await;
    let l = push_blob(&s, "syn1/win", DATA).await;
    let absent = sha256(b"a base layer that is never pushed");
    let layers = [
        json!({ "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": absent, "size": 5 }),
        json!({ "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": absent, "size": 5,
                "urls": ["https://example.invalid/layer"] }),
        json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": absent, "size": 5,
                "urls": ["https://example.invalid/layer"] }),
    ];
    for (i, layer) in layers.into_iter().enumerate() {
        let m = manifest_with(&c, config.len(), (&l, DATA.len()), layer);
        let tag = format!("v{i}");
        let r = put_manifest(&s, "syn1/win", &tag, OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), 201, "layer {i}: {}", r.text().await.unwrap());
        let r = get(&s, &format!("syn1/win/manifests/{tag}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "docker-content-digest"), sha256(&m));
        assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
        // The foreign layer itself is not served: it was never pushed.
        assert_error(get(&s, &format!("syn1/win/blobs/{absent}")).await, 404, "BLOB_UNKNOWN").await;
    }
    // Everything else a manifest lists must still be in the repository: an ordinary layer
    // and the config, also next to a foreign layer.
    let plain = json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": absent, "size": 5 });
    let m = manifest_with(&c, config.len(), (&l, DATA.len()), plain);
    let msg =
        assert_error(put_manifest(&s, "syn1/win", "bad", OCI_MANIFEST, &m).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(msg.contains(&absent), "{msg}");
    let foreign =
        json!({ "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar", "digest": absent, "size": 5 });
    let missing_config = sha256(b"no such config");
    let m = manifest_with(&missing_config, 3, (&l, DATA.len()), foreign);
    let msg =
        assert_error(put_manifest(&s, "syn1/win", "bad", OCI_MANIFEST, &m).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(msg.contains(&missing_config) && !msg.contains(&absent), "{msg}");
    // `urls` must be an array of strings, bounded.
    let m = manifest_with(
        &c,
        config.len(),
        (&l, DATA.len()),
        json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": absent, "size": 5, "urls": "https://example.invalid" }),
    );
    let msg = assert_error(put_manifest(&s, "syn1/win", "bad", OCI_MANIFEST, &m).await, 400, "MANIFEST_INVALID").await;
    assert_eq!(msg, "layers[1].urls must be an array of at most 16 URL strings of at most 2048 bytes");
}

#[tokio::test]
async fn manifest_put_by_digest_with_tag_parameters() {
    let s = TestServer::start();
    let (_, m) = push_image(&s, "syn1/app", "first", DATA).await;
    let d = sha256(&m);
    let url = s.v2(&format!("syn1/app/manifests/{d}?tag=1.2.3&tag=1.2&tag=latest&tag=1.2"));
    let r = client().put(&url).header("content-type", OCI_MANIFEST).body(m.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/manifests/{d}"));
    let tags: Vec<&str> = r.headers().get_all("oci-tag").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(tags, ["1.2.3", "1.2", "latest"], "one OCI-Tag per tag applied, duplicates once");
    let r = get(&s, "syn1/app/tags/list").await;
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["1.2","1.2.3","first","latest"]}"#);
    for t in ["1.2.3", "1.2", "latest"] {
        let r = get(&s, &format!("syn1/app/manifests/{t}")).await;
        assert_eq!(header(&r, "docker-content-digest"), d);
    }
    // Without tag parameters a PUT by digest names no tag.
    let r = put_manifest(&s, "syn1/app", &d, OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("oci-tag").is_none());

    // Refusals: a bad tag (nothing applied), tag parameters on a PUT by tag, too many tags.
    let put = |q: String| client().put(s.v2(&q)).header("content-type", OCI_MANIFEST).body(m.clone()).send();
    let msg =
        assert_error(put(format!("syn1/app/manifests/{d}?tag=ok&tag=-bad")).await.unwrap(), 400, "MANIFEST_INVALID")
            .await;
    assert_eq!(msg, "tag \"-bad\" must start with a letter, a digit or '_'");
    assert_eq!(get(&s, "syn1/app/manifests/ok").await.status(), 404);
    let msg = assert_error(put("syn1/app/manifests/v9?tag=other".into()).await.unwrap(), 400, "MANIFEST_INVALID").await;
    assert!(msg.starts_with("tag query parameters go with a PUT by digest"), "{msg}");
    let many: Vec<String> = (0..101).map(|i| format!("tag=t{i}")).collect();
    let msg =
        assert_error(put(format!("syn1/app/manifests/{d}?{}", many.join("&"))).await.unwrap(), 414, "MANIFEST_INVALID")
            .await;
    assert_eq!(msg, "101 tag parameters; at most 100 per request");
    // The spec asks for at least 10 per request.
    let ten: Vec<String> = (0..10).map(|i| format!("tag=t{i}")).collect();
    let r = put(format!("syn1/app/manifests/{d}?{}", ten.join("&"))).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get_all("oci-tag").iter().count(), 10);
    // Each tag is a commit in the history, as separate pushes would be.
    let id = crate::api_util::repo_id(&s, "syn1/app").await;
    let url = format!("{}/api/v1/repositories/{id}/commits", s.url);
    let v: serde_json::Value = client().get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["commits"].as_array().unwrap().len(), 1 + 3 + 10, "{v}");
}

#[tokio::test]
async fn manifests_keep_the_sha512_digest_the_client_asked_for() {
    let s = TestServer::start();
    let (_, m) = push_image(&s, "syn1/app", "v1", DATA).await;
    let d512 = sha512(&m);
    // Pushed by tag with digest-algorithm=sha512: the answer and the manifest use sha512.
    let r = client()
        .put(s.v2("syn1/app/manifests/v512?digest-algorithm=sha512"))
        .header("content-type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d512);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/manifests/{d512}"));
    for reference in ["v512", d512.as_str()] {
        let r = get(&s, &format!("syn1/app/manifests/{reference}")).await;
        assert_eq!(r.status(), 200, "{reference}");
        assert_eq!(header(&r, "docker-content-digest"), d512);
        assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
    }
    // Pushed by its sha512 digest with a tag parameter.
    let r = client()
        .put(s.v2(&format!("syn1/app/manifests/{d512}?tag=also")))
        .header("content-type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d512);
    assert_eq!(header(&r, "oci-tag"), "also");
    assert_eq!(header(&get(&s, "syn1/app/manifests/also").await, "docker-content-digest"), d512);
    // The sha256 push is unchanged.
    assert_eq!(header(&get(&s, "syn1/app/manifests/v1").await, "docker-content-digest"), sha256(&m));

    // Refusals: an algorithm this registry does not hash with, and one that contradicts the URL.
    let r = client().put(s.v2("syn1/app/manifests/x?digest-algorithm=md5")).body(m.clone()).send().await.unwrap();
    let msg = assert_error(r, 400, "DIGEST_INVALID").await;
    assert_eq!(msg, "digest-algorithm=\"md5\" is not supported; use sha256 or sha512");
    let r = client()
        .put(s.v2(&format!("syn1/app/manifests/{}?digest-algorithm=sha512", sha256(&m))))
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    let r = client().post(s.v2("syn1/app/blobs/uploads/?digest-algorithm=blake3")).send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn sha512_blob_upload_with_digest_algorithm() {
    let s = TestServer::start();
    let r = client().post(s.v2("syn1/app/blobs/uploads/?digest-algorithm=sha512")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location").to_string();
    let d = sha512(DATA);
    let r = client().put(format!("{}{loc}?digest={d}", s.url)).body(DATA.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = get(&s, &format!("syn1/app/blobs/{d}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn upload_cancel_flow() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(format!("{}{loc}", s.url)).body(b"part".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location").to_string();
    let r = client().delete(format!("{}{loc}", s.url)).header("content-length", "0").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_empty(r).await;
    // The session is gone: status, another chunk, the final PUT and a second cancel all 404.
    assert_error(client().get(format!("{}{loc}", s.url)).send().await.unwrap(), 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_error(
        client().patch(format!("{}{loc}", s.url)).body(b"x".to_vec()).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let r = client().put(format!("{}{loc}?digest={}", s.url, sha256(b"part"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_error(client().delete(format!("{}{loc}", s.url)).send().await.unwrap(), 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert!(upload_files(&s).is_empty(), "the partial data is freed: {:?}", upload_files(&s));
}

#[tokio::test]
async fn every_valid_single_range_is_honoured_or_416() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let ranged = |r: &'static str| client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", r).send();
    // Honoured: (header, content-range, body).
    for (h, cr, body) in [
        ("bytes=0-0", "bytes 0-0/20", &DATA[..1]),
        ("bytes=19-19", "bytes 19-19/20", &DATA[19..]),
        ("bytes=5-", "bytes 5-19/20", &DATA[5..]),
        ("bytes=-20", "bytes 0-19/20", DATA),
        ("bytes=-99999999999999999999", "bytes 0-19/20", DATA),
        ("bytes=3-99999999999999999999", "bytes 3-19/20", &DATA[3..]),
        ("BYTES = 1-2", "bytes 1-2/20", &DATA[1..3]),
    ] {
        let r = ranged(h).await.unwrap();
        assert_eq!(r.status(), 206, "{h}");
        assert_eq!(header(&r, "content-range"), cr, "{h}");
        assert_eq!(header(&r, "content-length"), body.len().to_string(), "{h}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), body, "{h}");
    }
    // Not satisfiable: 416 with the length, including an end before the start.
    for h in ["bytes=5-1", "bytes=20-", "bytes=20-25", "bytes=-0", "bytes=99999999999999999999-"] {
        let r = ranged(h).await.unwrap();
        assert_eq!(header(&r, "content-range"), "bytes */20", "{h}");
        let msg = assert_error(r, 416, "BLOB_UPLOAD_INVALID").await;
        assert_eq!(
            msg,
            "range selects no byte of the blob of 20 bytes; ask for bytes=<start>-<end> with start <= end < 20"
        );
    }
    // Not a single byte range: ignored, the whole blob with 200.
    for h in ["bytes=0-1,4-5", "items=0-1", "bytes=x-y", "bytes"] {
        let r = ranged(h).await.unwrap();
        assert_eq!(r.status(), 200, "{h}");
        assert!(r.headers().get("content-range").is_none(), "{h}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), DATA, "{h}");
    }
    // HEAD agrees with GET.
    let r = client().head(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=5-1").send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), "bytes */20");
}

#[tokio::test]
async fn artifact_type_filter_takes_a_plus_sign_escaped_or_not() {
    let s = TestServer::start();
    let (subject, sm) = push_image(&s, "syn1/app", "v1", DATA).await;
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": sm.len() },
    }))
    .unwrap();
    assert_eq!(put_manifest(&s, "syn1/app", &sha256(&m), OCI_MANIFEST, &m).await.status(), 201);
    for q in ["application/spdx+json", "application%2Fspdx%2Bjson"] {
        let r = get(&s, &format!("syn1/app/referrers/{subject}?artifactType={q}")).await;
        assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["manifests"][0]["digest"], sha256(&m), "{q}: {v}");
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    }
}
