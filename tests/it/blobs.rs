//! Blob pulls and deletes (distribution-spec v1.1 end-2, end-10): headers, ranges, repository
//! scoping of blobs, error codes, and sha512 digests.

use crate::common::*;
use crate::spec::*;

const DATA: &[u8] = b"0123456789abcdefghij";

#[tokio::test]
async fn get_and_head_send_length_digest_and_bytes() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "20");
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);

    let r = client().head(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "20");
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_empty(r).await;
}

#[tokio::test]
async fn range_request_is_206_with_content_range() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=2-5").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 2-5/20");
    assert_eq!(header(&r, "content-length"), "4");
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"2345");

    // An open-ended range runs to the end.
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=15-").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 15-19/20");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"fghij");
}

#[tokio::test]
async fn suffix_range_returns_the_last_bytes() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=-3").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 17-19/20");
    assert_eq!(header(&r, "content-length"), "3");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hij");
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_the_length() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=20-30").send().await.unwrap();
    assert_eq!(header(&r, "content-range"), "bytes */20");
    assert_error(r, 416, "BLOB_UPLOAD_INVALID").await;
}

#[tokio::test]
async fn blob_of_another_repository_is_unknown_here() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/owner", DATA).await;
    push_blob(&s, "syn1/other", b"something else").await;
    let r = client().get(s.v2(&format!("syn1/other/blobs/{d}"))).send().await.unwrap();
    let msg = assert_error(r, 404, "BLOB_UNKNOWN").await;
    assert!(msg.contains(&d), "{msg}");
    let r = client().head(s.v2(&format!("syn1/other/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("docker-content-digest").is_none());
    assert_empty(r).await;
}

#[tokio::test]
async fn delete_is_202_then_the_blob_is_unknown() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().delete(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "content-length"), "0");
    assert_empty(r).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
    let r = client().delete(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn malformed_digest_is_digest_invalid() {
    let s = TestServer::start();
    push_blob(&s, "syn1/app", DATA).await;
    for bad in ["sha256:abc", "sha256:ZZ", "md5:d41d8cd98f00b204e9800998ecf8427e", "nodigest"] {
        let r = client().get(s.v2(&format!("syn1/app/blobs/{bad}"))).send().await.unwrap();
        assert_error(r, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn unknown_repository_is_name_unknown() {
    let s = TestServer::start();
    let r = client().get(s.v2(&format!("syn1/nothing/blobs/{}", sha256(DATA)))).send().await.unwrap();
    let msg = assert_error(r, 404, "NAME_UNKNOWN").await;
    assert!(msg.contains("syn1/nothing"), "{msg}");
}

#[tokio::test]
async fn sha512_blob_push_and_pull() {
    let s = TestServer::start();
    let d = sha512(DATA);
    assert!(d.starts_with("sha512:") && d.len() == 7 + 128);
    let r = client().post(s.v2(&format!("syn1/app/blobs/uploads/?digest={d}"))).body(DATA).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/app/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);

    // The same bytes under their sha256 digest were never pushed.
    let r = client().get(s.v2(&format!("syn1/app/blobs/{}", sha256(DATA)))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn sha512_chunked_upload() {
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client()
        .patch(format!("{}{loc}", s.url))
        .header("content-range", "0-9")
        .body(&DATA[..10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let d = sha512(DATA);
    let r = client().put(format!("{}{loc}?digest={d}", s.url)).body(&DATA[10..]).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn several_ranges_are_ignored_and_the_whole_blob_sent() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=0-1,4-5").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-range").is_none());
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn range_past_the_end_is_cut_to_the_blob() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", DATA).await;
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=18-1000").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 18-19/20");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"ij");
}

#[tokio::test]
async fn same_bytes_in_two_repositories_are_deleted_per_repository() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/one", DATA).await;
    push_blob(&s, "syn1/two", DATA).await;
    let r = client().delete(s.v2(&format!("syn1/one/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client().get(s.v2(&format!("syn1/one/blobs/{d}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
    let r = client().get(s.v2(&format!("syn1/two/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), DATA);
}

#[tokio::test]
async fn large_blob_in_uneven_chunks_reads_back_exactly() {
    let s = TestServer::start();
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let loc = start_upload(&s, "syn1/app").await;
    let mut off = 0;
    for len in [1, 100_000, 262_143, 262_144, 1_500_000] {
        let r = client()
            .patch(format!("{}{loc}", s.url))
            .header("content-range", format!("{off}-{}", off + len - 1))
            .body(data[off..off + len].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        off += len;
        assert_eq!(header(&r, "range"), format!("0-{}", off - 1));
    }
    let d = sha256(&data);
    let r = client().put(format!("{}{loc}?digest={d}", s.url)).body(data[off..].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(header(&r, "content-length"), data.len().to_string());
    assert!(r.bytes().await.unwrap().as_ref() == data.as_slice());
    let r =
        client().get(s.v2(&format!("syn1/app/blobs/{d}"))).header("range", "bytes=262140-262150").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[262_140..=262_150]);
}

#[tokio::test]
async fn invalid_repository_name_is_name_invalid() {
    let s = TestServer::start();
    for name in ["syn1/App", "syn1/a..b", "syn1/-a", "syn1/a_"] {
        let r = client().get(s.v2(&format!("{name}/blobs/{}", sha256(DATA)))).send().await.unwrap();
        assert_error(r, 400, "NAME_INVALID").await;
    }
}
