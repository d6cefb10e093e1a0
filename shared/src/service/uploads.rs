//! Storing content: a new attachment, or a new version of one. The order of steps is what keeps
//! storage consistent: the metadata says `pending` before any byte is stored, turns `ready` only
//! once the file is there, and every failure in between removes what was written.

use bytes::Bytes;

use super::{bounded, now, App, ServiceError, ServiceResult};
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

/// Extra rules of the API an upload came through.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadRules<'a> {
    /// Only these content types are accepted (Crafter's allow-list).
    pub allowed_types: Option<&'a [String]>,
    /// A file limit below the request limit.
    pub max_file_bytes: Option<usize>,
}

/// An upload's digests, computed in one pass on a blocking thread from the moment its file is
/// accepted, so that hashing overlaps the metadata writes and the blob write instead of
/// preceding them. The SHA-256 goes to the blob store as soon as it is known (S3 sends it with
/// the bytes).
struct Hashing {
    digests: tokio::task::JoinHandle<Result<Digests, crate::blocking::JobFailed>>,
    sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
}

impl Hashing {
    fn start(bytes: Bytes) -> Self {
        let (tx, sha256) = tokio::sync::oneshot::channel();
        let digests = tokio::spawn(crate::blocking::run(move || {
            let digests = Digests::of(&bytes);
            // The store may not want it (the file store writes without it).
            let _ = tx.send(digests.sha256);
            digests
        }));
        Self { digests, sha256 }
    }

    /// Stores the bytes under `key` while they are hashed, and beside them the version's
    /// thumbnail; gives `version` its digests.
    async fn store(
        self,
        app: &App,
        att: &Attachment,
        key: &str,
        bytes: &Bytes,
        version: &mut Version,
    ) -> Result<(), StoreError> {
        let (stored, digests, ()) = tokio::join!(
            app.blobs
                .put_while_hashing(key, bytes.clone(), &version.content_type, self.sha256),
            self.digests,
            app.store_thumbnail(att, version.id, &version.content_type, bytes.clone()),
        );
        let digests = digests
            .map_err(|e| e.to_string())
            .and_then(|d| d.map_err(|e| e.to_string()))
            .map_err(|e| StoreError::Unavailable(format!("hashing an upload: {e}")))?;
        version.md5 = digests.md5_hex();
        version.sha256 = digests.sha256_hex();
        stored
    }
}

/// Validated labels, ready to be stored.
#[derive(Clone)]
pub(super) struct CleanFields {
    label: Option<String>,
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    external_id: Option<String>,
}

