//! Projects, repositories (managed and external), sharing settings, tags, commit history, the
//! trash and storage use. Every entity has a `syn<N>` id from one counter.

use super::{bad_request, err, forbidden, not_found, ApiErr, ApiResult, Call};
use crate::access::rules::{can, effective, level, AccessType, Acl, AclEntry, Principal};
use crate::access::store::{parse_entity_id, syn, EntityKind, EntityRecord, TrashRecord};
use crate::app::App;
use crate::oci::{Digest, Tag};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use stowage_engine::index::catalog::now_secs;
use stowage_engine::index::records::Rec;
use stowage_engine::RepoRecord;

/// What a `syn<N>` id names.
enum Ent {
    Project(EntityRecord),
    Managed(RepoRecord),
    External(EntityRecord),
}

impl Ent {
    fn id(&self) -> u64 {
        match self {
            Ent::Project(e) | Ent::External(e) => e.id,
            Ent::Managed(r) => r.id,
        }
    }

    fn project_id(&self) -> Option<u64> {
        match self {
            Ent::Project(_) => None,
            Ent::External(e) => e.project,
            Ent::Managed(r) => parse_entity_id(&r.project),
        }
    }

    fn kind(&self) -> EntityKind {
        match self {
            Ent::Project(_) => EntityKind::Project,
            Ent::Managed(_) => EntityKind::Repository,
            Ent::External(_) => EntityKind::ExternalRepository,
        }
    }

    fn name(&self) -> &str {
        match self {
            Ent::Project(e) | Ent::External(e) => &e.name,
            Ent::Managed(r) => &r.name,
        }
    }
}

const LIST_LIMIT_MAX: usize = 1000;

impl App {
    fn ent(&self, id: &str) -> Result<Ent, ApiErr> {
        let n = parse_entity_id(id).ok_or_else(|| bad_request(format!("{id:?} is not an entity id like syn123")))?;
        if let Some(r) = self.engine.catalog().repo(n)? {
            return Ok(Ent::Managed(r));
        }
        match self.auth.store.entity(n)? {
            Some(e) if e.kind == EntityKind::Project => Ok(Ent::Project(e)),
            Some(e) => Ok(Ent::External(e)),
            None => Err(not_found(format!("{id} does not exist"))),
        }
    }

    /// The ACL that governs `e` and the id it belongs to.
    fn benefactor(&self, e: &Ent) -> Result<(Acl, u64), ApiErr> {
        match e {
            Ent::Project(p) => Ok((self.auth.store.acl(p.id)?.unwrap_or_default(), p.id)),
            _ => Ok(self.auth.store.repo_benefactor(e.id(), e.project_id())?),
        }
    }

    fn in_trash(&self, e: &Ent) -> Result<bool, ApiErr> {
        let s = &self.auth.store;
        Ok(s.trash_record(e.id())?.is_some()
            || e.project_id().map(|p| s.trash_record(p)).transpose()?.flatten().is_some())
    }

    /// The answer for an entity the caller may not see: the same whether it exists, is in the
    /// trash or never existed, so ids cannot be probed.
    fn hidden(call: &Call, what: &str) -> ApiErr {
        if call.caller.user.is_none() {
            return err(StatusCode::UNAUTHORIZED, format!("log in to see {what}"));
        }
        not_found(format!("{what} does not exist or you may not see it"))
    }

    /// Resolves an id the caller may `access`. An entity the caller has no access to at all is
    /// answered like a missing one; a trashed entity is "in the trash" only to callers who may
    /// see it.
    fn ent_with(&self, call: &Call, id: &str, access: AccessType) -> Result<Ent, ApiErr> {
        let e = match self.ent(id) {
            Err(x) if x.status == StatusCode::NOT_FOUND => return Err(Self::hidden(call, id)),
            other => other?,
        };
        let (acl, _) = self.benefactor(&e)?;
        if effective(&call.caller, &acl).is_empty() {
            return Err(Self::hidden(call, id));
        }
        if self.in_trash(&e)? {
            return Err(not_found(format!("{id} is in the trash; restore it with POST /api/v1/trash/{id}/restore")));
        }
        if !can(&call.caller, &acl, AccessType::Read) {
            return Err(Self::hidden(call, id));
        }
        if !can(&call.caller, &acl, access) {
            return Err(forbidden(format!("{} has no {access:?} permission on {id}", call.caller.name())));
        }
        Ok(e)
    }

