//! Backup and restore with the real Docker CLI: images pushed with docker, an online backup with
//! `stowage admin backup` while docker pushes another, the data directory wiped, `stowage
//! restore` into a new one, and every acknowledged tag pulled back by docker with the same
//! config and layers. Then a scrub of the restored store finds every blob intact.

use crate::clients::{self, build_image, image_ids, DockerImages, DockerUser};
use crate::common::{TestServer, ADMIN_PASSWORD};
use std::process::Command;

fn stowage(args: &[&str]) -> clients::Out {
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(args)
        .env_remove("STOWAGE_URL")
        .env_remove("STOWAGE_USER")
        .env_remove("STOWAGE_PASSWORD")
        .output()
        .expect("run stowage");
    clients::Out {
        cmd: format!("stowage {}", args.join(" ")),
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_images_survive_an_online_backup_a_wipe_and_a_restore() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    let user = DockerUser::new();
    user.login(&s.host, "admin", ADMIN_PASSWORD).expect_ok();
    let mut pushed = Vec::new();
    for i in 0..2 {
        let name = format!("syn1/backup-{i}:1");
        let tag = format!("{}/{name}", s.host);
        build_image(&images, &tag, "f.txt", &clients::unique(&format!("backup{i}")));
        user.push(&tag).expect_ok();
        pushed.push((name, image_ids(&tag)));
    }
    // Build the next image first, then push it while the backup runs.
    let during_name = "syn1/backup-during:1".to_string();
    let during_tag = format!("{}/{during_name}", s.host);
    build_image(&images, &during_tag, "f.txt", &clients::unique("during"));
    let during_ids = image_ids(&during_tag);
    let backups = tempfile::tempdir().expect("backup dir");
    let dest = backups.path().join("stowage").display().to_string();
    let pusher = {
        let cfg = user.config.path().display().to_string();
        let tag = during_tag.clone();
        std::thread::spawn(move || clients::run("docker", &["--config", &cfg, "push", &tag]))
    };
    let admin = ["admin", "--url", &s.url, "--user", "admin", "--password", ADMIN_PASSWORD];
    let first = stowage(&[&admin[..], &["backup", &dest]].concat()).expect_ok();
    pusher.join().expect("push thread").expect_ok();
    // Once the push is acknowledged, a second run brings the backup up to date incrementally.
    let second = stowage(&[&admin[..], &["backup", &dest]].concat()).expect_ok();
    let v1: serde_json::Value = serde_json::from_str(&first.stdout).expect("backup report");
    let v2: serde_json::Value = serde_json::from_str(&second.stdout).expect("backup report");
    assert!(v2["blobs_present"].as_u64() >= v1["blobs"].as_u64(), "incremental: {v1} then {v2}");
    pushed.push((during_name, during_ids));

    // Wipe, restore, serve.
    drop(s.stop());
    let restored = tempfile::tempdir().expect("restore dir");
    let target = restored.path().display().to_string();
    stowage(&["restore", &dest, "--data-dir", &target]).expect_ok();
    let r = TestServer::start_in(restored, |_| {});
    let user2 = DockerUser::new();
    user2.login(&r.host, "admin", ADMIN_PASSWORD).expect_ok();
    for (name, ids) in &pushed {
        let tag = format!("{}/{name}", r.host);
        images.track(&tag);
        user2.pull(&tag).expect_ok();
        assert_eq!(&image_ids(&tag), ids, "{name}: same config and layers after the restore");
    }
    let radmin = ["admin", "--url", &r.url, "--user", "admin", "--password", ADMIN_PASSWORD];
    let scrub = stowage(&[&radmin[..], &["scrub"]].concat()).expect_ok();
    let v: serde_json::Value = serde_json::from_str(&scrub.stdout).expect("scrub report");
    assert_eq!(v["quarantined"], serde_json::json!([]), "{v}");
    assert_eq!(v["blobs_checked"], v2["blobs"], "{v}");
}

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_pull_of_a_scrubbed_layer_fails_clearly_and_docker_push_heals_it() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    let user = DockerUser::new();
    user.login(&s.host, "admin", ADMIN_PASSWORD).expect_ok();
    let tag = format!("{}/syn1/scrubbed:1", s.host);
    build_image(&images, &tag, "f.txt", &clients::unique("scrubbed"));
    let ids = image_ids(&tag);
    user.push(&tag).expect_ok();
    // Damage the image's own top layer (the base layer is in the local docker store anyway).
    let blob_path = |d: &str| {
        let hex = d.trim_start_matches("sha256:");
        s.dir.path().join("blobs/sha256").join(&hex[..2]).join(hex)
    };
    let manifest_digest = clients::inspect(&tag, "{{index .RepoDigests 0}}");
    let manifest_digest = manifest_digest.rsplit('@').next().expect("digest").to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&manifest_digest)).expect("manifest")).expect("json");
    let digest = manifest["layers"].as_array().and_then(|l| l.last()).expect("layers")["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let mut bytes = std::fs::read(blob_path(&digest)).expect("read blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(blob_path(&digest), bytes).expect("write blob");
    let saved = tempfile::tempdir().expect("save dir");
    let archive = saved.path().join("image.tar").display().to_string();
    clients::run("docker", &["save", "-o", &archive, &tag]).expect_ok();

    let admin = ["admin", "--url", &s.url, "--user", "admin", "--password", ADMIN_PASSWORD];
    let out = stowage(&[&admin[..], &["scrub"]].concat()).expect_ok();
    assert!(out.stdout.contains(&digest), "scrub report names {digest}:\n{}", out.all());

    // A fresh client cannot pull it, and is told why.
    clients::run("docker", &["rmi", "-f", &tag]).expect_ok();
    let out = user.pull(&tag).expect_fail();
    out.expect_contains(&["denied: blob sha256:", "failed its integrity check and is quarantined"]);
    eprintln!("refused pull:\n{}", out.all());

    // The same image, loaded back into docker and pushed again: docker finds the layer missing,
    // uploads it, and the registry is healed.
    clients::run("docker", &["load", "-i", &archive]).expect_ok();
    let out = user.push(&tag).expect_ok();
    assert!(out.stdout.contains("Pushed"), "the damaged layer is uploaded again:\n{}", out.all());
    let out = stowage(&[&admin[..], &["quarantine"]].concat()).expect_ok();
    assert!(out.stdout.contains(r#""blobs": []"#), "healed:\n{}", out.all());
    clients::run("docker", &["rmi", "-f", &tag]).expect_ok();
    user.pull(&tag).expect_ok();
    assert_eq!(image_ids(&tag), ids, "pulled intact after healing");
}
