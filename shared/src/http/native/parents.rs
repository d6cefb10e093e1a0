//! Parents: `PUT`, `GET` and `DELETE /v1/parents/{kind}/{id}`.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::views::parent_json;
use super::{caller_and_parent, Answer, Error};
use crate::http::Params;
use crate::http::{empty, json as json_response, Request};
use crate::service::{App, ParentDeletion, ParentFields};
use crate::store::PutOutcome;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentBody {
    source: Option<String>,
    reference: Option<String>,
    email: Option<String>,
}

/// The optional fields of a `PUT`; an empty body sets none.
fn parent_fields(body: &[u8]) -> Result<ParentFields, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ParentFields::default());
    }
    let b: ParentBody = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(format!(
            "the body must be a JSON object with optional string fields source, reference, email: {e}"
        ))
    })?;
    Ok(ParentFields {
        source: b.source,
        reference: b.reference,
        email: b.email,
    })
}

/// `PUT /v1/parents/{kind}/{id}`: 201 when created, 200 when updated, 409 on a taken look-up.
pub async fn put_parent(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, key) = caller_and_parent(&app, &req, &params).await?;
    let fields = parent_fields(req.body())?;
    let (parent, outcome) = app.put_parent(&who, key, fields).await?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok(json_response(status, &parent_json(&parent)))
}

/// `GET /v1/parents/{kind}/{id}`.
pub async fn get_parent(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, key) = caller_and_parent(&app, &req, &params).await?;
    let parent = app.get_parent(&who, &key).await?;
    Ok(json_response(StatusCode::OK, &parent_json(&parent)))
}

/// `DELETE /v1/parents/{kind}/{id}`: the parent, its attachments and their files; `204` when
/// all are gone. A parent with more attachments than one request removes answers `202` with
/// how many it removed: repeating the request goes on from there.
pub async fn delete_parent(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, key) = caller_and_parent(&app, &req, &params).await?;
    Ok(match app.delete_parent(&who, &key).await? {
        ParentDeletion::Deleted => empty(StatusCode::NO_CONTENT),
        ParentDeletion::Continuing { removed } => json_response(
            StatusCode::ACCEPTED,
            &json!({
                "status": "deleting",
                "removed": removed,
                "message": "the parent still has attachments: repeat the DELETE until it answers 204",
            }),
        ),
    })
}