    fn ent_json(&self, e: &Ent) -> Result<Value, ApiErr> {
        Ok(match e {
            Ent::Project(p) => {
                json!({ "id": syn(p.id), "kind": "project", "name": p.name, "created_by": p.created_by, "created": p.created })
            }
            Ent::Managed(r) => json!({
                "id": syn(r.id), "kind": "repository", "name": r.name, "project": r.project, "created": r.created,
                "logical_bytes": r.logical_bytes, "local_sharing": self.auth.store.acl(r.id)?.is_some(),
            }),
            Ent::External(x) => json!({
                "id": syn(x.id), "kind": "external_repository", "name": x.name, "project": x.project.map(syn),
                "created_by": x.created_by, "created": x.created, "local_sharing": self.auth.store.acl(x.id)?.is_some(),
            }),
        })
    }

    pub(super) fn create_project(&self, call: &Call) -> ApiResult {
        let me = call.user()?.to_string();
        let name = call.name_body("project", 256)?;
        let p = self.auth.store.create_project(&name, &me)?;
        Ok((StatusCode::CREATED, self.ent_json(&Ent::Project(p))?))
    }

    pub(super) fn list_projects(&self, call: &Call) -> ApiResult {
        let mut out = Vec::new();
        // A non-admin's candidates come from the readers index, never from every project.
        let projects = if call.caller.is_admin() {
            self.auth.store.projects()?
        } else {
            let mut ps = Vec::new();
            for id in self.auth.store.readable_entities(&call.caller)? {
                ps.extend(self.auth.store.project(id)?);
            }
            ps
        };
        for p in projects {
            let e = Ent::Project(p);
            if self.in_trash(&e)? {
                continue;
            }
            if can(&call.caller, &self.benefactor(&e)?.0, AccessType::Read) {
                out.push(self.ent_json(&e)?);
            }
        }
        Ok((StatusCode::OK, json!({ "projects": out })))
    }

