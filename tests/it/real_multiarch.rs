//! Multi-platform images and OCI layouts: buildah builds two platforms (linux/amd64 from the base
//! image's OCI layout, linux/arm64 from scratch, no emulation needed), `podman manifest` makes a
//! list of them and pushes it with every child; `docker pull` takes the local platform;
//! `skopeo copy --all` copies the list to a second repository and into an OCI layout with every
//! digest kept; a layout made by umoci goes through Stowage and back byte-exact.

use crate::clients::{self, DockerImages, DockerUser, Out, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};
use std::collections::BTreeMap;

/// buildah or podman on a private vfs store under a temp dir, removed on drop.
struct Store {
    t: TempTree,
}

impl Store {
    fn run(&self, program: &str, args: &[&str]) -> Out {
        let (root, runroot) = (self.t.s("root"), self.t.s("run"));
        let mut all = vec!["--root", root.as_str(), "--runroot", runroot.as_str(), "--storage-driver", "vfs"];
        if program == "podman" {
            all.extend_from_slice(&["--cgroup-manager", "cgroupfs", "--events-backend", "none"]);
        }
        all.extend_from_slice(args);
        clients::run(program, &all)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.run("buildah", &["rm", "--all"]);
        let _ = self.run("podman", &["rmi", "-a", "-f"]);
    }
}

fn skopeo(args: &[&str]) -> Out {
    clients::run("skopeo", args).expect_ok()
}

/// The raw manifest at `image` (a skopeo transport reference) and its sha256 digest.
fn raw(creds: &str, image: &str) -> (serde_json::Value, String) {
    let mut args = vec!["inspect", "--raw"];
    if image.starts_with("docker://") {
        args.extend_from_slice(&["--tls-verify=false", "--creds", creds]);
    }
    args.push(image);
    let out = skopeo(&args).stdout;
    (serde_json::from_str(&out).expect("manifest JSON"), clients::sha256(out.as_bytes()))
}

/// Every blob of an OCI layout, by file name, each checked against its name.
fn layout_blobs(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).expect("blobs dir") {
        let e = e.expect("entry");
        let data = std::fs::read(e.path()).expect("blob");
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(clients::sha256(&data), format!("sha256:{name}"), "blob file content matches its name");
        m.insert(name, data);
    }
    m
}

