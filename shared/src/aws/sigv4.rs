//! AWS Signature Version 4: the signature of a request (DynamoDB calls, S3 requests), of a
//! presigned URL (S3 download and part-upload links) and of an S3 POST policy (form uploads).
//! Pure functions over their inputs, so each is checked against AWS's documented examples.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Credentials;
use crate::signing::hex32;

type HmacSha256 = Hmac<Sha256>;

/// The hex SHA-256 of an empty payload, which every bodiless request signs.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// What a presigned S3 URL signs instead of a payload hash: the client sends the body later.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The moment a signature is made, in the two forms SigV4 uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `20150830T123600Z`
    pub amz_date: String,
    /// `20150830`
    pub date: String,
}

impl Stamp {
    pub fn at(t: time::OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
        let amz_date = format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
        Self { amz_date, date }
    }

    pub fn now() -> Self {
        Self::at(time::OffsetDateTime::now_utc())
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key that signs a day's requests to one service in one region.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

/// RFC 3986 percent-encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` is encoded, and
/// `/` too unless `keep_slash` (S3 object keys in paths).
pub fn uri_encode(s: &str, keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// A query string in canonical form: each name and value encoded, sorted by name then value.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(k, false, &mut ek);
            uri_encode(v, false, &mut ev);
            (ek, ev)
        })
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// What a signature covers.
#[derive(Debug)]
pub struct Canonical<'a> {
    pub method: &'a str,
    /// The path as sent, already encoded.
    pub path: &'a str,
    /// [`canonical_query`] of the query parameters.
    pub query: &'a str,
    /// Lower-case names with their values; sorted here.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_sha256: &'a str,
}

/// The signed header names, `;`-joined, and the canonical request.
fn canonical_request(c: &Canonical<'_>) -> (String, String) {
    let mut headers: Vec<(&str, &str)> = c.headers.to_vec();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let signed = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let mut req = String::with_capacity(256);
    for part in [c.method, c.path, c.query] {
        req.push_str(part);
        req.push('\n');
    }
    for (k, v) in &headers {
        req.push_str(k);
        req.push(':');
        req.push_str(v.trim());
        req.push('\n');
    }
    req.push('\n');
    req.push_str(&signed);
    req.push('\n');
    req.push_str(c.payload_sha256);
    (signed, req)
}

/// The credential scope of a day, region and service.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The hex signature of a canonical request, and the names of the headers it signed.
pub fn signature(
    key: &[u8; 32],
    stamp: &Stamp,
    scope: &str,
    request: &Canonical<'_>,
) -> (String, String) {
    let (signed, canonical) = canonical_request(request);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        stamp.amz_date,
        hex32(&Sha256::digest(canonical.as_bytes()).into())
    );
    (signed, hex32(&hmac(key, string_to_sign.as_bytes())))
}

/// The `Authorization` header of a signed request.
pub fn authorization(
    creds: &Credentials,
    key: &[u8; 32],
    stamp: &Stamp,
    scope: &str,
    request: &Canonical<'_>,
) -> String {
    let (signed, sig) = signature(key, stamp, scope, request);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
        creds.access_key_id
    )
}

/// The query parameters a presigned URL carries before its signature, given the request's own.
pub fn presign_params<'a>(
    creds: &'a Credentials,
    credential: &'a str,
    stamp: &'a Stamp,
    expires: &'a str,
    own: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = own.to_vec();
    params.push(("X-Amz-Algorithm", "AWS4-HMAC-SHA256"));
    params.push(("X-Amz-Credential", credential));
    params.push(("X-Amz-Date", &stamp.amz_date));
    params.push(("X-Amz-Expires", expires));
    if let Some(token) = &creds.session_token {
        params.push(("X-Amz-Security-Token", token));
    }
    params.push(("X-Amz-SignedHeaders", "host"));
    params
}

/// The SigV4 signature of a POST policy, with the day's [`signing_key`] for S3: the base64
/// policy is the string to sign. (Form uploads straight to S3; no SDK signs these.)
pub fn post_policy_signature(key: &[u8; 32], policy_b64: &str) -> String {
    hex32(&hmac(key, policy_b64.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }
    }

    fn stamp(amz_date: &str) -> Stamp {
        Stamp {
            amz_date: amz_date.into(),
            date: amz_date[..8].into(),
        }
    }

    #[test]
    fn stamp_formats_both_forms() {
        let t = time::macros::datetime!(2015-08-30 12:36:00 UTC);
        assert_eq!(Stamp::at(t), stamp("20150830T123600Z"));
    }

    /// "Create a signed AWS API request" (IAM user guide): GET ListUsers of IAM, signed with the
    /// documented example credentials, gives this signature.
    #[test]
    fn request_signature_matches_aws_documented_example() {
        let c = creds("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let st = stamp("20150830T123600Z");
        let key = signing_key(&c.secret_access_key, &st.date, "us-east-1", "iam");
        let sc = scope(&st.date, "us-east-1", "iam");
        let query = canonical_query(&[("Version", "2010-05-08"), ("Action", "ListUsers")]);
        assert_eq!(query, "Action=ListUsers&Version=2010-05-08");
        let auth = authorization(
            &c,
            &key,
            &st,
            &sc,
            &Canonical {
                method: "GET",
                path: "/",
                query: &query,
                headers: &[
                    ("host", "iam.amazonaws.com"),
                    (
                        "content-type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    ),
                    ("x-amz-date", &st.amz_date),
                ],
                payload_sha256: EMPTY_SHA256,
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// "Authenticating Requests: Using Query Parameters" (S3 API reference): the presigned GET
    /// of `examplebucket/test.txt` for 86400 s gives this signature.
    #[test]
    fn presigned_url_matches_aws_documented_example() {
        let c = creds(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let st = stamp("20130524T000000Z");
        let sc = scope(&st.date, "us-east-1", "s3");
        let credential = format!("{}/{sc}", c.access_key_id);
        let params = presign_params(&c, &credential, &st, "86400", &[]);
        let query = canonical_query(&params);
        let key = signing_key(&c.secret_access_key, &st.date, "us-east-1", "s3");
        let (_, sig) = signature(
            &key,
            &st,
            &sc,
            &Canonical {
                method: "GET",
                path: "/test.txt",
                query: &query,
                headers: &[("host", "examplebucket.s3.amazonaws.com")],
                payload_sha256: UNSIGNED_PAYLOAD,
            },
        );
        assert_eq!(
            sig,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)" (S3 API
    /// reference): its policy, credentials and date give this signature.
    #[test]
    fn post_policy_signature_matches_aws_documented_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20151229",
            "us-east-1",
            "s3",
        );
        let sig = post_policy_signature(&key, policy);
        assert_eq!(
            sig,
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        let mut out = String::new();
        uri_encode("a b/c~d*é", true, &mut out);
        assert_eq!(out, "a%20b/c~d%2A%C3%A9");
        out.clear();
        uri_encode("a/b", false, &mut out);
        assert_eq!(out, "a%2Fb");
    }
}
