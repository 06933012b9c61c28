//! skopeo: OCI layout -> registry -> OCI layout round trip, registry-to-registry copy, list-tags.

use crate::clients::{self, run, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};
use std::collections::BTreeMap;

fn blobs(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
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
#[ignore = "real client: needs skopeo; tests/run installs it and runs these"]
fn skopeo_oci_layout_round_trip_and_registry_copy() {
    clients::require("skopeo");
    let s = TestServer::start();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let base = clients::oci_base();
    let src = format!("oci:{base}:latest");
    let dest = format!("docker://{}/syn1/base:oci", s.host);

    let raw_src = run("skopeo", &["inspect", "--raw", &src]).expect_ok().stdout;
    let src_digest = clients::sha256(raw_src.as_bytes());

    run("skopeo", &["copy", "--dest-tls-verify=false", "--dest-creds", &creds, &src, &dest]).expect_ok();
    let raw_reg =
        run("skopeo", &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &dest]).expect_ok().stdout;
    assert_eq!(clients::sha256(raw_reg.as_bytes()), src_digest, "the registry serves the manifest unchanged");
    let info = run("skopeo", &["inspect", "--tls-verify=false", "--creds", &creds, &dest]).expect_ok().stdout;
    let info: serde_json::Value = serde_json::from_str(&info).expect("inspect json");
    assert_eq!(info["Digest"], src_digest.as_str());

    // Back to a fresh OCI layout.
    let out = TempTree::new();
    let back = format!("oci:{}:latest", out.s("layout"));
    run("skopeo", &["copy", "--src-tls-verify=false", "--src-creds", &creds, &dest, &back]).expect_ok();
    let raw_back = run("skopeo", &["inspect", "--raw", &back]).expect_ok().stdout;
    assert_eq!(clients::sha256(raw_back.as_bytes()), src_digest, "round trip keeps the manifest digest");
    let (a, b) = (blobs(std::path::Path::new(&base)), blobs(&out.join("layout")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same blob set");
    assert!(a == b, "blob contents equal");

    // Registry to registry, across projects.
    let copy = format!("docker://{}/syn2/copy:1", s.host);
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &dest,
            &copy,
        ],
    )
    .expect_ok();
    let raw_copy =
        run("skopeo", &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &copy]).expect_ok().stdout;
    assert_eq!(clients::sha256(raw_copy.as_bytes()), src_digest);

    for (repo, tag) in [("syn2/copy", "1"), ("syn1/base", "oci")] {
        let r = format!("docker://{}/{repo}", s.host);
        let tags = run("skopeo", &["list-tags", "--tls-verify=false", "--creds", &creds, &r]).expect_ok().stdout;
        let tags: serde_json::Value = serde_json::from_str(&tags).expect("list-tags json");
        assert_eq!(tags["Tags"], serde_json::json!([tag]), "{repo}: {tags}");
    }
}