    pub(super) fn get_project(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::Read)?;
        if !matches!(e, Ent::Project(_)) {
            return Err(not_found(format!("{id} is not a project")));
        }
        Ok((StatusCode::OK, self.ent_json(&e)?))
    }

    /// A project's repositories the caller may READ, a page at a time: managed repositories by
    /// name (read from the name index under the project's prefix, `limit + 1` names per page),
    /// then external repositories by id. `cursor` (from `next`) is `r:<name>` or `x:<id>`.
    pub(super) fn project_repositories(&self, call: &Call, id: &str) -> ApiResult {
        let Ent::Project(p) = self.ent_with(call, id, AccessType::Read)? else {
            return Err(not_found(format!("{id} is not a project")));
        };
        let limit = parse_num(call.q("limit"), 100)?.min(LIST_LIMIT_MAX);
        let bad_cursor =
            || bad_request("cursor must be r:<repository name> or x:<entity id>: give the one from `next`");
        let cursor = match call.q("cursor") {
            None => None,
            Some(c) if c.len() > MAX_CURSOR => return Err(bad_cursor()),
            Some(c) => match c.split_once(':') {
                Some(("r", name)) => Some(Err(name)),
                Some(("x", n)) => Some(Ok(n.parse::<u64>().map_err(|_| bad_cursor())?)),
                _ => return Err(bad_cursor()),
            },
        };
        let mut out = Vec::new();
        let mut next = None;
        let visible = |e: &Ent| -> Result<bool, ApiErr> {
            Ok(!self.in_trash(e)? && can(&call.caller, &self.benefactor(e)?.0, AccessType::Read))
        };
        let link = |c: String| {
            format!("/api/v1/projects/{}/repositories?limit={limit}&cursor={}", syn(p.id), query_escape(&c))
        };
        let mut externals_after = None;
        if let None | Some(Err(_)) = cursor {
            let after = match cursor {
                Some(Err(name)) => Some(name),
                _ => None,
            };
            let prefix = format!("{}/", syn(p.id));
            let names = self.engine.catalog().repo_names_under(&prefix, after, limit.saturating_add(1))?;
            if names.len() > limit {
                next = names.get(limit.wrapping_sub(1)).map(|(n, _)| link(format!("r:{n}")));
            }
            for (_, rid) in names.into_iter().take(limit) {
                if let Some(r) = self.engine.catalog().repo(rid)? {
                    let e = Ent::Managed(r);
                    if visible(&e)? {
                        out.push(self.ent_json(&e)?);
                    }
                }
            }
        } else if let Some(Ok(x)) = cursor {
            externals_after = Some(x);
        }
        // External repositories once the managed ones are done, in the room the page has left.
        let room = limit.saturating_sub(out.len());
        if next.is_none() && limit > 0 {
            let xs = self.auth.store.external_repos_page(p.id, externals_after, room.saturating_add(1))?;
            if xs.len() > room {
                next = Some(if room == 0 {
                    // The page is full of managed repositories: the externals start the next one.
                    link(format!("x:{}", externals_after.unwrap_or(0)))
                } else {
                    link(format!("x:{}", xs[room - 1].id))
                });
            }
            for x in xs.into_iter().take(room) {
                let e = Ent::External(x);
                if visible(&e)? {
                    out.push(self.ent_json(&e)?);
                }
            }
        }
        let mut v = json!({ "repositories": out });
        if let Some(n) = next {
            v["next"] = json!(n);
        }
        Ok((StatusCode::OK, v))
    }

    pub(super) fn create_external(&self, call: &Call, id: &str) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            repository_name: String,
        }
        let me = call.user()?.to_string();
        let Ent::Project(p) = self.ent_with(call, id, AccessType::Create)? else {
            return Err(not_found(format!("{id} is not a project")));
        };
        let b: Body = call.json()?;
        let n = b.repository_name.trim();
        // As the OpenAPI pattern says: printable ASCII with a '/' inside, not at either end.
        let ok = n.len() <= 255
            && n.bytes().all(|c| c.is_ascii_graphic())
            && n.contains('/')
            && !n.starts_with('/')
            && !n.ends_with('/');
        if !ok {
            return Err(bad_request(
                "repository_name must look like registry.example.org/org/tool (no spaces, at most 255 characters)",
            ));
        }
        let rid = self.engine.catalog().next_id("entity")?;
        let e = EntityRecord {
            id: rid,
            kind: EntityKind::ExternalRepository,
            name: n.to_string(),
            project: Some(p.id),
            created_by: me,
            created: now_secs(),
        };
        self.auth.store.put_entity(&e)?;
        Ok((StatusCode::CREATED, self.ent_json(&Ent::External(e))?))
    }

    pub(super) fn usage(&self, call: &Call, id: &str) -> ApiResult {
        let Ent::Project(p) = self.ent_with(call, id, AccessType::Read)? else {
            return Err(not_found(format!("{id} is not a project")));
        };
        // Only the repositories the caller may READ count, in the list and in the total.
        let mut total = 0u64;
        let mut repos = Vec::new();
        for (name, bytes) in self.engine.project_usage(&syn(p.id))?.1 {
            let Some(r) = self.engine.catalog().repo_by_name(&name)? else { continue };
            let e = Ent::Managed(r);
            if self.in_trash(&e)? || !can(&call.caller, &self.benefactor(&e)?.0, AccessType::Read) {
                continue;
            }
            total += bytes;
            repos.push(json!({ "name": name, "logical_bytes": bytes }));
        }
        let mut v = json!({ "project": syn(p.id), "logical_bytes": total, "repositories": repos });
        if call.caller.is_admin() {
            v["physical_bytes_all_projects"] = json!(self.engine.physical_bytes()?);
            // Administrators only: `used_bytes` counts repositories others may not see.
            v["quota"] = self.quota_json(&syn(p.id))?;
        }
        Ok((StatusCode::OK, v))
    }

    /// `{bytes, used_bytes}` of a project's quota (null without one). `used_bytes` is what the
    /// quota is checked against: every repository of the project, also those in the trash,
    /// whose blobs stay stored until they are purged.
    fn quota_json(&self, project: &str) -> Result<Value, ApiErr> {
        Ok(match self.engine.catalog().quota(project)? {
            Some(q) => json!({ "bytes": q, "used_bytes": self.engine.catalog().project_logical_bytes(project)? }),
            None => Value::Null,
        })
    }

    /// `PUT /api/v1/projects/{id}/quota` `{"bytes": N}` (or `null` to remove it): administrators
    /// only (the route table says so too).
    pub(super) fn set_quota(&self, call: &Call, id: &str) -> ApiResult {
        call.require_admin()?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            // Required, and null removes the quota: `deserialize_with` stops serde from
            // defaulting a missing Option to None.
            #[serde(deserialize_with = "Option::deserialize")]
            bytes: Option<u64>,
        }
        let Ent::Project(p) = self.ent_with(call, id, AccessType::Read)? else {
            return Err(not_found(format!("{id} is not a project")));
        };
        let b: Body = call.json()?;
        let project = syn(p.id);
        self.engine.catalog().set_quota(&project, b.bytes)?;
        let detail = b.bytes.map_or_else(|| "removed".to_string(), |q| format!("{q} bytes"));
        call.audit(self, "project.quota", &project, Some(&detail));
        Ok((StatusCode::OK, json!({ "project": project, "quota": self.quota_json(&project)? })))
    }

    pub(super) fn get_acl(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::Read)?;
        let (acl, from) = self.benefactor(&e)?;
        Ok((
            StatusCode::OK,
            json!({ "entity": syn(e.id()), "benefactor": syn(from), "inherited": from != e.id(), "entries": acl.entries }),
        ))
    }

    pub(super) fn put_acl(&self, call: &Call, id: &str) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            principal: Principal,
            access: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            entries: Vec<Entry>,
        }
        let e = self.ent_with(call, id, AccessType::ChangePermissions)?;
        let b: Body = call.json()?;
        if b.entries.len() > 256 {
            return Err(bad_request("at most 256 entries per ACL"));
        }
        let mut entries = Vec::new();
        for en in b.entries {
            let mut access = BTreeSet::new();
            for a in &en.access {
                match level(a) {
                    Some(l) => access.extend(l),
                    None => {
                        access.insert(parse_access(a)?);
                    }
                }
            }
            // A well-formed entry naming someone who does not exist: 404, like adding a missing
            // user to a team.
            match &en.principal {
                Principal::User(u) if self.auth.store.user(u)?.is_none() => {
                    return Err(not_found(format!("user {u} does not exist")))
                }
                Principal::Team(t) if self.auth.store.team(*t)?.is_none() => {
                    return Err(not_found(format!("team {t} does not exist")))
                }
                _ => {}
            }
            entries.push(AclEntry { principal: en.principal, access });
        }
        let acl = Acl { entries };
        if matches!(e, Ent::Project(_))
            && !acl.entries.iter().any(|x| x.access.contains(&AccessType::ChangePermissions))
        {
            // Well-formed, but it would leave the project without anyone able to change it: 409.
            return Err(err(StatusCode::CONFLICT, "a project's sharing settings must give someone CHANGE_PERMISSIONS (admin), or nobody could change them again",
            ));
        }
        self.auth.store.set_acl(e.id(), &acl)?;
        let summary: Vec<String> = acl
            .entries
            .iter()
            .map(|x| {
                format!("{}={}", x.principal, x.access.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join("+"))
            })
            .collect();
        call.audit(self, "acl.set", &syn(e.id()), Some(&summary.join(" ")));
        self.get_acl(call, id)
    }

    pub(super) fn delete_acl(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::ChangePermissions)?;
        if matches!(e, Ent::Project(_)) {
            return Err(err(
                StatusCode::CONFLICT,
                "a project has no parent to inherit from; change its sharing settings with PUT instead",
            ));
        }
        self.auth.store.delete_acl(e.id())?;
        call.audit(self, "acl.inherit", &syn(e.id()), None);
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    pub(super) fn trash_entity(&self, call: &Call, id: &str) -> ApiResult {
        let me = call.user()?.to_string();
        let e = self.ent_with(call, id, AccessType::Delete)?;
        let t = TrashRecord {
            id: e.id(),
            kind: e.kind(),
            name: e.name().to_string(),
            deleted_by: me,
            deleted_at: now_secs(),
        };
        self.auth.store.put_trash(&t)?;
        call.audit(self, "entity.trash", &syn(t.id), Some(&t.name));
        Ok((StatusCode::OK, trash_json(&t)))
    }

    fn trash_item(&self, call: &Call, id: &str) -> Result<TrashRecord, ApiErr> {
        let me = call.user()?;
        let n = parse_entity_id(id).ok_or_else(|| bad_request(format!("{id:?} is not an entity id like syn123")))?;
        self.auth
            .store
            .trash_record(n)?
            .filter(|t| t.deleted_by == me || call.caller.is_admin())
            .ok_or_else(|| not_found(format!("{id} is not in your trash")))
    }

    pub(super) fn list_trash(&self, call: &Call) -> ApiResult {
        let me = call.user()?;
        let items: Vec<Value> = self
            .auth
            .store
            .trash()?
            .iter()
            .filter(|t| t.deleted_by == me || call.caller.is_admin())
            .map(trash_json)
            .collect();
        Ok((StatusCode::OK, json!({ "items": items })))
    }

    pub(super) fn restore(&self, call: &Call, id: &str) -> ApiResult {
        let t = self.trash_item(call, id)?;
        self.auth.store.remove_trash(t.id)?;
        call.audit(self, "entity.restore", &syn(t.id), Some(&t.name));
        Ok((StatusCode::OK, self.ent_json(&self.ent(id)?)?))
    }

    /// Purge: every index entry of the entity (for a project: of its repositories too) goes in
    /// one batch, written under the catalog's lock after checking again that the entity is still
    /// in the trash; blobs are left to garbage collection.
    pub(super) fn purge(&self, call: &Call, id: &str) -> ApiResult {
        let t = self.trash_item(call, id)?;
        let ent = self.ent(id)?;
        let store = &self.auth.store;
        let cat = self.engine.catalog();
        // The bulk of each repository's entries goes first in bounded batches, each only while
        // the entity is still in the trash; the batch below then removes what is left.
        let still_trashed = || Ok(store.trash_record(t.id)?.is_some());
        let mut repo_ids = Vec::new();
        match &ent {
            Ent::Managed(r) => repo_ids.push(r.id),
            Ent::External(_) => {}
            Ent::Project(p) => {
                let prefix = format!("{}/", syn(p.id));
                repo_ids.extend(cat.repo_names_under(&prefix, None, usize::MAX)?.into_iter().map(|(_, rid)| rid));
            }
        }
        for rid in repo_ids {
            if !cat.purge_repo_batched(rid, PURGE_BATCH_KEYS, still_trashed)? {
                return Err(not_found(format!("{id} is not in your trash")));
            }
        }
        let purged = cat.write(|b| {
            // Restored by someone else meanwhile: purge nothing.
            if store.trash_record(t.id)?.is_none() {
                return Ok(false);
            }
            // `external`: for an external repository, the project it is listed under (if any); its
            // entity record and that entry go too.
            let mut repo = |rid: u64, external: Option<Option<u64>>| -> stowage_engine::Result<()> {
                cat.purge_repo_into(b, rid)?;
                store.forget_acl_into(b, rid)?;
                cat.delete_record_into(b, Rec::Trash(rid));
                if let Some(project) = external {
                    cat.delete_record_into(b, Rec::Entity(rid));
                    if let Some(p) = project {
                        cat.delete_project_external_into(b, p, rid);
                    }
                }
                Ok(())
            };
            match &ent {
                Ent::Managed(r) => repo(r.id, None)?,
                Ent::External(x) => repo(x.id, Some(x.project))?,
                Ent::Project(p) => {
                    for (_, rid) in cat.repo_names_under(&format!("{}/", syn(p.id)), None, usize::MAX)? {
                        repo(rid, None)?;
                    }
                    for x in store.external_repos(p.id)? {
                        repo(x.id, Some(x.project))?;
                    }
                    store.forget_acl_into(b, p.id)?;
                    cat.delete_record_into(b, Rec::Entity(p.id));
                }
            }
            cat.delete_record_into(b, Rec::Trash(t.id));
            Ok(true)
        })?;
        if !purged {
            return Err(not_found(format!("{id} is not in your trash")));
        }
        call.audit(self, "entity.purge", &syn(t.id), Some(&t.name));
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    pub(super) fn find_repository(&self, call: &Call) -> ApiResult {
        let name = call.q("name").ok_or_else(|| bad_request("give ?name=<projectId>/<repository>"))?;
        let r = self.engine.catalog().repo_by_name(name)?.ok_or_else(|| Self::hidden(call, name))?;
        // A repository the caller may not see is answered by the name asked for, never by its
        // id, so the id of a hidden repository is not given away.
        let (acl, _) = self.benefactor(&Ent::Managed(r.clone()))?;
        if !can(&call.caller, &acl, AccessType::Read) {
            return Err(Self::hidden(call, name));
        }
        self.get_repository(call, &syn(r.id))
    }

    pub(super) fn get_repository(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::Read)?;
        if matches!(e, Ent::Project(_)) {
            return Err(not_found(format!("{id} is a project, not a repository")));
        }
        let mut v = self.ent_json(&e)?;
        if let Ent::Managed(r) = &e {
            v["pull"] = json!(format!("docker pull {}/{}:<tag>", self.registry_host(), r.name));
        }
        Ok((StatusCode::OK, v))
    }

    /// `host:port` clients put in image names.
    pub fn registry_host(&self) -> String {
        self.auth.realm.trim_end_matches("/v2/token").split("://").nth(1).unwrap_or("").to_string()
    }

    pub(super) fn repository_tags(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::Read)?;
        if matches!(e, Ent::Project(_)) {
            return Err(not_found(format!("{id} is a project, not a repository")));
        }
        let limit = parse_num(call.q("limit"), 100)?.min(LIST_LIMIT_MAX);
        let offset = parse_num(call.q("offset"), 0)?;
        let cat = self.engine.catalog();
        let sort = call.q("sort").unwrap_or("tag");
        let order = call.q("order").unwrap_or("asc");
        if !matches!(sort, "tag" | "created") {
            return Err(bad_request(format!("sort={sort:?}: use created or tag")));
        }
        if !matches!(order, "asc" | "desc") {
            return Err(bad_request(format!("order={order:?}: use asc or desc")));
        }
        let desc = order == "desc";
        let cursor = call.q("cursor");
        if cursor.is_some_and(|c| c.len() > MAX_CURSOR) {
            return Err(bad_request(format!("cursor is at most {MAX_CURSOR} characters: give the one from `next`")));
        }
        // One form for every sort, `<push time>:<tag>` (a tag never holds a colon); by name only
        // the tag counts.
        let cursor = cursor.map(parse_time_cursor).transpose()?;
        // Every order reads the index in its own order: `offset` keys are skipped, then one more
        // than the page (to know whether there is a next page); only the page's records are read.
        let want = limit.saturating_add(1);
        let rows = match (sort, cursor) {
            ("tag", c) if !desc => {
                let keys = cat.list_tags(e.id(), c.map(|(_, t)| t), offset.saturating_add(want))?;
                let mut rows = Vec::new();
                for t in keys.into_iter().skip(offset) {
                    rows.extend(cat.tag(e.id(), &t)?.map(|r| (t, r)));
                }
                rows
            }
            ("tag", c) => cat.tag_records_desc(e.id(), c.map(|(_, t)| t), offset, want)?,
            (_, from) => cat.tags_by_time(e.id(), desc, from, offset, want)?,
        };
        let next = (limit > 0 && rows.len() > limit).then(|| {
            let (tag, r) = &rows[limit - 1];
            let c = format!("{}:{tag}", r.time);
            format!(
                "/api/v1/repositories/{}/tags?sort={sort}&order={order}&limit={limit}&cursor={}",
                syn(e.id()),
                query_escape(&c)
            )
        });
        let mut tags: Vec<Value> = Vec::new();
        for (tag, r) in rows.into_iter().take(limit) {
            let m = cat.manifest(e.id(), &r.digest)?;
            tags.push(json!({
                "tag": tag, "digest": r.digest, "pushed": r.time, "pusher": r.pusher,
                "media_type": m.as_ref().map(|m| m.media_type.clone()), "size": m.as_ref().map(|m| m.size),
            }));
        }
        // The count is one record, kept with every tag write.
        let total = cat.count_tags(e.id())?;
        let mut v = json!({ "repository": syn(e.id()), "name": e.name(), "total": total, "tags": tags });
        if let Some(n) = next {
            v["next"] = json!(n);
        }
        Ok((StatusCode::OK, v))
    }

    pub(super) fn repository_commits(&self, call: &Call, id: &str) -> ApiResult {
        let e = self.ent_with(call, id, AccessType::Read)?;
        if matches!(e, Ent::Project(_)) {
            return Err(not_found(format!("{id} is a project, not a repository")));
        }
        let limit = parse_num(call.q("limit"), 100)?.min(LIST_LIMIT_MAX);
        let after =
            call.q("after").map(|a| a.parse::<u64>()).transpose().map_err(|_| bad_request("after must be a number"))?;
        let commits = self.engine.catalog().history(e.id(), after, limit)?;
        Ok((StatusCode::OK, json!({ "repository": syn(e.id()), "commits": commits })))
    }

    pub(super) fn add_commit(&self, call: &Call, id: &str) -> ApiResult {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            tag: String,
            digest: String,
        }
        let me = call.user()?.to_string();
        let e = self.ent_with(call, id, AccessType::Update)?;
        if matches!(e, Ent::Project(_)) {
            return Err(not_found(format!("{id} is a project, not a repository")));
        }
        if !matches!(e, Ent::External(_)) {
            return Err(err(
                StatusCode::CONFLICT,
                format!("{id} is a managed repository: its commits come from docker push"),
            ));
        }
        let b: Body = call.json()?;
        let tag: Tag = b.tag.parse().map_err(|x: crate::oci::TagError| bad_request(x.to_string()))?;
        let digest: Digest = b.digest.parse().map_err(|x: crate::oci::DigestError| bad_request(x.to_string()))?;
        let c = self.engine.catalog().append_commit(e.id(), tag.as_str(), &digest, &me)?;
        Ok((StatusCode::CREATED, serde_json::to_value(c).unwrap_or(Value::Null)))
    }
}

