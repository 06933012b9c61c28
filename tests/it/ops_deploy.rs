//! What the Debian package installs: the systemd unit passes `systemd-analyze verify` and keeps
//! its hardening, and the packaged `/etc/stowage/config.toml` parses into valid settings.

use std::process::Command;

const UNIT: &str = include_str!("../../deploy/stowage.service");

/// Runs `systemd-analyze verify` on `unit` (its ExecStart pointed at the binary under test, which
/// is what the package installs as /usr/bin/stowage). Returns (success, stderr).
fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stowage.service");
    let unit = unit.replace("ExecStart=/usr/bin/stowage ", &format!("ExecStart={} ", env!("CARGO_BIN_EXE_stowage")));
    std::fs::write(&path, unit).unwrap();
    // --man=no: no man page lookups (Documentation= names the packaged README, not a man page).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd; tests/run installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let (ok, err) = verify(UNIT);
    assert!(ok && err.trim().is_empty(), "systemd-analyze verify: {err}");
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "User=stowage",
        "StateDirectory=stowage",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/stowage serve --config /etc/stowage/config.toml --data-dir /var/lib/stowage",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "the unit lacks {line}");
    }
    // The check can fail: a misspelt option is reported.
    let (_, err) = verify(&UNIT.replace("ProtectSystem=strict", "ProtectSystm=strict"));
    assert!(err.contains("Unknown key 'ProtectSystm'"), "{err}");
}

#[test]
fn the_packaged_config_parses_and_matches_the_unit() {
    let text = include_str!("../../deploy/config.toml");
    let s = stowage::config::Config::parse(text).unwrap().validate().unwrap();
    assert_eq!(s.listen.to_string(), "0.0.0.0:5000");
    assert_eq!(s.engine.data_dir, std::path::Path::new("/var/lib/stowage"));
    assert!(s.tls.is_none(), "TLS is the operator's choice: commented out until certificates exist");
    assert!(text.contains("# tls_cert = \"/etc/stowage/tls/server.crt\""), "the TLS lines are there to uncomment");
}
