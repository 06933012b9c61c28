//! Registry tokens (Docker token-auth spec): ES256 JWTs signed with a P-256 key made on first
//! start under `data_dir/keys/`, `kid` the RFC 7638 JWK thumbprint of the public key. Verification
//! accepts only ES256 from our key with our issuer and audience (so `alg: none`, HS256 and other
//! keys are refused) and caches verified tokens, since the same token arrives on every request
//! of a push or pull.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const ISSUER: &str = "stowage";

/// One entry of the token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Username; empty for anonymous tokens.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
    /// Id of the personal access token the login used, if any: checked on every request so a
    /// revoked token stops working at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat: Option<String>,
    /// `refresh` for OAuth2 refresh tokens; absent for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The subject's user id: a token outlives no deletion, even if the name is taken again.
    #[serde(default)]
    pub uid: u64,
    /// The subject's credential generation when issued: a password change or disabling the user
    /// moves it, and the token then fails.
    #[serde(default)]
    pub gen: u64,
}

impl Claims {
    /// Does the token grant `action` on repository `name`?
    pub fn grants(&self, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == "repository" && a.name == name && a.actions.iter().any(|x| x == action || x == "*"))
    }
}

impl Claims {
    /// Does the token grant listing the catalog (`registry:catalog:*`)?
    pub fn grants_catalog(&self) -> bool {
        self.access.iter().any(|a| a.kind == "registry" && a.name == "catalog" && a.actions.iter().any(|x| x == "*"))
    }
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub kid: String,
    /// Public JWK, for a JWKS endpoint.
    pub jwk: serde_json::Value,
    /// SHA-256 of a verified token -> its claims. Keyed by a fixed-size hash, not the token
    /// itself, so a client sending huge tokens cannot grow it past its entry bound.
    cache: Mutex<HashMap<[u8; 32], Claims>>,
}

