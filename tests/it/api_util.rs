//! Helpers shared by the REST API tests (`api_*.rs`).

use crate::common::*;
use serde_json::{json, Value};

/// `http://.../api/v1/<path>`
pub fn api(s: &TestServer, path: &str) -> String {
    format!("{}/api/v1/{}", s.url, path.trim_start_matches('/'))
}

/// Sends a request with an optional JSON body; returns the status and the JSON body (`Null` when
/// empty). Panics when a non-empty body is not JSON.
pub async fn send(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = c.request(m, url);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {url}: body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    send(c, "GET", url, None).await
}

pub async fn post(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    send(c, "POST", url, Some(body)).await
}

pub async fn put(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    send(c, "PUT", url, Some(body)).await
}

pub async fn delete(c: &reqwest::Client, url: &str) -> (u16, Value) {
    send(c, "DELETE", url, None).await
}

/// Creates a user as admin (asserts 201) and returns its record.
pub async fn create_user(s: &TestServer, name: &str, password: &str) -> Value {
    let (st, v) = post(&client(), &api(s, "users"), json!({ "username": name, "password": password })).await;
    assert_eq!(st, 201, "create user {name}: {v}");
    v
}

/// Asserts `v` is exactly `{"error":{"code":<code>,"message":<non-empty string>}}`.
pub fn assert_error(v: &Value, code: &str) {
    let obj = v.as_object().unwrap_or_else(|| panic!("error body is not an object: {v}"));
    assert_eq!(obj.len(), 1, "error body has only `error`: {v}");
    let e = v["error"].as_object().unwrap_or_else(|| panic!("`error` is not an object: {v}"));
    assert_eq!(e.len(), 2, "error has code and message only: {v}");
    assert_eq!(e["code"], code, "error code: {v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error message: {v}");
}

/// The id of managed repository `name` (`syn1/app`), looked up by name.
pub async fn repo_id(s: &TestServer, name: &str) -> String {
    let (st, v) = get(&client(), &api(s, &format!("repositories?name={name}"))).await;
    assert_eq!(st, 200, "repository {name}: {v}");
    v["id"].as_str().expect("id").to_string()
}

/// Sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}
