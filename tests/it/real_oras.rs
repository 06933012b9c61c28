//! ORAS artifacts with the ORAS Python client (PyPI `oras`, pinned by tests/run): an artifact
//! with a custom artifactType and two files, an SBOM-like referrer pushed with the client's own
//! `push(subject=...)`, referrers listed with and without the artifactType filter, and both
//! pulled back byte-exact. The client logs in with Basic credentials and handles tokens itself;
//! it fetches a new token only after a 403, which `App::insufficient_scope` serves it.
//! The client script is tests/fixtures/oras_artifacts.py.

use crate::clients::{self, run, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};
use serde_json::json;

/// The Python of the venv tests/run installs `oras` into.
fn oras_python() -> String {
    std::env::var("STOWAGE_ORAS_PYTHON").unwrap_or_else(|_| "/tmp/stowage-oras-venv/bin/python".to_string())
}

#[test]
#[ignore = "real client: needs the oras Python client; tests/run installs it (PyPI oras 0.2.43 in a venv) and runs these"]
fn oras_python_pushes_artifacts_and_referrers_and_pulls_them_back() {
    let python = oras_python();
    let version = run(&python, &["-c", "import importlib.metadata as m; print(m.version('oras'))"]);
    assert!(version.ok, "the oras Python client is not usable at {python} (tests/run installs it): {}", version.all());
    assert_eq!(version.stdout.trim(), "0.2.43", "tests/run pins oras 0.2.43");
    clients::require("skopeo");
    let s = TestServer::start();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let repo = "syn1/oras";

    // The subject: a real image, copied from the OCI layout of the base image.
    let dest = format!("docker://{}/{repo}:image", s.host);
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:latest", clients::oci_base()),
            &dest,
        ],
    )
    .expect_ok();
    let raw = run("skopeo", &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &dest]).expect_ok().stdout;
    let subject = clients::sha256(raw.as_bytes());

    let work = TempTree::new();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oras_artifacts.py");
    let size = raw.len().to_string();
    let out = std::process::Command::new(&python)
        .args([script, &s.host, "admin", ADMIN_PASSWORD, repo, &subject, &size])
        .current_dir(work.path())
        .output()
        .expect("run the oras script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oras script failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("script prints JSON");

    let (bundle, sbom) = (v["bundle"].as_str().unwrap(), v["sbom"].as_str().unwrap());
    let index = "application/vnd.oci.image.index.v1+json";
    let bundle_desc = json!({ "digest": bundle, "artifactType": "application/vnd.stowage.test.bundle.v1" });
    let sbom_desc = json!({ "digest": sbom, "artifactType": "application/vnd.stowage.test.sbom.config.v1+json" });
    let mut both = vec![bundle_desc.clone(), sbom_desc.clone()];
    both.sort_by_key(|d| d["digest"].as_str().unwrap().to_string());
    assert_eq!(v["all"], json!({ "content_type": index, "filters": null, "manifests": both }));
    assert_eq!(v["bundles"], json!({ "content_type": index, "filters": "artifactType", "manifests": [bundle_desc] }));
    assert_eq!(v["sboms"], json!({ "content_type": index, "filters": "artifactType", "manifests": [sbom_desc] }));
    // Pulled back byte-exact: each file hashes as the one pushed.
    let files = &v["files"];
    assert_eq!(v["pulled_bundle"], json!({ "notes.txt": files["notes.txt"], "payload.bin": files["payload.bin"] }));
    assert_eq!(v["pulled_sbom"], json!({ "sbom.spdx.json": files["sbom.spdx.json"] }));
    for name in ["notes.txt", "payload.bin", "sbom.spdx.json"] {
        let dir = if name.starts_with("sbom") { "out-sbom" } else { "out-bundle" };
        assert_eq!(
            std::fs::read(work.join(dir).join(name)).unwrap(),
            std::fs::read(work.join(name)).unwrap(),
            "{name}"
        );
    }
    // The registry holds what the client says it pushed, by tag and by digest.
    for (reference, digest) in
        [(":bundle", bundle), (":sbom", sbom), (&format!("@{bundle}"), bundle), (&format!("@{sbom}"), sbom)]
    {
        let image = format!("docker://{}/{repo}{reference}", s.host);
        let r = run("skopeo", &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &image]).expect_ok();
        assert_eq!(clients::sha256(r.stdout.as_bytes()), digest, "{reference}");
    }
}
