//! The README's curl walk-through of a chunked, resumed upload, run exactly as written: the
//! commands are taken from README.md between the `curl-walkthrough` markers, so the document
//! cannot drift from what works.

use crate::clients::{self, TempTree};
use crate::common::{TestServer, ADMIN_PASSWORD};

/// The shell block between the README's walk-through markers.
fn readme_walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("<!-- curl-walkthrough:start -->").expect("start marker in README.md");
    let end = readme.find("<!-- curl-walkthrough:end -->").expect("end marker in README.md");
    let block = &readme[start..end];
    let body = block.split_once("```sh\n").expect("a ```sh block after the start marker").1;
    body.rsplit_once("```").expect("the block is closed before the end marker").0.to_string()
}

#[test]
fn the_readme_walkthrough_is_one_shell_block() {
    let script = readme_walkthrough();
    for needle in [
        "-X POST",
        "-X PATCH",
        "Content-Range: 0-",
        "Content-Range: $((LAST + 1))",
        "?digest=$DIGEST",
        "cmp layer pulled",
    ] {
        assert!(script.contains(needle), "the walk-through lost {needle:?}:\n{script}");
    }
}

#[test]
#[ignore = "real client: needs curl; tests/run installs it and runs these"]
fn the_readme_curl_walkthrough_runs_as_written() {
    clients::require("curl");
    let s = TestServer::start();
    let dir = TempTree::new();
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &readme_walkthrough()])
        .current_dir(dir.path())
        .env("REG", format!("http://{}", s.host))
        .env("CREDS", format!("admin:{ADMIN_PASSWORD}"))
        .env("REPO", "syn1/curl-demo")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walk-through failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layer = b"the first chunk of a layer, and the rest of it.";
    let digest = clients::sha256(layer);
    assert_eq!(stdout, format!("resuming after byte 27\ncommitted {digest}\npulled back byte-exact\n"));
    let (status, _) =
        clients::api("HEAD", &s.v2(&format!("syn1/curl-demo/blobs/{digest}")), "admin", ADMIN_PASSWORD, None);
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(dir.join("pulled")).unwrap(), layer);
}
