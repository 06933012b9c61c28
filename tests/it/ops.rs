//! Operating Stowage through `stowage admin` and REST: project quotas refused with DENIED and
//! accepted just under; scrub finding a flipped byte, refusing the pull and healing on a push;
//! an online backup during pushes restored with `stowage restore` into a new data directory that
//! serves every tag byte-exact. Administrators only, checked for users and for access tokens.

use crate::api_util::*;
use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// Runs the `stowage` binary with `args`; with a server URL, as `stowage admin --url .. --user
/// admin ..`. Returns success, stdout as JSON (Null if not JSON) and stderr.
fn stowage(url: Option<&str>, args: &[&str]) -> (bool, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    if let Some(url) = url {
        cmd.arg("admin").args(["--url", url, "--user", "admin", "--password", ADMIN_PASSWORD]);
    }
    let out = cmd
        .args(args)
        .env_remove("STOWAGE_URL")
        .env_remove("STOWAGE_USER")
        .env_remove("STOWAGE_PASSWORD")
        .output()
        .expect("run stowage");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `stowage admin <args>` against `s`, off the async test runtime.
async fn stowage_async(s: &TestServer, args: &[&str]) -> (bool, Value, String) {
    let (url, args): (String, Vec<String>) = (s.url.clone(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || stowage(Some(&url), &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// A certified user and an admin access token with `view`+`download` only (no `modify`).
async fn refusers(s: &TestServer) -> (reqwest::Client, reqwest::Client) {
    create_user(s, "carol", "carol-password").await;
    let (st, v) = put(&client(), &api(s, "users/carol/certified"), json!({ "certified": true })).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &client(),
        &api(s, "tokens"),
        json!({ "name": "ro", "scopes": ["view", "download"], "expires_in_days": 1 }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    (client_as("carol", "carol-password"), client_as("admin", v["token"].as_str().unwrap()))
}

fn assert_refused(st: u16, v: &Value, want: u16, fragment: &str) {
    assert_eq!(st, want, "{v}");
    let m = v["error"]["message"].as_str().unwrap_or("");
    assert!(m.contains(fragment), "want {fragment:?} in {v}");
}

async fn registry_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("error body");
    (
        status,
        v["errors"][0]["code"].as_str().unwrap_or("").into(),
        v["errors"][0]["message"].as_str().unwrap_or("").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refuses_a_push_over_it_with_denied_and_accepts_one_just_under() {
    let s = TestServer::start();
    let (carol, ro_token) = refusers(&s).await;
    for (c, want, fragment) in [
        (&carol, 403, "only administrators may use PUT /api/v1/projects/{id}/quota"),
        (&ro_token, 403, "lacks the modify scope"),
        (&anonymous(), 401, "log in"),
    ] {
        let (st, v) = put(c, &api(&s, "projects/syn1/quota"), json!({ "bytes": 1 })).await;
        assert_refused(st, &v, want, fragment);
    }
    let (st, v) = put(&client(), &api(&s, "projects/syn1/quota"), json!({ "bytes": -1 })).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = put(&client(), &api(&s, "projects/syn1/quota"), json!({})).await;
    assert_refused(st, &v, 400, "missing field `bytes`");
    let (st, v) = put(&client(), &api(&s, "projects/syn404/quota"), json!({ "bytes": 1 })).await;
    assert_eq!(st, 404, "{v}");

    // 6000 bytes through the command an operator types.
    let (ok, v, err) = stowage_async(&s, &["quota", "set", "syn1", "6000"]).await;
    assert!(ok, "{err}");
    assert_eq!(v, json!({ "project": "syn1", "quota": { "bytes": 6000, "used_bytes": 0 } }));
    let a = vec![b'a'; 3000];
    let b = vec![b'b'; 2500];
    let da = push_blob(&s, "syn1/quota", &a).await;
    let db = push_blob(&s, "syn1/quota", &b).await;
    // 5500 used: a 501-byte blob would pass 6000 and is refused, with the quota named.
    let r = client()
        .post(s.v2(&format!("syn1/quota/blobs/uploads/?digest={}", sha256(&[b'c'; 501]))))
        .body(vec![b'c'; 501])
        .send()
        .await
        .unwrap();
    assert_eq!(
        registry_error(r).await,
        (
            403,
            "DENIED".to_string(),
            "project syn1 is over its storage quota of 6000 bytes: it uses 5500 bytes and this push needs 501 more; purge repositories of the project, or ask an administrator to raise the quota".to_string()
        )
    );
    // A 500-byte one brings it exactly to the quota: accepted.
    let dc = push_blob(&s, "syn1/quota", &[b'c'; 500]).await;
    // At the quota, a new upload is refused before any byte is sent.
    let r = client().post(s.v2("syn1/quota/blobs/uploads/")).send().await.unwrap();
    assert_eq!(
        registry_error(r).await,
        (
            403,
            "DENIED".to_string(),
            "project syn1 has used all of its storage quota of 6000 bytes (6000 bytes used); purge repositories of the project, or ask an administrator to raise the quota".to_string()
        )
    );
    // The manifest's own bytes count too: at the quota, its push is refused the same way.
    let m = image_manifest((&dc, 500), &[(&da, 3000), (&db, 2500)], None);
    let r = client()
        .put(s.v2("syn1/quota/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .unwrap();
    let (st, code, msg) = registry_error(r).await;
    assert_eq!((st, code.as_str()), (403, "DENIED"));
    assert!(msg.contains(&format!("it uses 6000 bytes and this push needs {} more", m.len())), "{msg}");
    let (st, v) = get(&client(), &api(&s, "projects/syn1/usage")).await;
    assert_eq!(st, 200);
    assert_eq!((v["logical_bytes"].as_u64(), &v["quota"]), (Some(6000), &json!({ "bytes": 6000, "used_bytes": 6000 })));
    // Raised: the manifest goes in. Cleared: no quota.
    let (ok, _, err) = stowage_async(&s, &["quota", "set", "syn1", &(6000 + m.len()).to_string()]).await;
    assert!(ok, "{err}");
    let r = client()
        .put(s.v2("syn1/quota/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (ok, v, err) = stowage_async(&s, &["quota", "clear", "syn1"]).await;
    assert!(ok, "{err}");
    assert_eq!(v["quota"], Value::Null);
    let (ok, v, _) = stowage_async(&s, &["quota", "show", "syn1"]).await;
    assert!(ok);
    assert_eq!(v["quota"], Value::Null);
}

/// Flips one byte in the middle of the stored file of `digest` under `data_dir`.
fn flip_byte(data_dir: &Path, digest: &str) {
    let hex = digest.trim_start_matches("sha256:");
    let path = data_dir.join("blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = anonymous().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_quarantines_a_flipped_byte_refuses_the_pull_and_a_push_heals_it() {
    let s = TestServer::start();
    let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (manifest_digest, manifest) = push_image(&s, "syn1/scrubbed", "v1", &layer).await;
    let dl = sha256(&layer);
    flip_byte(s.dir.path(), &dl);

    let (carol, ro_token) = refusers(&s).await;
    for c in [&carol, &ro_token] {
        let (st, v) = post(c, &api(&s, "admin/scrub"), json!({})).await;
        assert_eq!(st, 403, "{v}");
    }
    let (st, v) = get(&carol, &api(&s, "admin/quarantine")).await;
    assert_refused(st, &v, 403, "only administrators");

    let (ok, report, err) = stowage_async(&s, &["scrub"]).await;
    assert!(ok, "{err}");
    assert_eq!(report["quarantined"], json!([dl]));
    assert_eq!(report["blobs_checked"], 3, "config, layer and manifest: {report}");
    let (ok, list, err) = stowage_async(&s, &["quarantine"]).await;
    assert!(ok, "{err}");
    let blobs = list["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 1);
    assert_eq!((&blobs[0]["digest"], &blobs[0]["size"]), (&json!(dl), &json!(layer.len())));
    assert!(blobs[0]["reason"].as_str().unwrap().starts_with("content hashes to sha256:"), "{list}");
    assert_eq!(metric(&s, "stowage_quarantined_blobs").await, 1);
    assert_eq!(metric(&s, "stowage_scrub_quarantined_total").await, 1);
    assert_eq!(metric(&s, "stowage_scrub_runs_total").await, 1);

    // The pull is refused with a clear error, never bad bytes.
    let want = (
        403,
        "DENIED".to_string(),
        format!("blob {dl} failed its integrity check and is quarantined; push the same content again to restore it"),
    );
    let r = client().get(s.v2(&format!("syn1/scrubbed/blobs/{dl}"))).send().await.unwrap();
    assert_eq!(registry_error(r).await, want);
    let r = client().head(s.v2(&format!("syn1/scrubbed/blobs/{dl}"))).send().await.unwrap();
    assert_eq!(r.status(), 404, "HEAD says it is missing, so a docker push uploads it again");

    // Pushing the same layer heals it.
    push_blob(&s, "syn1/scrubbed", &layer).await;
    let r = client().get(s.v2(&format!("syn1/scrubbed/blobs/{dl}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap()[..] == layer[..], "healed blob pulls byte-exact");
    let (_, list, _) = stowage_async(&s, &["quarantine"]).await;
    assert_eq!(list, json!({ "blobs": [] }));
    assert_eq!(metric(&s, "stowage_quarantined_blobs").await, 0);

    // A damaged manifest: MANIFEST_UNKNOWN with the reason, healed by pushing it again.
    flip_byte(s.dir.path(), &manifest_digest);
    let (st, report) = post(&client(), &api(&s, "admin/scrub"), json!({})).await;
    assert_eq!((st, &report["quarantined"]), (200, &json!([manifest_digest])));
    for reference in ["v1", manifest_digest.as_str()] {
        let r = client()
            .get(s.v2(&format!("syn1/scrubbed/manifests/{reference}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        let (st, code, msg) = registry_error(r).await;
        assert_eq!((st, code.as_str()), (404, "MANIFEST_UNKNOWN"));
        assert!(msg.contains("failed its integrity check and is quarantined; push it again"), "{msg}");
    }
    let r = client()
        .put(s.v2("syn1/scrubbed/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .get(s.v2("syn1/scrubbed/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_pushes_restores_into_a_registry_that_serves_every_tag() {
    let s = TestServer::start();
    let mut images = Vec::new();
    for i in 0..6u32 {
        let layer: Vec<u8> = (0..20_000 + i * 1000).map(|j| (j * (i + 3)) as u8).collect();
        let name = format!("syn1/app{i}");
        let (_, manifest) = push_image(&s, &name, "v1", &layer).await;
        images.push((name, "v1".to_string(), manifest, layer));
    }
    let (carol, ro_token) = refusers(&s).await;
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("stowage-backup");
    let dest_s = dest.to_str().unwrap().to_string();
    for (c, fragment) in [(&carol, "only administrators"), (&ro_token, "lacks the modify scope")] {
        let (st, v) = post(c, &api(&s, "admin/backup"), json!({ "dest": dest_s })).await;
        assert_refused(st, &v, 403, fragment);
    }
    for (bad, fragment) in [
        (json!({ "dest": "relative/dir" }), "must be an absolute path"),
        (json!({ "dest": s.dir.path().join("b") }), "must be outside the data directory"),
        (json!({ "dest": "" }), "dest must be an absolute directory path"),
        (json!({ "dest": 5 }), "request body"),
        (json!({ "dest": "/x", "extra": 1 }), "request body"),
    ] {
        let (st, v) = post(&client(), &api(&s, "admin/backup"), bad).await;
        assert_refused(st, &v, 400, fragment);
    }
    assert!(!dest.exists());

    // More pushes while the backup runs.
    let pushing = {
        let url = s.url.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..12u32 {
                let layer: Vec<u8> = (0..30_000u32).map(|j| (j ^ (i * 7919)) as u8).collect();
                let name = format!("syn1/during{i}");
                let config = br#"{"architecture":"amd64","os":"linux"}"#;
                let mut digests = Vec::new();
                for blob in [&config[..], &layer[..]] {
                    let d = sha256(blob);
                    let r = client()
                        .post(format!("{url}/v2/{name}/blobs/uploads/?digest={d}"))
                        .body(blob.to_vec())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    digests.push(d);
                }
                let m = image_manifest((&digests[0], config.len()), &[(&digests[1], layer.len())], None);
                let r = client()
                    .put(format!("{url}/v2/{name}/manifests/v1"))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(m.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                acked.push((name, "v1".to_string(), m, layer));
            }
            acked
        })
    };
    let (ok, report, err) = stowage_async(&s, &["backup", &dest_s]).await;
    assert!(ok, "{err}");
    let during = pushing.await.unwrap();
    assert_eq!(report["dest"], json!(dest_s));
    // One shared config, six layers and six manifests, plus whatever the pushes had finished.
    let pushed_before = 13;
    assert!(report["blobs"].as_u64().unwrap() >= pushed_before, "{report}");
    // The same filesystem: hard links.
    assert_eq!(report["blobs_linked"], report["blobs"], "{report}");

    // A second run is incremental: what is there already is not transferred again.
    let (ok, again, err) = stowage_async(&s, &["backup", &dest_s]).await;
    assert!(ok, "{err}");
    assert_eq!(again["blobs_present"], report["blobs"], "{again}");
    let total = again["blobs"].as_u64().unwrap();
    assert_eq!(again["blobs_linked"].as_u64().unwrap(), total - report["blobs"].as_u64().unwrap());

    // Wipe the registry, restore into a new data directory, serve it.
    let data = s.stop();
    drop(data);
    let restored_dir = tempfile::tempdir().unwrap();
    let target = restored_dir.path().to_str().unwrap().to_string();
    let (ok, v, err) =
        tokio::task::spawn_blocking(move || stowage(None, &["restore", &dest_s, "--data-dir", &target])).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(v["blobs"].as_u64(), Some(total), "{v}");
    let r = TestServer::start_in(restored_dir, |_| {});
    // Every tag of the second backup pulls byte-exact: those pushed before it and during the first.
    for (name, tag, manifest, layer) in images.iter().chain(during.iter()) {
        let resp = client()
            .get(r.v2(&format!("{name}/manifests/{tag}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}:{tag}");
        assert_eq!(resp.bytes().await.unwrap().to_vec(), *manifest, "{name}:{tag} manifest");
        let resp = client().get(r.v2(&format!("{name}/blobs/{}", sha256(layer)))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.unwrap()[..] == layer[..], "{name} layer");
    }
    // And every blob verifies: a scrub of the restored store finds nothing.
    let (st, v) = post(&client(), &api(&r, "admin/scrub"), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!((v["blobs_checked"].as_u64(), &v["quarantined"]), (Some(total), &json!([])));
    // Restoring over a non-empty directory is refused.
    let (ok, _, err) =
        stowage(None, &["restore", dest.to_str().unwrap(), "--data-dir", r.dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is not empty; restore into a new or empty directory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_scrub_runs_on_its_schedule() {
    let s = TestServer::start_with(|st| {
        st.scrub_interval = Some(std::time::Duration::from_millis(300));
        st.scrub_bytes_per_s = 0;
    });
    let layer = b"scheduled scrub layer".repeat(100);
    push_image(&s, "syn1/scheduled", "v1", &layer).await;
    let dl = sha256(&layer);
    flip_byte(s.dir.path(), &dl);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (st, v) = get(&client(), &api(&s, "admin/quarantine")).await;
        assert_eq!(st, 200);
        // The record appears during the run; the run counter when it has finished.
        if v["blobs"].as_array().is_some_and(|b| !b.is_empty()) && metric(&s, "stowage_scrub_runs_total").await >= 1 {
            assert_eq!(v["blobs"][0]["digest"], json!(dl));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no finished background scrub within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let last = metric(&s, "stowage_scrub_last_finished_timestamp_seconds").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(last) < 60, "last scrub at {last}, now {now}");
}

#[test]
fn serve_refuses_an_index_written_by_a_newer_stowage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = stowage_engine::Engine::open(stowage_engine::EngineConfig::new(dir.path())).unwrap();
        engine
            .catalog()
            .put(stowage_engine::index::Tree::Meta, b"format_version", &(stowage_engine::format::INDEX_FORMAT + 1))
            .unwrap();
    }
    let data_dir = dir.path().to_str().unwrap();
    let (ok, _, err) = stowage(None, &["serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    let want = format!(
        "the index in {data_dir}/index has format version {}, but this Stowage reads versions up to {}; run the newer Stowage that wrote it, or restore a backup made by this version",
        stowage_engine::format::INDEX_FORMAT + 1,
        stowage_engine::format::INDEX_FORMAT
    );
    assert!(err.contains(&want), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_only_below_the_configured_root() {
    let backups = tempfile::tempdir().unwrap();
    let root = backups.path().join("allowed");
    let r2 = root.clone();
    let s = TestServer::start_with(move |st| st.backup_root = Some(r2));
    let elsewhere = backups.path().join("elsewhere");
    let (st, v) = post(&client(), &api(&s, "admin/backup"), json!({ "dest": elsewhere })).await;
    assert_refused(
        st,
        &v,
        403,
        &format!("backups may only go into {} (backup.root in the server's config)", root.display()),
    );
    assert!(!elsewhere.exists());
    let (st, v) = post(&client(), &api(&s, "admin/backup"), json!({ "dest": root.join("nightly") })).await;
    assert_eq!(st, 200, "{v}");
    assert!(root.join("nightly/index.snapshot").is_file());
}
