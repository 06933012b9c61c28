//! Value sealing: every stored value is `crc32 (4 bytes, big-endian) || payload`, checked on every
//! read, so a flipped bit on disk is a clear corruption error naming the tree and key, never a
//! panic or a silently wrong answer. Payloads of records are JSON (serde_json): small, debuggable,
//! and forward compatible with added fields.

use super::Tree;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Prefixes `payload` with its crc32.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + payload.len());
    v.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Checks the crc32 of a sealed value and returns its payload.
pub fn open<'a>(tree: Tree, key: &[u8], sealed: &'a [u8]) -> Result<&'a [u8]> {
    let corrupt = |what: String| Error::Corrupt { tree: tree.name(), key: show_key(key), what };
    if sealed.len() < 4 {
        return Err(corrupt(format!("value of {} bytes is shorter than its checksum", sealed.len())));
    }
    let (crc, payload) = sealed.split_at(4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(corrupt(format!("crc32 mismatch: stored {stored:08x}, computed {actual:08x}")));
    }
    Ok(payload)
}

/// Serializes and seals a record.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain records to JSON cannot fail (no maps with non-string keys, no
    // failing Serialize impls); an empty payload would be caught as corruption on read.
    seal(&serde_json::to_vec(value).unwrap_or_default())
}

/// Opens and deserializes a record.
pub fn decode<T: DeserializeOwned>(tree: Tree, key: &[u8], sealed: &[u8]) -> Result<T> {
    let payload = open(tree, key, sealed)?;
    serde_json::from_slice(payload).map_err(|e| Error::Corrupt {
        tree: tree.name(),
        key: show_key(key),
        what: format!("undecodable record: {e}"),
    })
}

/// A key for error messages: printable ASCII as is, other bytes as `\xNN`.
pub fn show_key(key: &[u8]) -> String {
    key.iter().take(200).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_detects_flips() {
        let s = seal(b"hello");
        assert_eq!(open(Tree::Tags, b"k", &s).unwrap(), b"hello");
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 0x10;
            let err = open(Tree::Tags, b"k\x01", &bad).unwrap_err().to_string();
            assert!(err.starts_with("index corruption in tree tags at key k\\x01: crc32 mismatch"), "{err}");
        }
        assert!(open(Tree::Tags, b"k", b"ab").is_err());
    }
}
