//! The web portal over plain HTTP: every page is well-formed HTML (html5ever reports no parse
//! error) with one `<h1>` and a label for every field; sign-in sessions and their cookie; CSRF and
//! cross-site refusals; the 404 page that does not tell hidden from missing; tag pagination.

use crate::common::{client, push_image, TestServer, ADMIN_PASSWORD};
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use scraper::{Html, Selector};
use serde_json::json;

/// A browser-like client of the portal: no redirects followed, the session cookie kept by hand.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub html: String,
}

impl Page {
    pub fn doc(&self) -> Html {
        Html::parse_document(&self.html)
    }

    /// The value of the first element matching `css`'s attribute `attr`.
    pub fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let d = self.doc();
        let sel = Selector::parse(css).unwrap();
        let v = d.select(&sel).next()?.value().attr(attr).map(str::to_string);
        v
    }

    pub fn texts(&self, css: &str) -> Vec<String> {
        let d = self.doc();
        let sel = Selector::parse(css).unwrap();
        d.select(&sel).map(|e| e.text().collect::<String>().trim().to_string()).collect()
    }

    pub fn csrf(&self) -> String {
        self.attr("input[name=csrf]", "value").expect("a form with a CSRF token")
    }
}

impl Browser {
    pub fn new(s: &TestServer) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: s.url.clone(), cookie: None }
    }

    pub async fn get(&self, path: &str) -> Page {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, c);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        if status != 303 {
            assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8", "{path}");
            assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
            assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        }
        Page { status, html: r.text().await.unwrap() }
    }

    /// POSTs a form; returns (status, Location, body).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut r = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, c);
        }
        let r = r.send().await.unwrap();
        let loc = r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), loc, r.text().await.unwrap())
    }

    /// Signs in through the form; returns the Set-Cookie of the session.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> String {
        let r = self.http.get(format!("{}/login", self.base)).send().await.unwrap();
        let login_cookie = r.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
        let page = Page { status: 200, html: r.text().await.unwrap() };
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .header(COOKIE, &login_cookie)
            .form(&[("csrf", page.csrf().as_str()), ("username", user), ("password", password), ("next", "/projects")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "sign in as {user}");
        assert_eq!(r.headers()[LOCATION], "/projects");
        let set = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("stowage_session="))
            .expect("a session cookie");
        self.cookie = Some(set.split(';').next().unwrap().to_string());
        set
    }
}

/// Checks a page is well-formed HTML and keeps the accessibility basics: `lang`, a title, exactly
/// one `<h1>`, a label for every visible field, and a name for every button.
pub fn check_page(path: &str, html: &str) {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "{path}: HTML parse errors {:?}\n{html}", doc.errors);
    assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
    let sel = |s: &str| Selector::parse(s).unwrap();
    assert_eq!(doc.select(&sel("html[lang=en]")).count(), 1, "{path}: html lang");
    assert_eq!(doc.select(&sel("title")).count(), 1, "{path}: title");
    assert_eq!(doc.select(&sel("h1")).count(), 1, "{path}: one h1");
    assert_eq!(doc.select(&sel("main#main")).count(), 1, "{path}: main landmark");
    let ids: Vec<&str> = doc.select(&sel("[id]")).filter_map(|e| e.value().attr("id")).collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{path}: ids are unique: {ids:?}");
    for field in doc.select(&sel("input:not([type=hidden]), select, textarea")) {
        let id = field.value().attr("id").unwrap_or_else(|| panic!("{path}: field without id: {:?}", field.value()));
        assert_eq!(doc.select(&sel(&format!("label[for=\"{id}\"]"))).count(), 1, "{path}: label for #{id}");
    }
    for b in doc.select(&sel("button")) {
        let name = b.text().collect::<String>();
        assert!(!name.trim().is_empty() || b.value().attr("aria-label").is_some(), "{path}: a button without a name");
    }
}

async fn api(method: reqwest::Method, s: &TestServer, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = client().request(method, format!("{}/api/v1/{path}", s.url)).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(serde_json::Value::Null)
}

async fn create_user(s: &TestServer, name: &str, pw: &str) {
    api(reqwest::Method::POST, s, "users", json!({ "username": name, "password": pw, "certified": true })).await;
}

