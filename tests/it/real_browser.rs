//! The web portal in a real browser: Debian's chromium driven through chromedriver (WebDriver,
//! the fantoccini client), with the real Docker CLI beside it. alice signs in, creates a project,
//! pushes with docker and finds exactly the pushed digest on the repository page; shares the
//! project with bob for download in the sharing page (bob's pull then works); moves the
//! repository to the trash (pull refused) and restores it (pull works); creates an access token
//! and logs docker in with it. A POST without the CSRF token and a form posted from another
//! origin are refused. axe-core checks the main pages for WCAG 2 A/AA violations, and the main
//! pages are saved as PNG: under docs/screenshots/ for the README when STOWAGE_SCREENSHOTS=docs
//! (how they are remade), else in a temp dir, so a test run leaves the work tree as it was.

use crate::clients::{self, build_image, pushed_digest, DockerImages, DockerUser};
use crate::common::{TestServer, ADMIN_PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

const ALICE_PW: &str = "alice-browser-pw-1";
const BOB_PW: &str = "bob-browser-pw-1";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, in a process group of its own that is killed (with the
/// browsers it started) on drop; a fresh profile directory.
struct Driver {
    child: std::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group: chromedriver and every chromium process it started.
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn browser() -> (Driver, Client) {
    assert!(std::path::Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: tests/run installs chromium");
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is missing: tests/run installs chromium-driver"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver")
    };
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver { child, port, _profile: profile };
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", driver.port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "chromedriver did not listen within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--hide-scrollbars",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", driver._profile.path().display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector).capabilities(caps).connect(&url).await.expect("a chromium session");
    (driver, c)
}

async fn fill(c: &Client, id: &str, text: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

/// Waits (at most 10 s) until the browser is at `path`, after a click that navigates.
async fn wait_path(c: &Client, path: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = path_of(c).await;
        if now == path {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "still at {now}, not {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first element matching `css`, waiting for it at most 10 s (after a click that navigates).
async fn find_wait(c: &Client, css: &str) -> fantoccini::elements::Element {
    tokio::time::timeout(Duration::from_secs(10), c.wait().for_element(Locator::Css(css)))
        .await
        .unwrap_or_else(|_| panic!("no {css} within 10 s"))
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Waits (at most 10 s) until the first element matching `css` contains `needle`; its text.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if t.contains(needle) {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "{css} does not show {needle:?}: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

/// Saves the viewport as <dir>/<name>.png: docs/screenshots/ with STOWAGE_SCREENSHOTS=docs, else
/// a directory under the system temp dir.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = match std::env::var("STOWAGE_SCREENSHOTS").as_deref() {
        Ok("docs") => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        _ => std::env::temp_dir().join("stowage-screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Runs axe-core (WCAG 2 A and AA rules) on the current page; returns the violations.
async fn axe(c: &Client) -> Vec<String> {
    let path = std::env::var("STOWAGE_AXE_JS")
        .unwrap_or_else(|_| "/tmp/stowage-axe/node_modules/axe-core/axe.min.js".to_string());
    let src = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("axe-core at {path}: {e} (tests/run installs it with npm)"));
    c.execute(&format!("{src}\n;return true;"), vec![]).await.expect("inject axe-core");
    let v = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("run axe-core");
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect()
}

fn rest(method: &str, url: &str, user: &str, pw: &str, body: Option<Value>) -> (u16, Value) {
    clients::api(method, url, user, pw, body)
}

/// A one-page site on another origin (`127.0.0.1:<other port>`) whose form posts to the portal at
/// once, with a CSRF token it somehow learned. Serves up to `n` requests within 60 s.
fn evil_site(target: String, csrf: String, n: usize) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        // Bounded: `n` requests or 60 s, whichever comes first.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < n && std::time::Instant::now() < deadline {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            served += 1;
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let page = format!(
                "<!DOCTYPE html><html lang=en><title>x</title><form id=f method=post action=\"{target}/projects\">\
                 <input name=name value=cross-site><input name=csrf value=\"{csrf}\"></form>\
                 <script>document.getElementById('f').submit()</script></html>"
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real client: needs chromium, chromium-driver, docker and axe-core; tests/run installs them and runs these"]
async fn the_portal_in_a_browser_with_docker() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    for (u, pw) in [("alice", ALICE_PW), ("bob", BOB_PW)] {
        let (st, v) = rest(
            "POST",
            &format!("{}/api/v1/users", s.url),
            "admin",
            ADMIN_PASSWORD,
            Some(json!({ "username": u, "password": pw, "certified": true })),
        );
        assert_eq!(st, 201, "{v}");
    }
    let (_driver, c) = browser().await;
    let mut violations = Vec::new();

    // Signed out: the sign-in page.
    c.goto(&format!("{}/login", s.url)).await.unwrap();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("/login: {v}")));
    screenshot(&c, "login").await;
    fill(&c, "username", "alice").await;
    fill(&c, "password", "wrong-password").await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    assert_eq!(find_wait(&c, "p.error").await.text().await.unwrap(), "incorrect user name or password");
    fill(&c, "username", "alice").await;
    fill(&c, "password", ALICE_PW).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    wait_path(&c, "/projects").await;

    // alice creates a project in the page.
    fill(&c, "project-name", "Browser project").await;
    click(&c, "form[action='/projects'] button[type=submit]").await;
    find_wait(&c, "ul.tabs").await;
    let proj = path_of(&c).await.trim_start_matches('/').to_string();
    assert!(proj.starts_with("syn"), "{proj}");
    assert_eq!(text(&c, "h1").await, format!("Browser project ({proj})"));

    // docker push; the repository page shows exactly the pushed digest.
    let alice = DockerUser::new();
    alice.login(&s.host, "alice", ALICE_PW).expect_ok().expect_contains(&["Login Succeeded"]);
    let image = format!("{}/{proj}/web:1.0", s.host);
    build_image(&images, &image, "web.txt", &clients::unique("browser"));
    let digest = pushed_digest(&alice.push(&image).expect_ok());
    c.goto(&format!("{}/{proj}/web", s.url)).await.unwrap();
    assert_eq!(text(&c, "h1").await, format!("{proj}/web"));
    let shown: Vec<String> = {
        let mut v = Vec::new();
        for e in c.find_all(Locator::Css("code[data-digest]")).await.unwrap() {
            v.push(e.attr("data-digest").await.unwrap().unwrap_or_default());
        }
        v
    };
    assert_eq!(shown, vec![digest.clone()], "the repository page shows the pushed digest");
    let copy =
        c.find(Locator::Css(&format!("button.copy[data-copy='docker pull {}/{proj}/web@{digest}']", s.host))).await;
    assert!(copy.unwrap().is_displayed().await.unwrap(), "the copy button of the pull-by-digest command is shown");
    violations.extend(axe(&c).await.into_iter().map(|v| format!("repository page: {v}")));
    screenshot(&c, "repository").await;
    c.goto(&format!("{}/{proj}/web/-/tags/1.0", s.url)).await.unwrap();
    assert_eq!(
        c.find(Locator::Css("code[data-digest]")).await.unwrap().attr("data-digest").await.unwrap(),
        Some(digest.clone())
    );

    // Share the project with bob for download in the sharing page; bob's pull then works.
    let bob = DockerUser::new();
    bob.login(&s.host, "bob", BOB_PW).expect_ok();
    clients::run("docker", &["rmi", "-f", &image]).expect_ok();
    bob.pull(&image).expect_fail().expect_contains(&["does not exist, or bob may not pull it"]);
    c.goto(&format!("{}/{proj}/-/sharing", s.url)).await.unwrap();
    fill(&c, "principal-1", "user:bob").await;
    c.find(Locator::Id("level-1")).await.unwrap().select_by_value("download").await.unwrap();
    click(&c, &format!("form[action='/{proj}/-/sharing'] button[type=submit]")).await;
    wait_text(&c, "table tbody", "user:bob download").await;
    wait_path(&c, &format!("/{proj}/-/sharing")).await;
    violations.extend(axe(&c).await.into_iter().map(|v| format!("sharing page: {v}")));
    screenshot(&c, "sharing").await;
    bob.pull(&image).expect_ok();
    clients::run("docker", &["rmi", "-f", &image]).expect_ok();

    // The project's Docker tab lists the repository.
    c.goto(&format!("{}/{proj}", s.url)).await.unwrap();
    assert_eq!(text(&c, "tbody tr td a").await, format!("{proj}/web"));
    violations.extend(axe(&c).await.into_iter().map(|v| format!("project page: {v}")));
    screenshot(&c, "project").await;

    // Move the repository to the trash in the page: pulls are refused; restore: they work.
    c.goto(&format!("{}/{proj}/web", s.url)).await.unwrap();
    click(&c, "#trash-repo").await;
    click(&c, "form.confirm button.danger").await;
    wait_path(&c, "/trash").await;
    violations.extend(axe(&c).await.into_iter().map(|v| format!("trash page: {v}")));
    screenshot(&c, "trash").await;
    bob.pull(&image).expect_fail().expect_contains(&["is in the trash"]);
    click(&c, "form[action$='/restore'] button").await;
    wait_path(&c, &format!("/{proj}/web")).await;
    bob.pull(&image).expect_ok();
    clients::run("docker", &["rmi", "-f", &image]).expect_ok();

    // An access token made in the page logs docker in.
    c.goto(&format!("{}/tokens", s.url)).await.unwrap();
    fill(&c, "token-name", "laptop").await;
    click(&c, "form[action='/tokens'] button[type=submit]").await;
    let token = find_wait(&c, "section.secret code").await.text().await.unwrap();
    assert!(token.starts_with("stw_"), "{token}");
    let login_line = format!("echo {token} | docker login {} -u alice --password-stdin", s.host);
    assert_eq!(text(&c, "section.secret p:nth-of-type(4) code").await, login_line);
    let by_token = DockerUser::new();
    by_token.login(&s.host, "anyone", &token).expect_ok().expect_contains(&["Login Succeeded"]);
    by_token.pull(&image).expect_ok();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("tokens page (new token): {v}")));
    c.goto(&format!("{}/tokens", s.url)).await.unwrap();
    screenshot(&c, "tokens").await;

    // A POST without the CSRF token, from the portal's own origin: refused, nothing created.
    let count = || {
        let (st, v) = rest("GET", &format!("{}/api/v1/projects", s.url), "admin", ADMIN_PASSWORD, None);
        assert_eq!(st, 200);
        v["projects"].as_array().unwrap().len()
    };
    let before = count();
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/projects', { method: 'POST', body: new URLSearchParams({ name: 'no-csrf' }), credentials: 'same-origin' })
                .then(r => done(r.status)).catch(e => done('failed: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    // A form on another origin that posts to the portal (with a valid CSRF token even): refused.
    let csrf = c.find(Locator::Css("input[name=csrf]")).await.unwrap().attr("value").await.unwrap().unwrap();
    let evil = evil_site(s.url.clone(), csrf, 2);
    c.goto(&format!("http://127.0.0.1:{evil}/")).await.unwrap();
    wait_path(&c, "/projects").await;
    assert_eq!(
        text(&c, "p.error").await,
        "this form was sent from another site; the portal accepts forms only from its own pages"
    );
    assert_eq!(count(), before, "neither post created a project");

    // Teams, and for administrators users and the audit log.
    c.goto(&format!("{}/teams", s.url)).await.unwrap();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("teams page: {v}")));
    c.goto(&format!("{}/projects", s.url)).await.unwrap();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("projects page: {v}")));
    screenshot(&c, "projects").await;
    click(&c, "header form[action='/logout'] button").await;
    wait_path(&c, "/login").await;
    fill(&c, "username", "admin").await;
    fill(&c, "password", ADMIN_PASSWORD).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    wait_path(&c, "/projects").await;
    c.goto(&format!("{}/admin/users", s.url)).await.unwrap();
    click(&c, "form[action='/admin/users/bob/certified'] button").await;
    wait_path(&c, "/admin/users").await;
    let (_, v) = rest("GET", &format!("{}/api/v1/users/bob", s.url), "admin", ADMIN_PASSWORD, None);
    assert_eq!(v["certified"], json!(false), "uncertified in the page: {v}");
    violations.extend(axe(&c).await.into_iter().map(|v| format!("users page: {v}")));
    screenshot(&c, "users").await;
    c.goto(&format!("{}/audit", s.url)).await.unwrap();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("audit page: {v}")));
    screenshot(&c, "audit").await;

    // The repository page on a phone.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{}/{proj}/web", s.url)).await.unwrap();
    violations.extend(axe(&c).await.into_iter().map(|v| format!("repository page (phone): {v}")));
    screenshot(&c, "repository-phone").await;

    c.close().await.unwrap();
    assert!(violations.is_empty(), "axe-core found accessibility violations:\n{}", violations.join("\n"));
}
