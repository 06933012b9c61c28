//! Behind a reverse proxy: the token realm follows `server.public_url` when set, and the
//! forwarded protocol and host only when the request comes from a trusted proxy; a client that
//! sends the same headers directly (spoofing) changes nothing.

use crate::common::*;
use crate::spec::header;

async fn realm(s: &TestServer, headers: &[(&str, &str)]) -> String {
    let mut req = anonymous().get(s.v2(""));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 401);
    header(&r, "www-authenticate").to_string()
}

const FORWARDED: [(&str, &str); 2] = [("x-forwarded-proto", "https"), ("x-forwarded-host", "registry.example.org")];

#[tokio::test]
async fn forwarded_headers_are_believed_from_a_trusted_proxy() {
    let s = TestServer::start_with(|st| st.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]);
    assert_eq!(
        realm(&s, &FORWARDED).await,
        r#"Bearer realm="https://registry.example.org/v2/token",service="stowage""#
    );
    let fwd = [("forwarded", "for=192.0.2.60;proto=https;host=reg.example.net:8443")];
    assert_eq!(realm(&s, &fwd).await, r#"Bearer realm="https://reg.example.net:8443/v2/token",service="stowage""#);
    // Without forwarded headers, the request's own Host and scheme.
    assert_eq!(realm(&s, &[]).await, format!(r#"Bearer realm="{}/v2/token",service="stowage""#, s.url));
}

#[tokio::test]
async fn forwarded_headers_from_anyone_else_are_ignored() {
    // Only 10.0.0.0/8 is trusted; the test client comes from 127.0.0.1.
    let s = TestServer::start_with(|st| st.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]);
    let own = format!(r#"Bearer realm="{}/v2/token",service="stowage""#, s.url);
    assert_eq!(realm(&s, &FORWARDED).await, own);
    assert_eq!(realm(&s, &[("forwarded", "proto=https;host=evil.example")]).await, own);
    // And with no proxy trusted at all (the default).
    let s = TestServer::start();
    assert_eq!(realm(&s, &FORWARDED).await, format!(r#"Bearer realm="{}/v2/token",service="stowage""#, s.url));
}

#[tokio::test]
async fn a_configured_public_url_wins() {
    let s = TestServer::start_with(|st| {
        st.public_url = Some("https://registry.example.org".into());
        st.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    let want = r#"Bearer realm="https://registry.example.org/v2/token",service="stowage""#;
    assert_eq!(realm(&s, &[]).await, want);
    assert_eq!(realm(&s, &[("x-forwarded-host", "other.example")]).await, want);
}
