//! Attachments and their versions. An attachment's item lives in its parent's partition (so a
//! listing is one Query); its pointer and its versions in a partition of its own, so finding it
//! by id needs no parent and its versions never crowd the parent's. A write that lists an
//! attachment or stops listing it moves the parent's count in the same transaction
//! (`counts.rs`); nothing else of the parent is written.

use super::{
    attachment_pk, attachment_sk, backoff, doc, dyn_err, key_item, parent_of_pointer, parent_pk,
    pointer_item, s, to_json, version_sk, DynamoStore, Expr, DOC, MAX_ATTEMPTS, PK, POINTER_SK, SK,
    STATUS, UPLOAD, VERSION,
};
use crate::domain::{Attachment, AttachmentId, ParentRef, TenantId, Version, VersionId};
use crate::store::{Expected, StoreError, StoreResult};

impl DynamoStore {
    /// Creates an attachment and its pointer, each only if absent; a listed one (a
    /// placeholder) moves its parent's count in the same transaction.
    pub(super) async fn insert_attachment(&self, att: &Attachment) -> StoreResult<()> {
        let absent = Expr::new().name("#pk", PK);
        let items = vec![
            self.put(
                self.attachment_item(att)?,
                Some("attribute_not_exists(#pk)"),
                &absent,
            )?,
            self.put(
                pointer_item(att),
                Some("attribute_not_exists(#pk)"),
                &absent,
            )?,
        ];
        // A placeholder is listed from the start: its parent's count goes up with it.
        let listed = att.status.is_listed().then_some(1);
        match self
            .transact_counted(items, &att.tenant, &att.parent, listed)
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict("attachment exists".into())),
        }
    }

    /// Writes an attachment on condition that its status, version and upload under way are
    /// still as `expected`; entering or leaving the lists moves its parent's count with it.
    pub(super) async fn change_attachment(
        &self,
        att: &Attachment,
        expected: Expected,
    ) -> StoreResult<()> {
        let mut expr = Expr::new()
            .name("#st", STATUS)
            .name("#vid", VERSION)
            .name("#upv", UPLOAD)
            .value(":st", s(expected.status.as_str()));
        let version = match expected.version {
            Some(v) => {
                expr = expr.value(":vid", s(v.to_string()));
                "#vid = :vid"
            }
            None => "attribute_not_exists(#vid)",
        };
        let upload = match expected.upload {
            Some(u) => {
                expr = expr.value(":upv", s(u.to_string()));
                "#upv = :upv"
            }
            None => "attribute_not_exists(#upv)",
        };
        let cond = format!("#st = :st AND {version} AND {upload}");
        let items = vec![self.put(self.attachment_item(att)?, Some(&cond), &expr)?];
        // Entering or leaving the lists moves the parent's count in the same transaction.
        let delta = match (expected.status.is_listed(), att.status.is_listed()) {
            (false, true) => Some(1),
            (true, false) => Some(-1),
            _ => None,
        };
        match self
            .transact_counted(items, &att.tenant, &att.parent, delta)
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict(
                "attachment changed or was deleted meanwhile".into(),
            )),
        }
    }

    /// An attachment: its pointer (where it lives), then its item, both consistent.
    pub(super) async fn read_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(None);
        };
        match self
            .get_item(key_item(parent_pk(tenant, &parent), attachment_sk(id)))
            .await?
        {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes an attachment's versions, then its item and pointer in one transaction (with
    /// its parent's count when it was listed), on condition that its status is as read.
    pub(super) async fn remove_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<bool> {
        let pk = attachment_pk(tenant, id);
        let versions = self.query_prefix(pk.clone(), "V#").await?;
        self.batch_delete(
            versions
                .into_iter()
                .map(|mut v| {
                    v.retain(|k, _| k == PK || k == SK);
                    v
                })
                .collect(),
        )
        .await?;
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(false);
        };
        let home = key_item(parent_pk(tenant, &parent), attachment_sk(id));
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let current: Option<Attachment> = match self.get_item(home.clone()).await? {
                Some(item) => Some(doc(&item)?),
                None => None,
            };
            let mut items =
                vec![self.delete(key_item(pk.clone(), POINTER_SK), None, &Expr::new())?];
            let mut listed = None;
            match &current {
                Some(att) => {
                    items.push(
                        self.delete(
                            home.clone(),
                            Some("#st = :st"),
                            &Expr::new()
                                .name("#st", STATUS)
                                .value(":st", s(att.status.as_str())),
                        )?,
                    );
                    listed = att.status.is_listed().then_some(-1);
                }
                None => items.push(self.delete(
                    home.clone(),
                    Some("attribute_not_exists(#pk)"),
                    &Expr::new().name("#pk", PK),
                )?),
            }
            match self
                .transact_counted(items, tenant, &parent, listed)
                .await?
            {
                Ok(()) => return Ok(current.is_some()),
                // Its status changed meanwhile: read again, so the count stays right.
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the attachment kept changing during its deletion".into(),
        ))
    }

    pub(super) async fn write_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        let mut item = key_item(attachment_pk(tenant, att), version_sk(v.id));
        item.insert(DOC.into(), s(to_json(v)?));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dyn_err("PutItem", e))?;
        Ok(())
    }

    pub(super) async fn read_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        let items = self.query_prefix(attachment_pk(tenant, att), "V#").await?;
        items.iter().map(doc).collect()
    }

    pub(super) async fn remove_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        let k = key_item(attachment_pk(tenant, att), version_sk(version));
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(k))
            .send()
            .await
            .map_err(|e| dyn_err("DeleteItem", e))?;
        Ok(())
    }

    /// Where an attachment lives: its parent, from the pointer item.
    pub(super) async fn home_of(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<ParentRef>> {
        match self
            .get_item(key_item(attachment_pk(tenant, id), POINTER_SK))
            .await?
        {
            Some(item) => parent_of_pointer(&item).map(Some),
            None => Ok(None),
        }
    }
}
