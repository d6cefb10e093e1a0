//! Orphans under the staging prefix — a form or part replayed after its upload ended, a
//! multipart upload whose request crashed before recording it — are removed by the sweep (on S3
//! the bucket's lifecycle rule is the backstop). A staged object or multipart upload is kept
//! exactly while its attachment still waits for that very version.

use super::{now, App, ServiceResult};
use crate::domain::{parse_staging_key, Attachment};

/// How long a multipart upload is kept whatever: `begin_upload` starts it a moment before it
/// records the attachment that waits for it.
const UPLOAD_GRACE_SECS: i64 = 3600;

impl App {
    /// Removes the orphans under the staging prefix; returns how many it removed.
    pub(crate) async fn sweep_staging(&self) -> ServiceResult<usize> {
        let mut removed = 0;
        for key in self.staged_objects().await? {
            if self.waiting_for(&key).await?.is_none() {
                self.blobs.delete(&key).await?;
                removed += 1;
            }
        }
        let mut after = None;
        loop {
            let page = self.blobs.list_staged_uploads(after).await?;
            let recent = now().unix_timestamp() - UPLOAD_GRACE_SECS;
            for u in page.items.into_iter().filter(|u| u.initiated < recent) {
                let upload = self.waiting_for(&u.key).await?.and_then(|a| a.upload);
                let waits = upload.and_then(|w| w.multipart);
                if waits.is_none_or(|m| m.upload_id != u.upload_id) {
                    self.blobs.abort_multipart(&u.key, &u.upload_id).await?;
                    removed += 1;
                }
            }
            after = page.next;
            if after.is_none() {
                return Ok(removed);
            }
        }
    }

    /// Every object under the staging prefix, awaited or not (what the sweep looks at).
    pub async fn staged_objects(&self) -> ServiceResult<Vec<String>> {
        let mut page = self.blobs.list_staged(None).await?;
        let mut all = std::mem::take(&mut page.items);
        while let Some(after) = page.next {
            page = self.blobs.list_staged(Some(after)).await?;
            all.append(&mut page.items);
        }
        Ok(all)
    }

    /// The attachment whose upload under way waits for the object at a staging key.
    pub(super) async fn waiting_for(&self, key: &str) -> ServiceResult<Option<Attachment>> {
        let Some((tenant, id, version)) = parse_staging_key(key) else {
            return Ok(None);
        };
        let waits = |a: &Attachment| a.upload.as_ref().is_some_and(|u| u.version.id == version);
        Ok(self.meta.get_attachment(&tenant, id).await?.filter(waits))
    }
}