#[test]
#[ignore = "real client: needs buildah, podman, docker and skopeo; tests/run installs them and runs these"]
fn podman_manifest_list_pulled_by_docker_and_copied_by_skopeo() {
    for c in ["buildah", "podman", "skopeo", "docker"] {
        clients::require(c);
    }
    let s = TestServer::start();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let st = Store { t: TempTree::new() };
    let (amd, arm) = (clients::unique("stowage-amd64"), clients::unique("stowage-arm64"));
    std::fs::write(st.t.join("marker"), clients::unique("multi-arch marker")).unwrap();
    let marker = st.t.s("marker");

    // Two platforms, built with buildah.
    for (name, from, arch) in
        [(&amd, format!("oci:{}:latest", clients::oci_base()), "amd64"), (&arm, "scratch".into(), "arm64")]
    {
        let c = st.run("buildah", &["from", "-q", &from]).expect_ok().stdout.trim().to_string();
        st.run("buildah", &["copy", &c, &marker, "/marker"]).expect_ok();
        st.run("buildah", &["config", "--os", "linux", "--arch", arch, &c]).expect_ok();
        st.run("buildah", &["commit", "-q", &c, name]).expect_ok();
    }
    // The list, made and pushed with podman manifest.
    let list = clients::unique("stowage-list");
    st.run("podman", &["manifest", "create", &list]).expect_ok();
    for name in [&amd, &arm] {
        st.run("podman", &["manifest", "add", &list, &format!("containers-storage:localhost/{name}")]).expect_ok();
    }
    let dest = format!("docker://{}/syn1/multi:v1", s.host);
    let digest_file = st.t.s("digest");
    st.run(
        "podman",
        &[
            "manifest",
            "push",
            "--all",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--digestfile",
            &digest_file,
            &list,
            &dest,
        ],
    )
    .expect_ok();
    let pushed = std::fs::read_to_string(&digest_file).expect("digest file").trim().to_string();
    let (index, index_digest) = raw(&creds, &dest);
    assert_eq!(index_digest, pushed, "the registry serves the list podman pushed, unchanged");
    let children: Vec<(String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (m["platform"]["architecture"].as_str().unwrap().to_string(), m["digest"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(children.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["amd64", "arm64"]);

    // docker pull takes the local platform (amd64 on this machine).
    assert_eq!(clients::run("uname", &["-m"]).stdout.trim(), "x86_64", "the test expects an amd64 docker host");
    let images = DockerImages::default();
    let user = DockerUser::new();
    user.login(&s.host, "admin", ADMIN_PASSWORD).expect_ok();
    let reference = format!("{}/syn1/multi:v1", s.host);
    images.track(&reference);
    user.pull(&reference).expect_ok();
    let amd_config = {
        let (m, _) = raw(&creds, &format!("docker://{}/syn1/multi@{}", s.host, children[0].1));
        m["config"]["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(clients::inspect(&reference, "{{.Architecture}}"), "amd64");
    assert_eq!(clients::inspect(&reference, "{{.Id}}"), amd_config, "docker pulled the amd64 child");
    assert_eq!(clients::inspect(&reference, "{{index .RepoDigests 0}}"), format!("{}/syn1/multi@{pushed}", s.host));

    // skopeo copy --all to a second repository keeps the list's digest and every child's.
    let copy = format!("docker://{}/syn2/multi-copy:v1", s.host);
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        "--dest-creds",
        &creds,
        &dest,
        &copy,
    ]);
    assert_eq!(raw(&creds, &copy).1, pushed);
    for (arch, d) in &children {
        let (_, got) = raw(&creds, &format!("docker://{}/syn2/multi-copy@{d}", s.host));
        assert_eq!(&got, d, "{arch} child by digest in the copy");
    }

    // And into an OCI layout: the index and every child manifest keep their digests.
    let out = TempTree::new();
    let layout = format!("oci:{}:v1", out.s("layout"));
    skopeo(&["copy", "--all", "--src-tls-verify=false", "--src-creds", &creds, &dest, &layout]);
    let blobs = layout_blobs(&out.join("layout"));
    for d in std::iter::once(&pushed).chain(children.iter().map(|(_, d)| d)) {
        assert!(blobs.contains_key(d.trim_start_matches("sha256:")), "{d} in the layout");
    }
    assert_eq!(raw(&creds, &layout).1, pushed);
}

#[test]
#[ignore = "real client: needs umoci and skopeo; tests/run installs them and runs these"]
fn umoci_layout_round_trips_byte_exact() {
    for c in ["umoci", "skopeo"] {
        clients::require(c);
    }
    let s = TestServer::start();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let t = TempTree::new();
    let (src, back) = (t.s("src"), t.s("back"));
    // A layout umoci makes from nothing: an empty image, then a layer with a file, a config.
    clients::run("umoci", &["init", "--layout", &src]).expect_ok();
    clients::run("umoci", &["new", "--image", &format!("{src}:v1")]).expect_ok();
    let rootfs = t.join("content");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/stowage-marker"), clients::unique("umoci layer")).unwrap();
    clients::run(
        "umoci",
        &["insert", "--image", &format!("{src}:v1"), &rootfs.join("etc").display().to_string(), "/etc"],
    )
    .expect_ok();
    clients::run(
        "umoci",
        &["config", "--image", &format!("{src}:v1"), "--config.cmd", "/bin/true", "--author", "stowage"],
    )
    .expect_ok();

    let (_, src_digest) = raw(&creds, &format!("oci:{src}:v1"));
    let dest = format!("docker://{}/syn1/umoci:v1", s.host);
    skopeo(&["copy", "--dest-tls-verify=false", "--dest-creds", &creds, &format!("oci:{src}:v1"), &dest]);
    assert_eq!(raw(&creds, &dest).1, src_digest, "the registry serves umoci's manifest unchanged");
    skopeo(&["copy", "--src-tls-verify=false", "--src-creds", &creds, &dest, &format!("oci:{back}:v1")]);
    assert_eq!(raw(&creds, &format!("oci:{back}:v1")).1, src_digest, "round trip keeps the manifest digest");
    // umoci keeps blobs of earlier revisions (the empty image's manifest and config) until `umoci gc`.
    clients::run("umoci", &["gc", "--layout", &src]).expect_ok();
    let (a_gc, b) = (layout_blobs(std::path::Path::new(&src)), layout_blobs(std::path::Path::new(&back)));
    assert_eq!(a_gc.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same blob set as umoci's");
    assert!(a_gc == b, "every blob byte-exact");
    // umoci reads the round-tripped layout: it unpacks to the same file.
    let bundle = t.s("bundle");
    clients::run("umoci", &["unpack", "--image", &format!("{back}:v1"), &bundle]).expect_ok();
    assert_eq!(
        std::fs::read(t.join("bundle/rootfs/etc/stowage-marker")).unwrap(),
        std::fs::read(rootfs.join("etc/stowage-marker")).unwrap()
    );
}
