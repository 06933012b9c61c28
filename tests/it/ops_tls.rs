//! TLS in-process: certificates from `stowage certs init`'s code, HTTP/2 by ALPN and HTTP/1.1
//! otherwise, an `https` token realm, relative `Location`s that resolve to `https`, the handshake
//! bounded by `header_timeout`, and a changed certificate served to new connections while open
//! ones carry on.

use crate::common::*;
use crate::spec::header;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Makes a CA and server pair for localhost and 127.0.0.1 in `dir`; returns the CA certificate.
pub fn make_certs(dir: &Path) -> reqwest::Certificate {
    stowage::certs::init(dir, &["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap()
}

/// A TLS test server whose certificate (made in `<data dir>/certs`) is signed by the returned CA.
pub fn tls_server(tweak: impl FnOnce(&mut stowage::config::Settings)) -> (TestServer, reqwest::Certificate) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = make_certs(&certs);
    let s = TestServer::start_in(dir, |st| {
        st.tls = Some(stowage::config::TlsFiles { cert: certs.join("server.crt"), key: certs.join("server.key") });
        tweak(st);
    });
    (s, ca)
}

fn https_client(ca: &reqwest::Certificate) -> reqwest::ClientBuilder {
    use base64::Engine as _;
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Basic {cred}").parse().unwrap());
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.clone())
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h)
}

#[tokio::test]
async fn tls_speaks_http2_by_alpn_and_http1_otherwise_with_an_https_realm() {
    let (s, ca) = tls_server(|_| {});
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let h2 = https_client(&ca).build().unwrap();
    let r = h2.get(s.v2("")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let h1 = https_client(&ca).http1_only().build().unwrap();
    let r = h1.get(s.v2("")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_11));
    // The realm names the scheme and the host the client used, by IP address and by name.
    let anon = || reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca.clone());
    let port = s.addr.port();
    // HTTP/2 (`:authority`) by address, HTTP/1.1 (`Host`) by name.
    for (base, c) in [
        (format!("https://127.0.0.1:{port}"), anon().build().unwrap()),
        (format!("https://localhost:{port}"), anon().http1_only().build().unwrap()),
    ] {
        let r = c.get(format!("{base}/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, "www-authenticate"), format!(r#"Bearer realm="{base}/v2/token",service="stowage""#));
    }
    // A client that does not trust the CA gets no answer at all.
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().unwrap();
    let e = untrusting.get(s.v2("")).send().await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    // Plain HTTP to the TLS port is not served.
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&buf));
}

#[tokio::test]
async fn a_push_over_tls_follows_relative_locations_to_https() {
    let (s, ca) = tls_server(|_| {});
    let c = https_client(&ca).build().unwrap();
    let data = b"a layer pushed over TLS".to_vec();
    let digest = sha256(&data);
    let r = c.post(s.v2("syn1/tls/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location").to_string();
    assert!(loc.starts_with("/v2/syn1/tls/blobs/uploads/"), "{loc}");
    // Resolved against the request URL, as clients do: https.
    let upload = reqwest::Url::parse(&s.url).unwrap().join(&loc).unwrap();
    assert_eq!(upload.scheme(), "https");
    let r = c.put(format!("{upload}?digest={digest}")).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/syn1/tls/blobs/{digest}"));
    let r = c.get(s.v2(&format!("syn1/tls/blobs/{digest}"))).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_header_timeout() {
    let (s, ca) = tls_server(|st| st.header_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Half a ClientHello record header, then nothing.
    c.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0, "closed without an answer");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    let m = https_client(&ca).build().unwrap().get(format!("{}/metrics", s.url)).send().await.unwrap();
    let text = m.text().await.unwrap();
    assert!(text.contains("\nstowage_tls_handshake_failures_total 1\n"), "{text}");
    assert!(text.contains("\nstowage_connections_expired_total{reason=\"no_head\"} 1\n"), "{text}");
}

#[tokio::test]
async fn a_changed_certificate_is_served_to_new_connections_and_open_ones_carry_on() {
    let (s, ca1) = tls_server(|st| st.tls_reload_poll = Some(Duration::from_millis(100)));
    let certs = s.dir.path().join("certs");
    // A keep-alive connection made with the first certificate.
    let old = https_client(&ca1).http1_only().pool_max_idle_per_host(1).build().unwrap();
    assert_eq!(old.get(s.v2("")).send().await.unwrap().status(), 200);
    // A new CA and pair, moved over the served files (as certbot and friends do).
    let next = tempfile::tempdir().unwrap();
    let ca2 = make_certs(next.path());
    // A key that does not match the certificate first: refused, the old pair stays in use.
    std::fs::copy(next.path().join("server.crt"), certs.join("server.crt.new")).unwrap();
    std::fs::rename(certs.join("server.crt.new"), certs.join("server.crt")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh1 = https_client(&ca1).build().unwrap();
    assert_eq!(fresh1.get(s.v2("")).send().await.unwrap().status(), 200, "a mismatched pair is not loaded");
    std::fs::copy(next.path().join("server.key"), certs.join("server.key.new")).unwrap();
    std::fs::rename(certs.join("server.key.new"), certs.join("server.key")).unwrap();
    let fresh2 = https_client(&ca2).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fresh2.get(s.v2("")).send().await {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the new certificate was not served within 10 s: {e:?}"),
        }
    }
    // New connections that trust only the old CA are refused now...
    let e = https_client(&ca1).build().unwrap().get(s.v2("")).send().await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    // ...while the connection opened before the swap still serves requests.
    assert_eq!(old.get(s.v2("")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_connection_watchdog_holds_on_tls_connections() {
    use tokio::io::AsyncReadExt;
    let (s, ca) = tls_server(|st| {
        st.header_timeout = Duration::from_secs(1);
        st.max_connections_per_ip = 3;
    });
    let certs = s.dir.path().join("certs");
    let connector = {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(certs.join("ca.crt")).unwrap()).unwrap();
        let cfg =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
    };
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };
    // A completed handshake and then no request head: closed once header_timeout has passed
    // since the connection opened.
    let started = Instant::now();
    let mut quiet = connect().await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), quiet.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    // The per-address cap counts TLS connections: three open, the fourth is closed at once.
    let _a = connect().await;
    let _b = connect().await;
    let _c = connect().await;
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let third = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await.unwrap();
    assert!(third.is_err(), "the fourth connection got a handshake");
    drop((_a, _b, _c));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = https_client(&ca).build().unwrap().get(format!("{}/metrics", s.url)).send().await.unwrap();
    let text = m.text().await.unwrap();
    assert!(text.contains("\nstowage_connections_refused_total 1\n"), "{text}");
    assert!(text.contains("\nstowage_connections_expired_total{reason=\"no_head\"} 1\n"), "{text}");
}

#[test]
fn stowage_admin_talks_https_with_the_ca_it_is_given() {
    let (s, _) = tls_server(|_| {});
    let ca = s.dir.path().join("certs/ca.crt");
    let admin = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["admin", "--url", &s.url, "--user", "admin", "--password", ADMIN_PASSWORD])
            .args(extra)
            .args(["projects", "list"])
            .env_remove("STOWAGE_CA_CERT")
            .output()
            .unwrap()
    };
    let out = admin(&["--ca-cert", ca.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.to_string().contains("syn1"), "{v}");
    let out = admin(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
}
