//! The file store's signed links, its counterpart of S3's presigned URLs: a download link, a
//! form upload's policy and a part link. Each is signed with the server secret (HMAC-SHA256
//! over length-prefixed, domain-separated parts) and carries its expiry. The store makes them;
//! the local server checks them with the same code, so the format lives in one place.

use base64::{engine::general_purpose::STANDARD, Engine};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

use super::is_safe_key;
use crate::signing::Signer;
use crate::store::{content_disposition, LinkOptions, PostPolicy, PresignedPost};

/// Where the local server takes form uploads.
pub const POST_PATH: &str = "/_blobs/upload";
/// The path under which the local server serves download and part links.
pub const LINK_PREFIX: &str = "/_blobs/";

/// The query of a download link and of a part link, in order; the signature follows.
const DOWNLOAD: [&str; 3] = [
    "expires",
    "response-content-type",
    "response-content-disposition",
];
const PART: [&str; 4] = ["uploadId", "partNumber", "size", "expires"];

/// Why a link or a form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link or form is malformed: {0}")]
    Malformed(String),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

fn malformed(what: &str) -> LinkError {
    LinkError::Malformed(what.to_owned())
}

/// What a valid download link grants: the object and how to present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadGrant {
    pub content_type: String,
    pub content_disposition: String,
}

/// What a valid form upload may store: exactly this key, size and (when declared) checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostGrant {
    pub key: String,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
}

/// What a valid part link may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartGrant {
    pub upload_id: String,
    pub number: u32,
    /// The part's exact size: the link signs it, as an S3 part link signs its Content-Length.
    pub size: u64,
}

/// The policy document a form upload carries, base64 JSON, as S3's.
#[derive(serde::Serialize, serde::Deserialize)]
struct PolicyDoc {
    key: String,
    content_type: String,
    size: u64,
    sha256: Option<String>,
    expires: i64,
}

/// Signs and checks the links of one store.
#[derive(Debug, Clone)]
pub struct Links {
    signer: Signer,
    /// The local server's public base URL, without a trailing slash.
    base_url: String,
}

/// What a link signs: its method, its key and its query's values, each a part of the signature.
fn signed<'a>(method: &'a str, key: &'a str, values: &[&'a str]) -> Vec<&'a [u8]> {
    let parts = [method, key].into_iter().chain(values.iter().copied());
    parts.map(str::as_bytes).collect()
}

