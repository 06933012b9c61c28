//! Configuration: `config.toml` (every key optional, defaults embedded) -> [`Config::load`] ->
//! `validate()` -> [`Settings`], the checked values the server runs with. Tests build `Settings`
//! in code with [`Settings::for_data_dir`].

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stowage_engine::io::IoChoice;

/// The file format. Unknown keys are errors, so a typo never silently falls back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub scrub: ScrubConfig,
    #[serde(default)]
    pub backup: BackupConfig,
}

/// Where `stowage admin backup` may write.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Backups go only into this directory or below it (an absolute path), so a registry
    /// administrator cannot make the server write anywhere else on the host. Default unset:
    /// any absolute path outside the data directory.
    pub root: Option<PathBuf>,
}

/// The background scrub: re-reads every blob and quarantines damaged ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// Time between the end of one background scrub and the start of the next; `0s` turns the
    /// background scrub off (`stowage admin scrub` still works). Default `7d`.
    pub interval: String,
    /// Read rate limit in MB/s (10^6 bytes), so a scrub never starves pushes and pulls of disk
    /// bandwidth; 0 means unlimited. Default 50.
    pub rate_mb_per_s: u64,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig { interval: "7d".into(), rate_mb_per_s: 50 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The `service` named in token challenges and the audience of tokens. Default `stowage`.
    pub service: String,
    /// Lifetime of registry tokens. Default `15m`.
    pub token_ttl: String,
    /// Let anyone create an account with `POST /api/v1/users`. Default `false`.
    pub self_registration: bool,
    /// Lifetime of OAuth2 refresh tokens (`POST /v2/token`). Default `7d`.
    pub refresh_token_ttl: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service: "stowage".into(),
            token_ttl: "15m".into(),
            self_registration: false,
            refresh_token_ttl: "7d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:5000`.
    pub listen: String,
    /// Public URL clients reach the registry at (token realm, absolute links), e.g.
    /// `https://registry.example.org` behind a reverse proxy. Default: none, the URL is taken
    /// from each request (`https` when TLS is on, the `Host` header, and the forwarded
    /// protocol and host of a request from a trusted proxy).
    pub public_url: Option<String>,
    /// PEM file with the server certificate followed by its chain. Together with `tls_key`
    /// turns TLS on (HTTP/2 by ALPN, HTTP/1.1 otherwise); reread on SIGHUP and when the file
    /// changes. Default: none (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Default: none.
    pub tls_key: Option<PathBuf>,
    /// How often the TLS files are checked for a change (size, modification time, inode);
    /// `"0s"` turns the check off, leaving SIGHUP. Default `2s`.
    pub tls_reload_interval: String,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`, `fd00::/8`) of reverse proxies whose
    /// `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers are believed. From any
    /// other peer these headers are ignored. Default: none.
    pub trusted_proxies: Vec<String>,
    /// Largest manifest accepted. Default `4MiB`.
    pub max_manifest_size: String,
    /// Largest total of request headers. Default `64KiB`.
    pub max_header_size: String,
    /// Time a connection has to deliver a complete request head, counted from its opening (which
    /// covers telling HTTP/1 from HTTP/2 and the HTTP/2 preface) and, on an idle HTTP/1
    /// keep-alive connection, from the first byte of the next head. The connection is closed
    /// when it passes. Default `10s`.
    pub header_timeout: String,
    /// A connection with no request in flight for this long is shut down gracefully (HTTP/1
    /// keep-alive and HTTP/2 alike). Default `120s`.
    pub idle_timeout: String,
    /// How often an HTTP/2 connection is pinged to check that the peer is still there; `"0s"`
    /// turns pings off. Default `30s`.
    pub http2_keepalive_interval: String,
    /// An HTTP/2 connection whose peer does not answer a ping within this long is closed.
    /// Default `20s`.
    pub http2_keepalive_timeout: String,
    /// Most open connections overall; more are accepted and closed at once. Default `4096`.
    pub max_connections: usize,
    /// Most open connections from one client address (IPv6: one /64); more are accepted and
    /// closed at once. Default `256`.
    pub max_connections_per_ip: usize,
    /// Time allowed for the whole body of a REST, token or manifest request, which are small.
    /// A body whose size limit would take longer at `upload_min_rate` gets that long instead.
    /// Default `10s`.
    pub small_body_timeout: String,
    /// Longest pause between two pieces of a request body before the request is dropped.
    /// Default `60s`.
    pub body_idle_timeout: String,
    /// Slowest average rate, per second, at which an upload body may arrive, measured over each
    /// `upload_min_rate_period` of waiting for the client; a slower body is ended, keeping what
    /// arrived, and the upload stays resumable. `"0"` turns the check off. Default `16KiB`.
    pub upload_min_rate: String,
    /// The period over which `upload_min_rate` is averaged. Default `30s`.
    pub upload_min_rate_period: String,
    /// How long shutdown waits for in-flight requests. Default `30s`.
    pub shutdown_grace: String,
    /// Most entries one tag or catalog page returns. Default `1000`.
    pub max_page_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:5000".into(),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_interval: "2s".into(),
            trusted_proxies: Vec::new(),
            max_manifest_size: "4MiB".into(),
            max_header_size: "64KiB".into(),
            header_timeout: "10s".into(),
            idle_timeout: "120s".into(),
            http2_keepalive_interval: "30s".into(),
            http2_keepalive_timeout: "20s".into(),
            max_connections: 4096,
            max_connections_per_ip: 256,
            small_body_timeout: "10s".into(),
            body_idle_timeout: "60s".into(),
            upload_min_rate: "16KiB".into(),
            upload_min_rate_period: "30s".into(),
            shutdown_grace: "30s".into(),
            max_page_size: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for blobs, uploads, the index and keys. Default `./data`.
    pub data_dir: PathBuf,
    /// `auto` (io_uring if the kernel allows it, else plain files), `io_uring` or `std_fs`.
    /// Default `auto`.
    pub io: IoChoice,
    /// Largest blob (image layer) accepted. Default `100GB`.
    pub max_blob_size: String,
    /// Idle uploads are removed after this long. Default `24h`.
    pub upload_ttl: String,
    /// Blobs younger than this are never garbage collected. Default `1h`.
    pub gc_grace: String,
    /// Index page cache. Default `256MiB`.
    pub index_cache: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            io: IoChoice::Auto,
            max_blob_size: "100GB".into(),
            upload_ttl: "24h".into(),
            gc_grace: "1h".into(),
            index_cache: "256MiB".into(),
        }
    }
}

