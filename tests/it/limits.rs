//! Limits that hold before authentication, through raw sockets against the running server: the
//! head timeout (slow HTTP/1 heads, half-sent HTTP/2 prefaces, slow heads on keep-alive
//! connections), the idle timeout and pings of HTTP/2, connection caps, deadlines on small bodies,
//! the minimum upload rate (the upload stays resumable), and a bounded flood of idle and half-open
//! connections during which authenticated pulls keep working.
//!
//! Timeouts are configured small (about a second) and asserted with generous bounds. Every loop is
//! bounded in count and time; all traffic goes to 127.0.0.1.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

const SEC: Duration = Duration::from_secs(1);

fn basic_admin() -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}")))
}

/// Reads until the peer closes (EOF or reset), discarding what arrives. Returns how long that
/// took; panics past `max`.
async fn closed_within<R: AsyncRead + Unpin>(s: &mut R, max: Duration) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(max.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {max:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// A parsed HTTP/1.1 response.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response with a Content-Length body from a keep-alive connection.
async fn read_response<R: AsyncRead + Unpin>(s: &mut R, max: Duration) -> Resp {
    let work = async {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert!(s.read(&mut byte).await.unwrap() == 1, "closed before a response head: {buf:?}");
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        Resp { status, headers, body }
    };
    tokio::time::timeout(max, work).await.expect("a response in time")
}

/// One keep-alive `GET path` on an open connection.
async fn get_on(s: &mut TcpStream, path: &str) -> Resp {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    read_response(s, 5 * SEC).await
}

/// A value from `/metrics`, read on a connection of its own. Returns once the server has closed
/// that connection, so it no longer counts as open.
async fn metric(s: &TestServer, name: &str) -> f64 {
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let r = read_response(&mut c, 5 * SEC).await;
    assert_eq!(r.status, 200);
    closed_within(&mut c, 5 * SEC).await;
    let text = String::from_utf8(r.body).unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits until the only open connection is the one asking (setup connections have ended).
async fn wait_for_quiet(s: &TestServer) {
    let t = Instant::now();
    while metric(s, "stowage_connections_open").await > 1.0 {
        assert!(t.elapsed() < 10 * SEC, "setup connections did not close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn slow_http1_head_is_closed_after_header_timeout() {
    let s = TestServer::start_with(|st| st.header_timeout = SEC);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /healthz HTT").await.unwrap();
    let took = closed_within(&mut c, 5 * SEC).await;
    assert!(took >= Duration::from_millis(800), "closed too early: {took:?}");
    // A connection that sends nothing at all (never gets past protocol detection) likewise.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let took = closed_within(&mut c, 5 * SEC).await;
    assert!(took >= Duration::from_millis(800), "closed too early: {took:?}");
    // A complete head in time is served as usual.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
    assert!(metric(&s, "stowage_connections_expired_total{reason=\"no_head\"}").await >= 2.0);
}

#[tokio::test]
async fn half_sent_http2_preface_is_closed_after_header_timeout() {
    let s = TestServer::start_with(|st| st.header_timeout = SEC);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let took = closed_within(&mut c, 5 * SEC).await;
    assert!(took >= Duration::from_millis(800), "closed too early: {took:?}");
    // A whole preface and SETTINGS but no request: still no request head, so closed as well.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(H2_PREFACE).await.unwrap();
    c.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
    let took = closed_within(&mut c, 5 * SEC).await;
    assert!(took >= Duration::from_millis(800), "closed too early: {took:?}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let s = TestServer::start_with(|st| {
        st.header_timeout = SEC;
        st.idle_timeout = 2 * SEC;
    });
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
    // Kept open past header_timeout (idle is not a slow head), closed at idle_timeout.
    let took = closed_within(&mut c, 6 * SEC).await;
    assert!(took >= Duration::from_millis(1800), "closed before idle_timeout: {took:?}");
}

#[tokio::test]
async fn slow_second_head_on_a_keep_alive_connection_is_closed_after_header_timeout() {
    let s = TestServer::start_with(|st| {
        st.header_timeout = SEC;
        st.idle_timeout = 30 * SEC;
    });
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.write_all(b"GET /heal").await.unwrap();
    let took = closed_within(&mut c, 5 * SEC).await;
    assert!(took >= Duration::from_millis(800), "closed too early: {took:?}");
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame: (type, flags, stream, payload); `None` once the server has closed.
async fn h2_read(c: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    c.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

#[tokio::test]
async fn http2_connection_is_pinged_and_shut_down_when_idle() {
    let s = TestServer::start_with(|st| {
        st.header_timeout = SEC;
        st.idle_timeout = 3 * SEC;
        st.http2_keepalive_interval = Some(Duration::from_millis(400));
    });
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    // GET /healthz, HPACK without Huffman: :method GET (2), :scheme http (6), then :path and
    // :authority as literals with indexed names (4, 1), not indexed.
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    c.write_all(H2_PREFACE).await.unwrap();
    c.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
    c.write_all(&h2_frame(1, 0x5, 1, &block)).await.unwrap();
    let t = Instant::now();
    let (mut answered, mut pings, mut goaway, mut answered_at) = (false, 0, false, t);
    let closed_at = loop {
        let Ok(frame) = tokio::time::timeout(10 * SEC, h2_read(&mut c)).await else {
            panic!("no frame or close within 10 s (answered {answered}, pings {pings}, goaway {goaway})");
        };
        let Some((ty, flags, stream, payload)) = frame else { break t.elapsed() };
        match ty {
            // SETTINGS from the server: acknowledge.
            4 if flags & 1 == 0 => c.write_all(&h2_frame(4, 1, 0, &[])).await.unwrap(),
            // HEADERS or DATA of our stream with END_STREAM: the response is complete.
            0 | 1 if stream == 1 && flags & 1 == 1 => {
                answered = true;
                answered_at = Instant::now();
            }
            // PING: answer, as a live client does.
            6 if flags & 1 == 0 => {
                pings += 1;
                c.write_all(&h2_frame(6, 1, 0, &payload)).await.unwrap();
            }
            7 => goaway = true,
            _ => {}
        }
        assert!(t.elapsed() < 15 * SEC, "bounded");
    };
    assert!(answered, "the request was answered");
    assert!(pings >= 2, "keep-alive pings every 400 ms while idle, saw {pings}");
    assert!(goaway, "a graceful shutdown sends GOAWAY");
    let idle = closed_at.saturating_sub(answered_at.duration_since(t));
    assert!(idle >= Duration::from_millis(2500) && idle < 8 * SEC, "closed after {idle:?} idle");
    assert!(metric(&s, "stowage_connections_expired_total{reason=\"idle\"}").await >= 1.0);
}

/// Holds `n` working connections, then checks that one more is closed at once, the `n` still work,
/// and a place freed is taken again.
async fn check_cap(s: &TestServer, n: usize) {
    wait_for_quiet(s).await;
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
        held.push(c);
    }
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let took = closed_within(&mut extra, 2 * SEC).await;
    assert!(took < SEC, "the connection over the cap was closed at once, not after {took:?}");
    for c in &mut held {
        assert_eq!(get_on(c, "/healthz").await.status, 200, "connections under the cap keep working");
    }
    drop(held.pop());
    let t = Instant::now();
    loop {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(2 * SEC, c.read_to_end(&mut buf)).await;
        if buf.starts_with(b"HTTP/1.1 200") {
            // The connection over the cap, plus any attempt here made before the server saw the
            // dropped connection close.
            let text = String::from_utf8_lossy(&buf);
            let refused: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("stowage_connections_refused_total "))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{text}"));
            assert!(refused >= 1, "{text}");
            break;
        }
        assert!(t.elapsed() < 5 * SEC, "a freed place is taken again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_closed_at_once() {
    let s = TestServer::start_with(|st| st.max_connections_per_ip = 8);
    check_cap(&s, 8).await;
}

#[tokio::test]
async fn connections_over_the_overall_cap_are_closed_at_once() {
    let s = TestServer::start_with(|st| st.max_connections = 5);
    check_cap(&s, 5).await;
}

/// Sends `head`, then trickles `body` a byte every 100 ms (never idle long enough for
/// `body_idle_timeout`) from a task of its own, which stops when the server stops taking bytes.
/// Returns the response, how long after the head it came, and the reading half.
async fn trickle(s: &TestServer, head: String, body: Vec<u8>) -> (Resp, Duration, OwnedReadHalf) {
    let c = TcpStream::connect(s.addr).await.unwrap();
    let (mut r, mut w) = c.into_split();
    w.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    tokio::spawn(async move {
        for b in body {
            if w.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let resp = read_response(&mut r, 10 * SEC).await;
    (resp, t.elapsed(), r)
}

#[tokio::test]
async fn rest_and_token_bodies_sent_too_slowly_get_408_and_the_connection_is_closed() {
    let s = TestServer::start_with(|st| {
        st.small_body_timeout = SEC;
        // Otherwise a 64 KiB body limit at the minimum upload rate would allow 4 s.
        st.upload_min_rate = 0;
    });
    // REST: a project body trickled past the deadline.
    let body = br#"{"name":"slowpoke-project-with-a-long-name"}"#.to_vec();
    let head = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        basic_admin(),
        body.len()
    );
    let (r, took, mut c) = trickle(&s, head, body).await;
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    assert!(took >= Duration::from_millis(800) && took < 4 * SEC, "answered after {took:?}");
    // The rest of the body was never read, so the connection cannot carry another request.
    closed_within(&mut c, 2 * SEC).await;
    let projects = client().get(format!("{}/api/v1/projects", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(!projects.contains("slowpoke"), "{projects}");

    // Token endpoint (OAuth2 form POST), before any credential is known.
    let body = b"grant_type=password&username=admin&password=whatever&service=stowage".to_vec();
    let head = format!(
        "POST /v2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let (r, took, mut c) = trickle(&s, head, body).await;
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    let message = r.json()["errors"][0]["message"].as_str().unwrap().to_string();
    assert!(message.contains("did not arrive within 1 s"), "{message}");
    assert!(took >= Duration::from_millis(800) && took < 4 * SEC, "answered after {took:?}");
    closed_within(&mut c, 2 * SEC).await;
}

fn test_blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn trickled_upload_is_ended_and_resumes_from_the_reported_offset() {
    let s = TestServer::start_with(|st| {
        st.upload_min_rate = 16 << 10;
        st.upload_min_rate_period = SEC;
    });
    let data = test_blob(256 << 10);
    let r = client().post(s.v2("syn1/slow/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    // A streamed PATCH: 8 KiB at once, then 64 bytes every 100 ms (640 B/s, far below 16 KiB/s).
    let c = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        basic_admin(),
        data.len()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    wr.write_all(&data[..8192]).await.unwrap();
    let t = Instant::now();
    let trickled = data[8192..8192 + 64 * 100].to_vec();
    tokio::spawn(async move {
        for piece in trickled.chunks(64) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(piece).await.is_err() {
                break;
            }
        }
    });
    let r = read_response(&mut rd, 10 * SEC).await;
    let took = t.elapsed();
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errors"][0]["code"], "BLOB_UPLOAD_INVALID");
    assert!(took >= Duration::from_millis(800) && took < 5 * SEC, "ended after {took:?}");
    let range = r.header("range").expect("a Range header");
    let offset: usize = range.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert!(offset >= 8192, "the bytes that arrived are kept: offset {offset}");
    assert!(offset < 8192 + 64 * 100, "offset {offset}");
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.header("docker-upload-uuid"), location.rsplit('/').next());
    let message = r.json()["errors"][0]["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("resume from offset {offset}")), "{message}");
    // The upload's status reports the same offset ...
    let r = client().get(format!("{}{location}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"].to_str().unwrap(), format!("0-{}", offset - 1));
    // ... and a PATCH from there plus the PUT complete the blob.
    let r = client()
        .patch(format!("{}{location}", s.url))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{offset}-{}", data.len() - 1))
        .body(data[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let digest = sha256(&data);
    let r = client().put(format!("{}{location}?digest={digest}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let got = client().get(s.v2(&format!("syn1/slow/blobs/{digest}"))).send().await.unwrap().bytes().await.unwrap();
    assert!(got[..] == data[..], "the resumed blob has the uploaded bytes");
}

#[tokio::test]
async fn steady_upload_above_the_minimum_rate_is_not_ended() {
    let s = TestServer::start_with(|st| {
        st.upload_min_rate = 16 << 10;
        st.upload_min_rate_period = Duration::from_millis(500);
    });
    // 32 KiB every 100 ms (320 KiB/s) for 1.6 s: three rate periods pass, each well above 16 KiB/s.
    let data = test_blob(16 * (32 << 10));
    let digest = sha256(&data);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v2/syn1/steady/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        basic_admin(),
        data.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    for piece in data.chunks(32 << 10) {
        c.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = read_response(&mut c, 10 * SEC).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// GET a blob through the token flow: a token for `repository:<name>:pull` from `/v2/token`
/// with the admin's Basic credentials, then the blob with it. Returns the bytes.
async fn pull_with_token(s: &TestServer, http: &reqwest::Client, name: &str, digest: &str) -> bytes::Bytes {
    let r = http
        .get(format!("{}/v2/token?service=stowage&scope=repository:{name}:pull", s.url))
        .header("authorization", basic_admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let token = v["token"].as_str().unwrap();
    let r = http
        .get(s.v2(&format!("{name}/blobs/{digest}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Each kind of flood connection, and how many of it.
const FLOOD_SILENT: usize = 300;
const FLOOD_HALF_PREFACE: usize = 300;
const FLOOD_KEEP_ALIVE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_idle_and_half_open_connections_is_shed_while_pulls_work() {
    // The client and the server share this process: room for both ends of every connection.
    let _ = stowage::process::raise_fd_limit();
    let s = TestServer::start_with(|st| {
        st.header_timeout = 2 * SEC;
        st.idle_timeout = 3 * SEC;
        st.max_connections = 4096;
        st.max_connections_per_ip = 2048;
    });
    let layer = test_blob(1 << 20);
    let digest = push_blob(&s, "syn1/flood", &layer).await;
    let http = anonymous();
    let mut quiet = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        assert!(pull_with_token(&s, &http, "syn1/flood", &digest).await[..] == layer[..]);
        quiet.push(t.elapsed());
    }

    // The flood: connections that send nothing, half an HTTP/2 preface, or one request and then
    // stay idle. Each task reports how long the server took to close it.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..FLOOD_SILENT + FLOOD_HALF_PREFACE + FLOOD_KEEP_ALIVE {
        let addr = s.addr;
        tasks.spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let kind = if i < FLOOD_SILENT {
                "silent"
            } else if i < FLOOD_SILENT + FLOOD_HALF_PREFACE {
                c.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
                "half_preface"
            } else {
                assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
                "keep_alive"
            };
            let t = Instant::now();
            let mut buf = [0u8; 64];
            loop {
                match tokio::time::timeout(15 * SEC - t.elapsed().min(15 * SEC), c.read(&mut buf)).await {
                    Err(_) => return (kind, None),
                    Ok(Ok(0)) | Ok(Err(_)) => return (kind, Some(t.elapsed())),
                    Ok(Ok(_)) => {}
                }
            }
        });
    }
    // Pull for as long as the silent and half-open connections are held (header_timeout).
    let mut flood = Vec::new();
    while flood.len() < 20 || (started.elapsed() < 2 * SEC && flood.len() < 2000) {
        let t = Instant::now();
        assert!(pull_with_token(&s, &http, "syn1/flood", &digest).await[..] == layer[..]);
        flood.push(t.elapsed());
    }
    let mut closed: std::collections::HashMap<&str, Vec<Duration>> = Default::default();
    let mut open_after_15s: std::collections::HashMap<&str, usize> = Default::default();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (kind, Some(took)) => closed.entry(kind).or_default().push(took),
            (kind, None) => *open_after_15s.entry(kind).or_default() += 1,
        }
    }
    assert!(open_after_15s.is_empty(), "still open after 15 s: {open_after_15s:?}");
    let all_closed = started.elapsed();
    let max = |k: &str| closed[k].iter().max().copied().unwrap();
    eprintln!(
        "flood: pull median quiet {:?} (max {:?}), during the flood {:?} (max {:?}, {} pulls); \
         closed: silent max {:?} (header_timeout 2 s), half preface max {:?}, keep-alive idle max {:?} \
         (idle_timeout 3 s); all {} closed {:?} after the flood began",
        median(quiet.clone()),
        quiet.iter().max().unwrap(),
        median(flood.clone()),
        flood.iter().max().unwrap(),
        flood.len(),
        max("silent"),
        max("half_preface"),
        max("keep_alive"),
        FLOOD_SILENT + FLOOD_HALF_PREFACE + FLOOD_KEEP_ALIVE,
        all_closed,
    );
    assert_eq!(closed["silent"].len(), FLOOD_SILENT);
    assert_eq!(closed["half_preface"].len(), FLOOD_HALF_PREFACE);
    assert_eq!(closed["keep_alive"].len(), FLOOD_KEEP_ALIVE);
    // Generous bounds: the timeouts plus scheduling on a shared, loaded machine.
    for k in ["silent", "half_preface"] {
        assert!(max(k) < 7 * SEC, "{k}: closed after {:?}", max(k));
        assert!(closed[k].iter().min().unwrap() >= &Duration::from_millis(1500), "{k} closed before header_timeout");
    }
    assert!(max("keep_alive") < 8 * SEC, "keep-alive: closed after {:?}", max("keep_alive"));
    assert!(*flood.iter().max().unwrap() < 5 * SEC, "pulls kept working during the flood");
    let t = Instant::now();
    while metric(&s, "stowage_connections_open").await > 2.0 {
        assert!(t.elapsed() < 5 * SEC, "the server let go of every flood connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_slow_download_finish_whole_past_header_timeout() {
    let s = TestServer::start_with(|st| st.header_timeout = SEC);
    // Bigger than loopback's socket buffers, so part of it waits in the server's own buffers.
    let blob = test_blob(24 << 20);
    let digest = push_blob(&s, "syn1/big", &blob).await;
    let mut r = client().get(s.v2(&format!("syn1/big/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Shut down while the body is still on its way, and read it slowly, for longer than
    // header_timeout: the end of the response must not be cut when the request stops being in
    // flight.
    let t = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || drop(s.stop()));
    let mut got = Vec::with_capacity(blob.len());
    while let Some(chunk) = tokio::time::timeout(10 * SEC, r.chunk()).await.unwrap().unwrap() {
        got.extend_from_slice(&chunk);
        // About 12 MB/s: the 24 MiB take two seconds.
        tokio::time::sleep(Duration::from_micros(chunk.len() as u64 / 12)).await;
    }
    assert!(t.elapsed() > SEC, "the download outlasted header_timeout ({:?})", t.elapsed());
    assert_eq!(got.len(), blob.len());
    assert!(got == blob);
    stopped.await.unwrap();
}
