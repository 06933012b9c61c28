//! Records of the access model and their storage in the engine's keyed trees: users, teams,
//! projects, ACLs, personal access tokens, the trash and external repositories. It also gathers
//! the [`RepoFacts`] the rules decide on. It never decides anything itself.

use super::rules::{AccessType, Acl, AclEntry, Caller, CallerUser, Principal, RepoFacts, Scope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use stowage_engine::index::catalog::now_secs;
use stowage_engine::index::records::{Rec, RecKind};
use stowage_engine::{Catalog, Engine, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub certified: bool,
    pub admin: bool,
    pub created: i64,
    /// A disabled user cannot log in, and every credential it holds fails.
    #[serde(default)]
    pub disabled: bool,
    /// The credential generation: registry tokens, refresh tokens, access tokens and cached
    /// password checks carry the generation they were made at and fail once it moves. Changing
    /// the password or disabling the user moves it, so every credential ends at the next request.
    #[serde(default)]
    pub generation: u64,
}

impl UserRecord {
    /// May a credential made for user `uid` at `generation` still act as this user?
    pub fn accepts(&self, uid: u64, generation: u64) -> bool {
        !self.disabled && self.id == uid && self.generation == generation
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub id: u64,
    pub name: String,
    pub members: BTreeSet<String>,
    /// Who may change the members and managers (the creator first). Administrators may too.
    #[serde(default)]
    pub managers: BTreeSet<String>,
}

/// What an entity id (`syn<N>`) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Project,
    Repository,
    ExternalRepository,
}

/// Projects and external repositories (managed repositories live in the engine's repo records;
/// they share the one `entity` id counter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRecord {
    pub id: u64,
    pub kind: EntityKind,
    pub name: String,
    /// For repositories: the owning project's id.
    pub project: Option<u64>,
    pub created_by: String,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashRecord {
    pub id: u64,
    pub kind: EntityKind,
    pub name: String,
    pub deleted_by: String,
    pub deleted_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub username: String,
    pub scopes: BTreeSet<Scope>,
    /// SHA-256 of the secret part, hex.
    pub secret_sha256: String,
    pub created: i64,
    pub expires: i64,
    pub revoked: bool,
    /// The owner's user id and credential generation when the token was made: a token of a
    /// deleted user (even if the name is taken again), or made before a password change, fails.
    #[serde(default)]
    pub user_id: u64,
    #[serde(default)]
    pub generation: u64,
}

/// One security-relevant event (issue: audit trail). Appended, never rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: i64,
    /// Who did it: a user name, or `anonymous`.
    pub actor: String,
    /// The client's IP address.
    pub address: String,
    /// What happened, e.g. `login`, `token.create`, `acl.set`, `user.disable`.
    pub action: String,
    /// What it was done to: a user name, a token id, an entity id like `syn3`, a team id.
    pub target: String,
    /// `ok` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Parses `syn<N>`.
pub fn parse_entity_id(s: &str) -> Option<u64> {
    s.strip_prefix("syn").filter(|n| !n.starts_with('0') || *n == "0").and_then(|n| n.parse().ok())
}

pub fn syn(id: u64) -> String {
    format!("syn{id}")
}

/// The access-model view over the engine's index.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

impl Store {
    pub fn new(engine: Engine) -> Store {
        Store { engine }
    }

    pub fn cat(&self) -> &Catalog {
        self.engine.catalog()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    // ---- users and teams ----

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.cat().record(Rec::User(name))
    }

    /// Creates a user; false if the name is taken.
    pub fn create_user(&self, username: &str, password_hash: String, admin: bool) -> Result<Option<UserRecord>> {
        let id = self.cat().next_id("user")?;
        let rec = UserRecord {
            id,
            username: username.to_string(),
            password_hash,
            certified: admin,
            admin,
            created: now_secs(),
            disabled: false,
            generation: 0,
        };
        Ok(self.cat().insert_record(Rec::User(username), &rec)?.then_some(rec))
    }

    pub fn put_user(&self, rec: &UserRecord) -> Result<()> {
        self.cat().put_record(Rec::User(&rec.username), rec)
    }

    /// Deletes a user and everything that names it: its access tokens, its team memberships and
    /// manager roles, and the sharing-settings entries for it, so a later user of the same name
    /// inherits nothing. Its registry tokens already fail, since they carry the user id.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        if self.user(name)?.is_none() {
            return Ok(false);
        }
        let tokens = self.tokens_of(name)?;
        let ids: Vec<Rec<'_>> = tokens.iter().map(|t| Rec::Token(&t.id)).collect();
        self.cat().remove_records(&ids)?;
        for mut t in self.teams()? {
            let changed = t.members.remove(name) | t.managers.remove(name);
            if changed {
                self.put_team(&t)?;
            }
        }
        let who = Principal::User(name.to_string());
        for (id, mut acl) in self.cat().records_by_id::<Acl>(RecKind::Acls)? {
            let before = acl.entries.len();
            acl.entries.retain(|e| e.principal != who);
            if acl.entries.len() != before {
                self.set_acl(id, &acl)?;
            }
        }
        self.cat().remove_record(Rec::User(name))?;
        Ok(true)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.cat().records(RecKind::Users)
    }

    pub fn team(&self, id: u64) -> Result<Option<TeamRecord>> {
        self.cat().record(Rec::Team(id))
    }

    /// Writes a team and its entries in the membership index, in one durable batch.
    pub fn put_team(&self, t: &TeamRecord) -> Result<()> {
        self.cat().write(|b| {
            self.cat().put_record_into(b, Rec::Team(t.id), t);
            self.cat().set_team_members_into(b, t.id, t.members.iter().map(String::as_str))
        })
    }

    /// Builds the access model's secondary indexes (team membership) for a data directory that
    /// predates them. Blocking; run once at start, before any request.
    pub fn build_indexes(&self) -> Result<()> {
        let built = self.cat().build_members(|| {
            Ok(self.teams()?.into_iter().map(|t| (t.id, t.members.into_iter().collect())).collect())
        })?;
        if built {
            tracing::info!("built the team membership index");
        }
        let built = self.cat().build_readers(|| {
            Ok(self
                .cat()
                .records_by_id::<Acl>(RecKind::Acls)?
                .into_iter()
                .map(|(id, acl)| (id, super::visible::readers_of(&acl)))
                .collect())
        })?;
        if built {
            tracing::info!("built the readers index of sharing settings");
        }
        let built = self.cat().build_project_externals(|| {
            Ok(self
                .cat()
                .records::<EntityRecord>(RecKind::Entities)?
                .into_iter()
                .filter(|e| e.kind == EntityKind::ExternalRepository)
                .filter_map(|e| Some((e.project?, e.id)))
                .collect())
        })?;
        if built {
            tracing::info!("built the index of external repositories by project");
        }
        Ok(())
    }

    /// Creates a team whose first member and manager is `creator`.
    pub fn create_team(&self, name: &str, creator: &str) -> Result<TeamRecord> {
        let id = self.cat().next_id("team")?;
        let one = BTreeSet::from([creator.to_string()]);
        let t = TeamRecord { id, name: name.to_string(), members: one.clone(), managers: one };
        self.put_team(&t)?;
        Ok(t)
    }

    pub fn teams(&self) -> Result<Vec<TeamRecord>> {
        self.cat().records(RecKind::Teams)
    }

    /// The caller for a user record, with its teams, and the scopes of its credential.
    pub fn caller_for(&self, u: &UserRecord, scopes: Option<BTreeSet<Scope>>) -> Result<Caller> {
        // From the membership index: the user's own entries, never every team.
        let teams = self.cat().teams_of(&u.username)?.into_iter().collect();
        let via_token = scopes.is_some();
        Ok(Caller {
            user: Some(CallerUser {
                name: u.username.clone(),
                certified: u.certified,
                admin: u.admin,
                teams,
                via_token,
            }),
            scopes: scopes.unwrap_or_else(|| [Scope::View, Scope::Download, Scope::Modify].into_iter().collect()),
        })
    }

    // ---- entities, ACLs, trash ----

    pub fn entity(&self, id: u64) -> Result<Option<EntityRecord>> {
        self.cat().record(Rec::Entity(id))
    }

    /// Writes an entity; an external repository also gets its entry under its project (same
    /// batch).
    pub fn put_entity(&self, e: &EntityRecord) -> Result<()> {
        match (e.kind, e.project) {
            (EntityKind::ExternalRepository, Some(p)) => self.cat().put_project_external(p, e.id, e),
            _ => self.cat().put_record(Rec::Entity(e.id), e),
        }
    }

    /// Creates a project; its creator gets admin on it.
    pub fn create_project(&self, name: &str, creator: &str) -> Result<EntityRecord> {
        let id = self.cat().next_id("entity")?;
        let e = EntityRecord {
            id,
            kind: EntityKind::Project,
            name: name.to_string(),
            project: None,
            created_by: creator.to_string(),
            created: now_secs(),
        };
        self.put_entity(&e)?;
        let acl = Acl {
            entries: vec![AclEntry {
                principal: Principal::User(creator.to_string()),
                access: AccessType::ALL.into_iter().collect(),
            }],
        };
        self.set_acl(id, &acl)?;
        Ok(e)
    }

    pub fn project(&self, id: u64) -> Result<Option<EntityRecord>> {
        Ok(self.entity(id)?.filter(|e| e.kind == EntityKind::Project))
    }

    pub fn projects(&self) -> Result<Vec<EntityRecord>> {
        Ok(self
            .cat()
            .records::<EntityRecord>(RecKind::Entities)?
            .into_iter()
            .filter(|e| e.kind == EntityKind::Project)
            .collect())
    }

    /// A project's external repositories by id, after `after`, at most `limit`: from the
    /// project's entries of the externals index, never from every entity.
    pub fn external_repos_page(&self, project: u64, after: Option<u64>, limit: usize) -> Result<Vec<EntityRecord>> {
        let mut out = Vec::new();
        for id in self.cat().project_externals(project, after, limit)? {
            out.extend(self.entity(id)?.filter(|e| e.kind == EntityKind::ExternalRepository));
        }
        Ok(out)
    }

    pub fn external_repos(&self, project: u64) -> Result<Vec<EntityRecord>> {
        self.external_repos_page(project, None, usize::MAX)
    }

    pub fn acl(&self, id: u64) -> Result<Option<Acl>> {
        self.cat().record(Rec::Acl(id))
    }

    /// Writes an entity's sharing settings and its entries in the readers index, in one durable
    /// batch.
    pub fn set_acl(&self, id: u64, acl: &Acl) -> Result<()> {
        self.cat().write(|b| {
            let old = self.acl(id)?.map(|a| super::visible::readers_of(&a)).unwrap_or_default();
            self.cat().put_record_into(b, Rec::Acl(id), acl);
            self.cat().set_readers_into(b, id, &old, &super::visible::readers_of(acl));
            Ok(())
        })
    }

    pub fn delete_acl(&self, id: u64) -> Result<()> {
        self.cat().write(|b| self.forget_acl_into(b, id))
    }

    /// Adds the removal of an entity's sharing settings, and of its readers-index entries, to a
    /// batch of [`Catalog::write`].
    pub fn forget_acl_into(&self, b: &mut stowage_engine::index::Batch, id: u64) -> Result<()> {
        let old = self.acl(id)?.map(|a| super::visible::readers_of(&a)).unwrap_or_default();
        self.cat().set_readers_into(b, id, &old, &[]);
        self.cat().delete_record_into(b, Rec::Acl(id));
        Ok(())
    }

    pub fn trash_record(&self, id: u64) -> Result<Option<TrashRecord>> {
        self.cat().record(Rec::Trash(id))
    }

    pub fn put_trash(&self, t: &TrashRecord) -> Result<()> {
        self.cat().put_record(Rec::Trash(t.id), t)
    }

    pub fn remove_trash(&self, id: u64) -> Result<()> {
        self.cat().remove_record(Rec::Trash(id))
    }

    pub fn trash(&self) -> Result<Vec<TrashRecord>> {
        self.cat().records(RecKind::Trash)
    }

    /// The benefactor ACL of a managed repository: its own, else its project's.
    pub fn repo_benefactor(&self, repo_id: u64, project: Option<u64>) -> Result<(Acl, u64)> {
        if let Some(a) = self.acl(repo_id)? {
            return Ok((a, repo_id));
        }
        match project {
            Some(p) => Ok((self.acl(p)?.unwrap_or_default(), p)),
            None => Ok((Acl::default(), repo_id)),
        }
    }

    /// Gathers what the rules need to decide on repository `name` (`<projectId>/<path>`).
    pub fn repo_facts(&self, name: &str, project_component: &str) -> Result<RepoFacts> {
        Ok(self.repo_facts_and_id(name, project_component)?.0)
    }

    /// [`Store::repo_facts`], with the id of the repository if it exists (what the facts were
    /// read under: its sharing settings and trash record are keyed by it).
    pub fn repo_facts_and_id(&self, name: &str, project_component: &str) -> Result<(RepoFacts, Option<u64>)> {
        let project_id = parse_entity_id(project_component);
        let project = match project_id {
            Some(id) => self.project(id)?,
            None => None,
        };
        let repo = self.cat().repo_by_name(name)?;
        let mut trashed = None;
        if let Some(p) = &project {
            if self.trash_record(p.id)?.is_some() {
                trashed = Some(format!("project {}", syn(p.id)));
            }
        }
        let repo_acl = match &repo {
            Some(r) => {
                if trashed.is_none() && self.trash_record(r.id)?.is_some() {
                    trashed = Some(name.to_string());
                }
                self.acl(r.id)?
            }
            None => None,
        };
        let project_acl = match &project {
            Some(p) => self.acl(p.id)?.unwrap_or_default(),
            None => Acl::default(),
        };
        let facts = RepoFacts {
            name: name.to_string(),
            project_id: project_component.to_string(),
            project_exists: project.is_some(),
            project_acl,
            repo_exists: repo.is_some(),
            repo_acl,
            trashed,
        };
        Ok((facts, repo.map(|r| r.id)))
    }

    // ---- audit trail ----

    /// Appends an event; `seq` and `time` are filled in here.
    pub fn audit(&self, mut rec: AuditRecord) -> Result<()> {
        rec.seq = self.cat().next_id("audit")?;
        rec.time = now_secs();
        self.cat().put_record(Rec::Audit(rec.seq), &rec)
    }

    /// Events newest first, older than `before` (a seq) when given, that `keep` accepts; reads
    /// at most `budget` records so a filter that matches little stays bounded. Returns the
    /// events and the seq to continue from (None at the end of the log).
    pub fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        budget: usize,
        keep: impl Fn(&AuditRecord) -> bool,
    ) -> Result<(Vec<AuditRecord>, Option<u64>)> {
        const CHUNK: usize = 256;
        let mut out = Vec::new();
        let mut after = before;
        let mut read = 0usize;
        loop {
            let chunk: Vec<AuditRecord> = self.cat().records_after(RecKind::Audit, after.map(Rec::Audit), CHUNK)?;
            let full = chunk.len() == CHUNK;
            let Some(last) = chunk.last().map(|r| r.seq) else { return Ok((out, None)) };
            for r in chunk {
                read += 1;
                let seq = r.seq;
                if keep(&r) {
                    out.push(r);
                }
                if out.len() == limit || read == budget {
                    return Ok((out, (seq > 1).then_some(seq)));
                }
            }
            if !full {
                return Ok((out, None));
            }
            after = Some(last);
        }
    }

    // ---- personal access tokens ----

    pub fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.cat().record(Rec::Token(id))
    }

    pub fn put_token(&self, t: &TokenRecord) -> Result<()> {
        self.cat().put_record(Rec::Token(&t.id), t)
    }

    pub fn tokens_of(&self, username: &str) -> Result<Vec<TokenRecord>> {
        Ok(self.cat().records::<TokenRecord>(RecKind::Tokens)?.into_iter().filter(|t| t.username == username).collect())
    }
}
