//! The URL clients reach the registry at, for the token realm of challenges: the configured
//! `server.public_url` when there is one, else `https` (TLS on) or `http` with the request's own
//! `Host`. A reverse proxy in front says what the client used with `Forwarded` (RFC 7239) or
//! `X-Forwarded-Proto` / `X-Forwarded-Host`; those headers are believed only from the addresses
//! in `server.trusted_proxies`, since anyone else could send them to point clients elsewhere.
//!
//! Upload and manifest `Location`s stay relative references (RFC 9110 section 10.2.2): clients
//! resolve them against the URL they used, so they carry `https` whenever the request did, with
//! or without a proxy. This module never reads a body and never fails a request: a header it
//! cannot use is ignored.

use http::HeaderMap;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`) of trusted proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| "expected an IP address or address/prefix".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&n| n <= max).ok_or(format!("prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Network { addr: canonical(addr), prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Checks `server.public_url`: `http://` or `https://`, a host, and no path (the registry API is
/// always at `/v2/`), query or fragment. Returns it without a trailing `/`.
pub fn check_public_url(u: &str) -> anyhow::Result<String> {
    let t = u.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| anyhow::anyhow!("server.public_url {u:?} must start with http:// or https://"))?;
    if !valid_host(rest) {
        anyhow::bail!(
            "server.public_url {u:?} must be a scheme and a host[:port] only, like https://registry.example.org; \
             the registry is always served at /v2/"
        );
    }
    Ok(t.to_string())
}

/// A `host[:port]` fit to put in a URL: DNS name characters, IPv4, or a bracketed IPv6 literal.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
        && !h.starts_with(':')
}

/// Builds the base URL (`scheme://host[:port]`, no trailing slash) of each request.
#[derive(Clone, Debug)]
pub struct PublicUrl {
    configured: Option<String>,
    tls: bool,
    trusted: Vec<Network>,
    /// `host:port` used when a request names no usable host (HTTP/1.0 without `Host`).
    fallback_host: String,
}

impl PublicUrl {
    pub fn new(configured: Option<String>, tls: bool, trusted: Vec<Network>, fallback_host: String) -> PublicUrl {
        PublicUrl { configured, tls, trusted, fallback_host }
    }

    /// The base URL without a request: the configured one, or the scheme and listening address.
    pub fn default_base(&self) -> String {
        match &self.configured {
            Some(u) => u.clone(),
            None => format!("{}://{}", if self.tls { "https" } else { "http" }, self.fallback_host),
        }
    }

    /// The base URL the client at `peer` used, given its request `headers` and the URI authority
    /// (HTTP/2 `:authority`).
    pub fn base(&self, headers: &HeaderMap, authority: Option<&str>, peer: IpAddr) -> String {
        if let Some(u) = &self.configured {
            return u.clone();
        }
        let mut scheme = if self.tls { "https" } else { "http" };
        let mut host = authority
            .or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))
            .filter(|h| valid_host(h))
            .unwrap_or(&self.fallback_host)
            .to_string();
        if self.trusted.iter().any(|n| n.contains(peer)) {
            let (proto, fwd_host) = forwarded(headers);
            if let Some(p) = proto {
                scheme = p;
            }
            if let Some(h) = fwd_host {
                host = h;
            }
        }
        format!("{scheme}://{host}")
    }
}

/// The protocol and host the nearest proxy reported: the last element of `Forwarded` (the one
/// the proxy in front of us added; earlier ones came from further away, maybe from the client),
/// else the last value of `X-Forwarded-Proto` and `X-Forwarded-Host`. Unusable values are ignored.
fn forwarded(headers: &HeaderMap) -> (Option<&'static str>, Option<String>) {
    let last_value = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_string())
    };
    let proto_of = |p: &str| match p.to_ascii_lowercase().as_str() {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    };
    if let Some(elem) = last_value("forwarded") {
        let mut proto = None;
        let mut host = None;
        for pair in elem.split(';') {
            let Some((k, v)) = pair.split_once('=') else { continue };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = proto_of(v),
                "host" if valid_host(v) => host = Some(v.to_string()),
                _ => {}
            }
        }
        if proto.is_some() || host.is_some() {
            return (proto, host);
        }
    }
    let proto = last_value("x-forwarded-proto").and_then(|p| proto_of(&p));
    let host = last_value("x-forwarded-host").filter(|h| valid_host(h));
    (proto, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn networks_match_by_prefix() {
        let n: Network = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped peers count as IPv4");
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        assert_eq!("10.0.0.0/33".parse::<Network>().unwrap_err(), "prefix must be 0..=32");
        assert!("example.org".parse::<Network>().is_err());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let p = PublicUrl::new(None, false, vec!["10.0.0.0/8".parse().unwrap()], "0.0.0.0:5000".into());
        let h =
            headers(&[("host", "reg.local:5000"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.org")]);
        assert_eq!(p.base(&h, None, "10.0.0.7".parse().unwrap()), "https://evil.org");
        assert_eq!(p.base(&h, None, "192.168.1.9".parse().unwrap()), "http://reg.local:5000", "spoofed");
        let h = headers(&[
            ("host", "reg.local"),
            ("forwarded", "proto=http;host=a.org, for=1.2.3.4;proto=https;host=\"b.org\""),
        ]);
        assert_eq!(p.base(&h, None, "10.0.0.7".parse().unwrap()), "https://b.org", "the nearest proxy's element");
        let h = headers(&[("host", "reg.local"), ("x-forwarded-proto", "gopher")]);
        assert_eq!(p.base(&h, None, "10.0.0.7".parse().unwrap()), "http://reg.local");
        let h = headers(&[("host", "bad host/x")]);
        assert_eq!(p.base(&h, None, "10.0.0.7".parse().unwrap()), "http://0.0.0.0:5000");
        let tls = PublicUrl::new(None, true, Vec::new(), "x:1".into());
        assert_eq!(
            tls.base(&HeaderMap::new(), Some("reg.local:5443"), "1.2.3.4".parse().unwrap()),
            "https://reg.local:5443"
        );
        let fixed = PublicUrl::new(Some("https://r.example.org".into()), false, Vec::new(), "x:1".into());
        assert_eq!(
            fixed.base(&headers(&[("host", "other")]), None, "10.0.0.7".parse().unwrap()),
            "https://r.example.org"
        );
    }

    #[test]
    fn public_url_is_scheme_and_host_only() {
        assert_eq!(check_public_url("https://r.example.org:8443/").unwrap(), "https://r.example.org:8443");
        assert!(check_public_url("ftp://r.example.org").is_err());
        assert!(check_public_url("https://r.example.org/prefix").is_err());
        assert!(check_public_url("https://").is_err());
    }
}
