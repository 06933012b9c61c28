//! The shortest end-to-end path: ping, push an image, pull it back.

use crate::common::*;

#[tokio::test]
async fn ping_push_pull() {
    let s = TestServer::start();
    let r = client().get(s.v2("")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
    assert_eq!(r.text().await.unwrap(), "{}");
    let (digest, bytes) = push_image(&s, "syn1/app", "v1", b"layer bytes").await;
    let r = client()
        .get(s.v2("syn1/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
}
