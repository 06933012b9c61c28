//! The test harness: a real Stowage server on `127.0.0.1:0` in a temp dir, on its own runtime
//! thread (so blocking real-client tests and async HTTP tests can both use it), shut down
//! gracefully on drop.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use stowage::config::Settings;

pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// `127.0.0.1:<port>`, the registry host in image names.
    pub host: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts a server with settings adjusted by `tweak` (after the defaults for a temp dir).
    pub fn start_with(tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::start_in(dir, tweak)
    }

    /// Starts a server on an existing data dir (restart tests).
    pub fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let mut settings = Settings::for_data_dir(dir.path());
        settings.admin_password = Some(ADMIN_PASSWORD.to_string());
        tweak(&mut settings);
        let scheme = if settings.tls.is_some() { "https" } else { "http" };
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        // std listens with a backlog of 128; the daemon (tokio's bind) with 1024. Match the daemon,
        // so tests that open hundreds of connections at once do not overflow the accept queue.
        // SAFETY: listen(2) on a socket we own; calling it again only changes the backlog.
        let _ = unsafe { libc::listen(std::os::unix::io::AsRawFd::as_raw_fd(&std_listener), 1024) };
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let _ = ready_tx.send(());
                if let Err(e) = stowage::run(settings, listener, async move {
                    let _ = rx.await;
                })
                .await
                {
                    panic!("server failed: {e:#}");
                }
            });
        });
        ready_rx.recv().expect("server thread started");
        let server = TestServer {
            addr,
            url: format!("{scheme}://{addr}"),
            host: addr.to_string(),
            dir,
            shutdown: Some(tx),
            thread: Some(thread),
        };
        server.wait_ready();
        server.ensure_projects();
        server
    }

    /// Makes sure projects syn1 and syn2 exist (the first two entities of a fresh server), so
    /// tests can push to `syn1/...` and `syn2/...` as admin.
    fn ensure_projects(&self) {
        let url = self.url.clone();
        // A thread of its own: the caller may already be inside a runtime.
        std::thread::spawn(move || ensure_projects_at(&url)).join().expect("project setup");
    }
}

fn ensure_projects_at(url: &str) {
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            // Setup only: the TLS tests check the certificate with clients of their own.
            let client = || {
                use base64::Engine as _;
                let cred = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
                let mut h = reqwest::header::HeaderMap::new();
                h.insert(reqwest::header::AUTHORIZATION, format!("Basic {cred}").parse().expect("header"));
                reqwest::Client::builder()
                    .danger_accept_invalid_certs(url.starts_with("https://"))
                    .default_headers(h)
                    .build()
                    .expect("client")
            };
            for (id, name) in [("syn1", "test"), ("syn2", "other")] {
                let r = client().get(format!("{url}/api/v1/projects/{id}")).send().await.expect("get project");
                if r.status() == 200 {
                    continue;
                }
                let r = client()
                    .post(format!("{url}/api/v1/projects"))
                    .json(&serde_json::json!({ "name": name }))
                    .send()
                    .await
                    .expect("create project");
                assert_eq!(r.status(), 201, "create project {name}");
                let v: serde_json::Value = r.json().await.expect("project json");
                assert_eq!(v["id"], id, "projects of a fresh test server get the first ids");
            }
        });
    }
}

impl TestServer {
    fn wait_ready(&self) {
        if self.url.starts_with("https://") {
            return self.wait_ready_tls();
        }
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("server at {} did not become ready", self.addr);
    }

    /// Readiness over TLS (the certificate is checked by the TLS tests themselves, not here).
    fn wait_ready_tls(&self) {
        let url = format!("{}/readyz", self.url);
        // A thread of its own: the blocking client must not run inside the caller's runtime.
        let ready = std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().expect("client");
            (0..200).any(|_| {
                let ok = c.get(&url).send().is_ok_and(|r| r.status() == 200);
                if !ok {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                ok
            })
        });
        assert!(ready.join().expect("readiness thread"), "server at {} did not become ready", self.url);
    }

    /// Stops the server and returns its data dir, for restart tests.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown_now();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.url, path.trim_start_matches('/'))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Password of the `admin` user of test servers.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// An HTTP client that does not follow redirects and sends the admin's Basic credentials.
pub fn client() -> reqwest::Client {
    client_as("admin", ADMIN_PASSWORD)
}

/// A client sending `user`'s Basic credentials.
pub fn client_as(user: &str, password: &str) -> reqwest::Client {
    use base64::Engine as _;
    let mut h = reqwest::header::HeaderMap::new();
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    h.insert(reqwest::header::AUTHORIZATION, format!("Basic {cred}").parse().expect("header"));
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).default_headers(h).build().expect("client")
}

/// A client with no credentials.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub fn sha256(data: &[u8]) -> String {
    stowage_engine::Digest::of(stowage_engine::Algorithm::Sha256, data).to_string()
}

/// Pushes a blob monolithically (`POST ?digest=`) and asserts 201.
pub async fn push_blob(s: &TestServer, name: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = client()
        .post(s.v2(&format!("{name}/blobs/uploads/?digest={d}")))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .expect("push blob");
    assert_eq!(r.status(), 201, "push blob: {}", r.text().await.unwrap_or_default());
    d
}

/// An OCI image manifest referencing `config` and `layers` (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)], subject: Option<(&str, usize)>) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1 },
        "layers": layers.iter().map(|(d, n)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n })).collect::<Vec<_>>(),
    });
    if let Some((d, n)) = subject {
        m["subject"] =
            serde_json::json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": n });
    }
    serde_json::to_vec(&m).expect("json")
}

/// Pushes config + one layer + manifest under `tag`; returns the manifest digest and bytes.
pub async fn push_image(s: &TestServer, name: &str, tag: &str, layer: &[u8]) -> (String, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(s, name, config).await;
    let l = push_blob(s, name, layer).await;
    let m = image_manifest((&c, config.len()), &[(&l, layer.len())], None);
    let r = client()
        .put(s.v2(&format!("{name}/manifests/{tag}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .expect("push manifest");
    assert_eq!(r.status(), 201, "push manifest: {}", r.text().await.unwrap_or_default());
    (sha256(&m), m)
}

/// The error codes of a Distribution API error body.
pub async fn error_codes(r: reqwest::Response) -> Vec<String> {
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    v["errors"].as_array().expect("errors array").iter().map(|e| e["code"].as_str().unwrap_or("").to_string()).collect()
}
