//! podman: push the base image (from the OCI layout) and pull it back.

use crate::clients::{self, Out, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};

struct Podman {
    t: TempTree,
}

impl Podman {
    fn run(&self, args: &[&str]) -> Out {
        let (root, runroot) = (self.t.s("root"), self.t.s("run"));
        let mut all = vec![
            "--root",
            root.as_str(),
            "--runroot",
            runroot.as_str(),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ];
        all.extend_from_slice(args);
        clients::run("podman", &all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rmi", "-a", "-f"]);
    }
}

#[test]
#[ignore = "real client: needs podman; tests/run installs it and runs these"]
fn podman_push_and_pull_back() {
    clients::require("podman");
    let s = TestServer::start();
    let p = Podman { t: TempTree::new() };
    let creds = format!("admin:{ADMIN_PASSWORD}");

    let out = p.run(&["pull", "-q", &format!("oci:{}:latest", clients::oci_base())]).expect_ok();
    let id = out.stdout.lines().last().expect("image id").trim().to_string();
    let image = format!("{}/syn1/pod:1", s.host);
    p.run(&["tag", &id, &image]).expect_ok();

    let digest_file = p.t.s("digest");
    p.run(&["push", "--tls-verify=false", "--creds", &creds, "--digestfile", &digest_file, &image]).expect_ok();
    let digest = std::fs::read_to_string(&digest_file).expect("digest file").trim().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "digest {digest:?}");

    p.run(&["rmi", "-a", "-f"]).expect_ok();
    let out = p.run(&["pull", "-q", "--tls-verify=false", "--creds", &creds, &image]).expect_ok();
    let pulled_id = out.stdout.lines().last().expect("image id").trim().to_string();
    assert_eq!(pulled_id, id, "same image config after the round trip");
    let pulled_digest = p.run(&["inspect", "--format", "{{.Digest}}", &image]).expect_ok().stdout.trim().to_string();
    assert_eq!(pulled_digest, digest, "pulled manifest digest equals the pushed one");

    // By digest, too.
    p.run(&["rmi", "-a", "-f"]).expect_ok();
    let by_digest = format!("{}/syn1/pod@{digest}", s.host);
    let out = p.run(&["pull", "-q", "--tls-verify=false", "--creds", &creds, &by_digest]).expect_ok();
    assert_eq!(out.stdout.lines().last().expect("image id").trim(), id);
}
