//! One page of a repository's tags for the portal, read from the index page by page: sorted by
//! tag name ascending (the index's own order, the default) it reads only the requested page's
//! keys and records, whatever the repository's size; by push time (either way) it reads the
//! push-time index, and by name descending the tag keys backwards, `offset + limit + 1` keys
//! and only the page's records. Only the rows shown are enriched with their manifest (media
//! type, size, platforms of indexes, referrers).
//!
//! It reads; it never decides who may read: its caller has already asked the REST API for the
//! repository (which checks READ).

use crate::app::App;
use crate::error::ApiError;
use stowage_engine::{Digest, TagRecord};

/// Rows per page, at most.
pub const MAX_PAGE: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagSort {
    /// By tag name (the index order).
    Tag,
    /// By push time.
    Pushed,
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// After this tag name (name order, ascending: a keyset read).
    After(Option<String>),
    /// Skip this many rows (other orders).
    Offset(usize),
}

#[derive(Clone, Debug)]
pub struct TagRow {
    pub tag: String,
    pub digest: Digest,
    pub pushed: i64,
    pub pusher: String,
    pub media_type: Option<String>,
    /// The manifest plus everything it references (config, layers or child manifests), in bytes.
    pub size: Option<u64>,
    /// `os/architecture[/variant]` of each child of an index or manifest list.
    pub platforms: Vec<String>,
    /// Manifests whose subject is this one: (digest, artifact type or media type).
    pub referrers: Vec<(Digest, String)>,
}

#[derive(Clone, Debug)]
pub struct TagPage {
    pub rows: Vec<TagRow>,
    /// The cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

impl App {
    /// One page of repository `repo`'s tags. Runs on a blocking thread (it reads the index and,
    /// for indexes, manifest bytes).
    pub fn tag_page(
        &self,
        repo: u64,
        sort: TagSort,
        desc: bool,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<TagPage, ApiError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let cat = self.engine.catalog();
        let (records, next) = match (sort, desc, cursor) {
            (TagSort::Tag, false, Cursor::After(after)) => {
                let mut recs = cat.tag_records(repo, after.as_deref(), limit + 1)?;
                let more = recs.len() > limit;
                recs.truncate(limit);
                let next = more.then(|| Cursor::After(recs.last().map(|(t, _)| t.clone())));
                (recs, next)
            }
            _ => {
                let offset = match cursor {
                    Cursor::Offset(n) => *n,
                    Cursor::After(_) => 0,
                };
                // The index in the order asked for (push time, or name backwards): `offset` keys
                // skipped, one row more than the page read to know whether there is a next one.
                let mut recs = match sort {
                    TagSort::Pushed => cat.tags_by_time(repo, desc, None, offset, limit + 1)?,
                    TagSort::Tag => cat.tag_records_desc(repo, None, offset, limit + 1)?,
                };
                let more = recs.len() > limit;
                recs.truncate(limit);
                (recs, more.then_some(Cursor::Offset(offset + limit)))
            }
        };
        let mut rows = Vec::with_capacity(records.len());
        for (tag, rec) in records {
            rows.push(self.tag_row(repo, tag, rec)?);
        }
        Ok(TagPage { rows, next })
    }

    fn tag_row(&self, repo: u64, tag: String, rec: TagRecord) -> Result<TagRow, ApiError> {
        let cat = self.engine.catalog();
        let m = cat.manifest(repo, &rec.digest)?;
        let mut size = None;
        let mut platforms = Vec::new();
        if let Some(m) = &m {
            let mut total = m.size;
            for r in &m.refs {
                total += cat.blob(r)?.map(|b| b.size).unwrap_or(0);
            }
            size = Some(total);
            if is_index(&m.media_type) {
                platforms = self.platforms(&rec.digest);
            }
        }
        let mut referrers = Vec::new();
        for d in cat.referrers(repo, &rec.digest)? {
            let kind =
                cat.manifest(repo, &d)?.map(|r| r.artifact_type.clone().unwrap_or(r.media_type)).unwrap_or_default();
            referrers.push((d, kind));
        }
        Ok(TagRow {
            tag,
            digest: rec.digest,
            pushed: rec.time,
            pusher: rec.pusher,
            media_type: m.map(|m| m.media_type),
            size,
            platforms,
            referrers,
        })
    }

    /// The platforms of an index's children, from its bytes (the manifest cache first). A
    /// manifest that cannot be read shows no platforms rather than failing the page.
    fn platforms(&self, digest: &Digest) -> Vec<String> {
        let bytes = match self.manifest_cache.get(digest) {
            Some(b) => b,
            None => match self.engine.read_blob(digest, None) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "could not read an index for its platforms");
                    return Vec::new();
                }
            },
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Vec::new() };
        let mut out: Vec<String> = v["manifests"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(|m| {
                let p = m.get("platform")?;
                let (os, arch) = (p.get("os")?.as_str()?, p.get("architecture")?.as_str()?);
                Some(match p.get("variant").and_then(|x| x.as_str()) {
                    Some(var) => format!("{os}/{arch}/{var}"),
                    None => format!("{os}/{arch}"),
                })
            })
            .take(64)
            .collect();
        out.dedup();
        out
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}
