//! The OpenAPI document at `/api/v1/openapi.json` matches the routes the server serves: every
//! documented operation exists and answers with a documented status (and its documented schema),
//! and every route of the server is documented.

use crate::api_util::*;
use crate::common::*;
use serde_json::{json, Value};

/// Every route the server serves: the route table itself, so a route added there without a
/// documented operation fails `server_routes_are_documented`.
fn routes() -> Vec<(String, String)> {
    stowage::api::routes::ROUTES.iter().map(|r| (r.method.to_ascii_lowercase(), r.path.to_string())).collect()
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options", "trace"];

pub(crate) async fn document(s: &TestServer) -> Value {
    // Served without credentials.
    let r = anonymous().get(api(s, "openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.expect("openapi.json is JSON")
}

/// (method, path) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (m, _) in item.as_object().expect("path item") {
            if METHODS.contains(&m.as_str()) {
                out.push((m.clone(), path.clone()));
            }
        }
    }
    out
}

pub(crate) fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local $ref");
            resolve(doc, doc.pointer(ptr).unwrap_or_else(|| panic!("dangling $ref {r}")))
        }
        None => v,
    }
}

/// A small JSON Schema (OpenAPI 3.0 subset) check: $ref, oneOf, type, nullable, enum, required,
/// properties, additionalProperties: false, items. Returns what does not match.
pub(crate) fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(alts) = schema["oneOf"].as_array() {
        let ok = alts.iter().filter(|a| {
            let mut e = Vec::new();
            check(doc, a, v, at, &mut e);
            e.is_empty()
        });
        if ok.count() == 0 {
            errs.push(format!("{at}: {v} matches no oneOf alternative"));
        }
        return;
    }
    if v.is_null() {
        if schema["nullable"] != true {
            errs.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(en) = schema["enum"].as_array() {
        if !en.contains(v) {
            errs.push(format!("{at}: {v} not in {en:?}"));
        }
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        errs.push(format!("{at}: {v} is not {ty}"));
        return;
    }
    if let Some(o) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().expect("required name");
            if !o.contains_key(r) {
                errs.push(format!("{at}: required {r} missing in {v}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(doc, ps, x, &format!("{at}.{k}"), errs),
                None if schema["additionalProperties"] == false => {
                    errs.push(format!("{at}: property {k} is not documented"))
                }
                None => {}
            }
        }
    }
    if let (Some(a), Some(items)) = (v.as_array(), schema.get("items")) {
        for (i, x) in a.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

/// A minimal valid body for each request schema of the document.
pub(crate) fn sample_body(schema: &str, ctx: &Ctx) -> Value {
    match schema {
        "NewUser" => json!({ "username": "sample-user", "password": "sample-password" }),
        "Certification" => json!({ "certified": true }),
        "NewTeam" => json!({ "name": "sample team" }),
        "NewToken" => json!({ "name": "sample", "scopes": ["view"], "expires_in_days": 1 }),
        "NewProject" => json!({ "name": "sample project" }),
        "NewExternalRepository" => json!({ "repository_name": "docker.io/library/alpine" }),
        "AclInput" => json!({ "entries": [
            { "principal": "user:admin", "access": ["admin"] },
            { "principal": "user:bob", "access": ["view", "DOWNLOAD"] },
            { "principal": format!("team:{}", ctx.team), "access": ["READ"] },
        ]}),
        "NewCommit" => json!({ "tag": "1.0", "digest": sha256(b"sample") }),
        // An administrator sets bob's password (no current password needed).
        "PasswordChange" => json!({ "new_password": "bob-new-password" }),
        "Disabled" => json!({ "disabled": false }),
        "QuotaInput" => json!({ "bytes": 1_000_000_000u64 }),
        // A real backup, into a temp dir the test owns (reruns there are incremental).
        "BackupInput" => json!({ "dest": ctx.backup_dest.path().join("backup") }),
        other => panic!("no sample body for request schema {other}: add one to api_openapi.rs"),
    }
}

/// Ids of things that exist on the test server.
pub(crate) struct Ctx {
    pub(crate) team: String,
    pub(crate) repo: String,
    pub(crate) external: String,
    /// Where sample backups go; removed with the test.
    pub(crate) backup_dest: tempfile::TempDir,
}

/// Replaces the `{..}` placeholders of `path` for `method`, creating what the operation needs.
async fn fill(s: &TestServer, ctx: &Ctx, method: &str, path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if !(seg.starts_with('{') && seg.ends_with('}')) {
            out.push(seg.to_string());
            continue;
        }
        let parent = if i > 0 { segs[i - 1] } else { "" };
        let v = match (parent, *seg) {
            ("users" | "members" | "managers", "{username}") => "bob".to_string(),
            ("teams", "{id}") => ctx.team.clone(),
            ("tokens", "{id}") => {
                let (st, v) = post(&client(), &api(s, "tokens"), json!({ "name": "doomed", "scopes": ["view"] })).await;
                assert_eq!(st, 201, "{v}");
                v["id"].as_str().unwrap().to_string()
            }
            ("projects", "{id}") => "syn1".to_string(),
            ("entities", "{id}") if method == "delete" && segs.len() == 2 => {
                // Trashing: a repository of its own.
                push_image(s, "syn1/to-trash", "v1", b"trash me").await;
                repo_id(s, "syn1/to-trash").await
            }
            ("entities", "{id}") => ctx.repo.clone(),
            ("repositories", "{id}") if method == "post" => ctx.external.clone(),
            ("repositories", "{id}") => ctx.repo.clone(),
            ("trash", "{id}") => {
                let (st, v) = post(
                    &client(),
                    &api(s, "projects/syn1/external-repositories"),
                    json!({ "repository_name": "example.org/trashed/thing" }),
                )
                .await;
                assert_eq!(st, 201, "{v}");
                let id = v["id"].as_str().unwrap().to_string();
                let (st, v) = delete(&client(), &api(s, &format!("entities/{id}"))).await;
                assert_eq!(st, 200, "{v}");
                id
            }
            (p, x) => panic!("no value for placeholder {x} after /{p}/ in {path}: add one to api_openapi.rs"),
        };
        out.push(v);
    }
    let mut url = api(s, &out.join("/"));
    if method == "get" && path == "/api/v1/repositories" {
        url.push_str("?name=syn1/app");
    }
    url
}

#[tokio::test]
async fn server_routes_are_documented() {
    let s = TestServer::start();
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.0.3");
    let ops = operations(&doc);
    let served = routes();
    for (m, p) in &served {
        assert!(
            ops.iter().any(|(a, b)| a == m && b == p),
            "{} {p} is served but not in openapi.json",
            m.to_uppercase()
        );
    }
    for (m, p) in &ops {
        assert!(
            served.iter().any(|(a, b)| a == m && b == p),
            "{} {p} is documented but not in the route table",
            m.to_uppercase()
        );
    }
    assert_eq!(ops.len(), served.len());
    // Each operation states the credential it needs, exactly as the route table has it.
    for r in stowage::api::routes::ROUTES {
        let o = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
        assert_eq!(o["operationId"], r.operation_id, "{} {}", r.method, r.path);
        assert_eq!(o["x-stowage-credential"], r.need.as_str(), "{} {}", r.method, r.path);
        assert_eq!(o["x-stowage-admin"], r.admin, "{} {}", r.method, r.path);
        let d = o["description"].as_str().unwrap_or("");
        assert!(d.contains("Needs") || d.contains("No credential needed"), "{} {}: {d}", r.method, r.path);
    }
    // Every $ref resolves; every path parameter is declared; security schemes exist.
    fn refs(doc: &Value, v: &Value) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    assert!(doc.pointer(r.trim_start_matches('#')).is_some(), "dangling $ref {r}");
                }
                o.values().for_each(|x| refs(doc, x));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(doc, x)),
            _ => {}
        }
    }
    refs(&doc, &doc);
    assert_eq!(doc["components"]["securitySchemes"]["basic"]["scheme"], "basic");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (m, p) in &ops {
        let o = &doc["paths"][p][m];
        let declared: Vec<String> = o["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| resolve(&doc, x))
            .filter(|x| x["in"] == "path")
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        for seg in p.split('/').filter(|x| x.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(declared.iter().any(|d| d == name), "{m} {p}: path parameter {name} not declared");
        }
        assert!(o["operationId"].is_string(), "{m} {p}: operationId");
        let rs = o["responses"].as_object().expect("responses");
        let errors: Vec<&String> = rs.keys().filter(|k| !k.starts_with('2')).collect();
        for k in errors {
            let r = resolve(&doc, &rs[k]);
            assert_eq!(
                resolve(&doc, &r["content"]["application/json"]["schema"]),
                resolve(&doc, &json!({ "$ref": "#/components/schemas/Error" })),
                "{m} {p}: {k} uses the error schema"
            );
        }
    }
}

