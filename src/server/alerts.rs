//! `POST /api/v1/alerts`: Alertmanager's webhook. Answered 200 once every alert of the
//! notification is durably recorded, 503 when one cannot be (Alertmanager retries 5xx).

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use crate::daemon::alerts::Notification;
use crate::daemon::DaemonError;

use super::{blocking, ApiError, AppState};

pub(super) async fn receive(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let notification = Notification::parse(&body)
        .map_err(|e| ApiError::BadRequest(format!("not an Alertmanager webhook body: {e}")))?;
    let results = blocking(&s, move |d| {
        let mut results = Vec::new();
        for alert in &notification.alerts {
            results.push(d.handle_alert(alert)?);
        }
        Ok::<_, DaemonError>(results)
    })
    .await??;
    Ok(Json(json!({"ok": true, "alerts": results})))
}

/// Counts every answer to the webhook by its code, refusals included.
pub(super) async fn count(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    s.daemon.metrics().webhook(response.status().as_u16());
    response
}
