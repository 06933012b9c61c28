//! Server-level behaviour: health endpoints, unknown paths and methods, the API version header,
//! HTTP/2 with prior knowledge (h2c), and persistence across a restart, including an upload that
//! was interrupted and resumes from the offset the status request reports.

use crate::common::*;
use crate::spec::*;
use std::io::{Read, Write};

#[tokio::test]
async fn healthz_and_readyz() {
    let s = TestServer::start();
    let r = client().get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let r = client().get(format!("{}/readyz", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");
}

/// An anonymous `/healthz` (a load balancer's probe) must not make the next anonymous `/v2/` an
/// authorized 200: docker login takes a 200 there as "no credentials needed" and logs in
/// without checking the password. Both answers used to share one cached authorization.
#[tokio::test]
async fn an_anonymous_health_probe_does_not_open_the_base_endpoint() {
    let s = TestServer::start();
    for _ in 0..2 {
        let r = anonymous().get(format!("{}/healthz", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = anonymous().get(s.v2("")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(header(&r, "www-authenticate").starts_with("Bearer realm="), "{:?}", r.headers());
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required; run docker login or ask for a token"}]}"#
        );
    }
}

#[tokio::test]
async fn base_endpoint_is_an_empty_json_object() {
    let s = TestServer::start();
    for url in [s.v2(""), format!("{}/v2", s.url)] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(header(&r, "content-type"), "application/json");
        assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
        assert_eq!(r.text().await.unwrap(), "{}");
    }
}

#[tokio::test]
async fn unknown_path_is_404_with_a_json_error() {
    let s = TestServer::start();
    let r = client().get(format!("{}/api/nothing/here", s.url)).send().await.unwrap();
    assert_error(r, 404, "UNSUPPORTED").await;
    // Other paths belong to the web portal: a 404 page a person can read.
    let r = client().get(format!("{}/nothing/here", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), header(&r, "content-type")), (404, "text/html; charset=utf-8"));
    assert!(r.text().await.unwrap().contains("there is no page at /nothing/here"));
    let r = client().get(s.v2("syn1/app/nothing")).send().await.unwrap();
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    assert_error(r, 404, "UNSUPPORTED").await;
}

#[tokio::test]
async fn wrong_method_is_405_unsupported() {
    let s = TestServer::start();
    let c = client();
    for req in [
        c.post(s.v2("syn1/app/manifests/v1")),
        c.patch(s.v2(&format!("syn1/app/blobs/{}", sha256(b"x")))),
        c.delete(s.v2("_catalog")),
        c.put(s.v2("")),
        c.post(s.v2("syn1/app/tags/list")),
        c.get(s.v2("syn1/app/blobs/uploads/")),
        c.post(format!("{}/healthz", s.url)),
    ] {
        let r = req.send().await.unwrap();
        assert_error(r, 405, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn wrong_method_names_the_allowed_methods() {
    let s = TestServer::start();
    let r = client().post(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "allow"), "GET, HEAD, PUT, DELETE");
}

#[tokio::test]
async fn every_v2_response_carries_the_api_version() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/app", b"data").await;
    let c = client();
    for req in [
        c.get(s.v2("")),
        c.get(s.v2(&format!("syn1/app/blobs/{d}"))),
        c.head(s.v2(&format!("syn1/app/blobs/{d}"))),
        c.get(s.v2(&format!("syn1/app/blobs/{}", sha256(b"missing")))),
        c.get(s.v2("syn1/app/blobs/sha256:bad")),
        c.get(s.v2("syn1/nothing/tags/list")),
        c.get(s.v2("syn1/app/tags/list")),
        c.get(s.v2("_catalog")),
        c.post(s.v2("syn1/app/blobs/uploads/")),
        c.post(s.v2("syn1/app/manifests/v1")),
        c.get(s.v2("Bad/Name/manifests/v1")),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(
            r.headers().get("docker-distribution-api-version").map(|v| v.to_str().unwrap()),
            Some("registry/2.0"),
            "{} {:?}",
            r.url(),
            r.status()
        );
    }
}

/// One HTTP/2 frame: type, flags, stream id, payload.
fn read_frame(s: &mut std::net::TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).expect("frame header");
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("frame payload");
    (h[3], h[4], stream, payload)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// h2c with prior knowledge, spoken frame by frame (reqwest here is built without its `http2`
/// feature): `GET /v2/` must answer `:status 200` with the body `{}`.
#[test]
fn http2_prior_knowledge() {
    let s = TestServer::start();
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    // HPACK (RFC 7541): :method GET (static 2), :scheme http (static 6), then literals without
    // indexing whose names are static entries 4 (:path), 1 (:authority) and 23 (authorization);
    // no Huffman coding.
    // Index 23 (authorization) does not fit the 4-bit prefix: 0x0f, then 23 - 15.
    let mut block = vec![0x82, 0x86];
    let auth = admin_authorization();
    for (name, value) in [(&[4u8][..], "/v2/"), (&[1u8][..], s.host.as_str()), (&[0x0f, 8][..], auth.as_str())] {
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[])); // SETTINGS
    out.extend(frame(1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    c.write_all(&out).unwrap();
    let (mut status, mut body) = (None, Vec::new());
    loop {
        let (kind, flags, stream, payload) = read_frame(&mut c);
        match (kind, stream) {
            (4, 0) if flags & 1 == 0 => c.write_all(&frame(4, 1, 0, &[])).unwrap(), // ack SETTINGS
            (1, 1) => status = Some(payload[0]),
            (0, 1) => body.extend_from_slice(&payload),
            (7, _) | (3, 1) => panic!("connection or stream refused: type {kind} {payload:?}"),
            _ => {}
        }
        if stream == 1 && flags & 1 == 1 && (kind == 0 || kind == 1) {
            break;
        }
    }
    // 0x88: indexed header field, static entry 8, `:status: 200`.
    assert_eq!(status, Some(0x88));
    assert_eq!(body, b"{}");
}

// Multi-threaded, so the client's connection task can answer the server's shutdown PING (h2
// graceful shutdown) while this thread waits for the server to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_over_h2c_with_reqwest() {
    use base64::Engine as _;
    let s = TestServer::start();
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = sha256(&data);
    let r = h2
        .post(s.v2(&format!("syn1/h2/blobs/uploads/?digest={d}")))
        .header("authorization", format!("Basic {cred}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = h2
        .get(s.v2(&format!("syn1/h2/blobs/{d}")))
        .header("authorization", format!("Basic {cred}"))
        .send()
        .await
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn data_survives_a_restart() {
    let s = TestServer::start();
    let (d, m) = push_image(&s, "syn1/app", "v1", b"layer that must persist").await;
    let layer = sha256(b"layer that must persist");
    let dir = s.stop();
    let s = TestServer::start_in(dir, |_| {});
    let r = client().get(s.v2("syn1/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
    let r = client().get(s.v2(&format!("syn1/app/blobs/{layer}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"layer that must persist");
    let r = client().get(s.v2("syn1/app/tags/list")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"name":"syn1/app","tags":["v1"]}"#);
}

#[tokio::test]
async fn interrupted_upload_resumes_after_a_restart() {
    let data: Vec<u8> = (0..100u8).collect();
    let s = TestServer::start();
    let loc = start_upload(&s, "syn1/app").await;
    let r = client()
        .patch(format!("{}{loc}", s.url))
        .header("content-range", "0-39")
        .body(data[..40].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-39");
    // A second chunk breaks off: 30 bytes of the 60 announced, then the connection closes.
    {
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Range: 40-99\r\nContent-Length: 60\r\n\r\n",
            s.host,
            admin_authorization()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&data[40..70]).unwrap();
        c.flush().unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = s.stop();
    let s = TestServer::start_in(dir, |_| {});
    let r = client().get(format!("{}{loc}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let range = header(&r, "range").to_string();
    assert_eq!(range, "0-39");
    let offset: usize = range.trim_start_matches("0-").parse::<usize>().unwrap() + 1;
    let r = client()
        .patch(format!("{}{loc}", s.url))
        .header("content-range", format!("{offset}-99"))
        .body(data[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-99");
    let d = sha256(&data);
    let r = client().put(format!("{}{loc}?digest={d}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = client().get(s.v2(&format!("syn1/app/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn metrics_count_responses_and_stored_bytes() {
    let s = TestServer::start();
    push_blob(&s, "syn1/app", b"twelve bytes").await;
    let r = anonymous().get(s.v2("syn1/app/blobs/sha256:bad")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = anonymous().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/plain; version=0.0.4");
    let text = r.text().await.unwrap();
    let value = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("stowage_stored_bytes "), 12);
    assert!(value("stowage_http_responses_total{class=\"2xx\"}") >= 1, "{text}");
    assert!(value("stowage_http_responses_total{class=\"4xx\"}") >= 1, "{text}");
    assert_eq!(value("stowage_storage_writable "), 1);
    assert!(text.contains("stowage_io_backend{backend=\""), "{text}");
}
