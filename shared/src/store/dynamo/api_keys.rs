//! API keys: each stored twice, by the hash of its secret (authentication, one GetItem) and by
//! its public id in the one partition `KEYS` (listing, revocation), written together. Keys are
//! few and change rarely, so that partition is never busy.

use super::{
    api_key_pk, doc, key_item, s, to_json, DynamoStore, Expr, API_KEYS_PK, API_KEY_SK, DOC, HASH,
    PK,
};
use crate::domain::ApiKey;
use crate::store::{StoreError, StoreResult};

impl DynamoStore {
    async fn api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        match self.get_item(key_item(API_KEYS_PK.into(), id)).await? {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a key's two items (by hash for authentication, by id for listing) together.
    pub(super) async fn write_api_key(&self, key_rec: &ApiKey) -> StoreResult<()> {
        let body = to_json(key_rec)?;
        let mut by_hash = key_item(api_key_pk(&key_rec.hash), API_KEY_SK);
        by_hash.insert(DOC.into(), s(body.clone()));
        let mut by_id = key_item(API_KEYS_PK.into(), key_rec.id.as_str());
        by_id.insert(DOC.into(), s(body));
        by_id.insert(HASH.into(), s(key_rec.hash.as_str()));
        let id_free = Expr::new()
            .name("#pk", PK)
            .name("#hash", HASH)
            .value(":hash", s(key_rec.hash.as_str()));
        let items = vec![
            self.put(by_hash, None, &Expr::new())?,
            self.put(
                by_id,
                Some("attribute_not_exists(#pk) OR #hash = :hash"),
                &id_free,
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict(
                "an API key with that id exists".into(),
            )),
        }
    }

    /// An API key by the hash of its secret.
    pub(super) async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        // Consistent, so a revocation takes effect on the very next request.
        match self
            .get_item(key_item(api_key_pk(hash), API_KEY_SK))
            .await?
        {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn all_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let items = self.query_prefix(API_KEYS_PK.into(), "").await?;
        items.iter().map(doc).collect()
    }

    /// Marks a key revoked; `false` when there is no such key.
    pub(super) async fn revoke_key(&self, id: &str) -> StoreResult<bool> {
        let Some(mut rec) = self.api_key_by_id(id).await? else {
            return Ok(false);
        };
        rec.revoked = true;
        self.write_api_key(&rec).await?;
        Ok(true)
    }
}
