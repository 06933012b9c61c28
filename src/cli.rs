//! `stowage admin ...`: administration commands that call a running server's REST API, so they
//! work the same against a local or a remote registry and go through the same permission checks.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct AdminArgs {
    /// URL of the running registry.
    #[arg(long, env = "STOWAGE_URL", default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// User to act as.
    #[arg(long, short = 'u', env = "STOWAGE_USER", default_value = "admin")]
    pub user: String,
    /// A PEM CA certificate to trust for an https:// URL, besides the system trust store (the
    /// ca.crt of `stowage certs init`).
    #[arg(long, env = "STOWAGE_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Password or personal access token of that user.
    #[arg(long, short = 'p', env = "STOWAGE_PASSWORD", hide_env_values = true)]
    pub password: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Users: create, show.
    #[command(subcommand)]
    Users(UserCmd),
    /// Certify a user (allows pushing), or revoke certification.
    Certify {
        username: String,
        /// Remove the certification instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Teams: create, add and remove members.
    #[command(subcommand)]
    Teams(TeamCmd),
    /// Projects: create, list, show, repositories, usage.
    #[command(subcommand)]
    Projects(ProjectCmd),
    /// Give a principal access to a project or repository (local sharing settings).
    Share {
        /// Entity id, e.g. syn123.
        entity: String,
        /// user:<name>, team:<id>, authenticated or public.
        principal: String,
        /// Levels (view, download, edit, edit_delete, admin) or access types (READ, DOWNLOAD, ...).
        #[arg(required = true)]
        access: Vec<String>,
    },
    /// Remove a principal's entry from an entity's sharing settings.
    Unshare { entity: String, principal: String },
    /// Show the sharing settings that govern an entity.
    Acl { entity: String },
    /// Make a repository follow its project's sharing settings again.
    Inherit { entity: String },
    /// Personal access tokens of the user given with --user.
    #[command(subcommand)]
    Tokens(TokenCmd),
    /// The trash: move, list, restore, purge.
    #[command(subcommand)]
    Trash(TrashCmd),
    /// Run garbage collection now.
    Gc,
    /// Make (or complete, or update) a consistent online backup into DEST, a directory on the
    /// server's machine: the index snapshot plus the blobs it records, hard-linked when on the
    /// same filesystem, else copied. Rerun into the same DEST to transfer only what changed.
    Backup {
        /// Absolute path on the server, outside its data directory.
        dest: String,
    },
    /// Re-read every blob now, check its digest and quarantine damaged ones.
    Scrub,
    /// List the blobs scrub quarantined.
    Quarantine,
    /// Per-project storage quotas (administrators).
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Change a password. Your own needs --password to be the current one (a password login);
    /// administrators may name another user.
    Passwd {
        /// Whose password (default: the --user).
        username: Option<String>,
        /// The new password (at least 8 characters).
        #[arg(long, env = "STOWAGE_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// The security audit log, newest first (administrators).
    Audit {
        /// Only events by this user.
        #[arg(long)]
        actor: Option<String>,
        /// Only events on this target (user, token id, entity id, team id).
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events older than this sequence number (next_before of the previous page).
        #[arg(long)]
        before: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user.
    Create {
        username: String,
        /// The new user's password (at least 8 characters).
        #[arg(long)]
        password: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        certified: bool,
    },
    /// Show a user.
    Show { username: String },
    /// Every user (administrators).
    List,
    /// Disable a user: it cannot log in and every credential it holds ends at once.
    Disable { username: String },
    /// Let a disabled user log in again (its old credentials stay ended).
    Enable { username: String },
    /// Delete a user with its tokens, team roles and sharing entries.
    Delete { username: String },
}

#[derive(Subcommand)]
pub enum TeamCmd {
    Create {
        name: String,
    },
    /// Add a member (team managers and administrators).
    Add {
        team: u64,
        username: String,
    },
    /// Remove a member (team managers and administrators).
    Remove {
        team: u64,
        username: String,
    },
    /// Make a user a manager of the team.
    Manage {
        team: u64,
        username: String,
    },
    /// Take a manager role away (never the last manager's).
    Unmanage {
        team: u64,
        username: String,
    },
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    Create {
        name: String,
    },
    List,
    Show {
        id: String,
    },
    /// Managed and external repositories of a project.
    Repos {
        id: String,
    },
    /// Storage used by a project.
    Usage {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum QuotaCmd {
    /// Set a project's quota in bytes (logical bytes, as `projects usage` reports them).
    Set { project: String, bytes: u64 },
    /// Remove a project's quota.
    Clear { project: String },
    /// Show a project's usage and quota.
    Show { project: String },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token; it is printed once.
    Create {
        name: String,
        /// Comma-separated scopes: view, download, modify.
        #[arg(long, value_delimiter = ',', default_value = "view,download")]
        scopes: Vec<String>,
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TrashCmd {
    /// Move a project or repository to the trash.
    Move {
        entity: String,
    },
    List,
    Restore {
        entity: String,
    },
    /// Delete for good (blobs go at the next garbage collection).
    Purge {
        entity: String,
    },
}

struct Api {
    base: String,
    user: String,
    password: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1/{}", self.base.trim_end_matches('/'), path);
        let mut req = self.http.request(method.clone(), &url).basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{method} {path}: {status}: {msg}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
}

pub fn run(a: AdminArgs) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let mut http = client_builder();
    if let Some(p) = &a.ca_cert {
        let pem = std::fs::read(p).with_context(|| format!("cannot read --ca-cert {}", p.display()))?;
        let ca =
            reqwest::Certificate::from_pem(&pem).with_context(|| format!("{}: not a PEM certificate", p.display()))?;
        http = http.add_root_certificate(ca);
    }
    let api = Api { base: a.url, user: a.user, password: a.password, http: http.build()? };
    let out = match a.command {
        AdminCommand::Users(UserCmd::Create { username, password, admin, certified }) => api.call(
            M::POST,
            "users",
            Some(json!({ "username": username, "password": password, "admin": admin, "certified": certified })),
        )?,
        AdminCommand::Users(UserCmd::Show { username }) => api.call(M::GET, &format!("users/{username}"), None)?,
        AdminCommand::Users(UserCmd::List) => api.call(M::GET, "users", None)?,
        AdminCommand::Users(UserCmd::Disable { username }) => {
            api.call(M::PUT, &format!("users/{username}/disabled"), Some(json!({ "disabled": true })))?
        }
        AdminCommand::Users(UserCmd::Enable { username }) => {
            api.call(M::PUT, &format!("users/{username}/disabled"), Some(json!({ "disabled": false })))?
        }
        AdminCommand::Users(UserCmd::Delete { username }) => api.call(M::DELETE, &format!("users/{username}"), None)?,
        AdminCommand::Passwd { username, new_password } => {
            let whose = username.unwrap_or_else(|| api.user.clone());
            let mut body = json!({ "new_password": new_password });
            if whose == api.user {
                body["current_password"] = json!(api.password);
            }
            api.call(M::PUT, &format!("users/{whose}/password"), Some(body))?
        }
        AdminCommand::Audit { actor, target, limit, before } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(a) = actor {
                q.push(format!("actor={}", query_escape(&a)));
            }
            if let Some(t) = target {
                q.push(format!("target={}", query_escape(&t)));
            }
            if let Some(b) = before {
                q.push(format!("before={b}"));
            }
            api.call(M::GET, &format!("audit?{}", q.join("&")), None)?
        }
        AdminCommand::Certify { username, revoke } => {
            api.call(M::PUT, &format!("users/{username}/certified"), Some(json!({ "certified": !revoke })))?
        }
        AdminCommand::Teams(TeamCmd::Create { name }) => api.call(M::POST, "teams", Some(json!({ "name": name })))?,
        AdminCommand::Teams(TeamCmd::Add { team, username }) => {
            api.call(M::PUT, &format!("teams/{team}/members/{username}"), None)?
        }
        AdminCommand::Teams(TeamCmd::Remove { team, username }) => {
            api.call(M::DELETE, &format!("teams/{team}/members/{username}"), None)?
        }
        AdminCommand::Teams(TeamCmd::Manage { team, username }) => {
            api.call(M::PUT, &format!("teams/{team}/managers/{username}"), None)?
        }
        AdminCommand::Teams(TeamCmd::Unmanage { team, username }) => {
            api.call(M::DELETE, &format!("teams/{team}/managers/{username}"), None)?
        }
        AdminCommand::Projects(ProjectCmd::Create { name }) => {
            api.call(M::POST, "projects", Some(json!({ "name": name })))?
        }
        AdminCommand::Projects(ProjectCmd::List) => api.call(M::GET, "projects", None)?,
        AdminCommand::Projects(ProjectCmd::Show { id }) => api.call(M::GET, &format!("projects/{id}"), None)?,
        AdminCommand::Projects(ProjectCmd::Repos { id }) => {
            api.call(M::GET, &format!("projects/{id}/repositories"), None)?
        }
        AdminCommand::Projects(ProjectCmd::Usage { id }) => api.call(M::GET, &format!("projects/{id}/usage"), None)?,
        AdminCommand::Share { entity, principal, access } => {
            let mut entries = own_entries(&api, &entity)?;
            entries.retain(|e| e["principal"] != principal.as_str());
            entries.push(json!({ "principal": principal, "access": access }));
            api.call(M::PUT, &format!("entities/{entity}/acl"), Some(json!({ "entries": entries })))?
        }
        AdminCommand::Unshare { entity, principal } => {
            let mut entries = own_entries(&api, &entity)?;
            let before = entries.len();
            entries.retain(|e| e["principal"] != principal.as_str());
            if entries.len() == before {
                bail!("{principal} has no entry in the sharing settings of {entity}");
            }
            api.call(M::PUT, &format!("entities/{entity}/acl"), Some(json!({ "entries": entries })))?
        }
        AdminCommand::Acl { entity } => api.call(M::GET, &format!("entities/{entity}/acl"), None)?,
        AdminCommand::Inherit { entity } => api.call(M::DELETE, &format!("entities/{entity}/acl"), None)?,
        AdminCommand::Tokens(TokenCmd::Create { name, scopes, days }) => {
            api.call(M::POST, "tokens", Some(json!({ "name": name, "scopes": scopes, "expires_in_days": days })))?
        }
        AdminCommand::Tokens(TokenCmd::List) => api.call(M::GET, "tokens", None)?,
        AdminCommand::Tokens(TokenCmd::Revoke { id }) => api.call(M::DELETE, &format!("tokens/{id}"), None)?,
        AdminCommand::Trash(TrashCmd::Move { entity }) => api.call(M::DELETE, &format!("entities/{entity}"), None)?,
        AdminCommand::Trash(TrashCmd::List) => api.call(M::GET, "trash", None)?,
        AdminCommand::Trash(TrashCmd::Restore { entity }) => {
            api.call(M::POST, &format!("trash/{entity}/restore"), None)?
        }
        AdminCommand::Trash(TrashCmd::Purge { entity }) => api.call(M::DELETE, &format!("trash/{entity}"), None)?,
        AdminCommand::Gc => api.call(M::POST, "gc", None)?,
        AdminCommand::Backup { dest } => api.call(M::POST, "admin/backup", Some(json!({ "dest": dest })))?,
        AdminCommand::Scrub => api.call(M::POST, "admin/scrub", None)?,
        AdminCommand::Quarantine => api.call(M::GET, "admin/quarantine", None)?,
        AdminCommand::Quota(QuotaCmd::Set { project, bytes }) => {
            api.call(M::PUT, &format!("projects/{project}/quota"), Some(json!({ "bytes": bytes })))?
        }
        AdminCommand::Quota(QuotaCmd::Clear { project }) => {
            api.call(M::PUT, &format!("projects/{project}/quota"), Some(json!({ "bytes": null })))?
        }
        AdminCommand::Quota(QuotaCmd::Show { project }) => {
            api.call(M::GET, &format!("projects/{project}/usage"), None)?
        }
    };
    if !out.is_null() {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// The HTTP client of the admin commands. No overall timeout: a garbage collection, a backup or
/// a scrub answers only when done, which on a big store takes long; connecting is bounded.
/// No overall timeout (a backup or scrub runs as long as the data takes), a bounded connect.
fn client_builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder().timeout(None).connect_timeout(std::time::Duration::from_secs(10))
}

/// The entity's own sharing entries when it has local settings, else the inherited ones (the
/// first change to a repository's sharing starts from what it inherited).
fn own_entries(api: &Api, entity: &str) -> anyhow::Result<Vec<Value>> {
    let acl = api.call(reqwest::Method::GET, &format!("entities/{entity}/acl"), None)?;
    Ok(acl["entries"].as_array().cloned().unwrap_or_default())
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
