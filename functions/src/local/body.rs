//! Request bodies as the local server reads them: a stream of chunks that ends in an error when
//! the client sends more than it is allowed, or goes quiet for too long. Nothing a client sends
//! is buffered beyond what its request may carry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// How many bytes a body may bring in all. Whoever learns more while it is read (a form
/// upload's policy, once its fields are checked) raises it.
#[derive(Debug, Clone)]
pub struct Allowance(Arc<AtomicU64>);

impl Allowance {
    pub fn new(bytes: u64) -> Self {
        Self(Arc::new(AtomicU64::new(bytes)))
    }

    pub fn raise_to(&self, bytes: u64) {
        self.0.fetch_max(bytes, Ordering::SeqCst);
    }

    fn allows(&self, total: u64) -> bool {
        total <= self.0.load(Ordering::SeqCst)
    }
}

/// Why a body was not read to its end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than allowed")]
    TooLarge,
    #[error("the request body sent nothing for {} s", .0.as_secs())]
    Idle(Duration),
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

struct Reading {
    body: Incoming,
    allowance: Allowance,
    idle: Duration,
    read: u64,
}

/// The body's data, within `allowance`, each chunk arriving within `idle` of the one before.
pub fn chunks(
    body: Incoming,
    allowance: Allowance,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin + Send {
    let start = Reading {
        body,
        allowance,
        idle,
        read: 0,
    };
    Box::pin(futures_util::stream::unfold(
        Some(start),
        |state| async move {
            let mut r = state?;
            loop {
                let frame = match tokio::time::timeout(r.idle, r.body.frame()).await {
                    Err(_) => return Some((Err(BodyError::Idle(r.idle)), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(BodyError::Broken(e.to_string())), None)),
                    Ok(Some(Ok(frame))) => frame,
                };
                // Trailers carry no data: read on.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                r.read += data.len() as u64;
                if !r.allowance.allows(r.read) {
                    return Some((Err(BodyError::TooLarge), None));
                }
                return Some((Ok(data), Some(r)));
            }
        },
    ))
}

/// The whole body, at most `limit` bytes.
pub async fn collect(body: Incoming, limit: u64, idle: Duration) -> Result<Bytes, BodyError> {
    use futures_util::StreamExt;
    let mut stream = chunks(body, Allowance::new(limit), idle);
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}
