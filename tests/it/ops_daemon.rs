//! The `stowage` binary as an operator runs it: `certs init`, the plain-HTTP warning, JSON logs
//! carrying the request id, systemd readiness and watchdog notifications, and a certificate
//! swapped on SIGHUP served to the next connection.

use crate::common::ADMIN_PASSWORD;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running `stowage serve` with its stderr lines.
pub struct Daemon {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    pub data: tempfile::TempDir,
}

impl Daemon {
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        Daemon::start_as(args, envs, false)
    }

    /// With `watchdog_pid`, started through `sh -c 'WATCHDOG_PID=$$ exec stowage ...'`, as
    /// systemd does: the watchdog is only for the process whose pid it names.
    pub fn start_as(args: &[&str], envs: &[(&str, &str)], watchdog_pid: bool) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = if watchdog_pid {
            let mut c = Command::new("sh");
            c.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_stowage")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_stowage"))
        };
        cmd.arg("serve").arg("--data-dir").arg(data.path()).args(args);
        cmd.env("STOWAGE_ADMIN_PASSWORD", ADMIN_PASSWORD);
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            cmd.env_remove(k);
        }
        cmd.env_remove("RUST_LOG").env_remove("STOWAGE_LOG_FORMAT");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start stowage serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines, seen: Vec::new(), data }
    }

    /// Waits (at most 30 s) for a line that satisfies `want`, and returns it.
    pub fn wait_line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no log line {what} within 30 s; got:\n{}", self.seen.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stowage exited before logging {what}; got:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// The listening address from the start-up line (text or JSON).
    pub fn wait_addr(&mut self) -> std::net::SocketAddr {
        let l = self.wait_line("stowage serving", |l| l.contains("stowage serving"));
        let at = l.find("addr").expect("addr field");
        let rest = &l[at + 4..];
        let rest = rest.trim_start_matches(['=', '"', ':']);
        let end = rest.find(['"', ' ']).unwrap_or(rest.len());
        rest[..end].parse().unwrap_or_else(|e| panic!("{l}: {e}"))
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, then the exit status (at most 30 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "stowage did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PLAIN_WARNING: &str = "serving plain HTTP on a non-loopback address: passwords and tokens travel in clear";

#[test]
fn plain_http_beyond_loopback_is_served_with_a_warning() {
    let mut d = Daemon::start(&["--listen", "0.0.0.0:0"], &[]);
    let addr = d.wait_addr();
    let warn = d.wait_line("the plain-HTTP warning", |l| l.contains(PLAIN_WARNING));
    assert!(warn.contains("WARN"), "{warn}");
    // Served all the same (through loopback).
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{}/healthz", addr.port())).unwrap();
    assert_eq!(r.status(), 200);
    assert!(d.stop().success());
    // Loopback only: no warning.
    let mut d = Daemon::start(&["--listen", "127.0.0.1:0"], &[]);
    let addr = d.wait_addr();
    let r = reqwest::blocking::get(format!("http://{addr}/healthz")).unwrap();
    assert_eq!(r.status(), 200);
    d.signal(libc::SIGTERM);
    d.wait_line("the shutdown line", |l| l.contains("all connections closed"));
    assert!(!d.seen.iter().any(|l| l.contains(PLAIN_WARNING)), "{:?}", d.seen);
}

#[test]
fn json_logs_carry_the_request_id_on_every_line_of_the_request() {
    let mut d = Daemon::start(&["--listen", "127.0.0.1:0", "--log-format", "json"], &[("RUST_LOG", "stowage=debug")]);
    let addr = d.wait_addr();
    let r = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/v2/syn9/nothing/manifests/latest"))
        .header("x-request-id", "trace-me-42")
        .basic_auth("admin", Some("wrong-password"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let last = d.wait_line("the request line", |l| l.contains("\"message\":\"request\"") && l.contains("trace-me-42"));
    // Every line is one JSON object; those logged while handling the request carry its id.
    let mut of_request = 0;
    for l in &d.seen {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
        if v["span"]["request_id"] == "trace-me-42" {
            of_request += 1;
        }
    }
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["fields"]["status"], 401);
    assert_eq!(v["fields"]["path"], "/v2/syn9/nothing/manifests/latest");
    // The failed login (info) and the request line (debug), at least.
    assert!(of_request >= 2, "{:#?}", d.seen);
    let failed = d.seen.iter().find(|l| l.contains("failed login")).expect("a failed-login line");
    assert!(failed.contains("\"request_id\":\"trace-me-42\""), "{failed}");
}

#[test]
fn certs_init_writes_the_four_files_once_and_says_where_they_go() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("tls");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["certs", "init", "--dir"])
            .arg(&certs)
            .args(["--host", "registry.internal", "--host", "127.0.0.1", "--port", "5443"])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "/etc/docker/certs.d/registry.internal:5443/ca.crt",
        "/etc/docker/certs.d/127.0.0.1:5443/ca.crt",
        "/etc/containers/certs.d/registry.internal:5443/ca.crt",
        "update-ca-certificates",
        "update-ca-trust",
        &format!("tls_cert = \"{}\"", certs.join("server.crt").display()),
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["ca.key", "server.key"] {
        assert_eq!(std::fs::metadata(certs.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    let key = std::fs::read(certs.join("server.key")).unwrap();
    let again = run();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists; stowage certs init never overwrites certificates or keys"), "{err}");
    assert_eq!(std::fs::read(certs.join("server.key")).unwrap(), key, "the key is untouched");
}

/// The leaf certificate a TLS client gets from `addr` now, checked against `roots` for
/// `localhost`.
fn served_leaf(addr: std::net::SocketAddr, roots: &[&Path]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(rustls::pki_types::CertificateDer::from_pem_file(r).unwrap()).unwrap();
    }
    let cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}

fn pem_der(p: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(p).unwrap().to_vec()
}

#[test]
fn a_certificate_swapped_on_sighup_is_served_to_the_next_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, live) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("live"));
    for d in [&a, &b] {
        stowage::certs::init(d, &["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    }
    std::fs::create_dir(&live).unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(a.join(f), live.join(f)).unwrap();
    }
    let (cert, key) = (live.join("server.crt"), live.join("server.key"));
    // No polling of the files: only the signal can make the server reread them.
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "[server]\ntls_reload_interval = \"0s\"\n").unwrap();
    let mut d = Daemon::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let addr = d.wait_addr();
    let roots = [a.join("ca.crt"), b.join("ca.crt")];
    let roots: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();
    assert_eq!(served_leaf(addr, &roots), pem_der(&a.join("server.crt")));
    // Swap both files in place (new names moved over the old): still the old certificate...
    for f in ["server.crt", "server.key"] {
        std::fs::copy(b.join(f), live.join(format!("{f}.new"))).unwrap();
        std::fs::rename(live.join(format!("{f}.new")), live.join(f)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(served_leaf(addr, &roots), pem_der(&a.join("server.crt")));
    // ...until SIGHUP.
    d.signal(libc::SIGHUP);
    let l = d.wait_line("the reload line", |l| l.contains("TLS certificate reloaded"));
    assert!(l.contains("trigger=\"SIGHUP\""), "{l}");
    assert_eq!(served_leaf(addr, &roots), pem_der(&b.join("server.crt")));
    // A broken pair on SIGHUP keeps the current certificate, and says so.
    std::fs::write(&key, b"not a key").unwrap();
    d.signal(libc::SIGHUP);
    let l = d.wait_line("the failed reload line", |l| l.contains("TLS certificate reload failed"));
    assert!(l.contains("ERROR") && l.contains("still serving the previous one"), "{l}");
    assert_eq!(served_leaf(addr, &roots), pem_der(&b.join("server.crt")));
    assert!(d.stop().success());
}

#[test]
fn systemd_is_told_ready_pinged_and_told_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut d = Daemon::start_as(
        &["--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")],
        true,
    );
    let mut buf = [0u8; 256];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert_eq!(recv(), "READY=1\n");
    // Ready means serving: the listener answers now.
    let addr = d.wait_addr();
    let r = reqwest::blocking::get(format!("http://{addr}/readyz")).unwrap();
    assert_eq!(r.status(), 200);
    // Pings every WATCHDOG_USEC / 2 = 100 ms.
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(recv(), "WATCHDOG=1\n");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    d.signal(libc::SIGTERM);
    let mut last = String::new();
    for _ in 0..50 {
        last = recv();
        if last != "WATCHDOG=1\n" {
            break;
        }
    }
    assert_eq!(last, "STOPPING=1\n");
    assert!(d.stop().success());
}