pub(super) fn clean_fields(fields: AttachmentFields) -> ServiceResult<CleanFields> {
    let label = bounded("type", fields.label, 64)?;
    if let Some(l) = &label {
        if !l
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(ServiceError::Invalid(
                "type may only contain letters, digits, '_', '-' and '.'".into(),
            ));
        }
    }
    let tags = match fields.tags {
        None => None,
        Some(tags) => {
            let mut out: Vec<String> = Vec::new();
            for t in tags {
                if let Some(t) = bounded("tag", Some(t), 64)? {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            if out.len() > 50 {
                return Err(ServiceError::Invalid("at most 50 tags".into()));
            }
            Some(out)
        }
    };
    Ok(CleanFields {
        label,
        title: bounded("title", fields.title, 255)?,
        description: bounded("description", fields.description, 4000)?,
        category: bounded("category", fields.category, 255)?,
        tags,
        external_id: bounded("external_id", fields.external_id, 255)?,
    })
}

impl CleanFields {
    pub(super) fn apply(self, att: &mut Attachment) {
        if let Some(v) = self.label {
            att.label = v;
        }
        if self.title.is_some() {
            att.title = self.title;
        }
        if self.description.is_some() {
            att.description = self.description;
        }
        if self.category.is_some() {
            att.category = self.category;
        }
        if let Some(t) = self.tags {
            att.tags = t;
        }
        if self.external_id.is_some() {
            att.external_id = self.external_id;
        }
    }
}

impl App {
    /// Checks a file against the rules and describes it as a version (type, size); its digests
    /// are computed while it is stored (see [`Hashing`]).
    fn describe(&self, file: &NewFile, rules: UploadRules<'_>) -> ServiceResult<Version> {
        if file.bytes.is_empty() {
            return Err(ServiceError::Unprocessable(format!(
                "{} is empty",
                file.file_name
            )));
        }
        let limit = rules
            .max_file_bytes
            .unwrap_or(usize::MAX)
            .min(self.limits.max_upload_bytes);
        if file.bytes.len() > limit {
            return Err(ServiceError::TooLarge(format!(
                "{} is larger than the limit of {limit} bytes",
                file.file_name
            )));
        }
        let content_type = decide_content_type(
            file.file_name.as_str(),
            file.file_name.extension(),
            &file.bytes,
        )
        .map_err(|e| ServiceError::UnsupportedMedia(e.to_string()))?;
        if let Some(allowed) = rules.allowed_types {
            if !allowed.iter().any(|a| a == content_type) {
                return Err(ServiceError::UnsupportedMedia(format!(
                    "{} is {content_type}, which is not an allowed type (allowed: {})",
                    file.file_name,
                    allowed.join(", ")
                )));
            }
        }
        Ok(Version {
            id: VersionId::new(),
            file_name: file.file_name.clone(),
            content_type: content_type.to_owned(),
            size: file.bytes.len() as u64,
            md5: String::new(),
            sha256: String::new(),
            created_at: now(),
        })
    }

    /// Stores an uploaded file as a new attachment or a new version, per `target`.
    pub async fn upload(
        &self,
        who: &Principal,
        parent: &ParentRef,
        file: NewFile,
        fields: AttachmentFields,
        target: UploadTarget,
        rules: UploadRules<'_>,
    ) -> ServiceResult<Attachment> {
        let mut stored = self
            .upload_many(who, parent, vec![file], fields, target, rules)
            .await?;
        stored
            .pop()
            .ok_or_else(|| ServiceError::Invalid("no file to store".into()))
    }

    /// Stores several files of one request. Every file is checked before any is stored, so a
    /// refused file (4xx) changes nothing; a storage failure half-way removes the attachments
    /// this call created.
    pub async fn upload_many(
        &self,
        who: &Principal,
        parent: &ParentRef,
        files: Vec<NewFile>,
        fields: AttachmentFields,
        target: UploadTarget,
        rules: UploadRules<'_>,
    ) -> ServiceResult<Vec<Attachment>> {
        self.get_parent(who, parent).await?;
        let fields = clean_fields(fields)?;
        let checked = files
            .into_iter()
            .map(|f| self.describe(&f, rules).map(|v| (f, v)))
            .collect::<ServiceResult<Vec<_>>>()?;
        let mut stored: Vec<(Attachment, bool)> = Vec::with_capacity(checked.len());
        for (file, version) in checked {
            match self
                .store_one(who, parent, file, version, fields.clone(), target)
                .await
            {
                Ok(done) => stored.push(done),
                Err(e) => {
                    for (att, created) in stored {
                        if created {
                            if let Err(err) = self.remove_attachment(att).await {
                                tracing::warn!(error = %err, "could not roll back an upload; the sweep will");
                            }
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(stored.into_iter().map(|(a, _)| a).collect())
    }

    /// Stores one checked file; says whether it created a new attachment.
    async fn store_one(
        &self,
        who: &Principal,
        parent: &ParentRef,
        file: NewFile,
        version: Version,
        fields: CleanFields,
        target: UploadTarget,
    ) -> ServiceResult<(Attachment, bool)> {
        let existing = match target {
            UploadTarget::New => None,
            UploadTarget::Existing(id) => Some(self.get_of_parent(who, parent, id).await?),
            UploadTarget::SameStem | UploadTarget::SameName => {
                let all = self.list_all(who, parent).await?;
                all.into_iter().find(|a| {
                    a.content.as_ref().is_some_and(|c| match target {
                        UploadTarget::SameStem => c.file_name.stem() == file.file_name.stem(),
                        _ => c.file_name == file.file_name,
                    })
                })
            }
        };
        match existing {
            Some(att) => Ok((
                self.store_new_version(att, version, file.bytes, fields)
                    .await?,
                false,
            )),
            None => Ok((
                self.store_new_attachment(who, parent, version, file.bytes, fields)
                    .await?,
                true,
            )),
        }
    }

    async fn store_new_attachment(
        &self,
        who: &Principal,
        parent: &ParentRef,
        mut version: Version,
        bytes: Bytes,
        fields: CleanFields,
    ) -> ServiceResult<Attachment> {
        let hashing = Hashing::start(bytes.clone());
        let t = now();
        let mut att = Attachment::new(
            who.tenant.clone(),
            parent.clone(),
            who.owner.clone(),
            AttachmentStatus::Pending,
            t,
        );
        att.content = Some(version.clone());
        att.expires_at = Some(t.unix_timestamp() + self.limits.pending_ttl.as_secs() as i64);
        fields.apply(&mut att);
        // 1. pending: the intent is recorded, so a crash after this is found by the sweep.
        self.meta
            .create_attachment(&att)
            .await
            .map_err(refused_or_failed)?;
        let key = att.blob_key(version.id);
        // 2. the bytes, while they are hashed, and beside them the thumbnail.
        let stored = hashing.store(self, &att, &key, &bytes, &mut version).await;
        if let Err(e) = stored {
            // The bytes may have landed even though the answer was lost: delete is idempotent.
            self.undo(&att, Some(&key)).await;
            return Err(e.into());
        }
        // 3. the version record, then ready.
        let pending = Expected::of(&att);
        att.content = Some(version.clone());
        let mut ready = att.clone();
        ready.status = AttachmentStatus::Ready;
        ready.expires_at = None;
        let finished = async {
            self.meta.put_version(&att.tenant, att.id, &version).await?;
            self.meta.update_attachment(&ready, pending).await
        }
        .await;
        if let Err(e) = finished {
            self.undo(&att, Some(&key)).await;
            return Err(refused_or_failed(e));
        }
        crate::telemetry::metrics::upload(version.size);
        Ok(ready)
    }

    /// Stores a new version of an existing attachment: the intent first, then the bytes, then
    /// the attachment points at them. A failure at any step leaves the attachment as it was.
    async fn store_new_version(
        &self,
        current: Attachment,
        mut version: Version,
        bytes: Bytes,
        fields: CleanFields,
    ) -> ServiceResult<Attachment> {
        if current.upload.is_some() {
            return Err(ServiceError::Conflict(
                "an upload to this attachment is already under way".into(),
            ));
        }
        let hashing = Hashing::start(bytes.clone());
        let intent = self.record_version_intent(&current, &version).await?;
        // The bytes, while they are hashed, and beside them the thumbnail.
        let key = current.blob_key(version.id);
        let stored = hashing
            .store(self, &current, &key, &bytes, &mut version)
            .await;
        let mut next = current.clone();
        fields.apply(&mut next);
        next.content = Some(version.clone());
        next.status = AttachmentStatus::Ready;
        next.upload = None;
        next.expires_at = None;
        next.updated_at = version.created_at;
        let pointed = match stored {
            Err(e) => Err(e),
            // The version record, then the attachment points at it.
            Ok(()) => {
                async {
                    self.meta
                        .put_version(&current.tenant, current.id, &version)
                        .await?;
                    self.meta
                        .update_attachment(&next, Expected::of(&intent))
                        .await
                }
                .await
            }
        };
        if let Err(e) = pointed {
            self.forget_version(&current, &intent, version.id, &key)
                .await;
            return Err(changed_or_failed(e));
        }
        crate::telemetry::metrics::upload(version.size);
        Ok(next)
    }

    /// Records a new version as an upload under way before any byte is stored, so that a crash
    /// or a failed clean-up is found by the sweep, which removes the file and leaves the
    /// attachment as it was. Returns the attachment as recorded.
    async fn record_version_intent(
        &self,
        current: &Attachment,
        version: &Version,
    ) -> ServiceResult<Attachment> {
        let expires_at = now().unix_timestamp() + self.limits.pending_ttl.as_secs() as i64;
        let mut intent = current.clone();
        intent.upload = Some(PendingUpload {
            version: version.clone(),
            declared_sha256: None,
            multipart: None,
            expires_at,
            verifying_since: None,
        });
        intent.expires_at = Some(expires_at);
        self.meta
            .update_attachment(&intent, Expected::of(current))
            .await
            .map_err(changed_or_failed)?;
        Ok(intent)
    }

    /// Forgets a version that could not be stored: the attachment still points at its previous
    /// content. What cannot be removed now stays recorded in the intent, for the sweep.
    async fn forget_version(
        &self,
        current: &Attachment,
        intent: &Attachment,
        version: VersionId,
        key: &str,
    ) {
        let cleaned = async {
            self.meta
                .delete_version(&current.tenant, current.id, version)
                .await?;
            self.delete_thumbnail(current, version).await?;
            self.blobs.delete(key).await?;
            let mut back = intent.clone();
            back.upload = None;
            back.expires_at = current.expires_at;
            self.meta
                .update_attachment(&back, Expected::of(intent))
                .await
        }
        .await;
        if let Err(err) = cleaned {
            tracing::warn!(error = %err, attachment = %current.id, "clean-up of a failed version left something; the sweep will remove it");
        }
    }

    /// Best-effort removal of a failed new attachment. What cannot be removed now stays pending
    /// with its expiry, and the sweep removes it later.
    async fn undo(&self, att: &Attachment, key: Option<&str>) {
        if let Some(k) = key {
            // The thumbnail, stored right after the file, goes before it.
            if let Some(v) = &att.content {
                if let Err(e) = self.delete_thumbnail(att, v.id).await {
                    tracing::warn!(error = %e, attachment = %att.id, "clean-up of a failed upload left its thumbnail; the sweep will remove it");
                    return;
                }
            }
            if let Err(e) = self.blobs.delete(k).await {
                tracing::warn!(error = %e, attachment = %att.id, "clean-up of a failed upload left its file; the sweep will remove it");
                return;
            }
        }
        if let Err(e) = self.meta.delete_attachment(&att.tenant, att.id).await {
            tracing::warn!(error = %e, attachment = %att.id, "clean-up of a failed upload left its record; the sweep will remove it");
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
        let t = now();
        let mut att = Attachment::new(
            who.tenant.clone(),
            parent.clone(),
            who.owner.clone(),
            AttachmentStatus::Placeholder,
            t,
        );
        fields.apply(&mut att);
        self.meta.create_attachment(&att).await?;
        Ok(att)
    }
}

/// A conditional write the store refused is the caller's 409 (a storage limit such as the AWS
/// backend's attachments per parent, or a concurrent change); anything else is a failure.
fn refused_or_failed(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(msg) => ServiceError::Conflict(msg),
        other => other.into(),
    }
}

/// A conditional write that found the attachment changed is the caller's to retry; anything else
/// is a failure of storage.
fn changed_or_failed(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(_) => ServiceError::Conflict(
            "the attachment changed while this version was stored; retry".into(),
        ),
        other => other.into(),
    }
}
