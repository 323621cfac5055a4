//! The case API for analysts: `POST /api/v1/cases` opens a case, `GET /api/v1/cases` and
//! `GET /api/v1/cases/{id}` show their state, bundles and findings.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use crate::id::CaseId;
use crate::source::k8s::{Since, Target};

use super::{blocking, ApiError, AppState};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    namespace: String,
    deployment: Option<String>,
    selector: Option<String>,
    since: Option<String>,
    container: Option<String>,
    requested_by: Option<String>,
}

pub(super) async fn open(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let req: CaseRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let target = match (&req.deployment, &req.selector) {
        (Some(dep), None) => Target::Deployment(dep.clone()),
        (None, Some(sel)) if !sel.trim().is_empty() => Target::Selector(sel.clone()),
        _ => {
            return Err(ApiError::BadRequest(
                "give deployment or selector (not both)".into(),
            ))
        }
    };
    let since = match req.since.as_deref().map(crate::duration::seconds) {
        None => Since::All,
        Some(Ok(s)) => Since::Seconds(s),
        Some(Err(e)) => return Err(ApiError::BadRequest(e)),
    };
    let target = s
        .daemon
        .k8s_request(req.namespace, target, since, req.container);
    let requested_by = req.requested_by.unwrap_or_else(|| "analyst".into());
    let case = blocking(&s, move |d| d.open_requested(target, requested_by)).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"case_id": case, "state": "collecting"})),
    ))
}

pub(super) async fn list(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let cases = blocking(&s, |d| d.case_views()).await??;
    Ok(Json(json!({"cases": cases})))
}

pub(super) async fn one(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let case = CaseId::new(id).map_err(|_| ApiError::BadRequest("not a case id".into()))?;
    match blocking(&s, move |d| d.case(&case)).await?? {
        Some(view) => Ok(Json(view)),
        None => Err(ApiError::NoSuchCase),
    }
}
