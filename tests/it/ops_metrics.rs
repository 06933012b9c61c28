//! `/metrics` after real traffic: request duration histograms by endpoint kind and status
//! class, bytes in and out, tokens, failed logins, GC, open uploads and index size; request ids
//! echoed in `X-Request-Id`; and every metric the Grafana dashboard queries exists.

use crate::common::*;
use crate::spec::header;

async fn metrics(s: &TestServer) -> String {
    let r = anonymous().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the sample line `series` (name and labels exactly).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Traffic that touches every metric: a push, a pull, a token, a failed login, an open upload,
/// a GC run.
pub async fn exercise(s: &TestServer) {
    push_image(s, "syn1/metrics", "v1", b"layer for metrics").await;
    let r = client().get(s.v2("syn1/metrics/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(format!("{}/v2/token?service=stowage&scope=repository:syn1/metrics:pull", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client_as("admin", "wrong-password").get(s.v2("")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client().post(s.v2("syn1/metrics/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client().post(format!("{}/api/v1/gc", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_follow_the_traffic() {
    let s = TestServer::start();
    let before = metrics(&s).await;
    assert_eq!(value(&before, "stowage_tokens_issued_total"), 0.0);
    exercise(&s).await;
    let m = metrics(&s).await;
    assert!(m.contains("# TYPE stowage_http_request_duration_seconds histogram\n"), "{m}");
    assert_eq!(value(&m, r#"stowage_http_request_duration_seconds_count{endpoint="manifest_get",class="2xx"}"#), 1.0);
    assert_eq!(value(&m, r#"stowage_http_request_duration_seconds_count{endpoint="manifest_put",class="2xx"}"#), 1.0);
    assert_eq!(value(&m, r#"stowage_http_request_duration_seconds_count{endpoint="token",class="2xx"}"#), 1.0);
    assert_eq!(value(&m, r#"stowage_http_request_duration_seconds_count{endpoint="base",class="4xx"}"#), 1.0);
    assert_eq!(
        value(&m, r#"stowage_http_request_duration_seconds_count{endpoint="api",class="2xx"}"#),
        value(&m, r#"stowage_http_request_duration_seconds_bucket{endpoint="api",class="2xx",le="+Inf"}"#)
    );
    assert_eq!(value(&m, "stowage_tokens_issued_total"), 1.0);
    assert_eq!(value(&m, "stowage_login_failures_total"), 1.0);
    assert_eq!(value(&m, "stowage_gc_runs_total"), 1.0);
    assert_eq!(value(&m, "stowage_uploads_in_progress"), 1.0);
    assert!(value(&m, "stowage_index_size_bytes") > 0.0);
    assert!(value(&m, "stowage_http_received_bytes_total") > 17.0, "at least the layer came in");
    assert!(value(&m, "stowage_http_sent_bytes_total") > value(&before, "stowage_http_sent_bytes_total"));
    // The series that existed before keep working.
    assert!(value(&m, r#"stowage_http_responses_total{class="2xx"}"#) >= 5.0);
    // Label values come from a fixed set, never from paths or names.
    assert!(!m.contains("syn1/metrics"), "{m}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let s = TestServer::start();
    let r = anonymous().get(s.v2("")).header("x-request-id", "build-42.step_3").send().await.unwrap();
    assert_eq!(header(&r, "x-request-id"), "build-42.step_3");
    let made = |r: &reqwest::Response| {
        let id = header(r, "x-request-id").to_string();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        id
    };
    let r = anonymous().get(s.v2("")).header("x-request-id", "x".repeat(65)).send().await.unwrap();
    let a = made(&r);
    let r = anonymous().get(format!("{}/api/v1/projects", s.url)).header("x-request-id", "a b").send().await.unwrap();
    let b = made(&r);
    assert_ne!(a, b);
}

#[tokio::test]
async fn every_metric_of_the_grafana_dashboard_exists() {
    let s = TestServer::start();
    exercise(&s).await;
    let m = metrics(&s).await;
    let names: std::collections::HashSet<&str> =
        m.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json")).expect("dashboard JSON");
    let mut queried = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            let used: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("stowage_"))
                .collect();
            assert!(!used.is_empty(), "{expr}");
            for name in used {
                assert!(names.contains(name), "the dashboard queries {name}, which /metrics lacks ({expr})");
                queried += 1;
            }
        }
    }
    assert!(queried >= 12, "the dashboard covers the metrics: {queried}");
}
