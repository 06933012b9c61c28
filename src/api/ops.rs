//! Operating the store over REST (administrators only): online backups, scrubs and the list of
//! quarantined blobs, plus the background scrub schedule. The work itself is the engine's; this
//! module checks the request, runs it on a blocking thread and reports. It never touches files.

use super::{bad_request, ApiResult, Call};
use crate::app::App;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest backup destination path accepted.
const MAX_DEST_BYTES: usize = 4096;

impl App {
    /// `POST /api/v1/admin/backup` `{"dest": "/absolute/dir"}`: a consistent online backup into
    /// `dest` (incremental and resumable there); answers when it is complete.
    pub(super) async fn backup(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            dest: String,
        }
        let b: Body = call.json()?;
        if b.dest.is_empty() || b.dest.len() > MAX_DEST_BYTES || b.dest.contains('\0') {
            return Err(bad_request(format!("dest must be an absolute directory path of 1 to {MAX_DEST_BYTES} bytes")));
        }
        let dest = PathBuf::from(&b.dest);
        // Checked here as well as in the engine, so a relative path never reaches the disk.
        if !dest.is_absolute() {
            return Err(bad_request(format!("backup destination {} must be an absolute path", b.dest)));
        }
        // A policy of the operator's, not a malformed request: 403.
        if let Some(root) = &self.settings.backup_root {
            if !dest.starts_with(root) {
                return Err(super::forbidden(format!(
                    "backups may only go into {} (backup.root in the server's config); choose a directory there",
                    root.display()
                )));
            }
        }
        let report = self.index(move |e| e.backup(&dest)).await?;
        call.audit(self, "backup", &b.dest, None);
        Ok((StatusCode::OK, serde_json::to_value(report).unwrap_or(Value::Null)))
    }

    /// `POST /api/v1/admin/scrub`: re-reads every blob at the configured rate and quarantines
    /// damaged ones; answers when done.
    pub(super) async fn scrub(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let rate = self.settings.scrub_bytes_per_s;
        let report = self.index(move |e| e.scrub(rate)).await?;
        call.audit(self, "scrub", "blobs", Some(&format!("{} quarantined", report.quarantined.len())));
        Ok((StatusCode::OK, serde_json::to_value(report).unwrap_or(Value::Null)))
    }

    /// `GET /api/v1/admin/quarantine`: the blobs scrub moved aside, with why and when.
    pub(super) fn quarantine(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let list: Vec<Value> = self
            .engine
            .catalog()
            .quarantine_list()?
            .into_iter()
            .map(|(d, q)| json!({ "digest": d.to_string(), "size": q.size, "found": q.found, "reason": q.reason }))
            .collect();
        Ok((StatusCode::OK, json!({ "blobs": list })))
    }
}

/// Runs a scrub every `every`, counted from the end of the previous one, which is kept in the
/// index so restarts do not postpone it forever (a store never scrubbed gets its first one
/// `every` after start). A failed scrub is logged and retried at the next interval.
pub async fn background_scrub(app: Arc<App>, every: Duration) {
    let mut wait = every;
    if let Ok(Some(last)) = stowage_engine::scrub::last_finished(app.engine.catalog()) {
        let since = Duration::from_secs(u64::try_from(stowage_engine::index::catalog::now_secs() - last).unwrap_or(0));
        wait = every.saturating_sub(since);
    }
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let rate = app.settings.scrub_bytes_per_s;
        match app.engine.blocking(move |e| e.scrub(rate)).await {
            Ok(r) if r.quarantined.is_empty() => {
                tracing::info!(blobs = r.blobs_checked, bytes = r.bytes_checked, "background scrub clean")
            }
            Ok(r) => tracing::error!(
                blobs = r.blobs_checked,
                quarantined = ?r.quarantined,
                "background scrub quarantined damaged blobs; see GET /api/v1/admin/quarantine"
            ),
            Err(e) => tracing::error!(error = %e, "background scrub failed"),
        }
    }
}
