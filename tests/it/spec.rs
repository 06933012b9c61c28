//! Helpers shared by the distribution-spec conformance tests (blobs, uploads, manifests, listing,
//! server): exact error-body checks and the upload steps most scenarios start with.

use crate::common::*;
use reqwest::Response;

/// The OCI empty descriptor's content (image-spec v1.1 "Guidance for an empty descriptor").
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

pub fn sha512(data: &[u8]) -> String {
    stowage_engine::Digest::of(stowage_engine::Algorithm::Sha512, data).to_string()
}

/// A header's value as text; panics with the header name when it is missing.
pub fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers().get(name).unwrap_or_else(|| panic!("no {name} header in {:?}", r.headers())).to_str().unwrap()
}

/// Asserts a Distribution API error response exactly: status, JSON content type, one error with
/// `code` and a non-empty message. Returns the message for further checks.
pub async fn assert_error(r: Response, status: u16, code: &str) -> String {
    assert_eq!(r.status(), status, "headers: {:?}", r.headers());
    assert_eq!(header(&r, "content-type"), "application/json");
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    let errors = v["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["code"], code, "{v}");
    let message = errors[0]["message"].as_str().expect("message").to_string();
    assert!(!message.is_empty(), "{v}");
    message
}

/// Asserts a response with no body.
pub async fn assert_empty(r: Response) {
    assert_eq!(r.bytes().await.unwrap().len(), 0);
}

/// `POST /v2/<name>/blobs/uploads/`: asserts 202 and returns the upload's Location.
pub async fn start_upload(s: &TestServer, name: &str) -> String {
    let r = client().post(s.v2(&format!("{name}/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.headers());
    header(&r, "location").to_string()
}

/// The upload id at the end of an upload Location.
pub fn upload_id(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

/// PUTs `body` as a manifest under `reference` with `content_type`.
pub async fn put_manifest(s: &TestServer, name: &str, reference: &str, content_type: &str, body: &[u8]) -> Response {
    client()
        .put(s.v2(&format!("{name}/manifests/{reference}")))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// The `Authorization` header value the harness client sends (the admin's Basic credentials).
pub fn admin_authorization() -> String {
    use base64::Engine as _;
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    format!("Basic {cred}")
}

/// Sends `head` (request line and headers, without the blank line; `Host`, `Authorization` and
/// `Connection: close` are added) and `body` over a plain TCP connection, for requests reqwest
/// cannot make (chunked bodies, bodies cut short). Returns the status and the raw response.
pub fn raw_request(s: &TestServer, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let head =
        format!("{head}\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n", s.host, admin_authorization());
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// A body in HTTP/1.1 chunked transfer coding, in pieces of `piece` bytes (no Content-Length,
/// so the server cannot refuse it up front).
pub fn chunked(data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Files left in the server's upload directory.
pub fn upload_files(s: &TestServer) -> Vec<String> {
    std::fs::read_dir(s.dir.path().join("uploads"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}
