//! The embedded metadata store: SQLite in WAL mode, one file in the data folder. Items are JSON
//! documents beside the columns that queries and conditions need, as DynamoDB items are. Every
//! call runs on a blocking thread ([`crate::blocking`]): it may wait up to the busy timeout for
//! another process's write lock (the local server, the functions and the admin command).

use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Params};
use serde::de::DeserializeOwned;

use super::{
    hidden_share, Expected, ManyListing, MetadataStore, Page, ParentLookup, PutOutcome, StoreError,
    StoreResult, MAX_BATCH_KEYS, MAX_HIDDEN_SKIPPED,
};
use crate::domain::{
    ApiKey, Attachment, AttachmentId, Parent, ParentId, ParentKind, ParentRef, TenantId, Version,
    VersionId,
};

/// Bumped with every change to [`SCHEMA`], whose statements must stay idempotent (`IF NOT
/// EXISTS`): a file of another version runs the whole script again.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS parents (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    reference TEXT,
    email TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS parents_by_reference
    ON parents (tenant, kind, source, reference) WHERE reference IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS parents_by_email
    ON parents (tenant, kind, source, email) WHERE email IS NOT NULL;
CREATE TABLE IF NOT EXISTS attachments (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_kind TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    version_id TEXT,
    expires_at INTEGER,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS attachments_by_parent
    ON attachments (tenant, parent_kind, parent_id, id);
CREATE INDEX IF NOT EXISTS attachments_listed
    ON attachments (tenant, parent_kind, parent_id, id) WHERE status IN ('ready', 'placeholder');
DROP INDEX IF EXISTS attachments_leftovers;
CREATE INDEX IF NOT EXISTS attachments_expiring
    ON attachments (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT NOT NULL,
    attachment_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, attachment_id, version_id)
);
"#;

/// SQLite-backed [`MetadataStore`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(format!("sqlite: {e}"))
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(corrupt)
}

/// A unique key taken is the conflict `taken` says (when given); anything else is a failure.
fn taken_or_failed(e: rusqlite::Error, taken: Option<&'static str>) -> StoreError {
    match taken {
        Some(taken) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::Conflict(taken.into())
        }
        _ => e.into(),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, created readable by its owner only before
    /// SQLite opens it (SQLite gives its journal files the database's permissions).
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut options = super::fs_blob::private_file();
        let file = options.create(true).truncate(false).open(path);
        file.map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        Self::init(Connection::open(path)?)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        let pragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                       PRAGMA busy_timeout = 5000;";
        conn.execute_batch(pragmas)?;
        // The schema script is parsed only when the file is new or older than this code:
        // parsing it costs about a third of a millisecond of every cold start.
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            let script = format!("{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};");
            conn.execute_batch(&script)?;
        }
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self { conn })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        crate::blocking::run(move || {
            let poisoned = |_| StoreError::Unavailable("sqlite connection poisoned".into());
            f(&mut *conn.lock().map_err(poisoned)?)
        })
        .await?
    }

    /// The documents of every row `sql` selects.
    async fn docs<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        params: impl Params + Send + 'static,
    ) -> StoreResult<Vec<T>> {
        self.with_conn(move |conn| docs(conn, sql, params)).await
    }

    /// Runs one statement; whether it changed a row. A unique key taken is the `taken` conflict.
    async fn execute(
        &self,
        sql: &'static str,
        params: impl Params + Send + 'static,
        taken: Option<&'static str>,
    ) -> StoreResult<bool> {
        self.with_conn(move |conn| {
            let changed = conn.execute(sql, params);
            Ok(changed.map_err(|e| taken_or_failed(e, taken))? > 0)
        })
        .await
    }
}

/// The documents of every row `sql` selects, through a statement prepared once per connection.
fn docs<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_and_then(params, |row| doc(row, 0))?;
    rows.collect()
}

/// A parent's attachments in id order, hidden ones included (a listing counts those it steps
/// over as the DynamoDB store does). No `LIMIT ?`: SQLite plans with a bound limit's value, so
/// every new one re-prepared the statement (a seventh of a listing's time); callers stop reading.
const LIST_SQL: &str = "SELECT id, status, doc FROM attachments
     WHERE tenant = ?1 AND parent_kind = ?2 AND parent_id = ?3 AND id > ?4
     ORDER BY id";

/// Whether a parent has a listed attachment after an id (the partial index of listed ones).
const LISTED_AFTER_SQL: &str = "SELECT 1 FROM attachments
     WHERE tenant = ?1 AND parent_kind = ?2 AND parent_id = ?3 AND id > ?4
       AND status IN ('ready', 'placeholder')
     LIMIT 1";

