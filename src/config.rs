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
    /// Public URL clients reach the registry at (token realm, absolute links). Default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest manifest accepted. Default `4MiB`.
    pub max_manifest_size: String,
    /// Largest total of request headers. Default `64KiB`.
    pub max_header_size: String,
    /// Time allowed to receive a request's headers. Default `30s`.
    pub header_timeout: String,
    /// Longest pause between two pieces of a request body before the request is dropped.
    /// Default `60s`.
    pub body_idle_timeout: String,
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
            max_manifest_size: "4MiB".into(),
            max_header_size: "64KiB".into(),
            header_timeout: "30s".into(),
            body_idle_timeout: "60s".into(),
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

/// Checked settings the server runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub max_manifest_bytes: usize,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_page_size: usize,
    pub engine: stowage_engine::EngineConfig,
    pub service: String,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub self_registration: bool,
    /// Password of the `admin` user made on first start (else `STOWAGE_ADMIN_PASSWORD`, else a
    /// generated one printed once). Not in the config file: set it in code or the environment.
    pub admin_password: Option<String>,
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
        let st = &self.storage;
        let mut engine = stowage_engine::EngineConfig::new(&st.data_dir);
        engine.io = st.io;
        engine.max_blob_bytes = parse_size("storage.max_blob_size", &st.max_blob_size)?;
        engine.upload_ttl = parse_duration("storage.upload_ttl", &st.upload_ttl)?;
        engine.gc_grace = parse_duration("storage.gc_grace", &st.gc_grace)?;
        engine.index_cache_bytes = parse_size("storage.index_cache", &st.index_cache)?;
        Ok(Settings {
            listen,
            public_url: s.public_url.clone().map(|u| u.trim_end_matches('/').to_string()),
            max_manifest_bytes: usize::try_from(max_manifest_bytes)?,
            max_header_bytes: usize::try_from(max_header_bytes)?,
            header_timeout: parse_duration("server.header_timeout", &s.header_timeout)?,
            body_idle_timeout: parse_duration("server.body_idle_timeout", &s.body_idle_timeout)?,
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
}
