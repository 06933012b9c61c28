//! `stowage certs init`: certificates for a site without a PKI. Makes a local certificate
//! authority and a server certificate it signs for the given names and addresses (rcgen, ECDSA
//! P-256), writes `ca.crt`, `ca.key`, `server.crt`, `server.key` (keys mode 0600, created new so
//! an existing file is never replaced) and says where clients look for the CA.
//!
//! It never overwrites a file: when any of the four exists it refuses before writing anything.

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The files `init` writes, in `dir`.
pub const FILES: [&str; 4] = ["ca.crt", "ca.key", "server.crt", "server.key"];
/// The CA is valid for ten years, the server certificate for 825 days (the longest some clients
/// accept for a server certificate).
const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 825;

/// What `init` made.
pub struct Made {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Makes the CA and the server certificate for `hosts` (DNS names or IP addresses) in `dir`.
pub fn init(dir: &Path, hosts: &[String]) -> anyhow::Result<Made> {
    if hosts.is_empty() {
        anyhow::bail!("give at least one --host: the name or address clients use to reach the registry");
    }
    for h in hosts {
        if h.is_empty() || h.len() > 253 || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:*".contains(&b)) {
            anyhow::bail!("--host {h:?} is neither a DNS name nor an IP address");
        }
    }
    for f in FILES {
        let p = dir.join(f);
        if p.symlink_metadata().is_ok() {
            anyhow::bail!(
                "{} already exists; stowage certs init never overwrites certificates or keys: \
                 move the old files away or choose another --dir",
                p.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Stowage local CA");
    ca.distinguished_name.push(DnType::OrganizationName, "Stowage");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(CA_DAYS);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    // Names that parse as IP addresses become IP subject alternative names.
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now - time::Duration::hours(1);
    server.not_after = now + time::Duration::days(SERVER_DAYS);
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    // Keys first: if one cannot be written, no certificate claims a key that is not there.
    write_new(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join("server.key"), server_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join("ca.crt"), ca_cert.pem().as_bytes(), 0o644)?;
    write_new(&dir.join("server.crt"), server_cert.pem().as_bytes(), 0o644)?;
    Ok(Made { ca_cert: dir.join("ca.crt"), server_cert: dir.join("server.crt"), server_key: dir.join("server.key") })
}

/// Creates `p` (failing if it exists) with `mode`, writes `data` and syncs it.
fn write_new(p: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .with_context(|| format!("cannot create {}", p.display()))?;
    f.write_all(data).and_then(|_| f.sync_all()).with_context(|| format!("cannot write {}", p.display()))
}

/// What to tell the operator after `init`: the config lines and where each client wants the CA.
pub fn instructions(made: &Made, hosts: &[String], port: u16) -> String {
    let ca = made.ca_cert.display();
    let mut s = format!(
        "Made a local CA and a server certificate for {}.\n\n\
         Serve with them (config.toml):\n  [server]\n  tls_cert = \"{}\"\n  tls_key = \"{}\"\n\
         or: stowage serve --tls-cert {} --tls-key {}\n\n\
         Give clients {ca} (never ca.key, which stays offline or in this directory, mode 0600):\n",
        hosts.join(", "),
        made.server_cert.display(),
        made.server_key.display(),
        made.server_cert.display(),
        made.server_key.display(),
    );
    for h in hosts {
        // Clients name the port in the directory unless it is 443.
        let hp = match (port, h.contains(':')) {
            (443, _) => h.clone(),
            (_, true) => format!("[{h}]:{port}"),
            (_, false) => format!("{h}:{port}"),
        };
        s.push_str(&format!(
            "  docker: /etc/docker/certs.d/{hp}/ca.crt\n  podman, skopeo, buildah: /etc/containers/certs.d/{hp}/ca.crt\n"
        ));
    }
    s.push_str(&format!(
        "  system trust store (curl, the stowage admin command):\n    \
         Debian/Ubuntu: cp {ca} /usr/local/share/ca-certificates/stowage-ca.crt && update-ca-certificates\n    \
         RHEL/Fedora:   cp {ca} /etc/pki/ca-trust/source/anchors/stowage-ca.crt && update-ca-trust\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_makes_a_chain_that_verifies_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["registry.test".to_string(), "127.0.0.1".to_string()];
        let made = init(dir.path(), &hosts).unwrap();
        for (f, mode) in [("ca.key", 0o600), ("server.key", 0o600), ("ca.crt", 0o644), ("server.crt", 0o644)] {
            let m = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode, "{f}");
        }
        // The server pair loads as the daemon loads it, and the chain verifies for both names.
        let files = crate::config::TlsFiles { cert: made.server_cert.clone(), key: made.server_key.clone() };
        let resolver = crate::tls::CertResolver::load(&files).unwrap();
        let leaf = rustls::pki_types::CertificateDer::from(resolver.current_leaf());
        let ca_pem = std::fs::read(&made.ca_cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(&ca_pem).unwrap()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        for name in ["registry.test", "127.0.0.1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier.verify_server_cert(&leaf, &[], &sn, &[], now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("other.test").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
        // A second run refuses and leaves the keys alone.
        let key_before = std::fs::read(dir.path().join("ca.key")).unwrap();
        let e = init(dir.path(), &hosts).err().unwrap().to_string();
        assert!(e.ends_with("ca.crt already exists; stowage certs init never overwrites certificates or keys: move the old files away or choose another --dir"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), key_before);
        let text = instructions(&made, &hosts, 5443);
        assert!(text.contains("/etc/docker/certs.d/registry.test:5443/ca.crt"), "{text}");
        assert!(text.contains("/etc/containers/certs.d/127.0.0.1:5443/ca.crt"), "{text}");
        assert!(init(dir.path(), &["bad host".to_string()]).is_err());
    }
}