/// Where the TLS certificate chain and key are read from (and reread on change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Checked settings the server runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    /// `(certificate chain, key)` PEM files: TLS on.
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are checked for a change; `None`: only on SIGHUP.
    pub tls_reload_poll: Option<Duration>,
    pub trusted_proxies: Vec<crate::public_url::Network>,
    pub max_manifest_bytes: usize,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// `None`: no HTTP/2 pings.
    pub http2_keepalive_interval: Option<Duration>,
    pub http2_keepalive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub small_body_timeout: Duration,
    pub body_idle_timeout: Duration,
    /// Bytes per second; 0 turns the check off.
    pub upload_min_rate: u64,
    pub upload_min_rate_period: Duration,
    pub shutdown_grace: Duration,
    pub max_page_size: usize,
    pub engine: stowage_engine::EngineConfig,
    pub service: String,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub self_registration: bool,
    /// Password of the `admin` user made on first start (else `STOWAGE_ADMIN_PASSWORD`, else a
    /// generated one written once to a mode 0600 file in the data directory). Not in the config
    /// file: set it in code or the environment. At least
    /// [`crate::bootstrap::MIN_ADMIN_PASSWORD_CHARS`] characters.
    pub admin_password: Option<String>,
    /// `None`: no background scrub.
    pub scrub_interval: Option<Duration>,
    /// Scrub read rate in bytes per second; 0: unlimited.
    pub scrub_bytes_per_s: u64,
    /// Backups only below this directory (`None`: anywhere outside the data directory).
    pub backup_root: Option<PathBuf>,
    /// Oldest a cached authorization decision may be: bounds how late a token's expiry is
    /// noticed (writes invalidate at once, whatever this is). Not in the config file: 1 s; tests
    /// lengthen it to tell invalidation from ageing.
    pub decision_max_age: Duration,
}

impl Settings {
    /// Defaults with data in `dir`: what tests and a config-less start use.
    pub fn for_data_dir(dir: &Path) -> Settings {
        let mut cfg = Config::default();
        cfg.storage.data_dir = dir.to_path_buf();
        // The defaults are valid by construction; a failure here is a bug caught by tests.
        cfg.validate().unwrap_or_else(|e| panic!("embedded defaults are invalid: {e}"))
    }
}

