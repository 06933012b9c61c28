//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`), parsed strictly, and the incremental
//! hasher that runs as upload bytes arrive.
//!
//! A [`Digest`] is the only value a blob path is ever built from: its hex part has been checked to be
//! exactly the right number of lower-case hex characters, so no path traversal can get through.
//! This module must never accept upper-case hex, other algorithms, or separators other than `:`
//! (OCI image-spec "Digests": the registered algorithms are sha256 and sha512).

use std::fmt;
use std::str::FromStr;

/// A digest algorithm the store accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and in the blob directory layout.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        }
    }
}

/// Why a string is not a digest. Each variant says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} has no ':' between algorithm and hex")]
    MissingSeparator(String),
    #[error("digest algorithm {0:?} is not supported; use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    #[error("{algorithm} digest must have {expected} lower-case hex characters, got {got:?}")]
    BadHex { algorithm: &'static str, expected: usize, got: String },
}

/// A validated content digest. Stored as raw bytes; displayed as `alg:hex`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: Box<[u8]>,
}

impl Digest {
    /// The longest digest string (`sha512:` + 128 hex).
    pub const MAX_STRING_LEN: usize = 7 + 128;

    /// Builds a digest from raw hash output. `bytes` must have the algorithm's output length.
    pub fn from_raw(algorithm: Algorithm, bytes: &[u8]) -> Option<Digest> {
        (bytes.len() * 2 == algorithm.hex_len()).then(|| Digest { algorithm, bytes: bytes.into() })
    }

    /// Hashes a whole buffer at once.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Raw hash bytes.
    pub fn raw(&self) -> &[u8] {
        &self.bytes
    }

    /// Lower-case hex of the hash.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(self.bytes.len() * 2);
        for b in self.bytes.iter() {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Compact, sortable binary key: one algorithm byte followed by the raw hash.
    pub fn to_key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + self.bytes.len());
        k.push(self.algorithm.tag());
        k.extend_from_slice(&self.bytes);
        k
    }

    /// Inverse of [`Digest::to_key`].
    pub fn from_key(key: &[u8]) -> Option<Digest> {
        let (&tag, rest) = key.split_first()?;
        let algorithm = match tag {
            1 => Algorithm::Sha256,
            2 => Algorithm::Sha512,
            _ => return None,
        };
        Digest::from_raw(algorithm, rest)
    }

    /// The blob's path relative to the store root: `<alg>/<2 hex>/<hex>`.
    pub fn relative_path(&self) -> std::path::PathBuf {
        let hex = self.hex();
        let mut p = std::path::PathBuf::from(self.algorithm.as_str());
        p.push(&hex[..2]);
        p.push(&hex);
        p
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| DigestError::MissingSeparator(truncate(s)))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(truncate(other))),
        };
        let bad =
            || DigestError::BadHex { algorithm: algorithm.as_str(), expected: algorithm.hex_len(), got: truncate(hex) };
        if hex.len() != algorithm.hex_len() {
            return Err(bad());
        }
        let mut bytes = Vec::with_capacity(hex.len() / 2);
        for pair in hex.as_bytes().chunks_exact(2) {
            let hi = unhex(pair[0]).ok_or_else(bad)?;
            let lo = unhex(pair[1]).ok_or_else(bad)?;
            bytes.push(hi << 4 | lo);
        }
        Ok(Digest { algorithm, bytes: bytes.into() })
    }
}

/// Error messages quote at most this much of what the client sent.
fn truncate(s: &str) -> String {
    s.chars().take(140).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher (ring). Fed in arrival order; never re-reads data.
pub struct Hasher {
    algorithm: Algorithm,
    ctx: ring::digest::Context,
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        Hasher { algorithm, ctx: ring::digest::Context::new(algorithm.ring()) }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    pub fn finish(self) -> Digest {
        let out = self.ctx.finish();
        Digest { algorithm: self.algorithm, bytes: out.as_ref().into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_sha256() {
        let s = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d, Digest::of(Algorithm::Sha256, b""));
        assert_eq!(
            d.relative_path(),
            std::path::Path::new("sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(Digest::from_key(&d.to_key()), Some(d));
    }

    #[test]
    fn sha512_round_trips() {
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert!(d.to_string().starts_with("sha512:ddaf35a193617aba"));
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for bad in [
            String::new(),
            good.to_string(),
            format!("md5:{good}"),
            format!("sha256:{}", good.to_uppercase()),
            format!("sha256:{}", &good[1..]),
            format!("sha256:{good}0"),
            format!("sha256:../{}", &good[3..]),
            format!("sha512:{good}"),
            format!("SHA256:{good}"),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Hasher::new(Algorithm::Sha256);
        for c in data.chunks(997) {
            h.update(c);
        }
        assert_eq!(h.finish(), Digest::of(Algorithm::Sha256, &data));
    }
}
