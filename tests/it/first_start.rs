//! First start, through the real binary (`stowage serve` as a child process, so the umask, the
//! environment check, the exit status and the log are the ones an operator gets): a bad
//! `STOWAGE_ADMIN_PASSWORD` is refused, a generated password goes to a private file and never to
//! the log, and nothing under the data directory is open to other local users.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `stowage serve` child process on 127.0.0.1 with its output collected.
struct Daemon {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

fn serve_cmd(data_dir: &Path, password: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match password {
        Some(p) => cmd.env("STOWAGE_ADMIN_PASSWORD", p),
        None => cmd.env_remove("STOWAGE_ADMIN_PASSWORD"),
    };
    cmd
}

/// Drops terminal colour codes, in case the log writer adds them anyway.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Daemon {
    /// Starts the daemon, learns its port from the "serving" log line and waits until it is ready
    /// (at most 60 s each).
    fn start(data_dir: &Path, password: Option<&str>) -> Daemon {
        let mut child = serve_cmd(data_dir, password).spawn().expect("spawn stowage serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let err_pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if line.contains("stowage serving") {
                    if let Some(a) = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")) {
                        let _ = addr_tx.send(a.to_string());
                    }
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let out_pipe = child.stdout.take().unwrap();
        let out = stdout.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(out_pipe).read_to_string(&mut s);
            out.lock().unwrap().push_str(&s);
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("stowage serve did not start: {}", stderr.lock().unwrap());
            }
        };
        let d = Daemon { child, url: format!("http://{addr}"), stderr, stdout };
        // The address is logged before the admin user is made and requests are served.
        let t = Instant::now();
        while !http().get(format!("{}/readyz", d.url)).send().is_ok_and(|r| r.status() == 200) {
            assert!(t.elapsed() < Duration::from_secs(60), "not ready: {}", d.stderr.lock().unwrap());
            std::thread::sleep(Duration::from_millis(25));
        }
        d
    }

    /// SIGTERM, then waits (at most 30 s) for a graceful exit. Returns (stdout, stderr).
    fn stop(mut self) -> (String, String) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful exit, got {status}");
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "stowage did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Give the reader threads a moment to drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Every path under `dir` (itself included) whose mode gives group or others any access.
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push((p.clone(), mode));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    found
}

#[test]
fn empty_or_short_admin_password_is_refused_with_a_clear_error() {
    for (password, says) in [("", "is empty"), ("short", "is 5 characters long"), ("elevenchars", "is 11 characters")] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut child = serve_cmd(&data, Some(password)).spawn().unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("stowage serve with STOWAGE_ADMIN_PASSWORD={password:?} kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let stderr = strip_ansi(&stderr);
        assert!(!status.success(), "{password:?}: exit status {status}");
        assert!(stderr.contains("STOWAGE_ADMIN_PASSWORD") && stderr.contains(says), "{password:?}: {stderr}");
        assert!(stderr.contains("at least 12 characters"), "{password:?}: {stderr}");
        assert!(!data.exists(), "refused before anything was written");
    }
}

#[test]
fn generated_admin_password_is_in_a_private_file_and_never_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, None);
    let file = data.join("admin-password");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.chars().count() >= 12, "a generated password is long");
    // It logs in, at the token endpoint and the REST API.
    let r = http()
        .get(format!("{}/v2/token?service=stowage", d.url))
        .header("authorization", basic("admin", &password))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{}/api/v1/users/admin", d.url))
        .header("authorization", basic("admin", &password))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["admin"], true);
    let (out, err) = d.stop();
    assert!(!out.contains(&password) && !err.contains(&password), "the password never reaches the output");
    assert!(err.contains(&file.display().to_string()), "the log names the file: {err}");
    // A second start finds the user and leaves the file alone.
    let d = Daemon::start(&data, None);
    let (_, err) = d.stop();
    assert!(!err.contains("created user admin"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
}

#[test]
fn data_dir_of_a_fresh_server_is_private_after_a_push() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let password = "first-start-password";
    let d = Daemon::start(&data, Some(password));
    let c = http();
    let auth = basic("admin", password);
    let r = c
        .post(format!("{}/api/v1/projects", d.url))
        .header("authorization", &auth)
        .json(&serde_json::json!({"name": "p"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let project = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_string();
    // An image (config, layer, manifest) and an unfinished upload, so blobs/ and uploads/ fill.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![7u8; 100_000];
    for blob in [&config, &layer] {
        let digest = crate::common::sha256(blob);
        let r = c
            .post(format!("{}/v2/{project}/app/blobs/uploads/?digest={digest}", d.url))
            .header("authorization", &auth)
            .body(blob.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = crate::common::image_manifest(
        (&crate::common::sha256(&config), config.len()),
        &[(&crate::common::sha256(&layer), layer.len())],
        None,
    );
    let r = c
        .put(format!("{}/v2/{project}/app/manifests/v1", d.url))
        .header("authorization", &auth)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.post(format!("{}/v2/{project}/app/blobs/uploads/", d.url)).header("authorization", &auth).send().unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r =
        c.patch(format!("{}{location}", d.url)).header("authorization", &auth).body(vec![1u8; 5000]).send().unwrap();
    assert_eq!(r.status(), 202);
    let open = open_to_others(&data);
    assert!(open.is_empty(), "open to other users while serving: {open:?}");
    let (_, err) = d.stop();
    let open = open_to_others(&data);
    assert!(open.is_empty(), "open to other users after shutdown: {open:?}");
    // The walk saw the store, not an empty directory.
    for sub in ["blobs", "uploads", "index", "keys"] {
        assert!(data.join(sub).is_dir(), "{sub}/ exists; log: {err}");
    }
    assert!(!data.join("admin-password").exists(), "no password file when the password was given");
}

#[test]
fn existing_data_dir_open_to_others_is_made_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start(&data, Some("first-start-password"));
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    let (_, err) = d.stop();
    assert_eq!(mode, 0o700, "mode {mode:o}");
    assert!(err.contains("changed its mode to 700") && err.contains("was=755"), "{err}");
}
