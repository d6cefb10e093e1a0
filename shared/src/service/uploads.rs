//! Storing content: a new attachment, or a new version of one. The order of steps is what keeps
//! storage consistent: the metadata says `pending` before any byte is stored, turns `ready` only
//! once the file is there, and every failure in between removes what was written.

use bytes::Bytes;

use super::dialects::CrafterSettings;
use super::{bounded, labelled, now, refused, App, ServiceError, ServiceResult};
use crate::domain::{
    decide_content_type, Attachment, AttachmentId, AttachmentStatus, Digests, FileName, ParentRef,
    PendingUpload, Principal, Version, VersionId,
};
use crate::store::{Expected, StoreError};

/// A file received through an API.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub file_name: FileName,
    pub bytes: Bytes,
}

/// Labels given with an upload or a placeholder; unset ones stay as they were on a new version.
#[derive(Debug, Clone, Default)]
pub struct AttachmentFields {
    /// The `type` label (resume, original, file…).
    pub label: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub external_id: Option<String>,
}

/// Which attachment an upload lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTarget {
    /// Always a new attachment (the native API).
    New,
    /// A new version of the parent's attachment with the same name without extension, else a
    /// new attachment (Crafter Profile).
    SameStem,
    /// A new version of the parent's attachment with the same file name, else a new one.
    SameName,
    /// A new version of this attachment of the parent (a placeholder gets its first content).
    Existing(AttachmentId),
}

/// Checks the labels and keeps them as they are stored (trimmed, tags without duplicates).
pub(super) fn clean_fields(fields: AttachmentFields) -> ServiceResult<AttachmentFields> {
    let label = bounded("type", fields.label, 64)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if label.as_ref().is_some_and(|l| !l.chars().all(plain)) {
        let why = "type may only contain letters, digits, '_', '-' and '.'";
        return Err(ServiceError::Invalid(why.into()));
    }
    let mut tags = None;
    if let Some(raw) = fields.tags {
        let mut out: Vec<String> = Vec::new();
        for t in raw {
            if let Some(t) = bounded("tag", Some(t), 64)?.filter(|t| !out.contains(t)) {
                out.push(t);
            }
        }
        if out.len() > 50 {
            return Err(ServiceError::Invalid("at most 50 tags".into()));
        }
        tags = Some(out);
    }
    Ok(AttachmentFields {
        label,
        title: bounded("title", fields.title, 255)?,
        description: bounded("description", fields.description, 4000)?,
        category: bounded("category", fields.category, 255)?,
        tags,
        external_id: bounded("external_id", fields.external_id, 255)?,
    })
}

/// A version of a file about to be stored; its digests are known once it is.
pub(super) fn new_version(file_name: FileName, content_type: String, size: u64) -> Version {
    Version {
        id: VersionId::new(),
        file_name,
        content_type,
        size,
        md5: String::new(),
        sha256: String::new(),
        created_at: now(),
    }
}

impl AttachmentFields {
    /// Sets the labels that are given; the others stay as they are.
    pub(super) fn apply(self, att: &mut Attachment) {
        att.title = self.title.or(att.title.take());
        att.description = self.description.or(att.description.take());
        att.category = self.category.or(att.category.take());
        att.external_id = self.external_id.or(att.external_id.take());
        att.label = self.label.unwrap_or(std::mem::take(&mut att.label));
        att.tags = self.tags.unwrap_or(std::mem::take(&mut att.tags));
    }
}

