//! The data the event fixtures in `events/` are written against (`events/README.md` lists it):
//! tenant `fixtures` and its API key, seven parents, two stored files and two placeholders.
//! The fixture test, `attachments-admin fixtures load` and `ATTACHMENTS_LOAD_FIXTURES` load it.
//! Its key is public, so it only ever goes into an embedded store: configuration refuses the
//! flag on AWS, and so does the admin command.

use bytes::Bytes;

use crate::domain::{
    decide_content_type, Attachment, AttachmentId, AttachmentStatus, Digests, FileName, IdError,
    Parent, ParentId, ParentKind, ParentRef, TenantId, Version, VersionId,
};
use crate::service::{App, ServiceError};
use crate::store::StoreError;

/// The fixtures' tenant.
pub const TENANT: &str = "fixtures";
/// The fixtures' API key.
pub const KEY: &str = "fixture-key-0123456789abcdef";
/// The owner of the key and of the stored attachments.
pub const OWNER: &str = "admin-user-66@example.com";

/// Two names: a parent's kind and id, or a stored file's name and label.
type Names = (&'static str, &'static str);

/// Parents: the profile (with its look-up fields, which HrFlow's fixtures use), the assets and
/// projects, and the records.
const PARENTS: [Names; 7] = [
    ("profile", "59284659d4c650213cc2f3fc"),
    ("asset", "bDzHAAxLXsSmhL4lax8D"),
    ("asset", "UqFkJDWdw7Sdg7TQZS-J"),
    ("project", "If8_aXgtMF4ggxOPqvKM"),
    ("project", "MKEejlgPARb7pJp8JrD4"),
    ("io_showcase", "41f19ff6-2738-4000-8bfd-a18950caa1d1"),
    ("io_showcase", "42f64596-c42f-4ba2-8138-cc40188d2a88"),
];

/// The version id of both stored files.
const VERSION: &str = "01a20000-0000-7000-8000-0000000000f0";

/// Attachments: id, parent, and for the two stored files their name and label; the other two
/// are placeholders (the asset API's attachments without a file yet).
const ATTACHMENTS: [(&str, Names, Option<Names>); 4] = [
    (
        "01a20000-0000-7000-8000-000000000001",
        PARENTS[0],
        Some(("picture1.jpg", "resume")),
    ),
    (
        "01a20000-0000-7000-8000-000000000002",
        PARENTS[5],
        Some(("file1.txt", "file")),
    ),
    ("01a20000-0000-7000-8000-000000000003", PARENTS[1], None),
    ("01a20000-0000-7000-8000-000000000004", PARENTS[3], None),
];

/// Why the data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixturesError {
    /// The store is not new: it holds API keys (the fixtures' own, perhaps with data that
    /// fixtures changed since, or anyone's).
    #[error("the store is not new (it holds API keys)")]
    NotNew,
    #[error("fixture data: {0}")]
    Invalid(#[from] IdError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The bytes of a stored file: a JPEG header (enough for the magic-byte checks) padded to the
/// 23193 bytes the Crafter fixtures show, and a line of text.
fn content(name: &str) -> Bytes {
    if name.ends_with(".jpg") {
        let mut v = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
        v.resize(23193, 0x42);
        Bytes::from(v)
    } else {
        Bytes::from_static(b"hello fixtures\n")
    }
}

fn parent_ref((kind, id): Names) -> Result<ParentRef, IdError> {
    let kind = ParentKind::parse(kind)?;
    Ok(ParentRef::new(kind, ParentId::parse(id)?))
}

/// Whether the store is new: it holds no API key yet. Every store gets one before anything else
/// (the fixtures' own, the local server's first key, `ATTACHMENTS_API_KEYS`), and no fixture
/// removes one, so a store that has served the fixtures (and changed their data) is never new
/// again, whatever they deleted.
pub async fn is_new(app: &App) -> Result<bool, FixturesError> {
    Ok(app.meta.list_api_keys().await?.is_empty())
}

/// Writes the fixtures' data into a new store; `NotNew` for any other.
pub async fn load(app: &App) -> Result<(), FixturesError> {
    if !is_new(app).await? {
        return Err(FixturesError::NotNew);
    }
    let tenant = TenantId::parse(TENANT)?;
    app.register_key(&tenant, KEY, Some(OWNER)).await?;
    let t = time::OffsetDateTime::now_utc();
    for (id, parent, file) in ATTACHMENTS {
        // The fixtures' tenant's and owner's, created now, without content yet.
        let status = AttachmentStatus::Placeholder;
        let mut att = Attachment::new(tenant.clone(), parent_ref(parent)?, OWNER.into(), status, t);
        att.id = AttachmentId::parse(id)?;
        match file {
            Some((name, label)) => load_file(app, att, name, label).await?,
            None => {
                att.title = Some("sample attachment".into());
                app.meta.create_attachment(&att).await?;
            }
        }
    }
    // Profiles carry the look-up fields the Crafter fixtures read.
    for (kind, id) in PARENTS {
        let profile = kind == "profile";
        let parent = Parent {
            tenant: tenant.clone(),
            key: parent_ref((kind, id))?,
            source: profile.then(|| "src-1".into()),
            reference: profile.then(|| "ref-1".into()),
            email: profile.then(|| "jane@example.com".into()),
            created_at: t,
            updated_at: t,
        };
        app.meta.put_parent(&parent).await?;
    }
    Ok(())
}

/// One file: its bytes in the blob store, then its attachment, ready, with its one version.
async fn load_file(
    app: &App,
    mut att: Attachment,
    name: &str,
    label: &str,
) -> Result<(), FixturesError> {
    let bytes = content(name);
    let name = FileName::parse(name)?;
    let d = Digests::of(&bytes);
    let content_type = decide_content_type(name.as_str(), name.extension(), &bytes)
        .map_err(|e| FixturesError::Service(ServiceError::UnsupportedMedia(e.to_string())))?
        .to_owned();
    let version = Version {
        id: VersionId::parse(VERSION)?,
        content_type,
        file_name: name,
        size: d.size,
        md5: d.md5_hex(),
        sha256: d.sha256_hex(),
        created_at: att.created_at,
    };
    att.label = label.into();
    att.status = AttachmentStatus::Ready;
    att.content = Some(version.clone());
    let key = att.blob_key(version.id);
    app.blobs
        .put(&key, bytes, &version.content_type, &d.sha256)
        .await?;
    app.meta.create_attachment(&att).await?;
    Ok(app.meta.put_version(&att.tenant, att.id, &version).await?)
}