impl Config {
    /// Reads a TOML file. A missing file is an error here; the CLI decides when defaults apply.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every value and converts sizes and durations.
    pub fn validate(self) -> anyhow::Result<Settings> {
        let s = &self.server;
        let listen: SocketAddr = s
            .listen
            .parse()
            .map_err(|e| anyhow::anyhow!("server.listen {:?} is not an address:port: {e}", s.listen))?;
        let max_manifest_bytes = parse_size("server.max_manifest_size", &s.max_manifest_size)?;
        let max_header_bytes = parse_size("server.max_header_size", &s.max_header_size)?;
        if max_header_bytes < 8192 {
            anyhow::bail!("server.max_header_size must be at least 8KiB");
        }
        if s.max_page_size == 0 {
            anyhow::bail!("server.max_page_size must be at least 1");
        }
        if self.auth.service.is_empty() || !self.auth.service.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            anyhow::bail!("auth.service must be non-empty printable ASCII without quotes");
        }
        if s.max_connections == 0 || s.max_connections_per_ip == 0 {
            anyhow::bail!("server.max_connections and server.max_connections_per_ip must be at least 1");
        }
        let nonzero = |key: &str, v: &str| -> anyhow::Result<Duration> {
            let d = parse_duration(key, v)?;
            if d.is_zero() {
                anyhow::bail!("{key} must be longer than 0s");
            }
            Ok(d)
        };
        let header_timeout = nonzero("server.header_timeout", &s.header_timeout)?;
        let idle_timeout = nonzero("server.idle_timeout", &s.idle_timeout)?;
        let ping = parse_duration("server.http2_keepalive_interval", &s.http2_keepalive_interval)?;
        let http2_keepalive_timeout = nonzero("server.http2_keepalive_timeout", &s.http2_keepalive_timeout)?;
        let small_body_timeout = nonzero("server.small_body_timeout", &s.small_body_timeout)?;
        let body_idle_timeout = nonzero("server.body_idle_timeout", &s.body_idle_timeout)?;
        let upload_min_rate = parse_size("server.upload_min_rate", &s.upload_min_rate)?;
        let upload_min_rate_period = nonzero("server.upload_min_rate_period", &s.upload_min_rate_period)?;
        let st = &self.storage;
        let mut engine = stowage_engine::EngineConfig::new(&st.data_dir);
        engine.io = st.io;
        engine.max_blob_bytes = parse_size("storage.max_blob_size", &st.max_blob_size)?;
        engine.upload_ttl = parse_duration("storage.upload_ttl", &st.upload_ttl)?;
        engine.gc_grace = parse_duration("storage.gc_grace", &st.gc_grace)?;
        engine.index_cache_bytes = parse_size("storage.index_cache", &st.index_cache)?;
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => anyhow::bail!("server.tls_cert and server.tls_key go together: set both for TLS, or neither"),
        };
        let public_url = match &s.public_url {
            Some(u) => Some(crate::public_url::check_public_url(u)?),
            None => None,
        };
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .map(|p| p.parse().map_err(|e| anyhow::anyhow!("server.trusted_proxies: {p:?}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Settings {
            listen,
            public_url,
            tls,
            tls_reload_poll: Some(parse_duration("server.tls_reload_interval", &s.tls_reload_interval)?)
                .filter(|d| !d.is_zero()),
            trusted_proxies,
            max_manifest_bytes: usize::try_from(max_manifest_bytes)?,
            max_header_bytes: usize::try_from(max_header_bytes)?,
            header_timeout,
            idle_timeout,
            http2_keepalive_interval: (!ping.is_zero()).then_some(ping),
            http2_keepalive_timeout,
            max_connections: s.max_connections,
            max_connections_per_ip: s.max_connections_per_ip,
            small_body_timeout,
            body_idle_timeout,
            upload_min_rate,
            upload_min_rate_period,
            shutdown_grace: parse_duration("server.shutdown_grace", &s.shutdown_grace)?,
            max_page_size: s.max_page_size,
            engine,
            service: self.auth.service.clone(),
            token_ttl: parse_duration("auth.token_ttl", &self.auth.token_ttl)?,
            refresh_ttl: match parse_duration("auth.refresh_token_ttl", &self.auth.refresh_token_ttl)? {
                d if d.is_zero() => anyhow::bail!("auth.refresh_token_ttl must be more than zero"),
                d => d,
            },
            self_registration: self.auth.self_registration,
            admin_password: None,
            scrub_interval: match parse_duration("scrub.interval", &self.scrub.interval)? {
                d if d.is_zero() => None,
                d => Some(d),
            },
            scrub_bytes_per_s: self.scrub.rate_mb_per_s.saturating_mul(1_000_000),
            backup_root: match &self.backup.root {
                Some(r) if !r.is_absolute() => anyhow::bail!("backup.root {} must be an absolute path", r.display()),
                r => r.clone(),
            },
            decision_max_age: Duration::from_secs(1),
        })
    }
}

