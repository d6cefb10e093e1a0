//! Opaque list cursors: the position, bound to the tenant and parent, signed by the server.
//! Another tenant's cursor, another parent's, or an edited one is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::ServiceError;
use crate::domain::{AttachmentId, ParentRef, TenantId};
use crate::signing::Signer;

fn invalid() -> ServiceError {
    ServiceError::Invalid("cursor is invalid".into())
}

pub(super) fn encode(
    signer: &Signer,
    tenant: &TenantId,
    parent: &ParentRef,
    after: AttachmentId,
) -> String {
    let body = after.to_string();
    let sig = signer.sign(&[
        b"cursor",
        tenant.as_str().as_bytes(),
        parent.kind.as_str().as_bytes(),
        parent.id.as_str().as_bytes(),
        body.as_bytes(),
    ]);
    URL_SAFE_NO_PAD.encode(format!("{body}.{}", &sig[..32]))
}

pub(super) fn decode(
    signer: &Signer,
    cursor: &str,
    tenant: &TenantId,
    parent: &ParentRef,
) -> Result<AttachmentId, ServiceError> {
    if cursor.len() > 200 {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (body, sig) = raw.split_once('.').ok_or_else(invalid)?;
    let expected = signer.sign(&[
        b"cursor",
        tenant.as_str().as_bytes(),
        parent.kind.as_str().as_bytes(),
        parent.id.as_str().as_bytes(),
        body.as_bytes(),
    ]);
    // A truncated signature (128 bits) keeps cursors short; compare it in constant time.
    let matches = sig.len() == 32
        && expected.as_bytes()[..32]
            .iter()
            .zip(sig.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches {
        return Err(invalid());
    }
    AttachmentId::parse(body).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ParentId, ParentKind};

    #[test]
    fn cursors_round_trip_and_bind_tenant_and_parent() {
        let s = Signer::new([3; 32]);
        let t = TenantId::parse("a").unwrap();
        let p = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let id = AttachmentId::new();
        let c = encode(&s, &t, &p, id);
        assert_eq!(decode(&s, &c, &t, &p).unwrap(), id);
        assert!(decode(&s, &c, &TenantId::parse("b").unwrap(), &p).is_err());
        let other = ParentRef::new(p.kind.clone(), ParentId::parse("p2").unwrap());
        assert!(decode(&s, &c, &t, &other).is_err());
        assert!(decode(&s, "garbage!", &t, &p).is_err());
        let forged = URL_SAFE_NO_PAD.encode(format!("{id}.{}", "0".repeat(32)));
        assert!(decode(&s, &forged, &t, &p).is_err());
    }
}
