//! Real clients over TLS, with certificates from `stowage certs init` (the binary): docker with
//! the CA under /etc/docker/certs.d/<host:port>/ (removed afterwards), skopeo and podman with
//! `--cert-dir`, on 127.0.0.1 and on `localhost`, a name that resolves to it. The server speaks
//! TLS only, so every successful client command went over TLS.
//!
//! Docker skips certificate verification for registries on 127.0.0.0/8 (its default
//! insecure-registry range, which a name resolving there falls into too), so the CA check is
//! shown by skopeo and podman, which verify: without the CA they refuse the registry.

use crate::clients::{self, run, DockerImages, DockerUser, Out, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};
use std::path::{Path, PathBuf};

/// A TLS test server with certificates for localhost and 127.0.0.1 made by `stowage certs init`
/// in `certs`.
fn serve_tls(certs: &Path) -> TestServer {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["certs", "init", "--dir"])
        .arg(certs)
        .args(["--host", "localhost", "--host", "127.0.0.1"])
        .output()
        .expect("stowage certs init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    TestServer::start_with(move |s| s.tls = Some(stowage::config::TlsFiles { cert, key }))
}

/// Directories under /etc/docker/certs.d made for the test, removed on drop.
struct DockerCerts(Vec<PathBuf>);

impl DockerCerts {
    fn install(ca: &Path, hosts: &[String]) -> DockerCerts {
        let mut made = DockerCerts(Vec::new());
        for h in hosts {
            let dir = PathBuf::from("/etc/docker/certs.d").join(h);
            assert!(!dir.exists(), "{} exists already; not touching it", dir.display());
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {} (root needed): {e}", dir.display()));
            made.0.push(dir.clone());
            std::fs::copy(ca, dir.join("ca.crt")).unwrap();
        }
        made
    }
}

impl Drop for DockerCerts {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_login_push_pull_over_tls_by_address_and_by_name() {
    clients::require("docker");
    let certs = TempTree::new();
    let s = serve_tls(&certs.join("tls"));
    let port = s.addr.port();
    let (by_ip, by_name) = (format!("127.0.0.1:{port}"), format!("localhost:{port}"));
    let _installed = DockerCerts::install(&certs.join("tls/ca.crt"), &[by_ip.clone(), by_name.clone()]);
    let images = DockerImages::default();
    let user = DockerUser::new();
    for host in [&by_ip, &by_name] {
        user.login(host, "admin", ADMIN_PASSWORD).expect_ok().expect_contains(&["Login Succeeded"]);
    }
    let image = format!("{by_name}/syn1/tls:1");
    clients::build_image(&images, &image, "tls.txt", &clients::unique("tls"));
    let (id, layers) = clients::image_ids(&image);
    let out = user.push(&image).expect_ok();
    let digest = clients::pushed_digest(&out);
    run("docker", &["rmi", "-f", &image]).expect_ok();
    user.pull(&image).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(clients::image_ids(&image), (id.clone(), layers.clone()));
    // The same image by address.
    let by_addr = format!("{by_ip}/syn1/tls:1");
    images.track(&by_addr);
    user.pull(&by_addr).expect_ok().expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(clients::image_ids(&by_addr), (id, layers));
}

fn skopeo(args: &[&str]) -> Out {
    run("skopeo", args)
}

#[test]
#[ignore = "real client: needs skopeo; tests/run installs it and runs these"]
fn skopeo_copies_over_tls_and_verifies_the_certificate() {
    clients::require("skopeo");
    let certs = TempTree::new();
    let s = serve_tls(&certs.join("tls"));
    // containers/image reads *.crt of a --cert-dir as CAs.
    let cert_dir = certs.join("skopeo");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(certs.join("tls/ca.crt"), cert_dir.join("ca.crt")).unwrap();
    let cert_dir = cert_dir.display().to_string();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let src = format!("oci:{}:latest", clients::oci_base());
    for host in [format!("localhost:{}", s.addr.port()), format!("127.0.0.1:{}", s.addr.port())] {
        let dest = format!("docker://{host}/syn1/skopeo-tls:1");
        // Without the CA: refused, certificate verification is on.
        skopeo(&["copy", "--dest-creds", &creds, &src, &dest])
            .expect_fail()
            .expect_contains(&["certificate signed by unknown authority"]);
        skopeo(&["copy", "--dest-cert-dir", &cert_dir, "--dest-creds", &creds, &src, &dest]).expect_ok();
        let raw = skopeo(&["inspect", "--raw", "--cert-dir", &cert_dir, "--creds", &creds, &dest]).expect_ok().stdout;
        let local = skopeo(&["inspect", "--raw", &src]).expect_ok().stdout;
        assert_eq!(clients::sha256(raw.as_bytes()), clients::sha256(local.as_bytes()));
    }
}

#[test]
#[ignore = "real client: needs podman; tests/run installs it and runs these"]
fn podman_pushes_and_pulls_over_tls_with_the_ca() {
    clients::require("podman");
    let certs = TempTree::new();
    let s = serve_tls(&certs.join("tls"));
    let t = TempTree::new();
    let cert_dir = t.join("certs");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(certs.join("tls/ca.crt"), cert_dir.join("ca.crt")).unwrap();
    let cert_dir = cert_dir.display().to_string();
    let (root, runroot) = (t.s("root"), t.s("run"));
    let podman = |args: &[&str]| {
        let mut all =
            vec!["--root", &root, "--runroot", &runroot, "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"];
        all.extend_from_slice(&["--events-backend", "none"]);
        all.extend_from_slice(args);
        run("podman", &all)
    };
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let out = podman(&["pull", "-q", &format!("oci:{}:latest", clients::oci_base())]).expect_ok();
    let id = out.stdout.lines().last().expect("image id").trim().to_string();
    let image = format!("localhost:{}/syn1/pod-tls:1", s.addr.port());
    podman(&["tag", &id, &image]).expect_ok();
    podman(&["push", "--creds", &creds, &image])
        .expect_fail()
        .expect_contains(&["certificate signed by unknown authority"]);
    podman(&["push", "--cert-dir", &cert_dir, "--creds", &creds, &image]).expect_ok();
    podman(&["rmi", "-a", "-f"]).expect_ok();
    let out = podman(&["pull", "-q", "--cert-dir", &cert_dir, "--creds", &creds, &image]).expect_ok();
    assert_eq!(out.stdout.lines().last().expect("image id").trim(), id);
    let _ = podman(&["rmi", "-a", "-f"]);
}
