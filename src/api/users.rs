//! Users (create, certify, change password, disable, delete), teams and their managers,
//! personal access tokens and garbage collection. Every security-relevant change is appended to
//! the audit log.

use super::{bad_request, err, forbidden, not_found, ApiResult, Call};
use crate::access::rules::Scope;
use crate::access::store::{TeamRecord, TokenRecord, UserRecord};
use crate::app::App;
use crate::auth::{secrets, CredentialKind};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use stowage_engine::index::catalog::now_secs;

/// Longest lifetime of an access token.
const MAX_TOKEN_DAYS: u32 = 366;

pub fn user_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id, "username": u.username, "certified": u.certified, "admin": u.admin, "created": u.created,
        "disabled": u.disabled,
    })
}

fn team_json(t: &TeamRecord) -> Value {
    json!({ "id": t.id, "name": t.name, "members": t.members, "managers": t.managers })
}

/// User names: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && u.as_bytes()[0].is_ascii_alphanumeric()
}

/// A role in a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamRole {
    Member,
    Manager,
}

/// Passwords are 8 to 1024 characters (characters, as the OpenAPI `minLength`/`maxLength` count
/// them, not bytes).
fn password_ok(p: &str) -> Result<(), super::ApiErr> {
    let n = p.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(bad_request("password must be 8 to 1024 characters"));
    }
    Ok(())
}

