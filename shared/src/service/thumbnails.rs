//! Thumbnails of stored contents, made when a version is stored and removed with it. A thumbnail
//! never decides an upload's fate: an image that cannot be decoded gets the image icon, a failed
//! store is only logged. Decoding runs on blocking threads, a few at a time, to bound memory.

use std::sync::OnceLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{App, ServiceResult};
use crate::domain::thumbnail::{
    decodable_format, icon_png, image_thumbnail, IconFamily, THUMBNAIL_CONTENT_TYPE,
};
use crate::domain::{Attachment, VersionId};

/// How many images are decoded at once in this process: each may take 64 MiB.
static DECODE_SLOTS: Semaphore = Semaphore::const_new(2);

/// A family's icon. Every file of a family gets the same one, so each is drawn once per process.
fn icon(family: IconFamily) -> Option<Bytes> {
    static ICONS: [OnceLock<Option<Bytes>>; IconFamily::Other as usize + 1] =
        [const { OnceLock::new() }; IconFamily::Other as usize + 1];
    ICONS[family as usize]
        .get_or_init(|| {
            icon_png(family)
                .map(Bytes::from)
                .inspect_err(|e| tracing::warn!(error = %e, "could not draw an icon"))
                .ok()
        })
        .clone()
}

impl App {
    /// Makes and stores the thumbnail of a version whose bytes are being or were just stored.
    /// Best effort: whatever fails is logged, and the upload it belongs to goes on.
    pub(crate) async fn store_thumbnail(
        &self,
        att: &Attachment,
        version: VersionId,
        content_type: &str,
        bytes: Bytes,
    ) {
        // Its picture when it is an image we decode within the limits, else its family's icon.
        let mut png = None;
        if decodable_format(content_type).is_some() {
            let _slot = DECODE_SLOTS.acquire().await;
            let content_type = content_type.to_owned();
            let made = tokio::task::spawn_blocking(move || image_thumbnail(&content_type, &bytes));
            match made.await {
                Ok(Ok(picture)) => png = Some(Bytes::from(picture)),
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "no thumbnail from this image; using the icon")
                }
                // A decoder that panics ends its blocking task, not the request: the icon it is.
                Err(e) => tracing::warn!(error = %e, "thumbnail task failed; using the icon"),
            }
        }
        let Some(png) = png.or_else(|| icon(IconFamily::of(content_type))) else {
            return;
        };
        let sha: [u8; 32] = Sha256::digest(&png).into();
        let key = att.thumbnail_key(version);
        let stored = self.blobs.put(&key, png, THUMBNAIL_CONTENT_TYPE, &sha);
        if let Err(e) = stored.await {
            tracing::warn!(error = %e, attachment = %att.id, "could not store a thumbnail; the upload goes on without it");
        }
    }

    /// A presigned link to the thumbnail of the attachment's current content, when it has one.
    pub async fn thumbnail_link(&self, att: &Attachment) -> ServiceResult<Option<String>> {
        let Some(v) = att.ready_content() else {
            return Ok(None);
        };
        let name = format!("{}_thumbnail.png", v.file_name.stem());
        let link = self.presign_get(att.thumbnail_key(v.id), THUMBNAIL_CONTENT_TYPE, &name);
        Ok(Some(link.await?))
    }
}
