//! Blob uploads (distribution-spec v1.1 end-4a, end-4b, end-5, end-6, end-11, end-13, cancel):
//! every push flow, resumption, the size limit and cross-repository mounts.

use crate::common::*;
use crate::spec::*;

const DATA: &[u8] = b"the quick brown fox jumps over the lazy dog";

fn at(s: &TestServer, loc: &str) -> String {
    format!("{}{loc}", s.url)
}

#[tokio::test]
async fn post_starts_a_session() {
    let s = TestServer::start();
    let r = client().post(s.v2("syn1/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();
    assert_eq!(loc, format!("/v2/syn1/app/blobs/uploads/{id}"));
    assert!(uuid_like(&id), "{id}");
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(header(&r, "content-length"), "0");
    assert_empty(r).await;
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test]
async fn chunked_patches_report_the_range() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(at(&s, &loc)).header("content-range", "0-9").body(&DATA[..10]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-9");
    assert_eq!(header(&r, "location"), loc);
    assert_eq!(header(&r, "docker-upload-uuid"), upload_id(&loc));
    let r = client().patch(at(&s, &loc)).header("content-range", "10-19").body(&DATA[10..20]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-19");
    let d = sha256(DATA);
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).body(&DATA[20..]).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn out_of_order_chunk_is_416_with_the_current_range() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(at(&s, &loc)).header("content-range", "0-9").body(&DATA[..10]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client().patch(at(&s, &loc)).header("content-range", "15-24").body(&DATA[15..25]).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-9");
    assert_error(r, 416, "BLOB_UPLOAD_INVALID").await;
    // Nothing was written: the status still says 10 bytes.
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-9");
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(at(&s, &loc)).body(&DATA[..30]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-29");
    let r = client().patch(at(&s, &loc)).body(&DATA[30..]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), format!("0-{}", DATA.len() - 1));
    let d = sha256(DATA);
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
}

#[tokio::test]
async fn status_is_204_with_range_and_location() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(header(&r, "location"), loc);
    assert_eq!(header(&r, "docker-upload-uuid"), upload_id(&loc));
    assert_empty(r).await;
    client().patch(at(&s, &loc)).body(&DATA[..5]).send().await.unwrap();
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-4");
}

#[tokio::test]
async fn put_without_a_final_chunk_completes() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    client()
        .patch(at(&s, &loc))
        .header("content-range", format!("0-{}", DATA.len() - 1))
        .body(DATA)
        .send()
        .await
        .unwrap();
    let d = sha256(DATA);
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).header("content-length", "0").send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_empty(r).await;
    // The session is over.
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn post_then_put_with_the_whole_blob() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let d = sha256(DATA);
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).body(DATA).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
}