impl Links {
    pub fn new(signer: Signer, base_url: &str) -> Self {
        Self {
            signer,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A link to `key` whose query holds `names` with their `values` (encoded with `set`), then
    /// the signature of `method`, the key and those values.
    fn link<const N: usize>(
        &self,
        (method, key): (&str, &str),
        names: [&str; N],
        values: [&str; N],
        set: &'static AsciiSet,
    ) -> String {
        let sig = self.signer.sign(&signed(method, key, &values));
        let query: String = std::iter::zip(names, values)
            .map(|(name, value)| format!("{name}={}&", utf8_percent_encode(value, set)))
            .collect();
        format!("{}{LINK_PREFIX}{key}?{query}signature={sig}", self.base_url)
    }

    /// The percent-decoded values of `names` in a link's query, in that order, once the
    /// signature that follows them is `method`'s, the key's and theirs and their `expires` has
    /// not passed. Any other name, or a pair without `=` or not UTF-8, is malformed; `what`
    /// names the link when one is missing.
    fn check<const N: usize>(
        &self,
        (method, key, query): (&str, &str, &str),
        names: [&str; N],
        what: &str,
        now: i64,
    ) -> Result<[String; N], LinkError> {
        let pairs = query.split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| malformed("query"))?;
            let v = percent_encoding::percent_decode_str(v).decode_utf8();
            Ok((k, v.map_err(|_| malformed("query"))?.into_owned()))
        });
        let (mut values, mut sig): ([Option<String>; N], _) = (std::array::from_fn(|_| None), None);
        for (k, v) in pairs.collect::<Result<Vec<_>, LinkError>>()? {
            *match names.iter().position(|n| *n == k) {
                Some(i) => &mut values[i],
                None if k == "signature" => &mut sig,
                None => return Err(LinkError::Malformed(format!("unexpected parameter {k}"))),
            } = Some(v);
        }
        let (Some(sig), true) = (sig, values.iter().all(Option::is_some)) else {
            return Err(LinkError::Malformed(format!("the {what} is incomplete")));
        };
        let values = values.map(Option::unwrap_or_default);
        let fields = values.each_ref().map(String::as_str);
        if !self.signer.verify(&signed(method, key, &fields), &sig) {
            return Err(LinkError::BadSignature);
        }
        let expires = names.iter().position(|n| *n == "expires");
        let expires = expires.and_then(|i| fields[i].parse::<i64>().ok());
        if now > expires.ok_or_else(|| malformed("expires"))? {
            return Err(LinkError::Expired);
        }
        Ok(values)
    }

    /// A download link for `key`, presented as `opts` say.
    pub fn download(&self, key: &str, opts: &LinkOptions<'_>) -> String {
        let expires = opts.valid.expires_at.to_string();
        let disposition = content_disposition(opts.file_name);
        let values = [expires.as_str(), opts.content_type, &disposition];
        self.link(("GET", key), DOWNLOAD, values, NON_ALPHANUMERIC)
    }

    /// Checks a download link's query against its key and the clock.
    pub fn check_download(
        &self,
        key: &str,
        query: &str,
        now: i64,
    ) -> Result<DownloadGrant, LinkError> {
        if !is_safe_key(key) {
            return Err(malformed("key"));
        }
        let [_, content_type, content_disposition] =
            self.check(("GET", key, query), DOWNLOAD, "link", now)?;
        Ok(DownloadGrant {
            content_type,
            content_disposition,
        })
    }

    /// The URL and fields of a form upload of exactly one object under `key`.
    pub fn post(
        &self,
        key: &str,
        policy: &PostPolicy<'_>,
        expires: i64,
    ) -> Result<PresignedPost, serde_json::Error> {
        let doc = PolicyDoc {
            key: key.to_owned(),
            content_type: policy.content_type.to_owned(),
            size: policy.size,
            sha256: policy.sha256.map(hex::encode),
            expires,
        };
        let policy = STANDARD.encode(serde_json::to_vec(&doc)?);
        let signature = self.signer.sign(&[b"POST", policy.as_bytes()]);
        let fields = vec![
            ("key".into(), doc.key),
            ("Content-Type".into(), doc.content_type),
            ("policy".into(), policy),
            ("signature".into(), signature),
        ];
        let url = format!("{}{POST_PATH}", self.base_url);
        Ok(PresignedPost { url, fields })
    }

    /// Checks a form upload's fields (everything before the file) against its signed policy.
    pub fn check_post(
        &self,
        fields: &[(String, String)],
        now: i64,
    ) -> Result<PostGrant, LinkError> {
        let field = |name: &str| {
            let found = fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
            let missing = || LinkError::Malformed(format!("the form has no {name} field"));
            found.map(|(_, v)| v.as_str()).ok_or_else(missing)
        };
        let policy = field("policy")?;
        let signed = [b"POST".as_slice(), policy.as_bytes()];
        if !self.signer.verify(&signed, field("signature")?) {
            return Err(LinkError::BadSignature);
        }
        let raw = STANDARD.decode(policy);
        let raw = raw.map_err(|_| malformed("policy is not base64"))?;
        let doc: PolicyDoc =
            serde_json::from_slice(&raw).map_err(|_| malformed("policy is not valid"))?;
        if now > doc.expires {
            return Err(LinkError::Expired);
        }
        // The form's own fields must say what the policy pins, as S3's conditions do.
        if field("key")? != doc.key
            || !is_safe_key(&doc.key)
            || field("Content-Type")? != doc.content_type
        {
            return Err(LinkError::BadSignature);
        }
        let sha256 = doc.sha256.map(hex::FromHex::from_hex).transpose();
        let sha256 = sha256.map_err(|_| malformed("policy checksum"))?;
        Ok(PostGrant {
            key: doc.key,
            size: doc.size,
            sha256,
        })
    }

    /// A link that uploads part `number` of a multipart upload, exactly `size` bytes, valid
    /// until `expires`.
    pub fn part(&self, key: &str, upload_id: &str, number: u32, size: u64, expires: i64) -> String {
        let (number, size, expires) = (number.to_string(), size.to_string(), expires.to_string());
        let values = [upload_id, &number, &size, &expires];
        self.link(("PUT", key), PART, values, CONTROLS)
    }

    /// Checks a part link's query against its key and the clock.
    pub fn check_part(&self, key: &str, query: &str, now: i64) -> Result<PartGrant, LinkError> {
        let [upload_id, number, size, _] =
            self.check(("PUT", key, query), PART, "part link", now)?;
        Ok(PartGrant {
            upload_id,
            number: number.parse().map_err(|_| malformed("partNumber"))?,
            size: size.parse().map_err(|_| malformed("size"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new(Signer::new([1; 32]), "http://127.0.0.1:3000/")
    }

    fn query_of(link: &str) -> (&str, &str) {
        let rest = link.split_once(LINK_PREFIX).unwrap().1;
        rest.split_once('?').unwrap()
    }

    #[test]
    fn downloads_verify_and_refuse_tampering_and_expiry() {
        let l = links();
        let valid = crate::store::LinkWindow {
            signed_at: 0,
            expires_at: 1000,
        };
        let opts = LinkOptions {
            content_type: "text/plain",
            file_name: "a.txt",
            valid,
        };
        let link = l.download("t/a/v", &opts);
        // The format is fixed: links handed out before must keep working.
        let sig = Signer::new([1; 32]).sign(&[
            b"GET",
            b"t/a/v",
            b"1000",
            b"text/plain",
            b"attachment; filename*=UTF-8''a.txt",
        ]);
        assert_eq!(
            link,
            format!(
                "http://127.0.0.1:3000/_blobs/t/a/v?expires=1000&response-content-type=text%2Fplain\
                 &response-content-disposition=attachment%3B%20filename%2A%3DUTF%2D8%27%27a%2Etxt\
                 &signature={sig}"
            )
        );
        let (k, q) = query_of(&link);
        assert_eq!(
            l.check_download(k, q, 999).unwrap().content_type,
            "text/plain"
        );
        assert_eq!(
            l.check_download(k, q, 1001).unwrap_err(),
            LinkError::Expired
        );
        let tampered = q.replace("text%2Fplain", "text%2Fhtml");
        assert_eq!(
            l.check_download(k, &tampered, 999).unwrap_err(),
            LinkError::BadSignature
        );
        let later = q.replace("expires=1000", "expires=9999");
        assert_eq!(
            l.check_download(k, &later, 999).unwrap_err(),
            LinkError::BadSignature
        );
        assert_eq!(
            l.check_download("t/a/w", q, 999).unwrap_err(),
            LinkError::BadSignature
        );
        assert!(matches!(
            l.check_download(k, "expires=1", 0),
            Err(LinkError::Malformed(_))
        ));
    }

    #[test]
    fn parts_verify_and_refuse_another_part() {
        let l = links();
        let link = l.part("t/a/v", "u-1", 3, 8, 1000);
        let sig = Signer::new([1; 32]).sign(&[b"PUT", b"t/a/v", b"u-1", b"3", b"8", b"1000"]);
        assert_eq!(
            link,
            format!(
                "http://127.0.0.1:3000/_blobs/t/a/v?uploadId=u-1&partNumber=3&size=8&expires=1000\
                 &signature={sig}"
            )
        );
        let (k, q) = query_of(&link);
        assert_eq!(
            l.check_part(k, q, 10).unwrap(),
            PartGrant {
                upload_id: "u-1".into(),
                number: 3,
                size: 8,
            }
        );
        for other in [
            q.replace("partNumber=3", "partNumber=4"),
            q.replace("size=8", "size=9"),
        ] {
            assert_eq!(
                l.check_part(k, &other, 10).unwrap_err(),
                LinkError::BadSignature
            );
        }
        assert_eq!(l.check_part(k, q, 1001).unwrap_err(), LinkError::Expired);
    }

    #[test]
    fn policies_pin_key_and_type() {
        let l = links();
        let policy = PostPolicy {
            content_type: "image/png",
            size: 10,
            sha256: None,
            ttl: std::time::Duration::ZERO,
        };
        let fields = l.post("t/a/v", &policy, 1000).unwrap().fields;
        let grant = l.check_post(&fields, 10).unwrap();
        assert_eq!((grant.key.as_str(), grant.size), ("t/a/v", 10));
        let mut other = fields.clone();
        other[0].1 = "t/a/w".into();
        assert_eq!(
            l.check_post(&other, 10).unwrap_err(),
            LinkError::BadSignature
        );
        let mut other = fields.clone();
        other[1].1 = "text/html".into();
        assert_eq!(
            l.check_post(&other, 10).unwrap_err(),
            LinkError::BadSignature
        );
        assert_eq!(l.check_post(&fields, 1001).unwrap_err(), LinkError::Expired);
    }
}