#[tokio::test]
async fn every_page_is_well_formed_and_labelled() {
    let s = TestServer::start();
    let (digest, m1) = push_image(&s, "syn1/app", "v1", b"layer one").await;
    push_image(&s, "syn1/app", "v2", b"layer two").await;
    // A multi-platform index over v1, and a signature-like referrer of v1.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": m1.len(),
            "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } }],
    }))
    .unwrap();
    let r = client()
        .put(s.v2("syn1/app/manifests/multi"))
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cfg = crate::common::push_blob(&s, "syn1/app", b"{}").await;
    let mut sig: serde_json::Value =
        serde_json::from_slice(&crate::common::image_manifest((&cfg, 2), &[], Some((&digest, m1.len())))).unwrap();
    sig["artifactType"] = json!("application/vnd.example.signature");
    let r = client()
        .put(s.v2("syn1/app/manifests/sig"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&sig).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    api(reqwest::Method::POST, &s, "teams", json!({ "name": "builders" })).await;
    let ext = api(
        reqwest::Method::POST,
        &s,
        "projects/syn1/external-repositories",
        json!({ "repository_name": "quay.io/org/tool" }),
    )
    .await;
    let ext = ext["id"].as_str().unwrap().to_string();
    api(reqwest::Method::POST, &s, &format!("repositories/{ext}/commits"), json!({ "tag": "1.0", "digest": digest }))
        .await;
    let trashed = api(reqwest::Method::POST, &s, "projects", json!({ "name": "old" })).await;
    let trashed = trashed["id"].as_str().unwrap().to_string();
    api(reqwest::Method::DELETE, &s, &format!("entities/{trashed}"), json!(null)).await;

    let mut b = Browser::new(&s);
    let anonymous = ["/login", "/logout", "/projects", "/nothing-here", "/syn1", "/syn1/app", "/trash"];
    for path in anonymous {
        let p = b.get(path).await;
        check_page(path, &p.html);
    }
    b.sign_in("admin", ADMIN_PASSWORD).await;
    let repo = api(reqwest::Method::GET, &s, "repositories?name=syn1/app", json!(null)).await;
    let repo_id = repo["id"].as_str().unwrap().to_string();
    let pages = [
        "/projects".to_string(),
        "/syn1".to_string(),
        "/syn1/-/sharing".to_string(),
        "/syn1/app".to_string(),
        "/syn1/app?sort=pushed&order=desc".to_string(),
        "/syn1/app?limit=1".to_string(),
        "/syn1/app/-/tags/v1".to_string(),
        format!("/{repo_id}/-/sharing"),
        format!("/{ext}"),
        format!("/{ext}/-/sharing"),
        "/trash".to_string(),
        "/tokens".to_string(),
        "/teams".to_string(),
        "/admin/users".to_string(),
        "/audit".to_string(),
        "/logout".to_string(),
        "/syn999".to_string(),
        "/syn1/app?sort=size".to_string(),
    ];
    for path in &pages {
        let p = b.get(path).await;
        check_page(path, &p.html);
        let expect = match path.as_str() {
            "/syn999" => 404,
            "/syn1/app?sort=size" => 400,
            _ => 200,
        };
        assert_eq!(p.status, expect, "{path}");
    }
    // A managed repository's id leads to its page by name.
    let p = b.get(&format!("/{repo_id}")).await;
    assert_eq!(p.status, 303);
    // The repository page shows each tag's current digest, full on hover and for copying.
    let p = b.get("/syn1/app").await;
    assert_eq!(p.texts("tbody tr td:first-child a"), ["multi", "sig", "v1", "v2"]);
    // The index's row names its platforms; v1's row shows the referrer.
    let rows = p.texts("tbody tr");
    assert!(rows[0].contains("OCI index") && rows[0].contains("linux/arm64/v8"), "{}", rows[0]);
    assert!(rows[2].contains("1 referrer") && rows[2].contains("application/vnd.example.signature"), "{}", rows[2]);
    assert!(rows[3].contains("none"), "{}", rows[3]);
    let p = b.get("/syn1/app?after=sig").await;
    assert_eq!(p.attr("code[data-digest]", "data-digest").unwrap(), digest);
    assert_eq!(p.attr("code[data-digest]", "title").unwrap(), digest);
    assert!(p.html.contains(&format!("docker pull {}/syn1/app@{digest}", s.host)), "pull by digest");
    assert!(p.html.contains(&format!("docker pull {}/syn1/app:v1", s.host)), "pull by tag");
    let p = b.get("/syn1/app?limit=1&after=sig").await;
    assert_eq!(p.texts("tbody tr td:first-child a"), ["v1"]);
    assert_eq!(p.attr("a[rel=next]", "href").unwrap(), "/syn1/app?sort=tag&order=asc&after=v1&limit=1");
    let p = b.get("/syn1/app?sort=tag&order=asc&after=v1&limit=1").await;
    assert_eq!(p.texts("tbody tr td:first-child a"), ["v2"]);
    assert_eq!(p.attr("a[rel=next]", "href"), None);
    // Newest push first, by offset.
    let p = b.get("/syn1/app?sort=pushed&order=desc&limit=3").await;
    assert_eq!(p.texts("tbody tr td:first-child a").len(), 3);
    assert_eq!(p.attr("a[rel=next]", "href").unwrap(), "/syn1/app?sort=pushed&order=desc&offset=3&limit=3");
    assert_eq!(
        b.get("/syn1/app?sort=pushed&order=desc&offset=3&limit=3").await.texts("tbody tr td:first-child a").len(),
        1
    );
    // The trash lists the trashed project; the stylesheet and script are served.
    assert!(b.get("/trash").await.html.contains(&trashed));
    let css = reqwest::get(format!("{}/-/style.css", s.url)).await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = reqwest::get(format!("{}/-/portal.js", s.url)).await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn sign_in_makes_a_session_that_ends_at_sign_out_and_password_change() {
    let s = TestServer::start();
    create_user(&s, "alice", "alice-password-1").await;
    let mut b = Browser::new(&s);
    // Wrong password: the sign-in page again, 401, no session.
    let r = b.http.get(format!("{}/login", s.url)).send().await.unwrap();
    let login_cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(login_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{login_cookie}");
    let csrf = Page { status: 200, html: r.text().await.unwrap() }.csrf();
    let r = b
        .http
        .post(format!("{}/login", s.url))
        .header(COOKIE, login_cookie.split(';').next().unwrap())
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get_all(SET_COOKIE).iter().all(|c| !c.to_str().unwrap().starts_with("stowage_session=")));
    assert!(r.text().await.unwrap().contains("incorrect user name or password"));
    // Failed sign-ins are slowed like every failed login (100 ms per recent failure).
    let started = std::time::Instant::now();
    let r = b
        .http
        .post(format!("{}/login", s.url))
        .header(COOKIE, login_cookie.split(';').next().unwrap())
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200), "second failure waits 200 ms");
    // A sign-in form without its CSRF cookie is refused.
    let (st, _, _) =
        b.post("/login", &[("csrf", csrf.as_str()), ("username", "alice"), ("password", "alice-password-1")]).await;
    assert_eq!(st, 403);

    let set = b.sign_in("alice", "alice-password-1").await;
    assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
    let p = b.get("/projects").await;
    assert!(p.html.contains("Signed in as <strong>alice</strong>"), "{}", p.html);
    // The session works for the REST API too (reads; changes need the CSRF header).
    let cookie = b.cookie.clone().unwrap();
    let r = b.http.get(format!("{}/api/v1/tokens", s.url)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = b
        .http
        .post(format!("{}/api/v1/projects", s.url))
        .header(COOKIE, &cookie)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let csrf = p.csrf();
    let r = b
        .http
        .post(format!("{}/api/v1/projects", s.url))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "by-cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Sign out ends the session on the server: the old cookie is worth nothing.
    let (st, loc, _) = b.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!((st, loc.as_str()), (303, "/login"));
    let p = b.get("/tokens").await;
    assert_eq!(p.status, 401);
    assert!(p.html.contains("/login?next=/tokens"));

    // A password change ends every session of the user.
    b.sign_in("alice", "alice-password-1").await;
    assert_eq!(b.get("/tokens").await.status, 200);
    api(reqwest::Method::PUT, &s, "users/alice/password", json!({ "new_password": "alice-password-2" })).await;
    assert_eq!(b.get("/tokens").await.status, 401);
    // Access tokens are not passwords for the portal.
    let mut b2 = Browser::new(&s);
    let r = b2.http.get(format!("{}/login", s.url)).send().await.unwrap();
    let c = r.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = Page { status: 200, html: r.text().await.unwrap() }.csrf();
    b2.cookie = Some(c);
    let tok = format!("stw_{}_{}", "a".repeat(32), "b".repeat(20));
    let (st, _, body) =
        b2.post("/login", &[("csrf", csrf.as_str()), ("username", "alice"), ("password", tok.as_str())]).await;
    assert_eq!(st, 401);
    assert!(body.contains("sign in with your password"));
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_site_are_refused() {
    let s = TestServer::start();
    let mut b = Browser::new(&s);
    b.sign_in("admin", ADMIN_PASSWORD).await;
    let csrf = b.get("/projects").await.csrf();
    let count = || async {
        let v = api(reqwest::Method::GET, &s, "projects", json!(null)).await;
        v["projects"].as_array().unwrap().len()
    };
    let before = count().await;
    // No token, a wrong token: 403, nothing created.
    let (st, _, body) = b.post("/projects", &[("name", "no-token")]).await;
    assert_eq!(st, 403);
    assert!(body.contains("did not come from this site"), "{body}");
    let (st, _, _) = b.post("/projects", &[("name", "bad-token"), ("csrf", "x")]).await;
    assert_eq!(st, 403);
    // The right token but from another site's page.
    let r = b
        .http
        .post(format!("{}/projects", s.url))
        .header(COOKIE, b.cookie.clone().unwrap())
        .header(ORIGIN, "http://evil.example")
        .form(&[("name", "cross-site"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("sent from another site"));
    // Without Origin, the Referer says where the form came from.
    let r = b
        .http
        .post(format!("{}/projects", s.url))
        .header(COOKIE, b.cookie.clone().unwrap())
        .header(reqwest::header::REFERER, "http://evil.example/page")
        .form(&[("name", "cross-site-referer"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // No cookie (what SameSite=Lax makes of a cross-site POST): refused, asked to sign in.
    let anon = Browser::new(&s);
    let (st, _, body) = anon.post("/projects", &[("name", "anon"), ("csrf", csrf.as_str())]).await;
    assert_eq!(st, 403);
    assert!(body.contains("not signed in"), "{body}");
    assert_eq!(count().await, before, "nothing was created");
    // The same form from this site works.
    let r = b
        .http
        .post(format!("{}/projects", s.url))
        .header(COOKIE, b.cookie.clone().unwrap())
        .header(ORIGIN, &s.url)
        .form(&[("name", "same-site"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(count().await, before + 1);
    // Destructive forms need their confirmation box, checked on the server.
    let loc = r.headers()[LOCATION].to_str().unwrap().to_string();
    let (st, _, body) = b.post(&format!("{loc}/-/trash"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(st, 400);
    assert!(body.contains("tick the confirmation box"));
    let (st, to, _) = b.post(&format!("{loc}/-/trash"), &[("csrf", csrf.as_str()), ("confirm", "yes")]).await;
    assert_eq!((st, to.as_str()), (303, "/trash"));
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn hidden_and_missing_entities_get_the_same_page() {
    let s = TestServer::start();
    push_image(&s, "syn1/app", "v1", b"hidden").await;
    create_user(&s, "bob", "bob-password-1").await;
    let mut b = Browser::new(&s);
    b.sign_in("bob", "bob-password-1").await;
    let repo = api(reqwest::Method::GET, &s, "repositories?name=syn1/app", json!(null)).await;
    let id = repo["id"].as_str().unwrap();
    let pairs = [("/syn1", "/syn998"), ("/syn1/app", "/syn1/nothing"), (&format!("/{id}") as &str, "/syn997")];
    for (hidden, missing) in pairs {
        let (h, m) = (b.get(hidden).await, b.get(missing).await);
        assert_eq!((h.status, m.status), (404, 404), "{hidden} {missing}");
        let strip = |p: &Page, path: &str| p.texts("p.error")[0].replace(path.trim_start_matches('/'), "X");
        assert_eq!(strip(&h, hidden), strip(&m, missing));
        assert!(h.texts("p.error")[0].contains("does not exist or you may not see it"), "{}", h.html);
    }
    // Sharing settings of a hidden project: the same answer, and a change is refused.
    assert_eq!(b.get("/syn1/-/sharing").await.status, 404);
    let csrf = b.get("/projects").await.csrf();
    let (st, _, _) =
        b.post("/syn1/-/sharing", &[("csrf", csrf.as_str()), ("principal", "user:bob"), ("level", "admin")]).await;
    assert_eq!(st, 404);
    // Shared with bob for download: he sees it but may not change its sharing settings.
    api(
        reqwest::Method::PUT,
        &s,
        "entities/syn1/acl",
        json!({ "entries": [{ "principal": "user:admin", "access": ["admin"] }, { "principal": "user:bob", "access": ["download"] }] }),
    )
    .await;
    let p = b.get("/syn1/-/sharing").await;
    assert_eq!(p.status, 200);
    assert!(p.html.contains("You may not change these settings"));
    let (st, _, _) =
        b.post("/syn1/-/sharing", &[("csrf", csrf.as_str()), ("principal", "user:bob"), ("level", "admin")]).await;
    assert_eq!(st, 403);
    let v = api(reqwest::Method::GET, &s, "entities/syn1/acl", json!(null)).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 2, "unchanged: {v}");
}

#[test]
fn the_page_check_catches_broken_html_and_missing_labels() {
    let ok = r#"<!DOCTYPE html><html lang="en"><head><title>t</title></head><body><main id="main"><h1>x</h1><label for="a">A</label><input id="a"></main></body></html>"#;
    check_page("ok", ok);
    let broken = [
        ok.replace("</main>", "</div></main>"),
        ok.replace("<label for=\"a\">A</label>", ""),
        ok.replace("<h1>x</h1>", "<h1>x</h1><h1>y</h1>"),
        ok.replace(" lang=\"en\"", ""),
        ok.replace(
            "<label for=\"a\">A</label><input id=\"a\">",
            "<label for=\"a\">A</label><input id=\"a\"><p id=\"a\">",
        ),
    ];
    for html in broken {
        assert!(std::panic::catch_unwind(|| check_page("broken", &html)).is_err(), "not caught: {html}");
    }
}

#[tokio::test]
async fn forms_change_users_teams_tokens_and_sharing_through_the_rest_rules() {
    let s = TestServer::start();
    let mut admin = Browser::new(&s);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let csrf = admin.get("/admin/users").await.csrf();
    let c = csrf.as_str();
    // Users: create, certify, disable.
    let (st, to, _) = admin
        .post(
            "/admin/users",
            &[("csrf", c), ("username", "carol"), ("password", "carol-password-1"), ("certified", "yes")],
        )
        .await;
    assert_eq!((st, to.as_str()), (303, "/admin/users"));
    let v = api(reqwest::Method::GET, &s, "users/carol", json!(null)).await;
    assert_eq!((v["certified"].clone(), v["admin"].clone()), (json!(true), json!(false)));
    assert_eq!(admin.post("/admin/users/carol/certified", &[("csrf", c), ("value", "false")]).await.0, 303);
    assert_eq!(api(reqwest::Method::GET, &s, "users/carol", json!(null)).await["certified"], json!(false));
    let (st, _, body) = admin.post("/admin/users/carol/certified", &[("csrf", c), ("value", "maybe")]).await;
    assert_eq!(st, 400);
    assert!(body.contains("must be true or false"));
    let mut carol = Browser::new(&s);
    carol.sign_in("carol", "carol-password-1").await;
    assert_eq!(admin.post("/admin/users/carol/disabled", &[("csrf", c), ("value", "true")]).await.0, 303);
    assert_eq!(carol.get("/tokens").await.status, 401, "disabling ends the session");
    assert_eq!(admin.post("/admin/users/carol/disabled", &[("csrf", c), ("value", "false")]).await.0, 303);
    carol.sign_in("carol", "carol-password-1").await;
    // Not an administrator: the users page and its forms are refused by the REST rules.
    let p = carol.get("/admin/users").await;
    assert_eq!(p.status, 403);
    assert!(p.html.contains("only administrators"), "{}", p.html);
    let cc = carol.get("/projects").await.csrf();
    let (st, _, _) = carol.post("/admin/users/carol/certified", &[("csrf", cc.as_str()), ("value", "true")]).await;
    assert_eq!(st, 403);
    assert_eq!(carol.get("/audit").await.status, 403);

    // Teams: carol creates one, adds and removes admin.
    let (st, _, _) = carol.post("/teams", &[("csrf", cc.as_str()), ("name", "ops")]).await;
    assert_eq!(st, 303);
    let p = carol.get("/teams").await;
    let id = p.texts("h2 .badge")[0].trim_start_matches("team:").to_string();
    let (st, _, _) = carol.post(&format!("/teams/{id}/members"), &[("csrf", cc.as_str()), ("username", "admin")]).await;
    assert_eq!(st, 303);
    let t = api(reqwest::Method::GET, &s, &format!("teams/{id}"), json!(null)).await;
    assert_eq!(t["members"], json!(["admin", "carol"]));
    let (st, _, _) =
        carol.post(&format!("/teams/{id}/members"), &[("csrf", cc.as_str()), ("username", "nobody")]).await;
    assert_eq!(st, 404);
    let (st, _, _) = carol.post(&format!("/teams/{id}/members/admin/remove"), &[("csrf", cc.as_str())]).await;
    assert_eq!(st, 303);
    let t = api(reqwest::Method::GET, &s, &format!("teams/{id}"), json!(null)).await;
    assert_eq!(t["members"], json!(["carol"]));

    // Tokens: the secret once, then only listed; revoke needs the confirmation.
    let p = carol.get("/tokens").await;
    assert!(p.texts("section.secret").is_empty());
    let r = carol
        .post(
            "/tokens",
            &[
                ("csrf", cc.as_str()),
                ("name", "ci"),
                ("scope", "view"),
                ("scope", "download"),
                ("expires_in_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.0, 201);
    let page = Page { status: 201, html: r.2 };
    let token = page.texts("section.secret code")[0].clone();
    assert!(token.starts_with("stw_"));
    assert!(page.html.contains(&format!("echo {token} | docker login {} -u carol --password-stdin", s.host)));
    let p = carol.get("/tokens").await;
    assert!(!p.html.contains(&token), "shown once");
    let action = p.attr("form.confirm", "action").unwrap();
    assert_eq!(carol.post(&action, &[("csrf", cc.as_str())]).await.0, 400);
    assert_eq!(carol.post(&action, &[("csrf", cc.as_str()), ("confirm", "yes")]).await.0, 303);
    assert!(carol.get("/tokens").await.html.contains("revoked"));
    let (st, _, body) = carol.post("/tokens", &[("csrf", cc.as_str()), ("name", "x"), ("expires_in_days", "7")]).await;
    assert_eq!(st, 400);
    assert!(body.contains("at least one scope"), "{body}");

    // Sharing: a repository switches to local settings and back.
    push_image(&s, "syn1/app", "v1", b"local").await;
    let repo = api(reqwest::Method::GET, &s, "repositories?name=syn1/app", json!(null)).await;
    let rid = repo["id"].as_str().unwrap();
    let p = admin.get(&format!("/{rid}/-/sharing")).await;
    assert!(p.html.contains("Inherited from project"));
    assert_eq!(admin.post(&format!("/{rid}/-/sharing/local"), &[("csrf", c)]).await.0, 303);
    assert_eq!(
        api(reqwest::Method::GET, &s, &format!("entities/{rid}/acl"), json!(null)).await["inherited"],
        json!(false)
    );
    let (st, _, _) = admin
        .post(
            &format!("/{rid}/-/sharing"),
            &[
                ("csrf", c),
                ("principal", "user:admin"),
                ("level", "admin"),
                ("principal", "user:carol"),
                ("level", "view"),
            ],
        )
        .await;
    assert_eq!(st, 303);
    let acl = api(reqwest::Method::GET, &s, &format!("entities/{rid}/acl"), json!(null)).await;
    assert_eq!(acl["entries"][1], json!({ "principal": "user:carol", "access": ["READ"] }));
    assert!(carol.get("/syn1/app").await.status == 200, "carol sees the repository now");
    assert_eq!(carol.get("/syn1").await.status, 404, "but not its project");
    assert_eq!(admin.post(&format!("/{rid}/-/sharing/inherit"), &[("csrf", c), ("confirm", "yes")]).await.0, 303);
    assert_eq!(
        api(reqwest::Method::GET, &s, &format!("entities/{rid}/acl"), json!(null)).await["inherited"],
        json!(true)
    );
    assert_eq!(carol.get("/syn1/app").await.status, 404);
}
