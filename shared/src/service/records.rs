//! Use cases of the records API: the attachments of many records in one read (never a call per
//! record), deletion by file name, and removing only the newest version of a file. A "record" is
//! an ordinary parent; nothing here knows about UUIDs or the records API's JSON.

use std::collections::HashSet;
use std::iter::zip;

use super::{cursor, now, refused, App, ServiceError, ServiceResult, MAX_UNPAGED_ATTACHMENTS};
use crate::domain::{Attachment, ParentId, ParentKind, ParentRef, Principal};
use crate::store::{Expected, Page, MAX_BATCH_KEYS};

/// The most records one call may ask for, or one page list.
pub const MAX_RECORDS_PER_CALL: usize = MAX_BATCH_KEYS;

/// What a deletion by name removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionScope {
    /// The whole attachment, every version.
    All,
    /// Only the newest version; the attachment shows the previous one, and goes with its last.
    Latest,
}

fn too_many_together(advice: &'static str) -> impl FnOnce() -> String {
    let most = MAX_UNPAGED_ATTACHMENTS;
    move || format!("these records have more than {most} attachments together: {advice}")
}

impl App {
    /// The attachments of each requested record of a kind, in the order asked (duplicates
    /// once). Every record must exist and be the caller's, else `NotFound("records")` for the
    /// whole call, so the answer does not tell which ids exist elsewhere.
    pub async fn attachments_of_records(
        &self,
        who: &Principal,
        kind: &ParentKind,
        ids: &[ParentId],
    ) -> ServiceResult<Vec<(ParentId, Vec<Attachment>)>> {
        let mut seen = HashSet::new();
        let refs: Vec<ParentRef> = ids
            .iter()
            .filter(|id| seen.insert(*id))
            .map(|id| ParentRef::new(kind.clone(), id.clone()))
            .collect();
        if refs.len() > MAX_RECORDS_PER_CALL {
            let why = format!("at most {MAX_RECORDS_PER_CALL} records per call");
            return Err(ServiceError::Invalid(why));
        }
        let advice = too_many_together("ask for fewer records at a time");
        let lists = self.listings(who, &refs, advice).await?;
        let found: Option<Vec<_>> = zip(refs, lists).map(|(r, l)| Some((r.id, l?))).collect();
        found.ok_or(ServiceError::NotFound("records"))
    }

    /// The records of a kind that have a listed attachment, each with its attachments (oldest
    /// first), in record id order, a page of at most `limit` parents of the kind with the cursor
    /// of the next. `is_record` says which parent ids are records of the API asking: other
    /// parents of the kind are left out before their attachments are read (a page may then hold
    /// fewer than `limit`).
    pub async fn records_with_attachments(
        &self,
        who: &Principal,
        kind: &ParentKind,
        cursor: Option<&str>,
        limit: usize,
        is_record: fn(&ParentId) -> bool,
    ) -> ServiceResult<Page<(ParentId, Vec<Attachment>)>> {
        let scope = cursor::of_kind(&who.tenant, kind);
        let after = cursor::decode(&self.signer, cursor, &scope, ParentId::parse)?;
        let limit = limit.clamp(1, MAX_RECORDS_PER_CALL);
        let mut page = self
            .meta
            .parents_with_attachments(&who.tenant, kind, after.as_ref(), limit)
            .await?;
        let next = cursor::encode(&self.signer, &scope, page.next.as_ref());
        page.items.retain(|r| is_record(&r.id));
        let advice = too_many_together("ask for fewer records a page (limit)");
        let lists = self.listings(who, &page.items, advice).await?;
        // A record deleted between the two reads is left out.
        let found = zip(page.items, lists);
        let items = found.filter_map(|(r, l)| Some((r.id, l?))).collect();
        Ok(Page { items, next })
    }

    /// Deletes the record's files with these names (the current file name of an attachment),
    /// every version or only the newest. Every name must match at least one attachment, else
    /// `NotFound("file")` before anything is removed.
    pub async fn delete_by_names(
        &self,
        who: &Principal,
        record: &ParentRef,
        names: &[String],
        scope: VersionScope,
    ) -> ServiceResult<()> {
        let all = self.list_all(who, record).await?;
        let is = |a: &Attachment, n: &str| a.content.iter().any(|c| c.file_name.as_str() == n);
        if !names.iter().all(|n| all.iter().any(|a| is(a, n))) {
            return Err(ServiceError::NotFound("file"));
        }
        for att in all.into_iter().filter(|a| names.iter().any(|n| is(a, n))) {
            match scope {
                VersionScope::All => self.remove_attachment(att).await?,
                VersionScope::Latest => self.delete_latest_version(att).await?,
            }
        }
        Ok(())
    }

    /// Removes the attachment's current (newest) version: the attachment then shows the version
    /// before it, or is removed when it had no other. It is switched first (a conditional write,
    /// so a concurrent upload is not undone), so it never points at removed bytes.
    async fn delete_latest_version(&self, att: Attachment) -> ServiceResult<()> {
        let current = att.ready_content().cloned();
        let current = current.ok_or(ServiceError::NotFound("attachment"))?;
        let versions = self.meta.list_versions(&att.tenant, att.id).await?;
        // The newest version older than the current one: versions ids are time-ordered.
        let previous = versions.into_iter().filter(|v| v.id < current.id);
        let Some(previous) = previous.max_by_key(|v| v.id) else {
            return self.remove_attachment(att).await;
        };
        let mut next = att.clone();
        next.content = Some(previous);
        next.updated_at = now();
        let why = "the attachment changed while its latest version was removed; retry";
        let switched = self.meta.update_attachment(&next, Expected::of(&att)).await;
        switched.map_err(refused(Some(why)))?;
        // Files before the record, so a failure half-way leaves a version record that the
        // attachment's removal still cleans up, never a file nobody knows about.
        self.delete_files(&att, current.id).await?;
        self.meta
            .delete_version(&att.tenant, att.id, current.id)
            .await?;
        Ok(())
    }
}
