//! The registry daemon with the real Docker CLI: login, build, push, pull by tag and digest,
//! cross-repository mount of a shared base layer.

use crate::clients::{self, build_image, image_ids, pushed_digest, DockerImages, DockerUser};
use crate::common::{TestServer, ADMIN_PASSWORD};

#[test]
#[ignore = "real client: needs docker; tests/run installs it and runs these"]
fn docker_push_pull_by_tag_and_digest_and_mount_shared_base() {
    clients::require("docker");
    let s = TestServer::start();
    let images = DockerImages::default();
    let admin = DockerUser::new();
    admin.login(&s.host, "admin", ADMIN_PASSWORD).expect_ok().expect_contains(&["Login Succeeded"]);

    let (_, base_layers) = image_ids(&clients::base_image());
    assert!(!base_layers.is_empty(), "base image has layers");

    // Build and push app:1.
    let app = format!("{}/syn1/app:1", s.host);
    build_image(&images, &app, "app.txt", &clients::unique("app"));
    let (app_id, app_layers) = image_ids(&app);
    assert_eq!(app_layers.len(), base_layers.len() + 1, "one layer on top of the base");
    assert_eq!(&app_layers[..base_layers.len()], &base_layers[..], "app is built on the base");
    let out = admin.push(&app).expect_ok();
    let digest = pushed_digest(&out);
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "digest {digest}");
    assert!(out.stdout.contains("1: digest: sha256:"), "push output:\n{}", out.all());

    // Remove it locally, pull by tag.
    clients::run("docker", &["rmi", "-f", &app]).expect_ok();
    let out = admin.pull(&app).expect_ok();
    out.expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(image_ids(&app), (app_id.clone(), app_layers.clone()), "pulled by tag: same config and layers");
    let repo_digests = clients::inspect(&app, "{{json .RepoDigests}}");
    assert!(repo_digests.contains(&format!("{}/syn1/app@{digest}", s.host)), "RepoDigests {repo_digests}");

    // Remove it again, pull by digest.
    clients::run("docker", &["rmi", "-f", &app]).expect_ok();
    let by_digest = format!("{}/syn1/app@{digest}", s.host);
    images.track(&by_digest);
    let out = admin.pull(&by_digest).expect_ok();
    out.expect_contains(&[&format!("Digest: {digest}")]);
    assert_eq!(image_ids(&by_digest), (app_id.clone(), app_layers.clone()), "pulled by digest: same config and layers");

    // A second image on the same base, in another repository: the base layer is not uploaded again.
    let app2 = format!("{}/syn1/app2:1", s.host);
    build_image(&images, &app2, "app2.txt", &clients::unique("app2"));
    let (_, app2_layers) = image_ids(&app2);
    assert_eq!(&app2_layers[..base_layers.len()], &base_layers[..]);
    let out = admin.push(&app2).expect_ok();
    eprintln!("second push:\n{}", out.all());
    let digest2 = pushed_digest(&out);
    assert_ne!(digest2, digest);
    for layer in &base_layers {
        let short = &layer.trim_start_matches("sha256:")[..12];
        let line = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with(short))
            .unwrap_or_else(|| panic!("no progress line for base layer {short} in push output:\n{}", out.all()));
        assert!(
            line.contains("Mounted from syn1/app") || line.contains("Layer already exists"),
            "base layer {short} was uploaded again: {line:?}\npush output:\n{}",
            out.all()
        );
    }
    // The new top layer was really pushed.
    let top = &app2_layers.last().expect("layer").trim_start_matches("sha256:")[..12];
    let line = out.stdout.lines().rev().find(|l| l.starts_with(top)).expect("top layer line");
    assert!(line.contains("Pushed"), "top layer: {line:?}\n{}", out.all());

    // And app2 pulls back intact.
    clients::run("docker", &["rmi", "-f", &app2]).expect_ok();
    admin.pull(&app2).expect_ok().expect_contains(&[&format!("Digest: {digest2}")]);
    assert_eq!(image_ids(&app2).1, app2_layers);
}