/// `"512MiB"`, `"100GB"`, `"4096"` (bytes). Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB)
/// units.
pub fn parse_size(key: &str, s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("{key} = {s:?}: expected a size like \"512MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u => anyhow::bail!("{key} = {s:?}: unknown unit {u:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"),
    };
    n.checked_mul(mult).ok_or_else(|| anyhow::anyhow!("{key} = {s:?} is too large"))
}

/// `"30s"`, `"5m"`, `"24h"`, `"500ms"`, `"7d"`.
pub fn parse_duration(key: &str, s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("{key} = {s:?}: expected a duration like \"30s\""))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86400),
        u => anyhow::bail!("{key} = {s:?}: unknown unit {u:?}; use ms, s, m, h or d"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../config.toml");
        let s = Config::parse(text).unwrap().validate().unwrap();
        let d = Config::default().validate().unwrap();
        assert_eq!(s.listen, d.listen);
        assert_eq!(s.max_manifest_bytes, 4 << 20);
        assert_eq!(s.engine.max_blob_bytes, 100_000_000_000);
        assert_eq!(s.engine.upload_ttl, Duration::from_secs(86400));
        assert_eq!(s.max_header_bytes, d.max_header_bytes);
        assert_eq!(s.header_timeout, Duration::from_secs(10));
        assert_eq!((s.idle_timeout, d.idle_timeout), (Duration::from_secs(120), Duration::from_secs(120)));
        assert_eq!(s.http2_keepalive_interval, Some(Duration::from_secs(30)));
        assert_eq!(s.http2_keepalive_interval, d.http2_keepalive_interval);
        assert_eq!(s.http2_keepalive_timeout, d.http2_keepalive_timeout);
        assert_eq!((s.max_connections, s.max_connections_per_ip), (4096, 256));
        assert_eq!((d.max_connections, d.max_connections_per_ip), (4096, 256));
        assert_eq!(s.small_body_timeout, d.small_body_timeout);
        assert_eq!((s.upload_min_rate, d.upload_min_rate), (16 << 10, 16 << 10));
        assert_eq!(s.upload_min_rate_period, d.upload_min_rate_period);
        assert_eq!(
            (s.tls_reload_poll, d.tls_reload_poll),
            (Some(Duration::from_secs(2)), Some(Duration::from_secs(2)))
        );
    }

    #[test]
    fn connection_limits_are_checked() {
        assert!(Config::parse("[server]\nmax_connections = 0").unwrap().validate().is_err());
        assert!(Config::parse("[server]\nheader_timeout = \"0s\"").unwrap().validate().is_err());
        let s = Config::parse("[server]\nhttp2_keepalive_interval = \"0s\"\nupload_min_rate = \"0\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((s.http2_keepalive_interval, s.upload_min_rate), (None, 0));
    }

    #[test]
    fn scrub_schedule_and_rate() {
        let d = Config::default().validate().unwrap();
        assert_eq!((d.scrub_interval, d.scrub_bytes_per_s), (Some(Duration::from_secs(7 * 86400)), 50_000_000));
        let example = Config::parse(include_str!("../config.toml")).unwrap().validate().unwrap();
        assert_eq!((example.scrub_interval, example.scrub_bytes_per_s), (d.scrub_interval, d.scrub_bytes_per_s));
        let off = Config::parse("[scrub]\ninterval = \"0s\"\nrate_mb_per_s = 0").unwrap().validate().unwrap();
        assert_eq!((off.scrub_interval, off.scrub_bytes_per_s), (None, 0));
        assert!(Config::parse("[scrub]\ninterval = \"1w\"").unwrap().validate().is_err());
        assert!(Config::parse("[scrub]\nrate = 5").is_err());
        assert_eq!(d.backup_root, None);
        let b = Config::parse("[backup]\nroot = \"/srv/backups\"").unwrap().validate().unwrap();
        assert_eq!(b.backup_root.as_deref(), Some(Path::new("/srv/backups")));
        let e = Config::parse("[backup]\nroot = \"backups\"").unwrap().validate().unwrap_err().to_string();
        assert_eq!(e, "backup.root backups must be an absolute path");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_units() {
        assert!(Config::parse("[server]\nlisten_addr = \"x\"").is_err());
        let e = parse_size("k", "5 parsecs").unwrap_err().to_string();
        assert!(e.contains("unknown unit"), "{e}");
        assert_eq!(parse_size("k", "512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_duration("k", "500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("k", "5y").is_err());
    }

    #[test]
    fn tls_and_proxy_settings_are_checked() {
        let e = Config::parse("[server]\ntls_cert = \"a.pem\"").unwrap().validate().unwrap_err().to_string();
        assert_eq!(e, "server.tls_cert and server.tls_key go together: set both for TLS, or neither");
        let s = Config::parse("[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\npublic_url = \"https://r.example.org/\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(s.tls, Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.public_url.as_deref(), Some("https://r.example.org"));
        let e = Config::parse("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]").unwrap().validate().unwrap_err();
        assert!(e.to_string().starts_with("server.trusted_proxies: \"10.0.0.0/33\": "), "{e}");
        let e = Config::parse("[server]\npublic_url = \"registry.example.org\"").unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        assert!(Config::parse("[server]\npublic_url = \"https://r.example.org/v2\"").unwrap().validate().is_err());
        let s = Config::parse("[server]\ntls_reload_interval = \"0s\"").unwrap().validate().unwrap();
        assert_eq!(s.tls_reload_poll, None);
    }
}
