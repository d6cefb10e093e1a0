//! Domain types: validated ids and names, attachments, parents, API keys, and the pure rules
//! (content type decision, hashing) that every API shares. Nothing here knows about HTTP or AWS.

pub mod content;
pub mod hashing;
pub mod ids;
pub mod model;
pub mod thumbnail;

pub use content::{decide_content_type, ContentTypeError};
pub use hashing::Digests;
pub use ids::{AttachmentId, FileName, IdError, ParentId, ParentKind, TenantId, VersionId};
pub use model::{
    parse_staging_key, ApiKey, Attachment, AttachmentStatus, MultipartUpload, Parent, ParentRef,
    PendingUpload, Principal, Version, STAGING_PREFIX,
};