/// Verified tokens kept in memory; the cache is cleared when it reaches this many.
const CACHE_ENTRIES: usize = 10_000;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Keys {
    /// Loads `keys/signing-key.p8` (PKCS#8), creating it with mode 0600 on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Keys> {
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("signing-key.p8");
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("could not generate a signing key"))?;
                write_private(&path, doc.as_ref())?;
                tracing::info!(path = %path.display(), "created token signing key");
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Keys::from_pkcs8(&pkcs8)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Keys> {
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("signing key is not a P-256 PKCS#8 key: {e}"))?;
        let public = pair.public_key().as_ref();
        // Uncompressed point: 0x04 || x (32) || y (32).
        if public.len() != 65 || public[0] != 4 {
            anyhow::bail!("unexpected public key encoding");
        }
        let (x, y) = (b64(&public[1..33]), b64(&public[33..65]));
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" });
        Ok(Keys {
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding: DecodingKey::from_ec_components(&x, &y)?,
            kid,
            jwk,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&h, claims, &self.encoding)?)
    }

    /// Verifies signature, algorithm, issuer, audience and time. Returns the claims.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, String> {
        let now = stowage_engine::index::catalog::now_secs();
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        if let Some(c) = self.cache.lock().get(&key) {
            if c.exp > now && c.aud == audience {
                return Ok(c.clone());
            }
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[audience]);
        v.validate_nbf = true;
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| e.to_string())?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, data.claims.clone());
        Ok(data.claims)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stowage_engine::index::catalog::now_secs;

    fn new_keys() -> Keys {
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Keys::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn claims(exp_in: i64) -> Claims {
        let now = now_secs();
        Claims {
            iss: ISSUER.into(),
            sub: "bob".into(),
            aud: "stowage".into(),
            exp: now + exp_in,
            nbf: now - 5,
            iat: now,
            jti: "j1".into(),
            access: vec![AccessEntry {
                kind: "repository".into(),
                name: "syn1/app".into(),
                actions: vec!["pull".into()],
            }],
            pat: None,
            typ: None,
            uid: 7,
            gen: 0,
        }
    }

    fn part(token: &str, i: usize) -> serde_json::Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn signs_es256_with_kid_and_verifies() {
        let k = new_keys();
        let t = k.sign(&claims(900)).unwrap();
        let h = part(&t, 0);
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["kid"], k.kid.as_str());
        assert_eq!(k.kid.len(), 43, "base64url of a SHA-256 thumbprint");
        let c = k.verify(&t, "stowage").unwrap();
        assert_eq!(c, claims(900).clone_with_times(&c));
        assert!(c.grants("syn1/app", "pull"));
        assert!(!c.grants("syn1/app", "push"));
        assert!(!c.grants("syn1/other", "pull"));
        // Cached now; a second verification answers the same.
        assert_eq!(k.verify(&t, "stowage").unwrap(), c);
    }

    impl Claims {
        /// These claims with the times of `other` (tests build them a moment apart).
        fn clone_with_times(&self, other: &Claims) -> Claims {
            Claims { exp: other.exp, nbf: other.nbf, iat: other.iat, ..self.clone() }
        }
    }

    #[test]
    fn expiry_allows_30_seconds_of_clock_skew_and_no_more() {
        let k = new_keys();
        assert!(k.verify(&k.sign(&claims(-10)).unwrap(), "stowage").is_ok(), "within the leeway");
        assert!(k.verify(&k.sign(&claims(-60)).unwrap(), "stowage").is_err(), "expired");
        let mut early = claims(900);
        early.nbf = now_secs() + 120;
        assert!(k.verify(&k.sign(&early).unwrap(), "stowage").is_err(), "not yet valid");
    }

    #[test]
    fn audience_and_issuer_must_match() {
        let k = new_keys();
        let t = k.sign(&claims(900)).unwrap();
        assert!(k.verify(&t, "stowage").is_ok());
        // The cache must not answer for another audience either.
        assert!(k.verify(&t, "other-registry").is_err());
        let mut c = claims(900);
        c.aud = "other-registry".into();
        assert!(k.verify(&k.sign(&c).unwrap(), "stowage").is_err());
        let mut c = claims(900);
        c.iss = "someone-else".into();
        assert!(k.verify(&k.sign(&c).unwrap(), "stowage").is_err());
    }

    #[test]
    fn refuses_other_keys_and_algorithms() {
        let k = new_keys();
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let payload = serde_json::to_value(claims(900)).unwrap();
        // Another ES256 key, even with our kid.
        let other = new_keys();
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(k.kid.clone());
        let t = jsonwebtoken::encode(&h, &claims(900), &other.encoding).unwrap();
        assert!(k.verify(&t, "stowage").is_err(), "other key");
        // HS256 with a guessed secret, and with our public key as the secret (key confusion).
        for secret in
            [b"secret".to_vec(), k.jwk.to_string().into_bytes(), k.jwk["x"].as_str().unwrap().as_bytes().to_vec()]
        {
            let t =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(900), &EncodingKey::from_secret(&secret))
                    .unwrap();
            assert!(k.verify(&t, "stowage").is_err(), "HS256");
        }
        // alg none, with and without a signature part.
        let none = format!("{}.{}.", b64(&serde_json::json!({"alg":"none","typ":"JWT"})), b64(&payload));
        assert!(k.verify(&none, "stowage").is_err(), "alg none");
        assert!(k.verify(none.trim_end_matches('.'), "stowage").is_err(), "alg none, two parts");
        // A payload changed after signing.
        let good = k.sign(&claims(900)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let mut p = payload.clone();
        p["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let forged = format!("{}.{}.{}", parts[0], b64(&p), parts[2]);
        assert!(k.verify(&forged, "stowage").is_err(), "changed payload");
        assert!(k.verify("not.a.token", "stowage").is_err());
        assert!(k.verify("", "stowage").is_err());
    }

    #[test]
    fn the_verified_token_cache_is_bounded_whatever_the_tokens() {
        let k = new_keys();
        for i in 0..(CACHE_ENTRIES + 50) {
            let mut c = claims(900);
            c.jti = format!("{i}{}", "pad".repeat(100));
            let t = k.sign(&c).unwrap();
            assert!(k.verify(&t, "stowage").is_ok());
            assert!(k.cache.lock().len() <= CACHE_ENTRIES);
        }
    }

    #[test]
    fn keys_persist_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let b = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.kid, b.kid);
        let t = a.sign(&claims(900)).unwrap();
        assert!(b.verify(&t, "stowage").is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/signing-key.p8")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
