//! Garbage collection of what referrers, indexes and non-distributable layers add: a deleted
//! subject takes its untagged referrers (and referrers of those) with it, and their blobs, but
//! only what nothing else holds: a tag, an index listing it, another repository, another manifest.

use crate::common::*;
use crate::spec::*;
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// True if the blob's file is still under the data directory.
fn stored(s: &TestServer, digest: &str) -> bool {
    let d: stowage_engine::Digest = digest.parse().unwrap();
    s.dir.path().join("blobs").join(d.relative_path()).exists()
}

/// Runs a collection (after a second, so everything is past the zero grace window) and returns
/// how many blobs it deleted.
async fn gc(s: &TestServer) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = client().post(format!("{}/api/v1/gc", s.url)).json(&json!(null)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["blobs_deleted"].as_u64().unwrap()
}

/// Pushes an artifact with one layer `layer` about `subject` (digest, size); returns its digest.
async fn push_referrer(s: &TestServer, name: &str, subject: (&str, usize), layer: &[u8], tag: Option<&str>) -> String {
    let l = push_blob(s, name, layer).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [{ "mediaType": "application/octet-stream", "digest": l, "size": layer.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.0, "size": subject.1 },
    }))
    .unwrap();
    let d = sha256(&m);
    let r = put_manifest(s, name, tag.unwrap_or(&d), OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    d
}

