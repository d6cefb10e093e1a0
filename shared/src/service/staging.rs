//! Orphans under the staging prefix — a form or part replayed after its upload ended, a
//! multipart upload whose request crashed before recording it — are removed by the sweep (on S3
//! the bucket's lifecycle rule is the backstop). A staged object or multipart upload is kept
//! exactly while its attachment still waits for that very version.

use super::{now, App, ServiceResult};
use crate::domain::parse_staging_key;

/// How long a multipart upload is kept whatever: `begin_upload` starts it a moment before it
/// records the attachment that waits for it.
const UPLOAD_GRACE_SECS: i64 = 3600;

impl App {
    /// Removes the orphans under the staging prefix; returns how many it removed.
    pub(crate) async fn sweep_staging(&self) -> ServiceResult<usize> {
        let mut removed = 0;
        for key in self.staged_objects().await? {
            if !self.awaited(&key, None).await? {
                self.blobs.delete(&key).await?;
                removed += 1;
            }
        }
        let mut after = None;
        loop {
            let page = self.blobs.list_staged_uploads(after).await?;
            let recent = now().unix_timestamp() - UPLOAD_GRACE_SECS;
            for u in page.items {
                if u.initiated < recent && !self.awaited(&u.key, Some(&u.upload_id)).await? {
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
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.blobs.list_staged(after).await?;
            all.extend(page.items);
            after = page.next;
            if after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Whether an attachment still waits for the object at a staging key, or for this very
    /// multipart upload of it.
    async fn awaited(&self, key: &str, upload_id: Option<&str>) -> ServiceResult<bool> {
        let Some((tenant, id, version)) = parse_staging_key(key) else {
            return Ok(false);
        };
        let att = self.meta.get_attachment(&tenant, id).await?;
        Ok(att.and_then(|a| a.upload).is_some_and(|u| {
            let mp = u.multipart.map(|mp| mp.upload_id);
            u.version.id == version && upload_id.is_none_or(|id| mp.is_some_and(|m| m == id))
        }))
    }
}
