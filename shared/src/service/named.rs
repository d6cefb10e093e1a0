//! Finding a parent's attachment by its file name without extension: Crafter Profile names
//! attachments that way (`avatar` for `avatar.png`), both when it replaces one on upload and when
//! its clients ask for one.

use super::{App, ServiceResult};
use crate::domain::{Attachment, AttachmentStatus, ParentRef, Principal};

impl App {
    /// The oldest ready attachment of the parent whose current file has this stem, the same one
    /// an upload with `UploadTarget::SameStem` replaces. Fails with `NotFound` for an unknown
    /// parent.
    pub async fn find_by_stem(
        &self,
        who: &Principal,
        parent: &ParentRef,
        stem: &str,
    ) -> ServiceResult<Option<Attachment>> {
        let all = self.list_all(who, parent).await?;
        Ok(all.into_iter().find(|a| {
            a.status == AttachmentStatus::Ready
                && a.content
                    .as_ref()
                    .is_some_and(|c| c.file_name.stem() == stem)
        }))
    }
}
