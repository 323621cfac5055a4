//! The plan API, for analysts and approvers (analyst token): `GET /api/v1/cases/{id}/plans`
//! lists a case's plans with their quorum, `GET …/plans/{plan}` shows one (`plan show --json`'s
//! view; `?format=text` for the text an approver reads), `POST …/plans/drafts` builds a plan for
//! a person to sign and `POST …/plans` proposes it signed (`daemon/drafts.rs`: a proposal
//! through the API is a person's, as on the CLI), and `POST …/plans/{plan}/approvals` records a
//! signed statement — the token only admits the request; the signatures are the authority.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::daemon::plans::PlansError;
use crate::id::{CaseId, PlanId};

use super::{blocking, ApiError, AppState};

impl From<PlansError> for ApiError {
    fn from(e: PlansError) -> Self {
        match e {
            PlansError::NoSuchCase => ApiError::NoSuchCase,
            other => ApiError::Refused {
                status: StatusCode::from_u16(other.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                message: other.to_string(),
            },
        }
    }
}

fn case_id(id: String) -> Result<CaseId, ApiError> {
    CaseId::new(id).map_err(|_| ApiError::BadRequest("not a case id".into()))
}

fn ids(case: String, plan: String) -> Result<(CaseId, PlanId), ApiError> {
    let plan = PlanId::new(plan).map_err(|_| ApiError::BadRequest("not a plan id".into()))?;
    Ok((case_id(case)?, plan))
}

pub(super) async fn list(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let case = case_id(id)?;
    Ok(Json(blocking(&s, move |d| d.plan_list(&case)).await??))
}

/// `?format=json` (the default) or `?format=text`.
fn wants_text(uri: &Uri) -> Result<bool, ApiError> {
    let mut text = false;
    for pair in uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair {
            "format=text" => text = true,
            "format=json" => text = false,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query {:?}: give format=text or format=json",
                    crate::terminal::escape(other)
                )))
            }
        }
    }
    Ok(text)
}

/// The daemon's URL as this client reached it (its `Host`), else as configured.
fn server_url(configured: &str, headers: &HeaderMap) -> String {
    let scheme = configured.split_once("://").map_or("http", |(s, _)| s);
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()));
    match host {
        Some(h) => format!("{scheme}://{h}"),
        None => configured.to_owned(),
    }
}

pub(super) async fn one(
    State(s): State<AppState>,
    UrlPath((id, plan)): UrlPath<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (case, plan) = ids(id, plan)?;
    if wants_text(&uri)? {
        let url = server_url(s.daemon.server_url(), &headers);
        let text = blocking(&s, move |d| {
            let hint = d.server_hint(&url);
            d.plan_text(&case, &plan, &hint)
        })
        .await??;
        return Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let value = blocking(&s, move |d| d.plan_json(&case, &plan)).await??;
    Ok(Json(value).into_response())
}

pub(super) async fn draft(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let case = case_id(id)?;
    let draft = s.daemon.clone().draft_plan(case, &body).await?;
    let value = serde_json::to_value(&draft).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(value)))
}

pub(super) async fn propose(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let case = case_id(id)?;
    let proposal = s.daemon.clone().propose_signed(case.clone(), &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "case_id": case,
            "plan": proposal.stored.plan,
            "plan_sha256": proposal.stored.plan_sha256,
            "journal_seq": proposal.stored.journal_seq,
            "required": proposal.required,
        })),
    ))
}

pub(super) async fn approve(
    State(s): State<AppState>,
    UrlPath((id, plan)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (case, plan) = ids(id, plan)?;
    let (c, p) = (case.clone(), plan.clone());
    let recorded = blocking(&s, move |d| d.record_approval(&c, &p, &body)).await??;
    let value = serde_json::to_value(&recorded).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.daemon.after_approval(case, plan);
    Ok((StatusCode::CREATED, Json(value)))
}

/// `POST …/plans/{plan}/execute`: executes an approved plan (or resumes it), under the case's
/// claim; answers the execution's report: 200 executed (now or before), 409 stale, 500 a step
/// failed, 422 not approved or not executable here.
pub(super) async fn execute(
    State(s): State<AppState>,
    UrlPath((id, plan)): UrlPath<(String, String)>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (case, plan) = ids(id, plan)?;
    let executed = s.daemon.clone().execute_plan(case, plan, "api").await?;
    Ok((
        StatusCode::from_u16(executed.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(executed.body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_and_the_url_are_read_from_the_request() {
        let uri: Uri = "/x?format=text".parse().unwrap();
        assert!(wants_text(&uri).unwrap());
        assert!(!wants_text(&"/x".parse().unwrap()).unwrap());
        assert!(wants_text(&"/x?format=yaml".parse().unwrap()).is_err());
        let mut headers = HeaderMap::new();
        assert_eq!(server_url("https://a:1", &headers), "https://a:1");
        headers.insert(HOST, "custody.example:8443".parse().unwrap());
        assert_eq!(
            server_url("https://a:1", &headers),
            "https://custody.example:8443"
        );
    }
}
