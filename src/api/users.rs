//! Users, certification, teams, personal access tokens and garbage collection.

use super::{bad_request, err, forbidden, not_found, ApiResult, Call};
use crate::access::rules::Scope;
use crate::access::store::{TeamRecord, TokenRecord, UserRecord};
use crate::auth::secrets;
use crate::handlers::App;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use stowage_engine::index::catalog::now_secs;

/// Longest lifetime of an access token.
const MAX_TOKEN_DAYS: u32 = 3650;

pub fn user_json(u: &UserRecord) -> Value {
    json!({ "id": u.id, "username": u.username, "certified": u.certified, "admin": u.admin, "created": u.created })
}

fn team_json(t: &TeamRecord) -> Value {
    json!({ "id": t.id, "name": t.name, "members": t.members })
}

/// User names: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && u.as_bytes()[0].is_ascii_alphanumeric()
}

impl App {
    pub(super) async fn create_user(&self, call: &Call) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            username: String,
            password: String,
            #[serde(default)]
            admin: bool,
            #[serde(default)]
            certified: bool,
        }
        if !self.settings.self_registration || call.caller.is_admin() {
            call.require_admin()?;
        }
        let b: Body = call.json()?;
        if !valid_username(&b.username) {
            return Err(bad_request(
                "username must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
            ));
        }
        if b.password.len() < 8 || b.password.len() > 1024 {
            return Err(bad_request("password must be 8 to 1024 characters"));
        }
        if (b.admin || b.certified) && !call.caller.is_admin() {
            return Err(forbidden("only administrators may create administrators or certified users"));
        }
        let pw = b.password.clone();
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&pw))
            .await
            .map_err(|e| bad_request(e.to_string()))?
            .map_err(|e| bad_request(format!("cannot hash password: {e}")))?;
        let store = &self.auth.store;
        let mut rec = store
            .create_user(&b.username, hash, b.admin)?
            .ok_or_else(|| err(StatusCode::CONFLICT, "conflict", format!("user {} already exists", b.username)))?;
        if b.certified && !rec.certified {
            rec.certified = true;
            store.put_user(&rec)?;
        }
        Ok((StatusCode::CREATED, user_json(&rec)))
    }

    pub(super) fn get_user(&self, call: &Call, name: &str) -> ApiResult {
        let me = call.user()?;
        let u = self.auth.store.user(name)?.ok_or_else(|| not_found(format!("user {name} does not exist")))?;
        if me != name && !call.caller.is_admin() {
            // Other users' records are visible to everyone logged in, but only the public part.
            return Ok((StatusCode::OK, json!({ "id": u.id, "username": u.username, "certified": u.certified })));
        }
        Ok((StatusCode::OK, user_json(&u)))
    }

    pub(super) fn certify(&self, call: &Call, name: &str) -> ApiResult {
        call.require_admin()?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            certified: bool,
        }
        let b: Body = call.json()?;
        let mut u = self.auth.store.user(name)?.ok_or_else(|| not_found(format!("user {name} does not exist")))?;
        u.certified = b.certified;
        self.auth.store.put_user(&u)?;
        Ok((StatusCode::OK, user_json(&u)))
    }

    pub(super) fn create_team(&self, call: &Call) -> ApiResult {
        let me = call.user()?.to_string();
        let name = call.name_body("team", 128)?;
        let mut t = self.auth.store.create_team(&name)?;
        t.members.insert(me);
        self.auth.store.put_team(&t)?;
        Ok((StatusCode::CREATED, team_json(&t)))
    }

    fn team_by_id(&self, id: &str) -> Result<TeamRecord, super::ApiErr> {
        let n: u64 = id.parse().map_err(|_| bad_request(format!("team id {id:?} must be a number")))?;
        self.auth.store.team(n)?.ok_or_else(|| not_found(format!("team {id} does not exist")))
    }

    pub(super) fn get_team(&self, call: &Call, id: &str) -> ApiResult {
        call.user()?;
        Ok((StatusCode::OK, team_json(&self.team_by_id(id)?)))
    }

    pub(super) fn team_member(&self, call: &Call, id: &str, user: &str, add: bool) -> ApiResult {
        let me = call.user()?;
        let mut t = self.team_by_id(id)?;
        if !t.members.contains(me) && !call.caller.is_admin() {
            return Err(forbidden(format!("only members of team {id} or administrators may change its members")));
        }
        if add {
            self.auth.store.user(user)?.ok_or_else(|| not_found(format!("user {user} does not exist")))?;
            t.members.insert(user.to_string());
        } else if !t.members.remove(user) {
            return Err(not_found(format!("{user} is not a member of team {id}")));
        }
        self.auth.store.put_team(&t)?;
        Ok((StatusCode::OK, team_json(&t)))
    }

    pub(super) fn create_token(&self, call: &Call) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            name: String,
            scopes: BTreeSet<Scope>,
            #[serde(default = "default_days")]
            expires_in_days: u32,
        }
        fn default_days() -> u32 {
            90
        }
        let me = call.user()?.to_string();
        if call.caller.user.as_ref().is_some_and(|u| u.via_token) {
            return Err(forbidden("access tokens cannot create access tokens; log in with your password"));
        }
        let b: Body = call.json()?;
        if b.name.trim().is_empty() || b.name.len() > 128 {
            return Err(bad_request("token name must be 1 to 128 characters"));
        }
        if b.scopes.is_empty() {
            return Err(bad_request("give at least one scope: view, download, modify"));
        }
        if b.expires_in_days == 0 || b.expires_in_days > MAX_TOKEN_DAYS {
            return Err(bad_request(format!("expires_in_days must be 1 to {MAX_TOKEN_DAYS}")));
        }
        let (id, token, hash) = secrets::new_access_token();
        let rec = TokenRecord {
            id: id.clone(),
            name: b.name.trim().to_string(),
            username: me,
            scopes: b.scopes,
            secret_sha256: hash,
            created: now_secs(),
            expires: now_secs() + i64::from(b.expires_in_days) * 86400,
            revoked: false,
        };
        self.auth.store.put_token(&rec)?;
        let mut v = token_json(&rec);
        // Shown once: only its hash is stored.
        v["token"] = json!(token);
        Ok((StatusCode::CREATED, v))
    }

    pub(super) fn list_tokens(&self, call: &Call) -> ApiResult {
        let me = call.user()?;
        let list: Vec<Value> = self.auth.store.tokens_of(me)?.iter().map(token_json).collect();
        Ok((StatusCode::OK, json!({ "tokens": list })))
    }

    pub(super) fn revoke_token(&self, call: &Call, id: &str) -> ApiResult {
        let me = call.user()?;
        let mut t = self
            .auth
            .store
            .token(id)?
            .filter(|t| t.username == me || call.caller.is_admin())
            .ok_or_else(|| not_found(format!("you have no access token {id}")))?;
        t.revoked = true;
        self.auth.store.put_token(&t)?;
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    pub(super) async fn gc(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let e = self.engine.clone();
        let report = tokio::task::spawn_blocking(move || e.collect_garbage())
            .await
            .map_err(|e| bad_request(e.to_string()))??;
        Ok((StatusCode::OK, serde_json::to_value(report).unwrap_or(Value::Null)))
    }
}

fn token_json(t: &TokenRecord) -> Value {
    json!({ "id": t.id, "name": t.name, "scopes": t.scopes, "created": t.created, "expires": t.expires, "revoked": t.revoked })
}
