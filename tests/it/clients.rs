//! Helpers for the real-client tests (docker, skopeo, podman): running the CLIs, per-user docker
//! config dirs, cleanup guards (with the vfs storage driver every layer is a full copy, so every
//! test removes what it tags or pulls, even when it fails), and a blocking REST helper.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one CLI run.
#[derive(Debug)]
pub struct Out {
    pub cmd: String,
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout and stderr together (docker prints push progress to stdout and errors to stderr).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the full output unless the command succeeded.
    pub fn expect_ok(self) -> Out {
        assert!(self.ok, "`{}` failed ({:?})\nstdout:\n{}\nstderr:\n{}", self.cmd, self.code, self.stdout, self.stderr);
        self
    }

    /// Panics with the full output unless the command failed.
    pub fn expect_fail(self) -> Out {
        assert!(!self.ok, "`{}` unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}", self.cmd, self.stdout, self.stderr);
        self
    }

    /// Asserts the combined output contains every needle (case-insensitive).
    pub fn expect_contains(&self, needles: &[&str]) {
        let all = self.all().to_lowercase();
        for n in needles {
            assert!(
                all.contains(&n.to_lowercase()),
                "`{}` output lacks {n:?}\nstdout:\n{}\nstderr:\n{}",
                self.cmd,
                self.stdout,
                self.stderr
            );
        }
    }
}

/// Runs `program args...` (with extra env) and captures its output.
pub fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(program);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let cmd = format!("{program} {}", args.join(" "));
    let o = c.output().unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e}"));
    Out {
        cmd,
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn run(program: &str, args: &[&str]) -> Out {
    run_env(program, args, &[])
}

fn on_path(program: &str) -> bool {
    Command::new(program).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// Panics unless `program` is usable (for docker: unless the daemon answers). Real-client tests
/// are `#[ignore]`d with the reason, so plain `cargo test` reports them as ignored; `tests/run`
/// installs the clients and runs them with `--ignored`, where a missing client is a failure,
/// never a silent pass.
pub fn require(program: &str) {
    let usable = if program == "docker" {
        on_path("docker") && run("docker", &["info", "--format", "{{.ServerVersion}}"]).ok
    } else {
        on_path(program)
    };
    assert!(usable, "{program} is not usable: real-client tests need it (tests/run installs and starts it)");
}

/// A string unique to this test run (image content, names).
pub fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// The local docker base image (busybox) built by tests/fixtures/make-base-image.sh.
pub fn base_image() -> String {
    std::env::var("STOWAGE_TEST_BASE_IMAGE").unwrap_or_else(|_| "stowage-test-base:latest".to_string())
}

/// The OCI layout of the base image (ref `latest`).
pub fn oci_base() -> String {
    std::env::var("STOWAGE_TEST_OCI_BASE").unwrap_or_else(|_| "/tmp/stowage-oci-base".to_string())
}

/// `sha256:<hex>` of a byte string.
pub fn sha256(data: &[u8]) -> String {
    crate::common::sha256(data)
}

/// Removes docker images (by reference or id) when dropped, whatever the test outcome.
#[derive(Default)]
pub struct DockerImages(pub std::cell::RefCell<Vec<String>>);

impl DockerImages {
    pub fn track(&self, reference: &str) {
        self.0.borrow_mut().push(reference.to_string());
    }
}

impl Drop for DockerImages {
    fn drop(&mut self) {
        let refs: Vec<String> = self.0.borrow_mut().drain(..).rev().collect();
        for r in refs {
            let _ = run("docker", &["rmi", "-f", &r]);
        }
    }
}

/// One docker user: a private client config dir, so logins never leak between users or tests.
pub struct DockerUser {
    pub config: tempfile::TempDir,
}

impl DockerUser {
    pub fn new() -> DockerUser {
        DockerUser { config: tempfile::tempdir().expect("docker config dir") }
    }

    fn cfg(&self) -> String {
        self.config.path().display().to_string()
    }

    /// `docker --config <dir> args...`
    pub fn docker(&self, args: &[&str]) -> Out {
        let cfg = self.cfg();
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        run("docker", &all)
    }

    pub fn login(&self, host: &str, user: &str, password: &str) -> Out {
        self.docker(&["login", "-u", user, "-p", password, host])
    }

    /// `docker push`; on success returns the output and the pushed manifest digest.
    pub fn push(&self, reference: &str) -> Out {
        self.docker(&["push", reference])
    }

    pub fn pull(&self, reference: &str) -> Out {
        self.docker(&["pull", reference])
    }
}

/// The `digest: sha256:...` of `docker push` output.
pub fn pushed_digest(o: &Out) -> String {
    o.stdout
        .lines()
        .find_map(|l| l.split("digest: ").nth(1).and_then(|r| r.split_whitespace().next()))
        .unwrap_or_else(|| panic!("no `digest:` line in push output:\n{}", o.all()))
        .to_string()
}

/// `docker inspect --format <fmt> <reference>`, trimmed.
pub fn inspect(reference: &str, format: &str) -> String {
    run("docker", &["inspect", "--format", format, reference]).expect_ok().stdout.trim().to_string()
}

/// The image config digest (Id) and layer diff ids of a local docker image.
pub fn image_ids(reference: &str) -> (String, Vec<String>) {
    let id = inspect(reference, "{{.Id}}");
    let layers: Vec<String> =
        serde_json::from_str(&inspect(reference, "{{json .RootFS.Layers}}")).expect("layers json");
    (id, layers)
}

/// `DOCKER_BUILDKIT=0 docker build` of `FROM <base>` plus a file with `content`, tagged `tag`.
/// The image is tracked in `images` before the build, so a failed build still cleans up.
pub fn build_image(images: &DockerImages, tag: &str, file: &str, content: &str) {
    let ctx = tempfile::tempdir().expect("build context");
    std::fs::write(ctx.path().join(file), content).expect("write file");
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nCOPY {file} /{file}\n", base_image()))
        .expect("write Dockerfile");
    images.track(tag);
    let dir = ctx.path().display().to_string();
    run_env("docker", &["build", "--force-rm", "-q", "-t", tag, &dir], &[("DOCKER_BUILDKIT", "0")]).expect_ok();
}

/// A temp dir removed on drop (as root, podman's vfs store holds read-only dirs too).
pub struct TempTree(pub tempfile::TempDir);

impl TempTree {
    pub fn new() -> TempTree {
        TempTree(tempfile::tempdir().expect("temp dir"))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }
    pub fn s(&self, p: &str) -> String {
        self.join(p).display().to_string()
    }
}

/// A blocking REST call (JSON in and out) as `user`, on a private current-thread runtime.
/// Returns the status and the JSON body (Null when empty or not JSON).
pub fn api(
    method: &str,
    url: &str,
    user: &str,
    password: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (method, url, user, password) = (method.to_string(), url.to_string(), user.to_string(), password.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let c = crate::common::client_as(&user, &password);
            let m: reqwest::Method = method.parse().expect("method");
            let mut req = c.request(m, &url);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.expect("REST request");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        })
    })
    .join()
    .expect("REST thread")
}
