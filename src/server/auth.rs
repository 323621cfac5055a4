//! Bearer tokens, checked from the headers before any of the body is read, and compared in
//! constant time.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};

/// Compares two secrets in time that depends on their lengths only.
pub(super) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
}

fn check(headers: &HeaderMap, token: &[u8]) -> Result<(), ApiError> {
    if bearer(headers).is_some_and(|t| same_secret(t, token)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Lets through requests carrying the webhook token (Alertmanager's).
pub(super) async fn webhook(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(req.headers(), &s.tokens.webhook)?;
    Ok(next.run(req).await)
}

/// Lets through requests carrying the analyst token (the case API's).
pub(super) async fn analyst(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(req.headers(), &s.tokens.analyst)?;
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }
}