impl App {
    /// Checks a file against the limits and `rules` and describes it as a version (type, size);
    /// its digests are computed while it is stored.
    fn describe(&self, file: &NewFile, rules: Option<&CrafterSettings>) -> ServiceResult<Version> {
        let (name, size) = (&file.file_name, file.bytes.len());
        if size == 0 {
            return Err(ServiceError::Unprocessable(format!("{name} is empty")));
        }
        let limit = self.limits.max_upload_bytes;
        let limit = rules.map_or(limit, |r| r.max_file_bytes.min(limit));
        if size > limit {
            let why = format!("{name} is larger than the limit of {limit} bytes");
            return Err(ServiceError::TooLarge(why));
        }
        let decided = decide_content_type(name.as_str(), name.extension(), &file.bytes);
        let content_type = decided.map_err(|e| ServiceError::UnsupportedMedia(e.to_string()))?;
        if let Some(allowed) = rules.map(|r| &r.allowed_types) {
            if !allowed.iter().any(|a| a == content_type) {
                let allowed = allowed.join(", ");
                let why = format!(
                    "{name} is {content_type}, which is not an allowed type (allowed: {allowed})"
                );
                return Err(ServiceError::UnsupportedMedia(why));
            }
        }
        Ok(new_version(name.clone(), content_type.into(), size as u64))
    }

    /// Stores an uploaded file as a new attachment or a new version, per `target`.
    pub async fn upload(
        &self,
        who: &Principal,
        parent: &ParentRef,
        file: NewFile,
        fields: AttachmentFields,
        target: UploadTarget,
        rules: Option<&CrafterSettings>,
    ) -> ServiceResult<Attachment> {
        let stored = self.upload_many(who, parent, vec![file], fields, target, rules);
        let stored = stored.await?.pop();
        stored.ok_or_else(|| ServiceError::Invalid("no file to store".into()))
    }