async fn manifest_len(s: &TestServer, name: &str, reference: &str) -> usize {
    let r = client().get(s.v2(&format!("{name}/manifests/{reference}"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "{name}:{reference}");
    r.bytes().await.unwrap().len()
}

async fn status(s: &TestServer, path: &str) -> u16 {
    client().get(s.v2(path)).send().await.unwrap().status().as_u16()
}

async fn referrers(s: &TestServer, name: &str, subject: &str) -> Vec<String> {
    let v: serde_json::Value =
        client().get(s.v2(&format!("{name}/referrers/{subject}"))).send().await.unwrap().json().await.unwrap();
    let mut out: Vec<String> =
        v["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_deleted_subject_takes_its_referrers_and_their_blobs_only_when_nothing_else_holds_them() {
    let s = TestServer::start_with(|st| st.engine.gc_grace = std::time::Duration::ZERO);
    let app = "syn1/app";
    push_blob(&s, app, EMPTY_JSON).await;
    let (v1, v1m) = push_image(&s, app, "v1", b"image layer").await;
    let subject = (v1.as_str(), v1m.len());
    // Referrers of v1: untagged ones, one of them with its own referrer; one tagged; one listed
    // by a tagged index; one whose layer another repository also holds.
    let sig = push_referrer(&s, app, subject, b"signature", None).await;
    let sig_len = manifest_len(&s, app, &sig).await;
    let sig2 = push_referrer(&s, app, (&sig, sig_len), b"countersignature", None).await;
    let sbom = push_referrer(&s, app, subject, b"sbom", Some("sbom")).await;
    let att = push_referrer(&s, app, subject, b"attestation", None).await;
    let att_len = manifest_len(&s, app, &att).await;
    let bundle = serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": att, "size": att_len }] }))
    .unwrap();
    assert_eq!(put_manifest(&s, app, "bundle", OCI_INDEX, &bundle).await.status(), 201);
    let shared_layer = push_blob(&s, "syn1/other", b"shared layer").await;
    let shared = push_referrer(&s, app, subject, b"shared layer", None).await;
    // An index with two children, and an image with a non-distributable layer never pushed.
    let (a, am) = push_image(&s, app, "a", b"layer a").await;
    let (b, bm) = push_image(&s, app, "b", b"layer b").await;
    let multi = serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        { "mediaType": OCI_MANIFEST, "digest": a, "size": am.len(), "platform": { "os": "linux", "architecture": "amd64" } },
        { "mediaType": OCI_MANIFEST, "digest": b, "size": bm.len(), "platform": { "os": "linux", "architecture": "arm64" } },
    ] }))
    .unwrap();
    assert_eq!(put_manifest(&s, app, "multi", OCI_INDEX, &multi).await.status(), 201);
    for t in ["a", "b"] {
        assert_eq!(client().delete(s.v2(&format!("{app}/manifests/{t}"))).send().await.unwrap().status(), 202);
    }
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    let c = push_blob(&s, app, config).await;
    let lw = push_blob(&s, app, b"windows layer").await;
    let foreign = sha256(b"foreign base layer");
    let win = serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len() },
        "layers": [
            { "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": foreign, "size": 9 },
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": lw, "size": 13 },
        ] }))
    .unwrap();
    assert_eq!(put_manifest(&s, app, "win", OCI_MANIFEST, &win).await.status(), 201);
    let win_d = sha256(&win);

    // While the subject lives, nothing is collected.
    assert_eq!(gc(&s).await, 0);
    let mut want = vec![sig.clone(), sbom.clone(), att.clone(), shared.clone()];
    want.sort();
    assert_eq!(referrers(&s, app, &v1).await, want);

    // Delete the subject, and the index's children (the index still lists them).
    assert_eq!(client().delete(s.v2(&format!("{app}/manifests/{v1}"))).send().await.unwrap().status(), 202);
    for d in [&a, &b] {
        assert_eq!(client().delete(s.v2(&format!("{app}/manifests/{d}"))).send().await.unwrap().status(), 202);
    }
    // v1's manifest, sig, sig2 (a referrer of sig) and shared, and the layers of sig and sig2.
    assert_eq!(gc(&s).await, 6);
    let (s1, s2, s3, s4) = (sha256(b"signature"), sha256(b"countersignature"), sha256(b"sbom"), sha256(b"attestation"));
    for gone in [&v1, &sig, &sig2, &shared, &s1, &s2] {
        assert!(!stored(&s, gone), "{gone} should be collected");
    }
    for d in [&sig, &sig2, &shared] {
        assert_eq!(status(&s, &format!("{app}/manifests/{d}")).await, 404);
    }
    // Held: the tagged referrer and the one the index lists, with their blobs; the shared layer
    // (another repository links it; this one no longer serves it); the index children; the
    // image with the foreign layer.
    for kept in [&sbom, &att, &s3, &s4, EMPTY_DIGEST, &shared_layer, &a, &b, &sha256(&multi), &win_d, &lw, &c] {
        assert!(stored(&s, kept), "{kept} should be kept");
    }
    assert_eq!(status(&s, &format!("{app}/blobs/{shared_layer}")).await, 404);
    assert_eq!(status(&s, &format!("syn1/other/blobs/{shared_layer}")).await, 200);
    assert_eq!(referrers(&s, app, &v1).await, {
        let mut w = vec![sbom.clone(), att.clone()];
        w.sort();
        w
    });
    assert_eq!(status(&s, &format!("{app}/manifests/sbom")).await, 200);
    assert_eq!(status(&s, &format!("{app}/manifests/win")).await, 200);
    assert_eq!(status(&s, &format!("{app}/manifests/multi")).await, 200);

    // Untag the sbom and delete the index (by digest: deleting a tag only untags): both referrers go, with their layers, the empty
    // config nothing references any more, and the index's own bytes.
    assert_eq!(client().delete(s.v2(&format!("{app}/manifests/sbom"))).send().await.unwrap().status(), 202);
    let bundle_d = sha256(&bundle);
    assert_eq!(client().delete(s.v2(&format!("{app}/manifests/{bundle_d}"))).send().await.unwrap().status(), 202);
    assert_eq!(gc(&s).await, 6);
    for gone in [&sbom, &att, &s3, &s4, EMPTY_DIGEST, &sha256(&bundle)] {
        assert!(!stored(&s, gone), "{gone} should be collected");
    }
    assert_eq!(referrers(&s, app, &v1).await, Vec::<String>::new());
    assert!(stored(&s, &win_d) && stored(&s, &a) && stored(&s, &shared_layer));
    // A collection with nothing left to do.
    assert_eq!(gc(&s).await, 0);
}

#[tokio::test]
async fn a_referrer_pushed_before_its_subject_survives_the_grace_window() {
    // Default grace window (1 h): an early referrer is not an orphan yet.
    let s = TestServer::start();
    push_blob(&s, "syn1/app", EMPTY_JSON).await;
    let early = push_referrer(&s, "syn1/app", (&sha256(b"subject to come"), 10), b"early", None).await;
    let r = client().post(format!("{}/api/v1/gc", s.url)).json(&json!(null)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(status(&s, &format!("syn1/app/manifests/{early}")).await, 200);
    assert_eq!(referrers(&s, "syn1/app", &sha256(b"subject to come")).await, [early]);
}
