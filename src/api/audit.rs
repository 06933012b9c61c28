//! `GET /api/v1/audit`: the security audit log for administrators, newest first, filtered by
//! actor and target and paginated with `before` (a sequence number). It only reads the log; the
//! events are appended where they happen.

use super::{bad_request, ApiResult, Call};
use crate::app::App;
use http::StatusCode;
use serde_json::json;

/// Most events one page returns.
const MAX_LIMIT: usize = 1000;
/// Most events one request reads while filtering, so a rare actor cannot make it scan the log.
const SCAN_BUDGET: usize = 100_000;

impl App {
    pub(super) fn list_audit(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let limit = match call.q("limit") {
            Some(v) => v.parse::<usize>().map_err(|_| bad_request(format!("limit {v:?} is not a number")))?,
            None => 100,
        }
        .clamp(1, MAX_LIMIT);
        let before = call
            .q("before")
            .map(|v| v.parse::<u64>().map_err(|_| bad_request(format!("before {v:?} is not a sequence number"))))
            .transpose()?;
        let actor = call.q("actor").map(str::to_string);
        let target = call.q("target").map(str::to_string);
        let (events, next) = self.auth.store.audit_page(before, limit, SCAN_BUDGET, |r| {
            actor.as_ref().is_none_or(|a| &r.actor == a) && target.as_ref().is_none_or(|t| &r.target == t)
        })?;
        Ok((StatusCode::OK, json!({ "events": events, "next_before": next })))
    }
}