#[tokio::test]
async fn digest_mismatch_is_digest_invalid_and_ends_the_upload() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    client().patch(at(&s, &loc)).body(DATA).send().await.unwrap();
    let wrong = sha256(b"other bytes");
    let r = client().put(at(&s, &format!("{loc}?digest={wrong}"))).send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{wrong}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn put_without_digest_is_digest_invalid() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().put(at(&s, &loc)).body(DATA).send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn cancel_is_204_then_unknown() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    client().patch(at(&s, &loc)).body(DATA).send().await.unwrap();
    let r = client().delete(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_empty(r).await;
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().patch(at(&s, &loc)).body(DATA).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().delete(at(&s, &loc)).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_or_garbage_upload_id_is_blob_upload_unknown() {
    let s = TestServer::start();
    start_upload(&s, "syn1/app").await;
    for id in ["0b9b5c8e-6f3a-4bbf-9d8e-0e8d1a0c7b11", "not-an-id", "..%2F..%2Fetc%2Fpasswd"] {
        let url = s.v2(&format!("syn1/app/blobs/uploads/{id}"));
        let r = client().get(&url).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = client().patch(&url).body(DATA).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = client().put(format!("{url}?digest={}", sha256(DATA))).body(DATA).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = client().delete(&url).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
}

#[tokio::test]
async fn upload_id_is_bound_to_its_repository() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    start_upload(&s, "syn1/other").await;
    let url = s.v2(&format!("syn1/other/blobs/uploads/{}", upload_id(&loc)));
    let r = client().get(&url).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().patch(&url).body(DATA).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().put(format!("{url}?digest={}", sha256(DATA))).body(DATA).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().delete(&url).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    // The session itself is untouched.
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-0");
}

#[tokio::test]
async fn blob_over_the_size_limit_is_413_before_data_is_written() {
    let s = TestServer::start_with(|s| s.engine.max_blob_bytes = 1000);
    let big = vec![7u8; 2000];
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(at(&s, &loc)).body(big.clone()).send().await.unwrap();
    let msg = assert_error(r, 413, "SIZE_INVALID").await;
    assert!(msg.contains("1000"), "{msg}");
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-0");
    // A chunk that fits is accepted; one that would pass the limit in total is not.
    let r = client().patch(at(&s, &loc)).body(vec![7u8; 600]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client().patch(at(&s, &loc)).body(vec![7u8; 600]).send().await.unwrap();
    assert_error(r, 413, "SIZE_INVALID").await;
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-599");
    // Monolithic too.
    let d = sha256(&big);
    let r = client().post(s.v2(&format!("syn1/app/blobs/uploads/?digest={d}"))).body(big).send().await.unwrap();
    assert_error(r, 413, "SIZE_INVALID").await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn mount_from_a_repository_with_the_blob_is_201() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/source", DATA).await;
    let r =
        client().post(s.v2(&format!("syn1/target/blobs/uploads/?mount={d}&from=syn1/source"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/target/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_empty(r).await;
    let r = client().get(s.v2(&format!("syn1/target/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn mount_from_a_repository_without_the_blob_falls_back_to_an_upload() {
    let s = TestServer::start();
    // The blob exists in the registry, but not in the named source repository.
    let d = push_blob(&s, "syn1/holder", DATA).await;
    push_blob(&s, "syn1/source", b"unrelated").await;
    let r =
        client().post(s.v2(&format!("syn1/target/blobs/uploads/?mount={d}&from=syn1/source"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location").to_string();
    assert_eq!(loc, format!("/v2/syn1/target/blobs/uploads/{}", header(&r, "docker-upload-uuid")));
    assert_eq!(header(&r, "range"), "0-0");
    let r = client().get(s.v2(&format!("syn1/target/blobs/{d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
    // The fallback session works.
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).body(DATA).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn mount_from_an_unknown_repository_falls_back_to_an_upload() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/holder", DATA).await;
    let r =
        client().post(s.v2(&format!("syn1/target/blobs/uploads/?mount={d}&from=syn1/nothing"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-0");
}

/// A mount without `from` mounts a blob the caller may pull in any repository (issue 8); one
/// held nowhere falls back to an upload. (auth_push.rs covers the callers who may not pull.)
#[tokio::test]
async fn mount_without_from_mounts_a_blob_the_caller_may_pull() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/holder", DATA).await;
    let r = client().post(s.v2(&format!("syn1/target/blobs/uploads/?mount={d}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/target/blobs/{d}"));
    let r = client().get(s.v2(&format!("syn1/target/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
    let nowhere = sha256(b"held by no repository");
    let r = client().post(s.v2(&format!("syn1/target/blobs/uploads/?mount={nowhere}"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert!(header(&r, "location").starts_with("/v2/syn1/target/blobs/uploads/"));
}

#[tokio::test]
async fn monolithic_post_with_digest() {
    let s = TestServer::start();
    let d = sha256(DATA);
    let r = client()
        .post(s.v2(&format!("syn1/app/blobs/uploads/?digest={d}")))
        .header("content-type", "application/octet-stream")
        .body(DATA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_empty(r).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn monolithic_post_with_a_wrong_digest_is_digest_invalid() {
    let s = TestServer::start();
    let wrong = sha256(b"not these bytes");
    let r = client().post(s.v2(&format!("syn1/app/blobs/uploads/?digest={wrong}"))).body(DATA).send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{wrong}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn content_range_that_disagrees_with_content_length_is_416() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client().patch(at(&s, &loc)).header("content-range", "0-19").body(&DATA[..10]).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-0");
    assert_error(r, 416, "BLOB_UPLOAD_INVALID").await;
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-0");
}

#[tokio::test]
async fn chunk_that_overlaps_received_bytes_is_416() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    client().patch(at(&s, &loc)).header("content-range", "0-9").body(&DATA[..10]).send().await.unwrap();
    let r = client().patch(at(&s, &loc)).header("content-range", "5-14").body(&DATA[5..15]).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-9");
    assert_error(r, 416, "BLOB_UPLOAD_INVALID").await;
}

#[tokio::test]
async fn final_put_with_a_content_range_chunk() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    client().patch(at(&s, &loc)).header("content-range", "0-9").body(&DATA[..10]).send().await.unwrap();
    let d = sha256(DATA);
    let r = client()
        .put(at(&s, &format!("{loc}?digest={d}")))
        .header("content-range", format!("10-{}", DATA.len() - 1))
        .body(&DATA[10..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn patch_after_completion_is_blob_upload_unknown() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let d = sha256(DATA);
    assert_eq!(client().put(at(&s, &format!("{loc}?digest={d}"))).body(DATA).send().await.unwrap().status(), 201);
    let r = client().patch(at(&s, &loc)).body(DATA).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn streamed_chunked_body_over_the_limit_is_413_and_keeps_nothing() {
    let s = TestServer::start_with(|s| s.engine.max_blob_bytes = 1000);
    let big = vec![9u8; 3000];
    let loc = start_upload(&s, "syn1/app").await;
    let (status, text) =
        raw_request(&s, &format!("PATCH {loc} HTTP/1.1\r\nTransfer-Encoding: chunked"), &chunked(&big, 400));
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("SIZE_INVALID"), "{text}");
    let r = client().get(at(&s, &loc)).send().await.unwrap();
    assert_eq!(header(&r, "range"), "0-0");
    // The session resumes normally.
    let r = client().patch(at(&s, &loc)).body(DATA).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), format!("0-{}", DATA.len() - 1));
}

#[tokio::test]
async fn failed_monolithic_pushes_leave_no_upload_files() {
    let s = TestServer::start_with(|s| s.engine.max_blob_bytes = 1000);
    push_blob(&s, "syn1/app", b"x").await;
    let big = vec![9u8; 3000];
    // Over the limit, without a Content-Length to refuse it by.
    let (status, text) = raw_request(
        &s,
        &format!("POST /v2/syn1/app/blobs/uploads/?digest={} HTTP/1.1\r\nTransfer-Encoding: chunked", sha256(&big)),
        &chunked(&big, 400),
    );
    assert_eq!(status, 413, "{text}");
    // The wrong digest.
    let (status, text) = raw_request(
        &s,
        &format!("POST /v2/syn1/app/blobs/uploads/?digest={} HTTP/1.1\r\nContent-Length: 4", sha256(b"abcd!")),
        b"abcd",
    );
    assert_eq!(status, 400, "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(upload_files(&s), Vec::<String>::new());
}

#[tokio::test]
async fn streamed_chunked_body_completes_an_upload() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let (status, text) =
        raw_request(&s, &format!("PATCH {loc} HTTP/1.1\r\nTransfer-Encoding: chunked"), &chunked(DATA, 7));
    assert_eq!(status, 202, "{text}");
    assert!(text.to_ascii_lowercase().contains(&format!("range: 0-{}\r\n", DATA.len() - 1)), "{text}");
    let d = sha256(DATA);
    let r = client().put(at(&s, &format!("{loc}?digest={d}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
}