/// The next parent of a kind, after an id, that has a listed attachment (the partial index of
/// listed attachments, one seek per parent), and whether it exists.
const NEXT_LISTED_PARENT_SQL: &str = "SELECT a.parent_id, EXISTS (SELECT 1 FROM parents
       WHERE tenant = ?1 AND kind = ?2 AND id = a.parent_id)
     FROM attachments a
     WHERE a.tenant = ?1 AND a.parent_kind = ?2 AND a.parent_id > ?3
       AND a.status IN ('ready', 'placeholder')
     ORDER BY a.parent_id LIMIT 1";

const PARENT_BY_KEY: &str = "SELECT doc FROM parents WHERE tenant = ?1 AND kind = ?2 AND id = ?3";
const PARENT_BY_REFERENCE: &str = "SELECT doc FROM parents
     WHERE tenant = ?1 AND kind = ?2 AND source = ?3 AND reference = ?4";
const PARENT_BY_EMAIL: &str = "SELECT doc FROM parents
     WHERE tenant = ?1 AND kind = ?2 AND source = ?3 AND email = ?4";

fn is_listed(status: &str) -> bool {
    matches!(status, "ready" | "placeholder")
}

fn parent_exists(conn: &Connection, key: &Key) -> StoreResult<bool> {
    let mut stmt = conn.prepare_cached(PARENT_BY_KEY)?;
    Ok(stmt.exists(params_from_iter(key))?)
}

/// One parent's listed attachments for a listing of several: `None` when it has more hidden
/// ones than `share` before its last listed one, or more listed ones than `room`.
fn listed_of(
    conn: &Connection,
    key: &Key,
    room: usize,
    share: usize,
) -> StoreResult<Option<Vec<Attachment>>> {
    let mut stmt = conn.prepare_cached(LIST_SQL)?;
    let mut rows = stmt.query(key_after(key, ""))?;
    let (mut out, mut hidden) = (Vec::new(), 0usize);
    while let Some(row) = rows.next()? {
        if is_listed(text(row, 1)?) {
            if out.len() == room {
                return Ok(None);
            }
            out.push(doc(row, 2)?);
        } else if hidden == share {
            // Past its share, only whether a listed one still follows matters: the partial index
            // answers that without reading the rest.
            let mut stmt = conn.prepare_cached(LISTED_AFTER_SQL)?;
            let more = stmt.exists(key_after(key, text(row, 0)?))?;
            return Ok((!more).then_some(out));
        } else {
            hidden += 1;
        }
    }
    Ok(Some(out))
}

/// A text column of a row, borrowed from SQLite.
fn text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> StoreResult<&'r str> {
    Ok(row.get_ref(column).and_then(|v| Ok(v.as_str()?))?)
}

/// The document in a column of a row, decoded where SQLite keeps its text.
fn doc<T: DeserializeOwned>(row: &rusqlite::Row<'_>, column: usize) -> StoreResult<T> {
    serde_json::from_str(text(row, column)?).map_err(corrupt)
}

/// An attachment's row: tenant, id, parent kind, parent id, status, version, expiry, document.
fn attachment_row(att: &Attachment) -> StoreResult<Vec<Value>> {
    let key = [
        &att.tenant as &dyn Display,
        &att.id,
        &att.parent.kind,
        &att.parent.id,
        &att.status.as_str(),
    ];
    let mut row: Vec<Value> = key.iter().map(|k| k.to_string().into()).collect();
    row.push(att.content.as_ref().map(|v| v.id.to_string()).into());
    row.extend([att.expires_at.into(), to_json(att)?.into()]);
    Ok(row)
}

/// The tenant, kind and id columns of a parent's row.
type Key = [String; 3];

fn key_of(tenant: &TenantId, key: &ParentRef) -> Key {
    [tenant.to_string(), key.kind.to_string(), key.id.to_string()]
}

