//! Pure parsers for the OCI distribution API: repository names, manifest references, byte
//! ranges, media types and manifests.
//!
//! Every function here turns client strings or bytes into typed values or a precise error that
//! says what to fix. This module must never do I/O, never depend on HTTP types (handlers pass
//! plain strings), and never panic on any input: each parser has a fuzz target in `fuzz/`.

pub mod manifest;
pub mod media_type;
pub mod name;
pub mod range;
pub mod reference;

pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use media_type::{MediaType, MediaTypeError};
pub use name::{NameError, RepositoryName};
pub use range::{ByteRange, ContentRange, RangeDecision, RangeError, Unsatisfiable};
pub use reference::{Reference, ReferenceError, Tag, TagError};
pub use stowage_engine::digest::{Algorithm, Digest, DigestError};
