//! Integration tests: the real server in-process on an ephemeral port, one file per area.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod api_accounts;
mod api_credentials;
mod api_openapi;
mod api_rest;
mod api_util;
mod auth_push;
mod auth_tokens;
mod blobs;
mod cli;
mod clients;
mod common;
mod errors;
mod first_start;
mod indexes;
mod limits;
mod listing;
mod manifests;
mod real_access;
mod real_docker;
mod real_podman;
mod real_skopeo;
mod scoped_cache;
mod sec_audit;
mod sec_exposure;
mod sec_logins;
mod sec_revocation;
mod server;
mod smoke;
mod spec;
mod streamed;
mod uploads;