#[tokio::test]
async fn documented_operations_exist_and_answer_as_documented() {
    let s = TestServer::start();
    let doc = document(&s).await;
    push_image(&s, "syn1/app", "v1", b"layer").await;
    let repo = repo_id(&s, "syn1/app").await;
    create_user(&s, "bob", "bob-password").await;
    let (st, team) = post(&client(), &api(&s, "teams"), json!({ "name": "devs" })).await;
    assert_eq!(st, 201, "{team}");
    let team_id = team["id"].to_string();
    let (st, v) = put(&client(), &api(&s, &format!("teams/{team_id}/members/bob")), json!(null)).await;
    assert_eq!(st, 200, "{v}");
    let (st, ext) = post(
        &client(),
        &api(&s, "projects/syn1/external-repositories"),
        json!({ "repository_name": "docker.io/library/busybox" }),
    )
    .await;
    assert_eq!(st, 201, "{ext}");
    let ctx = Ctx {
        team: team_id,
        repo,
        external: ext["id"].as_str().unwrap().to_string(),
        backup_dest: tempfile::tempdir().unwrap(),
    };

    let mut ops = operations(&doc);
    // Removals after additions: DELETE /teams/{id}/members/bob after PUT, so both succeed.
    ops.sort_by_key(|(m, p)| (m == "delete", p.clone()));
    let mut failures = Vec::new();
    for (m, p) in &ops {
        let o = &doc["paths"][p][m];
        let url = fill(&s, &ctx, m, p).await;
        let body = o["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .map(|r| sample_body(r.rsplit('/').next().unwrap(), &ctx));
        let (st, v) = send(&client(), &m.to_uppercase(), &url, body).await;
        let what = format!("{} {url}", m.to_uppercase());
        if st == 404 && v["error"]["message"].as_str().is_some_and(|x| x.contains("is not an API route")) {
            failures.push(format!("{what}: documented but not served: {v}"));
            continue;
        }
        let rs = o["responses"].as_object().expect("responses");
        let Some(r) = rs.get(&st.to_string()) else {
            failures.push(format!("{what}: status {st} is not documented ({:?}): {v}", rs.keys().collect::<Vec<_>>()));
            continue;
        };
        // The sample requests are valid: each must get the documented success status.
        let ok: Vec<&String> = rs.keys().filter(|k| k.starts_with('2')).collect();
        assert_eq!(ok.len(), 1, "{what}: one success status");
        if st.to_string() != *ok[0] {
            failures.push(format!("{what}: got {st}, want {}: {v}", ok[0]));
            continue;
        }
        let r = resolve(&doc, r);
        match r["content"]["application/json"]["schema"].as_object() {
            Some(_) => {
                let mut errs = Vec::new();
                check(&doc, &r["content"]["application/json"]["schema"], &v, "body", &mut errs);
                failures.extend(errs.into_iter().map(|e| format!("{what}: {e}")));
            }
            None => assert!(v.is_null(), "{what}: {st} has a body but none is documented: {v}"),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn documented_errors_match_the_error_schema() {
    // Anonymous calls to every authenticated operation: 401 with the documented error body.
    let s = TestServer::start();
    let doc = document(&s).await;
    let err_schema = json!({ "$ref": "#/components/schemas/Error" });
    for (m, p) in operations(&doc) {
        if p == "/api/v1/openapi.json" {
            continue;
        }
        let url = api(&s, &p.trim_start_matches("/api/v1/").replace("{id}", "syn1").replace("{username}", "admin"));
        let url = if url.ends_with("teams/syn1") || url.contains("teams/syn1/") {
            url.replace("teams/syn1", "teams/1")
        } else {
            url
        };
        let r =
            client_as("admin", "wrong password").request(m.to_uppercase().parse().unwrap(), &url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{m} {url}");
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stowage\"");
        let v: Value = r.json().await.unwrap();
        let mut errs = Vec::new();
        check(&doc, &err_schema, &v, "body", &mut errs);
        assert!(errs.is_empty(), "{m} {url}: {errs:?}");
        assert!(doc["paths"][&p][&m]["responses"]["401"].is_object(), "{m} {p}: 401 documented");
    }
}
