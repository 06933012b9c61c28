//! TLS for the listener: rustls (ring provider) with HTTP/2 offered by ALPN and HTTP/1.1
//! otherwise. The certificate lives behind [`CertResolver`], which every new handshake asks;
//! reloading swaps the `Arc` it hands out, so connections already open keep the certificate they
//! were made with and nothing is dropped. [`watch`] reloads on SIGHUP and when the files change
//! (their size, modification time or inode, polled: two `stat`s per interval).
//!
//! A reload that fails (a half-written file, a key that does not match) keeps the certificate in
//! use and says so in the log; start-up with a bad certificate is an error. File reads happen on
//! blocking threads, never on the reactor.

use crate::config::TlsFiles;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Largest certificate chain or key file read: real ones are a few KiB.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What identifies one version of the two files: (size, mtime, inode) of each.
type Stamp = [(u64, Option<SystemTime>, u64); 2];

/// Hands every new handshake the current certificate.
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The stamp of the files `current` was read from.
    loaded: Mutex<Option<Stamp>>,
    /// The stamp of files that failed to load (`Some(None)`: they were missing), so a poll does
    /// not retry (and log) the same files again.
    failed: Mutex<Option<Option<Stamp>>>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

impl CertResolver {
    /// Reads the certificate and key (blocking); an unusable pair is an error naming the file.
    pub fn load(files: &TlsFiles) -> anyhow::Result<CertResolver> {
        let stamp = stamp(files);
        let key = read_pair(files)?;
        Ok(CertResolver {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new(stamp),
            failed: Mutex::new(None),
        })
    }

    /// Rereads the files (blocking) if `force` or if they changed since the last load. Returns
    /// whether a new certificate is now served.
    pub fn reload(&self, force: bool) -> anyhow::Result<bool> {
        let now = stamp(&self.files);
        let unchanged = now.is_some() && now == *self.loaded.lock();
        if !force && (unchanged || self.failed.lock().as_ref() == Some(&now)) {
            return Ok(false);
        }
        let key = read_pair(&self.files).inspect_err(|_| *self.failed.lock() = Some(now))?;
        *self.failed.lock() = None;
        *self.current.write() = Arc::new(key);
        *self.loaded.lock() = now;
        Ok(true)
    }

    /// The end-entity certificate served now (DER).
    pub fn current_leaf(&self) -> Vec<u8> {
        self.current.read().cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok(), m.ino()));
    Some([one(&files.cert)?, one(&files.key)?])
}

fn read_bounded(what: &str, p: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| anyhow::anyhow!("cannot open the TLS {what} {}: {e}", p.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS {what} {}: {e}", p.display()))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        anyhow::bail!("the TLS {what} {} is larger than 1 MiB; is it the right file?", p.display());
    }
    Ok(buf)
}

/// Parses the chain and the key and checks that they belong together.
fn read_pair(files: &TlsFiles) -> anyhow::Result<CertifiedKey> {
    let pem = read_bounded("certificate", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "{}: no CERTIFICATE in it; give the server certificate then its chain, in PEM",
            files.cert.display()
        );
    }
    let pem = read_bounded("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("{}: no PEM private key in it: {e}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        anyhow::anyhow!("{} and {} do not make a usable pair: {e}", files.cert.display(), files.key.display())
    })
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The server configuration: TLS 1.2 and 1.3, no client certificates, `h2` then `http/1.1` by ALPN.
pub fn server_config(resolver: Arc<CertResolver>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Reloads the certificate on SIGHUP (always) and when the files change (checked every
/// `poll`, if given), until the task is aborted. The SIGHUP handler is installed before this
/// returns.
pub fn watch(
    resolver: Arc<CertResolver>,
    poll: Option<Duration>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))?;
    Ok(async move {
        // Without polling the timer never fires (an hour is as good as never, and keeps one code path).
        let mut tick = tokio::time::interval(poll.unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                _ = hup.recv() => "SIGHUP",
                _ = tick.tick(), if poll.is_some() => "file change",
            };
            let r = resolver.clone();
            let force = trigger == "SIGHUP";
            match tokio::task::spawn_blocking(move || r.reload(force)).await {
                Ok(Ok(true)) => tracing::info!(trigger, "TLS certificate reloaded; new connections get it"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::error!(trigger, error = %format!("{e:#}"), "TLS certificate reload failed; still serving the previous one")
                }
                Err(e) => tracing::error!(error = %e, "TLS certificate reload task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_follows_changes_and_reports_a_bad_pair_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        crate::certs::init(&a, &["localhost".to_string()]).unwrap();
        crate::certs::init(&b, &["localhost".to_string()]).unwrap();
        let files = TlsFiles { cert: dir.path().join("live.crt"), key: dir.path().join("live.key") };
        let put = |from: &Path| {
            for (src, dst) in [("server.crt", &files.cert), ("server.key", &files.key)] {
                std::fs::copy(from.join(src), dst.with_extension("new")).unwrap();
                std::fs::rename(dst.with_extension("new"), dst).unwrap();
            }
        };
        put(&a);
        let r = CertResolver::load(&files).unwrap();
        let leaf_a = r.current_leaf();
        assert!(!r.reload(false).unwrap(), "unchanged files are not reread");
        put(&b);
        assert!(r.reload(false).unwrap());
        assert_ne!(r.current_leaf(), leaf_a);
        // Missing files: one error, then quiet until they change; the old pair stays.
        std::fs::remove_file(&files.key).unwrap();
        let e = r.reload(false).unwrap_err().to_string();
        assert!(e.starts_with("cannot open the TLS key"), "{e}");
        assert!(!r.reload(false).unwrap(), "the same failure is not retried by a poll");
        assert!(r.reload(true).is_err(), "SIGHUP always retries");
        put(&a);
        assert!(r.reload(false).unwrap());
        assert_eq!(r.current_leaf(), leaf_a);
    }
}
