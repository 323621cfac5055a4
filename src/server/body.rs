//! Request bodies, read only once the request is authorised: a declared `Content-Length` over the
//! limit is refused before a byte of the body is read, a chunked body is cut off at the limit,
//! and the whole body must arrive within the body timeout.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{ApiError, AppState};

/// Reads the body whole, within the limits, and hands it on.
pub(super) async fn read_whole(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limit = s.limits.max_body;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(s.limits.body_timeout, Limited::new(body, limit).collect());
    let bytes = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::TooLarge { limit })
        }
        Ok(Err(e)) => {
            return Err(ApiError::BadRequest(format!(
                "cannot read the request body: {e}"
            )))
        }
        Err(_) => {
            return Err(ApiError::BodyTimeout {
                seconds: s.limits.body_timeout.as_secs(),
            })
        }
    };
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
