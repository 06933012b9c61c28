//! One error path: storage errors get the same status and message on the Distribution API and
//! the REST API (507 for a full disk), bodies never carry internal paths, and `/readyz` tells
//! anonymous callers nothing about files. The disk is a real, small tmpfs (the tests run as root,
//! as tests/run does); a failed mount fails the test.

use crate::api_util::{api, post};
use crate::common::*;
use serde_json::{json, Value};
use std::process::Command;

/// A tmpfs of `mib` MiB mounted on a new temp dir; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_507_with_a_message_and_no_path_and_nothing_is_stuck() {
    let disk = SmallDisk::new(24);
    let data = disk.dir.path().join("data");
    let s = TestServer::start_in(tempfile::tempdir().unwrap(), |c| {
        c.engine.data_dir = data.clone();
    });
    let big = vec![7u8; 40 << 20];
    let digest = sha256(&big);
    let r = client().post(s.v2(&format!("syn1/big/blobs/uploads/?digest={digest}"))).body(big).send().await.unwrap();
    assert_eq!(r.status(), 507);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errors"][0]["code"], "UNAVAILABLE");
    assert_eq!(
        v["errors"][0]["message"],
        "the registry's disk is full; ask an administrator to free space or run garbage collection"
    );
    assert!(!text.contains(disk.dir.path().to_str().unwrap()), "no internal path in {text}");
    // The failed upload's space is freed at once: a small push works afterwards.
    push_image(&s, "syn1/small", "v1", b"a small layer").await;
    // REST writes still work as well (the index had room), and answer JSON.
    let (st, v) = post(&client(), &api(&s, "projects"), json!({ "name": "after the full disk" })).await;
    assert_eq!(st, 201, "{v}");
}

#[tokio::test]
async fn readyz_names_no_files() {
    let s = TestServer::start();
    let r = anonymous().get(format!("{}/readyz", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");
}
