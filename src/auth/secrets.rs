//! Secrets: argon2id password hashes, personal access tokens (`stw_<id>_<secret>`, stored as a
//! SHA-256 of the secret), constant-time comparison, and random generation (ring's system RNG).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG does not fail on Linux after boot; an all-zero secret would be caught by
    // nothing, so fail loudly instead.
    SystemRandom::new().fill(&mut b).unwrap_or_else(|_| panic!("the system random number generator failed"));
    b
}

/// A URL-safe random string of `N` bytes of entropy.
pub fn random_token<const N: usize>() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

/// argon2id hash (PHC string) of a password, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks a password against a PHC hash (argon2's verifier compares in constant time).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn sha256_hex(data: &[u8]) -> String {
    stowage_engine::Digest::of(stowage_engine::Algorithm::Sha256, data).hex()
}

/// A new personal access token: (id, full token string, sha256 of the secret).
pub fn new_access_token() -> (String, String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let secret = random_token::<32>();
    let full = format!("stw_{id}_{secret}");
    (id, full, sha256_hex(secret.as_bytes()))
}

/// Splits `stw_<id>_<secret>`.
pub fn parse_access_token(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("stw_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty() && secret.len() <= 64)
        .then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("hunter2").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("hunter2", &h));
        assert!(!verify_password("hunter3", &h));
        assert!(!verify_password("hunter2", "not a hash"));
        let (id, full, hash) = new_access_token();
        let (pid, secret) = parse_access_token(&full).unwrap();
        assert_eq!(pid, id);
        assert_eq!(sha256_hex(secret.as_bytes()), hash);
        assert!(parse_access_token("stw_short_x").is_none());
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
