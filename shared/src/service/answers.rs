//! Rendered answers of read routes, kept while nothing has changed.
//!
//! A listing reads a parent and a page of attachments, signs a link for each and renders the
//! JSON: about a hundred microseconds for twenty attachments, most of it signing and rendering
//! (docs/performance.md). Asked again with nothing changed, the same caller gets the same bytes
//! from here. An answer is kept under the metadata store's change mark and for at most
//! [`MAX_AGE`]: any write, by any process sharing the store, drops every kept answer at the
//! next lookup, and a link handed out again is at most that much older than a fresh one (so
//! nothing is kept where links live less than [`MIN_LINK_TTL`]). A store without a change mark
//! (DynamoDB) keeps nothing here, and `ATTACHMENTS_KEEP_ANSWERS=false` turns keeping off.
//!
//! Answers are kept per caller (tenant and key owner), never shared between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use super::App;
use crate::domain::{Principal, TenantId};
use crate::store::read_cache::ReadCache;
pub use crate::store::read_cache::MAX_AGE;

/// Answers are kept only where download links live at least this long: a link handed out
/// again is up to [`MAX_AGE`] older than a fresh one, which a short-lived link cannot spare.
pub const MIN_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Answers kept at most.
pub const MAX_ANSWERS: usize = 512;
/// What the kept answers may weigh together; a single answer heavier than this is never kept.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Which answer: the route, the caller, and the request as the route understood it (its
/// parsed, validated parameters, so that two spellings of one request may share an answer but
/// no parameter that matters is left out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    route: &'static str,
    tenant: TenantId,
    owner: String,
    request: String,
}

impl AnswerKey {
    pub fn new(route: &'static str, who: &Principal, request: String) -> Self {
        Self {
            route,
            tenant: who.tenant.clone(),
            owner: who.owner.clone(),
            request,
        }
    }
}

/// A kept `200 OK`: its headers and its body.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The kept answers of one process (or Lambda container), and how many were served again.
#[derive(Debug)]
pub(crate) struct Answers {
    /// Off by configuration (`ATTACHMENTS_KEEP_ANSWERS=false`): every answer is rendered.
    on: bool,
    kept: ReadCache<AnswerKey, Arc<Answer>>,
    served: AtomicU64,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            on: true,
            kept: ReadCache::bounded(MAX_ANSWERS, MAX_ANSWER_BYTES),
            served: AtomicU64::new(0),
        }
    }
}

/// Where a lookup left a request: answered, or to be answered and then kept under a mark.
#[derive(Debug)]
pub enum Lookup {
    Kept(Arc<Answer>),
    /// Not kept: render it, then [`App::keep_answer`] under this mark (read before anything
    /// the answer is made of). `None`: the store has no mark, and the answer is not kept.
    Render(Option<u64>),
}

impl App {
    /// Keeps answers, or (`false`) renders every one.
    pub fn keeping_answers(mut self, on: bool) -> Self {
        self.answers.on = on;
        self
    }

    /// The answer kept for `key`, if nothing changed since it was rendered.
    pub fn kept_answer(&self, key: &AnswerKey) -> Lookup {
        if !self.answers.on || self.limits.link_ttl < MIN_LINK_TTL {
            return Lookup::Render(None);
        }
        let Some(mark) = self.meta.change_mark() else {
            return Lookup::Render(None);
        };
        match self.answers.kept.get(mark, key) {
            Some(answer) => {
                self.answers.served.fetch_add(1, Ordering::Relaxed);
                Lookup::Kept(answer)
            }
            None => Lookup::Render(Some(mark)),
        }
    }

    /// Keeps a `200 OK` rendered after `mark` was read (see [`Lookup::Render`]).
    pub fn keep_answer(&self, mark: u64, key: AnswerKey, answer: Answer) {
        let weight = answer.body.len() + key.request.len();
        self.answers
            .kept
            .put_sized(mark, key, Arc::new(answer), weight);
    }

    /// How many answers this process served from the kept ones (what the tests check).
    pub fn answers_served_again(&self) -> u64 {
        self.answers.served.load(Ordering::Relaxed)
    }
}