/// A parent's key and an attachment id after which to read, as one statement's parameters.
fn key_after<'a>(key: &'a Key, id: &'a str) -> impl Params + 'a {
    params_from_iter(key.iter().map(String::as_str).chain([id]))
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let sql = "INSERT INTO api_keys (hash, id, doc) VALUES (?1, ?2, ?3)
                   ON CONFLICT (hash) DO UPDATE SET doc = excluded.doc";
        let row = (key.hash.clone(), key.id.clone(), to_json(key)?);
        let taken = Some("an API key with that id exists");
        self.execute(sql, row, taken).await.map(drop)
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let sql = "SELECT doc FROM api_keys WHERE hash = ?1";
        Ok(self.docs(sql, (hash.to_owned(),)).await?.pop())
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.docs("SELECT doc FROM api_keys ORDER BY id", ()).await
    }

    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        let sql =
            "UPDATE api_keys SET doc = json_set(doc, '$.revoked', json('true')) WHERE id = ?1";
        self.execute(sql, (id.to_owned(),), None).await
    }

    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        const TAKEN: &str = "another parent of this kind and source has that reference or email";
        let key = key_of(&parent.tenant, &parent.key);
        let (reference, email) = (parent.reference.clone(), parent.email.clone());
        let (source, doc) = (parent.source.clone().unwrap_or_default(), to_json(parent)?);
        self.with_conn(move |conn| {
            let exists = parent_exists(conn, &key)?;
            conn.execute(
                "INSERT INTO parents (tenant, kind, id, source, reference, email, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (tenant, kind, id) DO UPDATE SET
                   source = excluded.source, reference = excluded.reference,
                   email = excluded.email, doc = excluded.doc",
                params![key[0], key[1], key[2], source, reference, email, doc],
            )
            .map_err(|e| taken_or_failed(e, Some(TAKEN)))?;
            use PutOutcome::{Created, Updated};
            Ok(if exists { Updated } else { Created })
        })
        .await
    }

    async fn get_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<Option<Parent>> {
        let key = params_from_iter(key_of(tenant, key));
        Ok(self.docs(PARENT_BY_KEY, key).await?.pop())
    }

    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        if keys.len() > MAX_BATCH_KEYS {
            let e = format!("get_parents takes at most {MAX_BATCH_KEYS} keys");
            return Err(StoreError::Unavailable(e));
        }
        let keys: Vec<Key> = keys.iter().map(|k| key_of(tenant, k)).collect();
        self.with_conn(move |conn| {
            let one = |k: &Key| Ok(docs(conn, PARENT_BY_KEY, params_from_iter(k))?.pop());
            keys.iter().map(one).filter_map(Result::transpose).collect()
        })
        .await
    }

    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>> {
        let (sql, value) = match lookup {
            ParentLookup::Reference(r) => (PARENT_BY_REFERENCE, r),
            ParentLookup::Email(e) => (PARENT_BY_EMAIL, e),
        };
        let params = [tenant.as_str(), kind.as_str(), source.unwrap_or(""), value];
        let params = params_from_iter(params.map(str::to_owned));
        Ok(self.docs(sql, params).await?.pop())
    }

    async fn delete_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<bool> {
        let sql = "DELETE FROM parents WHERE tenant = ?1 AND kind = ?2 AND id = ?3";
        self.execute(sql, params_from_iter(key_of(tenant, key)), None)
            .await
    }

    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<Page<ParentRef, ParentId>> {
        let (tenant, kind) = (tenant.to_string(), kind.clone());
        let mut after = after.map(|a| a.to_string()).unwrap_or_default();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(NEXT_LISTED_PARENT_SQL)?;
            let (mut items, mut next) = (Vec::new(), None);
            // One seek per parent: a parent with a million attachments costs what one with one
            // does. A parent row that is gone (its attachments are being removed) is skipped,
            // as the DynamoDB store drops its marker with it.
            let row = |r: &rusqlite::Row<'_>| <(String, bool)>::try_from(r);
            while let Some((id, exists)) = stmt
                .query_row(params![tenant, kind.as_str(), after], row)
                .optional()?
            {
                if exists {
                    if items.len() == limit {
                        next = items.last().map(|p: &ParentRef| p.id.clone());
                        break;
                    }
                    let id = ParentId::parse(&id).map_err(corrupt)?;
                    items.push(ParentRef::new(kind.clone(), id));
                }
                after = id;
            }
            Ok(Page { items, next })
        })
        .await
    }

    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        let sql = "INSERT INTO attachments
                     (tenant, id, parent_kind, parent_id, status, version_id, expires_at, doc)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
        let row = params_from_iter(attachment_row(att)?);
        let taken = Some("attachment exists");
        self.execute(sql, row, taken).await.map(drop)
    }

    /// The row's parent columns (?3, ?4) are bound and left as they are: an attachment keeps its
    /// parent.
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        let sql = "UPDATE attachments SET status = ?5, version_id = ?6, expires_at = ?7, doc = ?8
                   WHERE tenant = ?1 AND id = ?2 AND status = ?9 AND version_id IS ?10
                     AND json_extract(doc, '$.upload.version.id') IS ?11";
        let expected = [
            Some(expected.status.as_str().to_owned()),
            expected.version.map(|v| v.to_string()),
            expected.upload.map(|v| v.to_string()),
        ];
        let mut row = attachment_row(att)?;
        row.extend(expected.map(Value::from));
        let changed = self.execute(sql, params_from_iter(row), None).await?;
        let conflict =
            || StoreError::Conflict("attachment changed or was deleted meanwhile".into());
        changed.then_some(()).ok_or_else(conflict)
    }

    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        let sql = "SELECT doc FROM attachments WHERE tenant = ?1 AND id = ?2";
        let key = (tenant.to_string(), id.to_string());
        Ok(self.docs(sql, key).await?.pop())
    }

    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page<Attachment, AttachmentId>> {
        let key = key_of(tenant, parent);
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(LIST_SQL)?;
            let mut rows = stmt.query(key_after(&key, &after))?;
            // As the DynamoDB store reads: one more than asked (not decoded) tells whether
            // another page follows, and at most `MAX_HIDDEN_SKIPPED` hidden ones are stepped over.
            let budget = limit.saturating_add(1).saturating_add(MAX_HIDDEN_SKIPPED);
            let mut items: Vec<Attachment> = Vec::with_capacity(limit.min(128));
            let (mut read, mut last_read, mut next) = (0usize, None::<String>, None);
            while let Some(row) = rows.next()? {
                if read == budget && !include_hidden {
                    // More rows than this call may read: the next page starts after the last.
                    let last = last_read.as_deref().map(AttachmentId::parse).transpose();
                    next = last.map_err(corrupt)?;
                    break;
                }
                read += 1;
                if include_hidden || is_listed(text(row, 1)?) {
                    if items.len() == limit {
                        next = items.last().map(|a| a.id);
                        break;
                    }
                    items.push(doc(row, 2)?);
                }
                last_read = Some(text(row, 0)?.to_owned());
            }
            Ok(Page { items, next })
        })
        .await
    }

    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing> {
        let keys: Vec<Key> = parents.iter().map(|p| key_of(tenant, p)).collect();
        let share = hidden_share(parents.len());
        self.with_conn(move |conn| {
            let (mut out, mut total) = (Vec::with_capacity(keys.len()), 0usize);
            for key in keys {
                if !parent_exists(conn, &key)? {
                    out.push(None);
                    continue;
                }
                let Some(list) = listed_of(conn, &key, limit - total, share)? else {
                    return Ok(ManyListing::TooMany);
                };
                total += list.len();
                out.push(Some(list));
            }
            Ok(ManyListing::Parents(out))
        })
        .await
    }

    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let versions = "DELETE FROM versions WHERE tenant = ?1 AND attachment_id = ?2";
            tx.execute(versions, [&tenant, &id])?;
            let sql = "DELETE FROM attachments WHERE tenant = ?1 AND id = ?2";
            let n = tx.execute(sql, [&tenant, &id])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        let sql = "INSERT OR REPLACE INTO versions (tenant, attachment_id, version_id, doc)
                   VALUES (?1, ?2, ?3, ?4)";
        let row = (
            tenant.to_string(),
            att.to_string(),
            v.id.to_string(),
            to_json(v)?,
        );
        self.execute(sql, row, None).await.map(drop)
    }

    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        let sql = "SELECT doc FROM versions WHERE tenant = ?1 AND attachment_id = ?2
                   ORDER BY version_id";
        self.docs(sql, (tenant.to_string(), att.to_string())).await
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        let sql =
            "DELETE FROM versions WHERE tenant = ?1 AND attachment_id = ?2 AND version_id = ?3";
        let key = (tenant.to_string(), att.to_string(), version.to_string());
        self.execute(sql, key, None).await.map(drop)
    }

    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        let sql = "SELECT doc FROM attachments WHERE expires_at IS NOT NULL
                   AND json_extract(doc, '$.upload') IS NOT NULL ORDER BY expires_at LIMIT 1";
        Ok(self.docs(sql, ()).await?.pop())
    }

    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = "SELECT doc FROM attachments WHERE expires_at IS NOT NULL AND expires_at < ?1
                   ORDER BY expires_at LIMIT ?2";
        self.docs(sql, (before, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables_named(path: &Path, name: &str) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[tokio::test]
    async fn listing_statements_are_prepared_once() {
        let s = SqliteStore::in_memory().unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let parent = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p").unwrap(),
        );
        for limit in [1, 20, 100] {
            s.list_attachments(&tenant, &parent, Some(AttachmentId::new()), limit, false)
                .await
                .unwrap();
        }
        let conn = s.conn.lock().unwrap();
        let stmt = conn.prepare_cached(LIST_SQL).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[test]
    fn the_schema_script_runs_only_for_a_file_of_another_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        SqliteStore::open(&path).unwrap();
        assert_eq!(tables_named(&path, "versions"), 1);
        // A file of another version (here: from before versions were recorded) gets the script.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE versions; PRAGMA user_version = 0;")
            .unwrap();
        SqliteStore::open(&path).unwrap();
        assert_eq!(tables_named(&path, "versions"), 1);
        // A file of this version does not: what the script would create is left as it is.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE versions;")
            .unwrap();
        SqliteStore::open(&path).unwrap();
        assert_eq!(tables_named(&path, "versions"), 0);
    }
}