fn parse_access(a: &str) -> Result<AccessType, ApiErr> {
    serde_json::from_value(json!(a)).map_err(|_| {
        bad_request(format!(
            "access {a:?} is not one of READ, DOWNLOAD, CREATE, UPDATE, DELETE, CHANGE_PERMISSIONS or a level (view, download, edit, edit_delete, admin)"
        ))
    })
}

fn parse_num(v: Option<&str>, default: usize) -> Result<usize, ApiErr> {
    v.map(|s| s.parse::<usize>().map_err(|_| bad_request(format!("{s:?} is not a non-negative number"))))
        .transpose()
        .map(|x| x.unwrap_or(default))
}

/// Longest `cursor` accepted (a push time, a colon and a tag of at most 128 characters, or a
/// repository path).
const MAX_CURSOR: usize = 300;

/// A `created` cursor, `<push time>:<tag>`, as `next` links carry it.
fn parse_time_cursor(c: &str) -> Result<(i64, &str), ApiErr> {
    c.split_once(':')
        .and_then(|(t, tag)| Some((t.parse::<i64>().ok()?, tag)))
        .ok_or_else(|| bad_request(format!("cursor={c:?} is not <push time>:<tag>: give the one from `next`")))
}

/// Escapes a value for a query string in a `next` link.
pub(super) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn trash_json(t: &TrashRecord) -> Value {
    json!({ "id": syn(t.id), "kind": t.kind, "name": t.name, "deleted_by": t.deleted_by, "deleted_at": t.deleted_at })
}

/// Index keys deleted per durable batch when a repository is purged.
const PURGE_BATCH_KEYS: usize = 10_000;
