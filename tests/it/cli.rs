//! `stowage admin ...` against a running server: the commands an operator types, checked through
//! their JSON output and their effect on the registry.

use crate::common::*;
use std::process::Command;

fn admin(s: &TestServer, user: &str, password: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("admin")
        .args(["--url", &s.url, "--user", user, "--password", password])
        .args(args)
        .env_remove("STOWAGE_URL")
        .env_remove("STOWAGE_USER")
        .env_remove("STOWAGE_PASSWORD")
        .output()
        .expect("run stowage admin");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn admin_commands_drive_the_rest_api() {
    let s = TestServer::start();
    let (ok, v, err) = admin(&s, "admin", ADMIN_PASSWORD, &["users", "create", "alice", "--password", "alice-pw-123"]);
    assert!(ok, "{err}");
    assert_eq!((v["username"].as_str(), v["certified"].as_bool()), (Some("alice"), Some(false)));
    let (ok, v, _) = admin(&s, "admin", ADMIN_PASSWORD, &["certify", "alice"]);
    assert!(ok);
    assert_eq!(v["certified"], true);
    let (ok, v, _) = admin(&s, "alice", "alice-pw-123", &["projects", "create", "lab"]);
    assert!(ok);
    assert_eq!((v["id"].as_str(), v["created_by"].as_str()), (Some("syn3"), Some("alice")));
    let (ok, _, _) = admin(&s, "admin", ADMIN_PASSWORD, &["users", "create", "bob", "--password", "bob-pw-1234"]);
    assert!(ok);
    let (ok, v, err) = admin(&s, "alice", "alice-pw-123", &["share", "syn3", "user:bob", "download"]);
    assert!(ok, "{err}");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "the owner's entry is kept: {v}");
    assert!(entries
        .iter()
        .any(|e| e["principal"] == "user:bob" && e["access"] == serde_json::json!(["READ", "DOWNLOAD"])));
    let (ok, _, _) = admin(&s, "alice", "alice-pw-123", &["unshare", "syn3", "user:bob"]);
    assert!(ok);
    let (_, v, _) = admin(&s, "alice", "alice-pw-123", &["acl", "syn3"]);
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    // Refusals come back as a non-zero exit with the server's message.
    let (ok, _, err) = admin(&s, "bob", "bob-pw-1234", &["certify", "bob"]);
    assert!(!ok);
    assert!(
        err.contains("403") && err.contains("only administrators may use PUT /api/v1/users/{username}/certified"),
        "{err}"
    );
    let (ok, _, err) = admin(&s, "alice", "wrong-password", &["projects", "list"]);
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    // Tokens, printed once.
    let (ok, v, _) =
        admin(&s, "alice", "alice-pw-123", &["tokens", "create", "ci", "--scopes", "download", "--days", "1"]);
    assert!(ok);
    assert!(v["token"].as_str().unwrap().starts_with("stw_"));
    assert_eq!(v["scopes"], serde_json::json!(["download"]));
    let (_, list, _) = admin(&s, "alice", "alice-pw-123", &["tokens", "list"]);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert!(list["tokens"][0].get("token").is_none(), "secrets are never listed");
    // Trash and restore a project.
    let (ok, v, _) = admin(&s, "alice", "alice-pw-123", &["trash", "move", "syn3"]);
    assert!(ok);
    assert_eq!(v["id"], "syn3");
    let (_, v, _) = admin(&s, "alice", "alice-pw-123", &["trash", "list"]);
    assert_eq!(v["items"][0]["id"], "syn3");
    let (ok, v, _) = admin(&s, "alice", "alice-pw-123", &["trash", "restore", "syn3"]);
    assert!(ok);
    assert_eq!(v["name"], "lab");
    let (ok, v, _) = admin(&s, "admin", ADMIN_PASSWORD, &["gc"]);
    assert!(ok);
    assert!(v.get("blobs_scanned").is_some(), "{v}");
}

#[test]
fn every_admin_command_has_help() {
    for args in [
        vec!["admin", "--help"],
        vec!["admin", "users", "--help"],
        vec!["admin", "share", "--help"],
        vec!["admin", "tokens", "create", "--help"],
        vec!["admin", "trash", "--help"],
        vec!["serve", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_stowage")).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
}
