//! Integration tests: the real server in-process on an ephemeral port, one file per area.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod common;
mod smoke;
mod spec;
mod blobs;
mod uploads;
mod manifests;
mod listing;
mod server;
