//! Use cases of record-centred APIs (the records API): the attachments of many
//! records in one call, deletion by file name, and removing only the newest version of a file.
//!
//! A "record" is an ordinary parent; nothing here knows about UUIDs or the records API's JSON.
//! Reads are batched: one existence check for all requested records and one listing for all of
//! them, never a call per record.

use std::collections::HashMap;

use super::{now, App, ServiceError, ServiceResult};
use crate::domain::{Attachment, AttachmentId, AttachmentStatus, ParentId, ParentKind, ParentRef};
use crate::domain::{Principal, Version};
use crate::store::{Expected, StoreError, MAX_BATCH_KEYS};

/// The most records one call may ask for.
pub const MAX_RECORDS_PER_CALL: usize = MAX_BATCH_KEYS;

/// What a deletion by name removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionScope {
    /// The whole attachment, every version.
    All,
    /// Only the newest version; the attachment shows the previous one, and goes with its last.
    Latest,
}

/// A record with its listed attachments, oldest first.
pub type RecordAttachments = (ParentId, Vec<Attachment>);

fn group(refs: &[ParentRef], attachments: Vec<Attachment>) -> Vec<RecordAttachments> {
    let mut by_parent: HashMap<ParentRef, Vec<Attachment>> = HashMap::new();
    for a in attachments {
        by_parent.entry(a.parent.clone()).or_default().push(a);
    }
    refs.iter()
        .map(|r| {
            let mut items = by_parent.remove(r).unwrap_or_default();
            items.sort_by_key(|a| a.id);
            (r.id.clone(), items)
        })
        .collect()
}

impl App {
    /// The attachments of each requested record of a kind, in the order asked (duplicates
    /// once). Every record must exist and be the caller's, else `NotFound("records")` for the
    /// whole call, whichever is missing, so the answer does not tell which ids exist elsewhere.
    pub async fn attachments_of_records(
        &self,
        who: &Principal,
        kind: &ParentKind,
        ids: &[ParentId],
    ) -> ServiceResult<Vec<RecordAttachments>> {
        let mut refs: Vec<ParentRef> = Vec::with_capacity(ids.len());
        for id in ids {
            let r = ParentRef::new(kind.clone(), id.clone());
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        if refs.len() > MAX_RECORDS_PER_CALL {
            return Err(ServiceError::Invalid(format!(
                "at most {MAX_RECORDS_PER_CALL} records per call"
            )));
        }
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.meta.get_parents(&who.tenant, &refs).await?;
        let all_found = refs
            .iter()
            .all(|r| found.iter().any(|p| &p.key == r && p.tenant == who.tenant));
        if !all_found {
            return Err(ServiceError::NotFound("records"));
        }
        let attachments = self
            .meta
            .list_attachments_of_many(&who.tenant, &refs)
            .await?;
        Ok(group(&refs, attachments))
    }

    /// Every record of a kind that has at least one listed attachment, with its attachments, in
    /// record id order. Read in batches of [`MAX_RECORDS_PER_CALL`] records. `is_record` says
    /// which parent ids are records of the API asking: parents of the kind registered under
    /// other ids are left out before their attachments are read.
    pub async fn records_with_attachments(
        &self,
        who: &Principal,
        kind: &ParentKind,
        is_record: fn(&ParentId) -> bool,
    ) -> ServiceResult<Vec<RecordAttachments>> {
        let mut refs = self
            .meta
            .parents_with_attachments(&who.tenant, kind)
            .await?;
        refs.retain(|r| is_record(&r.id));
        let mut out = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(MAX_RECORDS_PER_CALL) {
            let attachments = self
                .meta
                .list_attachments_of_many(&who.tenant, chunk)
                .await?;
            out.extend(group(chunk, attachments));
        }
        Ok(out)
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
        let mut targets: Vec<Attachment> = Vec::new();
        for name in names {
            let mut matched = false;
            for a in &all {
                if a.content
                    .as_ref()
                    .is_some_and(|c| c.file_name.as_str() == name)
                {
                    matched = true;
                    if !targets.iter().any(|t| t.id == a.id) {
                        targets.push(a.clone());
                    }
                }
            }
            if !matched {
                return Err(ServiceError::NotFound("file"));
            }
        }
        for att in targets {
            match scope {
                VersionScope::All => self.remove_attachment(att).await?,
                VersionScope::Latest => {
                    self.delete_latest_version(who, att.id).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes the attachment's current (newest) version: the attachment then shows the version
    /// before it, or is removed when it had no other. Returns the attachment as it now is.
    ///
    /// The attachment is switched to the previous version first (a conditional write, so a
    /// concurrent upload is not undone), then the old version's thumbnail, file and record go:
    /// the attachment never points at removed bytes.
    pub async fn delete_latest_version(
        &self,
        who: &Principal,
        id: AttachmentId,
    ) -> ServiceResult<Option<Attachment>> {
        let att = self.get(who, id).await?;
        let current = match (&att.content, att.status) {
            (Some(c), AttachmentStatus::Ready) => c.clone(),
            _ => return Err(ServiceError::NotFound("attachment")),
        };
        let versions = self.meta.list_versions(&att.tenant, att.id).await?;
        // The newest version older than the current one: versions ids are time-ordered.
        let previous: Option<Version> = versions
            .into_iter()
            .filter(|v| v.id < current.id)
            .max_by_key(|v| v.id);
        let Some(previous) = previous else {
            self.remove_attachment(att).await?;
            return Ok(None);
        };
        let mut next = att.clone();
        next.content = Some(previous);
        next.updated_at = now();
        match self.meta.update_attachment(&next, Expected::of(&att)).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ServiceError::Conflict(
                    "the attachment changed while its latest version was removed; retry".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        // Files before the record, so a failure half-way leaves a version record that the
        // attachment's removal still cleans up, never a file nobody knows about.
        self.delete_thumbnail(&att, current.id).await?;
        self.blobs.delete(&att.blob_key(current.id)).await?;
        self.meta
            .delete_version(&att.tenant, att.id, current.id)
            .await?;
        Ok(Some(next))
    }
}
