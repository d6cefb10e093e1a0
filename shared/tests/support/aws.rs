//! The AWS protocol peers of the tests: DynamoDB is moto's server, started by
//! `scripts/aws-peers.sh` (its endpoint arrives in `ATTACHMENTS_TEST_DYNAMODB_ENDPOINT`); S3 is
//! s3s-fs, served here, inside the test process, on a loopback port, with SigV4 verification on,
//! so presigned links are checked for real. Each [`Peers`] gets its own table and bucket, which
//! it creates the way the service expects them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::AttributeValue;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput,
    HeadObjectInput, HeadObjectOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput,
    PutObjectOutput, UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Request, S3Response, S3Result, S3};

/// The credentials s3s accepts (moto accepts any).
pub const ACCESS_KEY: &str = "AKIAATTACHMENTSTEST1";
pub const SECRET_KEY: &str = "attachments/test/secret/key/for/s3s+moto";
pub const REGION: &str = "us-east-1";
/// The service secret of AWS harnesses (cursors are signed with it).
pub const SERVICE_SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The moto endpoint the script exported. Missing means the tests were started without the
/// script: that fails loudly rather than skipping.
pub fn moto_endpoint() -> String {
    match std::env::var("ATTACHMENTS_TEST_DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "ATTACHMENTS_TEST_DYNAMODB_ENDPOINT is not set: the AWS tests need moto. Run them with \
             `scripts/aws-peers.sh run -- cargo test -p attachments-shared --features aws-tests \
             --test aws --test aws_faults`, which starts moto and sets it."
        ),
    }
}

/// s3s-fs, made to behave as S3 does where it differs: a GET honours the `response-*`
/// overrides (which our links use); a refused upload (BadDigest) stores nothing; an unknown
/// multipart upload is `NoSuchUpload`, not `AccessDenied`. Form uploads (POST with a policy,
/// which s3s checks) reach `put_object` through the trait's default `post_object`.
struct FsPeer(s3s_fs::FileSystem, PathBuf, Uploads);

/// The multipart uploads under way, which s3s-fs cannot list: (bucket, key, upload id, when).
#[derive(Default)]
struct Uploads(std::sync::Mutex<Vec<(String, String, String, s3s::dto::Timestamp)>>);

impl Uploads {
    fn forget(&self, upload_id: &str) {
        self.0.lock().unwrap().retain(|u| u.2 != upload_id);
    }
}

/// S3 answers 412 to a read pinned to an ETag the object no longer has; s3s-fs ignores the
/// condition on reads.
fn if_match_holds(
    condition: Option<&s3s::dto::ETagCondition>,
    etag: Option<&s3s::dto::ETag>,
) -> S3Result<()> {
    match (condition, etag) {
        (Some(s3s::dto::ETagCondition::ETag(want)), Some(have)) if !have.strong_cmp(want) => {
            Err(s3s::s3_error!(PreconditionFailed))
        }
        _ => Ok(()),
    }
}

/// s3s-fs answers AccessDenied for an upload id it does not know (finished or aborted); S3
/// answers NoSuchUpload. With one test credential, AccessDenied can only mean that.
fn no_such_upload<T>(r: S3Result<T>) -> S3Result<T> {
    r.map_err(|e| {
        if *e.code() == s3s::S3ErrorCode::AccessDenied {
            s3s::s3_error!(NoSuchUpload)
        } else {
            e
        }
    })
}

