//! API keys: creation, registration from configuration, authentication and revocation. Keys are
//! stored as their SHA-256; the key itself is shown once, when it is created.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{now, App, ServiceError, ServiceResult};
use crate::domain::{ApiKey, Principal, TenantId};
use crate::store::StoreError;

/// A key just created: the stored record and the secret, which is never shown again.
#[derive(Debug)]
pub struct NewKey {
    pub record: ApiKey,
    pub secret: String,
}

/// How long a checked key is trusted without asking the store again (a read saved on almost
/// every request): the delay, at most, before a revocation reaches every process.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Keys remembered at most; past that the cache starts over.
const KEY_CACHE_MAX: usize = 10_000;

/// Recently checked keys, by hash, with when they were checked.
pub(crate) type KeyCache = Mutex<HashMap<String, (Principal, Instant)>>;

pub(crate) fn hash_key(key: &str) -> String {
    crate::signing::hex32(&Sha256::digest(key.as_bytes()).into())
}

impl App {
    /// Resolves a presented key to its principal; a missing, unknown or revoked key is refused.
    /// The request's log line names the tenant from then on (never the key).
    pub async fn authenticate(&self, presented: Option<&str>) -> ServiceResult<Principal> {
        let who = self.principal_of(presented).await?;
        crate::telemetry::request::set_tenant(who.tenant.as_str());
        Ok(who)
    }

    /// Whether a key would authenticate, without the request being taken as authenticated
    /// (the local server's check before it reads a body: the route decides afterwards).
    pub async fn knows_key(&self, presented: Option<&str>) -> bool {
        self.principal_of(presented).await.is_ok()
    }

    async fn principal_of(&self, presented: Option<&str>) -> ServiceResult<Principal> {
        let usable = |k: &&str| !k.is_empty() && k.len() <= 512;
        let key = presented.map(str::trim).filter(usable);
        let key = key.ok_or(ServiceError::Unauthorized)?;
        let hash = hash_key(key);
        let cached = self.key_cache.lock().ok().and_then(|c| {
            let (p, at) = c.get(&hash)?;
            (at.elapsed() < KEY_CACHE_TTL).then(|| p.clone())
        });
        if let Some(p) = cached {
            return Ok(p);
        }
        let stored = self.meta.get_api_key(&hash).await?.filter(|k| !k.revoked);
        let k = stored.ok_or(ServiceError::Unauthorized)?;
        let p = Principal {
            tenant: k.tenant,
            owner: k.owner,
        };
        if let Ok(mut c) = self.key_cache.lock() {
            if c.len() >= KEY_CACHE_MAX {
                c.clear();
            }
            c.insert(hash, (p.clone(), Instant::now()));
        }
        Ok(p)
    }

    /// Creates a random key for a tenant.
    pub async fn create_key(
        &self,
        tenant: &TenantId,
        owner: Option<&str>,
    ) -> ServiceResult<NewKey> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let secret = format!("ak_{}", hex::encode(raw));
        let record = self.register_key(tenant, &secret, owner).await?;
        Ok(NewKey { record, secret })
    }

    /// Stores a given key (from `ATTACHMENTS_API_KEYS`); registering it again changes nothing
    /// but its owner, and a revoked key stays revoked.
    pub async fn register_key(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: Option<&str>,
    ) -> ServiceResult<ApiKey> {
        let hash = hash_key(key);
        let existing = self.meta.get_api_key(&hash).await?;
        let record = ApiKey {
            // Derived from the hash, so the same key always gets the same public id.
            id: hash[..12].to_owned(),
            tenant: tenant.clone(),
            owner: owner.map_or_else(|| tenant.to_string(), str::to_owned),
            hash,
            created_at: existing.as_ref().map_or_else(now, |k| k.created_at),
            revoked: existing.as_ref().is_some_and(|k| k.revoked),
        };
        if existing.as_ref().is_some_and(|k| k.tenant != record.tenant) {
            let why = "that key belongs to another tenant";
            return Err(ServiceError::Conflict(why.into()));
        }
        self.meta.put_api_key(&record).await?;
        Ok(record)
    }

    pub async fn list_keys(&self) -> ServiceResult<Vec<ApiKey>> {
        Ok(self.meta.list_api_keys().await?)
    }

    /// Revokes a key by its public id. This process forgets it at once; other processes (other
    /// Lambda containers) within [`KEY_CACHE_TTL`].
    pub async fn revoke_key(&self, id: &str) -> ServiceResult<()> {
        if let Ok(mut c) = self.key_cache.lock() {
            // The public id is the start of the hash.
            c.retain(|hash, _| !hash.starts_with(id));
        }
        let revoked = self.meta.revoke_api_key(id).await?;
        revoked
            .then_some(())
            .ok_or(ServiceError::NotFound("API key"))
    }
}