impl App {
    /// The argon2id hash of a new password, made on the bounded hashing pool (429 when full).
    async fn hash_password(&self, password: &str) -> Result<String, super::ApiErr> {
        let pw = password.to_string();
        self.auth
            .hash(move || secrets::hash_password(&pw))
            .await
            .map_err(|e| err(StatusCode::TOO_MANY_REQUESTS, e.to_string()))?
            .map_err(|e| bad_request(format!("cannot hash password: {e}")))
    }

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
        if !self.settings.self_registration || call.caller.user.is_some() {
            call.require_admin()?;
        }
        let b: Body = call.json()?;
        if !valid_username(&b.username) {
            return Err(bad_request(
                "username must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
            ));
        }
        password_ok(&b.password)?;
        if (b.admin || b.certified) && !call.caller.is_admin() {
            return Err(forbidden("only administrators may create administrators or certified users"));
        }
        let hash = self.hash_password(&b.password).await?;
        let (username, admin, certified) = (b.username.clone(), b.admin, b.certified);
        let rec = self
            .blocking(move |app| -> Result<UserRecord, super::ApiErr> {
                let store = &app.auth.store;
                let mut rec = store
                    .create_user(&username, hash, admin)?
                    .ok_or_else(|| err(StatusCode::CONFLICT, format!("user {username} already exists")))?;
                if certified && !rec.certified {
                    rec.certified = true;
                    store.put_user(&rec)?;
                }
                Ok(rec)
            })
            .await??;
        let detail = format!("admin={} certified={}", rec.admin, rec.certified);
        call.audit(self, "user.create", &rec.username, Some(&detail));
        Ok((StatusCode::CREATED, user_json(&rec)))
    }

    pub(super) fn list_users(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let users: Vec<Value> = self.auth.store.users()?.iter().map(user_json).collect();
        Ok((StatusCode::OK, json!({ "users": users })))
    }

    fn user_record(&self, name: &str) -> Result<UserRecord, super::ApiErr> {
        self.auth.store.user(name)?.ok_or_else(|| not_found(format!("user {name} does not exist")))
    }

    pub(super) fn get_user(&self, call: &Call, name: &str) -> ApiResult {
        let me = call.user()?;
        let u = self.user_record(name)?;
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
        let mut u = self.user_record(name)?;
        u.certified = b.certified;
        self.auth.store.put_user(&u)?;
        call.audit(self, if b.certified { "user.certify" } else { "user.uncertify" }, name, None);
        Ok((StatusCode::OK, user_json(&u)))
    }

    /// `PUT /users/{name}/password`: a user changes its own password, giving the current one; an
    /// administrator may set anyone's without it. Every credential of the user ends.
    pub(super) async fn set_password(&self, call: &Call, name: &str) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[serde(default)]
            current_password: Option<String>,
            new_password: String,
        }
        let me = call.user()?.to_string();
        let b: Body = call.json()?;
        password_ok(&b.new_password)?;
        if me != name && !call.caller.is_admin() {
            return Err(forbidden(format!("{me} may change only its own password")));
        }
        let u = self.user_record(name)?;
        if me == name {
            // A well-formed request that does not prove who is asking: refused by a rule (403),
            // like a wrong current password.
            let current = b
                .current_password
                .clone()
                .ok_or_else(|| forbidden("give current_password to change your own password"))?;
            let phc = u.password_hash.clone();
            let ok = self
                .auth
                .hash(move || secrets::verify_password(&current, &phc))
                .await
                .map_err(|e| err(StatusCode::TOO_MANY_REQUESTS, e.to_string()))?;
            if !ok {
                self.auth.record(&me, call.peer, "user.password", name, false, Some("wrong current password"));
                return Err(forbidden("current_password is not right"));
            }
        }
        let hash = self.hash_password(&b.new_password).await?;
        // Read again: the check above took time, and another change may have landed.
        let who = name.to_string();
        let u = self
            .blocking(move |app| -> Result<UserRecord, super::ApiErr> {
                let mut u = app.user_record(&who)?;
                u.password_hash = hash;
                u.generation += 1;
                app.auth.store.put_user(&u)?;
                Ok(u)
            })
            .await??;
        call.audit(self, "user.password", name, None);
        Ok((StatusCode::OK, user_json(&u)))
    }

    /// `PUT /users/{name}/disabled {"disabled": bool}` (administrators). Disabling ends every
    /// credential of the user; enabling again does not revive them.
    pub(super) fn disable_user(&self, call: &Call, name: &str) -> ApiResult {
        call.require_admin()?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            disabled: bool,
        }
        let b: Body = call.json()?;
        if b.disabled && call.caller.name() == name {
            return Err(forbidden("administrators cannot disable themselves; ask another administrator"));
        }
        let mut u = self.user_record(name)?;
        if b.disabled && !u.disabled {
            u.generation += 1;
        }
        u.disabled = b.disabled;
        self.auth.store.put_user(&u)?;
        call.audit(self, if b.disabled { "user.disable" } else { "user.enable" }, name, None);
        Ok((StatusCode::OK, user_json(&u)))
    }

    /// `DELETE /users/{name}` (administrators): the user, its tokens, team roles and sharing
    /// entries go; every credential it held fails.
    pub(super) fn delete_user(&self, call: &Call, name: &str) -> ApiResult {
        call.require_admin()?;
        if call.caller.name() == name {
            return Err(forbidden("administrators cannot delete themselves; ask another administrator"));
        }
        if !self.auth.store.delete_user(name)? {
            return Err(not_found(format!("user {name} does not exist")));
        }
        call.audit(self, "user.delete", name, None);
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    pub(super) fn create_team(&self, call: &Call) -> ApiResult {
        let me = call.user()?.to_string();
        let name = call.name_body("team", 128)?;
        let t = self.auth.store.create_team(&name, &me)?;
        call.audit(self, "team.create", &t.id.to_string(), Some(&name));
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

    /// Adds or removes a member or manager. Only the team's managers and administrators may:
    /// membership hands out whatever the team is shared with.
    pub(super) fn team_change(&self, call: &Call, id: &str, user: &str, role: TeamRole, add: bool) -> ApiResult {
        let me = call.user()?;
        let mut t = self.team_by_id(id)?;
        if !t.managers.contains(me) && !call.caller.is_admin() {
            return Err(forbidden(format!(
                "only managers of team {id} ({}) or administrators may change its members and managers",
                t.managers.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let set = match role {
            TeamRole::Member => &mut t.members,
            TeamRole::Manager => &mut t.managers,
        };
        let what = match role {
            TeamRole::Member => "member",
            TeamRole::Manager => "manager",
        };
        if add {
            self.user_record(user)?;
            set.insert(user.to_string());
        } else {
            if !set.contains(user) {
                return Err(not_found(format!("{user} is not a {what} of team {id}")));
            }
            if role == TeamRole::Manager && set.len() == 1 {
                // Well-formed, but the team's state forbids it: 409, not 400.
                return Err(err(
                    StatusCode::CONFLICT,
                    format!("{user} is the last manager of team {id}; add another manager first"),
                ));
            }
            set.remove(user);
        }
        self.auth.store.put_team(&t)?;
        let action = format!("team.{what}.{}", if add { "add" } else { "remove" });
        call.audit(self, &action, id, Some(user));
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
        if call.kind != CredentialKind::Password {
            return Err(forbidden("access tokens cannot create access tokens; log in with your password"));
        }
        let user = self.user_record(&me)?;
        let b: Body = call.json()?;
        if b.name.trim().is_empty() || b.name.chars().count() > 128 {
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
            user_id: user.id,
            generation: user.generation,
        };
        self.auth.store.put_token(&rec)?;
        let scopes: Vec<&str> = rec.scopes.iter().map(|s| s.as_str()).collect();
        call.audit(self, "token.create", &id, Some(&scopes.join(",")));
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
        call.audit(self, "token.revoke", id, None);
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    pub(super) async fn gc(&self, call: &Call) -> ApiResult {
        call.require_admin()?;
        let e = self.engine.clone();
        let report = tokio::task::spawn_blocking(move || e.collect_garbage())
            .await
            .map_err(|e| bad_request(e.to_string()))??;
        self.metrics.gc_run(report.blobs_deleted, report.bytes_freed);
        Ok((StatusCode::OK, serde_json::to_value(report).unwrap_or(Value::Null)))
    }
}

fn token_json(t: &TokenRecord) -> Value {
    json!({ "id": t.id, "name": t.name, "scopes": t.scopes, "created": t.created, "expires": t.expires, "revoked": t.revoked })
}