    /// Stores several files of one request, under Crafter Profile's `rules` when it came through
    /// it. Every file is checked before any is stored, so a refused file (4xx) changes nothing;
    /// a storage failure half-way removes the attachments this call created.
    pub async fn upload_many(
        &self,
        who: &Principal,
        parent: &ParentRef,
        files: Vec<NewFile>,
        fields: AttachmentFields,
        target: UploadTarget,
        rules: Option<&CrafterSettings>,
    ) -> ServiceResult<Vec<Attachment>> {
        self.get_parent(who, parent).await?;
        let fields = &clean_fields(fields)?;
        let checked = files
            .into_iter()
            .map(|f| self.describe(&f, rules).map(|v| (f, v)))
            .collect::<ServiceResult<Vec<_>>>()?;
        // Each attachment stored, and whether this call created it.
        let mut stored: Vec<(Attachment, bool)> = Vec::with_capacity(checked.len());
        for (file, version) in checked {
            let one = async move {
                let name = &file.file_name;
                let same_stem = |n: &FileName| n.stem() == name.stem();
                let existing = match target {
                    UploadTarget::New => None,
                    UploadTarget::Existing(id) => Some(self.get_of_parent(who, parent, id).await?),
                    UploadTarget::SameStem => self.find_named(who, parent, same_stem).await?,
                    UploadTarget::SameName => self.find_named(who, parent, |n| n == name).await?,
                };
                let created = existing.is_none();
                let (bytes, fields) = (file.bytes, fields.clone());
                let att = self.store_content(who, parent, existing, version, bytes, fields);
                Ok::<_, ServiceError>((att.await?, created))
            };
            match one.await {
                Ok(done) => stored.push(done),
                Err(e) => {
                    for (att, _) in stored.into_iter().filter(|(_, created)| *created) {
                        if let Err(err) = self.remove_attachment(att).await {
                            tracing::warn!(error = %err, "could not roll back an upload; the sweep will");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(stored.into_iter().map(|(a, _)| a).collect())
    }

    /// The oldest ready attachment of the parent whose current file name `matches` (the one
    /// [`UploadTarget::SameName`] or [`UploadTarget::SameStem`] replaces).
    pub async fn find_named(
        &self,
        who: &Principal,
        parent: &ParentRef,
        matches: impl Fn(&FileName) -> bool,
    ) -> ServiceResult<Option<Attachment>> {
        let named = |a: &Attachment| a.ready_content().is_some_and(|c| matches(&c.file_name));
        Ok(self.list_all(who, parent).await?.into_iter().find(named))
    }

    /// Stores a checked file in a new attachment (recorded `pending` first), or as a new version
    /// of `current` (recorded as an upload under way first, so a crash is found by the sweep);
    /// then the bytes, the version record, and only then does the attachment point at them.
    async fn store_content(
        &self,
        who: &Principal,
        parent: &ParentRef,
        current: Option<Attachment>,
        mut version: Version,
        bytes: Bytes,
        fields: AttachmentFields,
    ) -> ServiceResult<Attachment> {
        let mut ready = labelled(who, parent, current.as_ref(), fields, version.created_at)?;
        // Hashed in one pass on a blocking thread from now on, so that hashing overlaps the
        // writes instead of preceding them; the SHA-256 goes to the blob store as soon as it is
        // known (S3 sends it with the bytes; the file store writes without it).
        let (tx, sha256) = tokio::sync::oneshot::channel();
        let hashing = tokio::spawn(crate::blocking::run({
            let bytes = bytes.clone();
            move || {
                let digests = Digests::of(&bytes);
                let _ = tx.send(digests.sha256);
                digests
            }
        }));
        let refusal = refused(current.as_ref().map(|_| CHANGED_MEANWHILE));
        let mut intent = current.clone().unwrap_or_else(|| ready.clone());
        let expires_at = self.pending_until();
        intent.expires_at = Some(expires_at);
        if current.is_none() {
            intent.content = Some(version.clone());
        } else {
            intent.upload = Some(PendingUpload {
                version: version.clone(),
                declared_sha256: None,
                multipart: None,
                expires_at,
                verifying_since: None,
            });
        }
        let recorded = self.record(&intent, current.as_ref());
        recorded.await.map_err(&refusal)?;
        // The bytes, while they are hashed, and beside them the thumbnail.
        let (id, content_type) = (version.id, version.content_type.clone());
        let key = intent.blob_key(id);
        let (stored, digests, ()) = tokio::join!(
            self.blobs
                .put_while_hashing(&key, bytes.clone(), &content_type, sha256),
            hashing,
            self.store_thumbnail(&intent, id, &content_type, bytes),
        );
        let pointed = async {
            let hashed = digests.map_err(|e| format!("hashing an upload: {e}"));
            let digests = hashed.map_err(StoreError::Unavailable)??;
            stored?;
            version.md5 = digests.md5_hex();
            version.sha256 = digests.sha256_hex();
            ready.content = Some(version.clone());
            ready.status = AttachmentStatus::Ready;
            ready.upload = None;
            ready.expires_at = None;
            ready.updated_at = version.created_at;
            let tenant = &intent.tenant;
            self.meta.put_version(tenant, intent.id, &version).await?;
            let written = self.meta.update_attachment(&ready, Expected::of(&intent));
            written.await
        };
        if let Err(e) = pointed.await {
            self.discard(&intent, id).await;
            return Err(refusal(e));
        }
        crate::telemetry::metrics::upload(version.size);
        Ok(ready)
    }

    /// Best-effort removal of what a failed upload wrote: a new version's files and record (the
    /// attachment keeps its previous content), or a new attachment's files and record. What
    /// cannot be removed now stays recorded with its expiry, for the sweep.
    async fn discard(&self, intent: &Attachment, version: VersionId) {
        let cleaned = async {
            if intent.upload.is_some() {
                return self.cancel_upload(intent, None).await;
            }
            self.delete_files(intent, version).await?;
            let deleted = self.meta.delete_attachment(&intent.tenant, intent.id);
            deleted.await.map(drop)
        };
        if let Err(err) = cleaned.await {
            tracing::warn!(error = %err, attachment = %intent.id, "clean-up of a failed upload left something; the sweep will remove it");
        }
    }

    /// Creates an attachment with labels only; its file comes later (the asset API).
    pub async fn create_placeholder(
        &self,
        who: &Principal,
        parent: &ParentRef,
        fields: AttachmentFields,
    ) -> ServiceResult<Attachment> {
        self.get_parent(who, parent).await?;
        let fields = clean_fields(fields)?;
        let mut att = labelled(who, parent, None, fields, now())?;
        att.status = AttachmentStatus::Placeholder;
        self.meta.create_attachment(&att).await?;
        Ok(att)
    }
}

const CHANGED_MEANWHILE: &str = "the attachment changed while this version was stored; retry";