#[async_trait::async_trait]
impl S3 for FsPeer {
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let resp = self.0.create_multipart_upload(req).await?;
        if let Some(id) = &resp.output.upload_id {
            let now = s3s::dto::Timestamp::from(std::time::SystemTime::now());
            self.2
                 .0
                .lock()
                .unwrap()
                .push((bucket, key, id.clone(), now));
        }
        Ok(resp)
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        no_such_upload(self.0.upload_part(req).await)
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        no_such_upload(self.0.list_parts(req).await)
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let uploads = self
            .2
             .0
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.0 == req.input.bucket && u.1.starts_with(&prefix))
            .map(|u| s3s::dto::MultipartUpload {
                key: Some(u.1.clone()),
                upload_id: Some(u.2.clone()),
                initiated: Some(u.3.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(req.input.bucket),
            uploads: Some(uploads),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let resp = no_such_upload(self.0.complete_multipart_upload(req).await)?;
        self.2.forget(&id);
        Ok(resp)
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let resp = no_such_upload(self.0.abort_multipart_upload(req).await)?;
        self.2.forget(&id);
        Ok(resp)
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.create_bucket(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.0.head_bucket(req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let path = self.1.join(&req.input.bucket).join(&req.input.key);
        let existed = path.exists();
        let result = self.0.put_object(req).await;
        // s3s-fs writes the file before it compares checksums; S3 keeps nothing it refused.
        if result.is_err() && !existed {
            let _ = std::fs::remove_file(&path);
        }
        result
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let if_match = req.input.if_match.clone();
        let resp = self.0.head_object(req).await?;
        if_match_holds(if_match.as_ref(), resp.output.e_tag.as_ref())?;
        Ok(resp)
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.0.copy_object(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        no_such_upload(self.0.upload_part_copy(req).await)
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.delete_object(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.0.list_objects_v2(req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let content_type = req.input.response_content_type.clone();
        let disposition = req.input.response_content_disposition.clone();
        let if_match = req.input.if_match.clone();
        let mut resp = self.0.get_object(req).await?;
        if_match_holds(if_match.as_ref(), resp.output.e_tag.as_ref())?;
        if content_type.is_some() {
            resp.output.content_type = content_type;
        }
        if disposition.is_some() {
            resp.output.content_disposition = disposition;
        }
        Ok(resp)
    }
}

/// An S3 server bound to a loopback port; [`S3Peer::serve`] runs it.
pub struct S3Peer {
    pub endpoint: String,
    listener: tokio::net::TcpListener,
    service: s3s::service::S3Service,
}

impl S3Peer {
    /// Binds a port and prepares s3s-fs over `root` (created if needed).
    pub async fn bind(root: &Path) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut builder =
            s3s::service::S3ServiceBuilder::new(FsPeer(fs, root.to_path_buf(), Uploads::default()));
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        Self {
            endpoint,
            listener,
            service: builder.build(),
        }
    }

    /// Serves until the future is dropped.
    pub async fn serve(self) -> std::io::Result<()> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let service = self.service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// One table in moto and one bucket in an s3s server, named uniquely.
#[derive(Clone, Debug)]
pub struct Peers {
    pub dynamodb_endpoint: String,
    pub s3_endpoint: String,
    pub table: String,
    pub bucket: String,
}

impl Peers {
    /// Names a fresh table and bucket on the given S3 endpoint and the script's moto.
    pub fn new(s3_endpoint: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            dynamodb_endpoint: moto_endpoint(),
            s3_endpoint: s3_endpoint.to_owned(),
            table: format!("attachments-{id}"),
            bucket: format!("attachments-{}", &id[..20]),
        }
    }

    /// The environment the service reads its AWS settings from, exactly as a deployment
    /// would set it (given to aws-config directly, so tests never touch the process env). The
    /// shared config and credentials files point nowhere, so a developer's own profiles never
    /// play a part.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
            ("AWS_ENDPOINT_URL_S3", self.s3_endpoint.clone()),
            (
                "AWS_CONFIG_FILE",
                "/nonexistent/attachments-tests/config".into(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/attachments-tests/credentials".into(),
            ),
        ]
    }

    /// [`Peers::env`] with `extra` in place of what it names.
    fn vars(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut vars = self.env();
        for (k, v) in extra {
            vars.retain(|(n, _)| n != k);
            vars.push((k, v.clone()));
        }
        vars
    }

    /// The service's AWS configuration over [`Peers::env`] plus `extra`, loaded the way the
    /// service loads it from the process environment.
    pub async fn sdk(&self, extra: &[(&'static str, String)]) -> aws_config::SdkConfig {
        sdk_from(&self.vars(extra)).await
    }

    /// An aws-config loader for the SDK clients that inspect the peers.
    fn loader(&self) -> aws_config::ConfigLoader {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let vars = self.vars(&[]);
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .env(aws_types::os_shim_internal::Env::from_slice(&pairs))
    }

    /// The service's configuration variables for this table and bucket.
    pub fn service_vars(&self) -> Vec<(String, String)> {
        vec![
            ("ATTACHMENTS_BACKEND".into(), "aws".into()),
            ("ATTACHMENTS_TABLE".into(), self.table.clone()),
            ("ATTACHMENTS_BUCKET".into(), self.bucket.clone()),
            ("ATTACHMENTS_SECRET".into(), SERVICE_SECRET.into()),
            ("ATTACHMENTS_S3_PATH_STYLE".into(), "true".into()),
        ]
    }

    /// The service's configuration for this table and bucket.
    pub fn config(&self) -> attachments::Config {
        let vars = self.service_vars();
        attachments::Config::from_lookup(|k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    /// An SDK client of moto, to look into the table independently of the service's client.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.loader().load().await)
    }

    /// An SDK client of the S3 peer, likewise.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = self.loader().load().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Creates the table (with its index and TTL) and the bucket, through the service's own
    /// `init` (the service's client, against the protocols).
    pub async fn create(&self) {
        let out = attachments::setup::init_aws(&self.config(), &self.sdk(&[]).await)
            .await
            .unwrap();
        assert!(
            out.contains("created table") && out.contains("created bucket"),
            "{out}"
        );
    }

    /// Every item of the table (a Scan: test inspection only, never the service's way).
    pub async fn table_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let client = self.dynamodb().await;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            out.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return out,
            }
        }
    }

    /// Every object key of the bucket, sorted.
    pub async fn bucket_keys(&self) -> Vec<String> {
        let client = self.s3().await;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let resp = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            out.extend(
                resp.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
            match resp.next_continuation_token {
                Some(t) if resp.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        out.sort();
        out
    }
}

impl Peers {
    /// Writes `items` straight into the table, 25 a BatchWriteItem, a few calls at once, as a
    /// bulk load would (unprocessed items are sent again).
    pub async fn load(&self, items: Vec<HashMap<String, AttributeValue>>) {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use futures_util::StreamExt;
        let client = self.dynamodb().await;
        let batches = items.chunks(25).map(|chunk| {
            let client = client.clone();
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(i.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            async move {
                while !requests.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&self.table, requests)
                        .send()
                        .await
                        .unwrap();
                    requests = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.table))
                        .unwrap_or_default();
                }
            }
        });
        futures_util::stream::iter(batches)
            .buffer_unordered(4)
            .collect::<Vec<()>>()
            .await;
    }
}

/// The service's AWS configuration over exactly `vars`, loaded the way the service loads it
/// from the process environment.
pub async fn sdk_from(vars: &[(&'static str, String)]) -> aws_config::SdkConfig {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let loader = attachments::store::sdk::loader(None)
        .unwrap()
        .env(aws_types::os_shim_internal::Env::from_slice(&pairs));
    attachments::store::sdk::load(loader).await.unwrap()
}

/// A string attribute of a raw item.
pub fn attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
