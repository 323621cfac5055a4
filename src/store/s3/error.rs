//! S3 errors, told apart by the code and HTTP status S3 answers with, never by message text: not
//! found, already exists (a create-new refused), access denied, and the transient faults
//! (unreachable, timed out, throttled, 5xx) a caller may retry once the SDK's own retries are
//! spent.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::MAX_ATTEMPTS;
use crate::store::StoreError;

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// What an S3 failure means for custody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `NoSuchKey`, `NoSuchVersion`, or a 404 without a body (HeadObject).
    NotFound,
    /// `PreconditionFailed` (412): `If-None-Match: *` refused, the key exists.
    AlreadyExists,
    /// `NoSuchBucket`.
    NoSuchBucket,
    /// `InvalidAccessKeyId`, `SignatureDoesNotMatch`: the credentials were refused.
    BadCredentials,
    /// `AccessDenied` and any other 403.
    AccessDenied,
    /// `SlowDown`, throttling, request timeouts, 5xx, or S3 not reached at all.
    Transient,
    /// No credentials could be loaded.
    NoCredentials,
    /// Anything else.
    Other,
}

/// An error and its causes, each said once, without the SDK's debug dumps.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Whether a credentials provider's failure is among the error's causes.
fn credentials_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = err.source();
    }
    false
}

/// The HTTP status S3 answered with, if it answered.
fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// What `e` means, from S3's error code and HTTP status.
pub(super) fn kind<E>(e: &SdkError<E, HttpResponse>) -> Kind
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match e {
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            let status = service.raw().status().as_u16();
            match (code, status) {
                (Some("NoSuchBucket"), _) => Kind::NoSuchBucket,
                (Some("NoSuchKey" | "NoSuchVersion" | "NotFound"), _) | (None, 404) => {
                    Kind::NotFound
                }
                (Some("PreconditionFailed"), _) | (_, 412) => Kind::AlreadyExists,
                (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => Kind::BadCredentials,
                (Some("AccessDenied"), _) | (_, 403) => Kind::AccessDenied,
                (
                    Some(
                        "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestTimeout"
                        | "InternalError"
                        | "ServiceUnavailable"
                        // Two conditional writes of one key at once: the other may yet fail.
                        | "ConditionalRequestConflict",
                    ),
                    _,
                )
                | (_, 429 | 500..=599) => Kind::Transient,
                (_, 404) => Kind::NotFound,
                _ => Kind::Other,
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) if credentials_failed(e) => {
            Kind::NoCredentials
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Kind::Transient,
        SdkError::ResponseError(_) => match status(e) {
            Some(429 | 500..=599) => Kind::Transient,
            _ => Kind::Other,
        },
        _ if credentials_failed(e) => Kind::NoCredentials,
        _ => Kind::Other,
    }
}

/// The `StoreError` for `e` on the object (or bucket) at `uri`.
pub(super) fn store_error<E>(uri: &str, e: &SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let uri = uri.to_owned();
    let kind = kind(e);
    match kind {
        Kind::NotFound => return StoreError::NotFound { uri },
        Kind::AlreadyExists => return StoreError::AlreadyExists { uri },
        _ => {}
    }
    let message = match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or("(no code)");
            match kind {
                Kind::NoSuchBucket => "the bucket does not exist".to_owned(),
                Kind::BadCredentials => format!(
                    "the credentials were refused ({code}): {}",
                    err.message().unwrap_or_default()
                ),
                Kind::AccessDenied => format!(
                    "access denied (HTTP 403 {code}): check the credentials and that the bucket policy allows custody's calls"
                ),
                _ => format!(
                    "S3 answered HTTP {status} {code}: {}",
                    err.message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| DisplayErrorContext(e).to_string())
                ),
            }
        }
        _ if kind == Kind::NoCredentials => format!(
            "no usable AWS credentials (environment, profile, SSO or instance role): {}",
            causes(e)
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "S3 is unreachable (gave up after {MAX_ATTEMPTS} attempts): {}",
            causes(e)
        ),
        _ => causes(e),
    };
    match kind {
        Kind::Transient => StoreError::Transient { uri, message },
        Kind::AccessDenied | Kind::BadCredentials => StoreError::AccessDenied { uri, message },
        _ => StoreError::Remote { uri, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    /// S3 answering HTTP `status` with error `code` (none: a body-less answer, as to a HEAD).
    fn answered(status: u16, code: Option<&str>) -> SdkError<PutObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("the message S3 wrote");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(PutObjectError::generic(meta.build()), raw)
    }

    #[test]
    fn errors_are_told_apart_by_code_and_status_not_by_message() {
        for (status, code, want) in [
            (404, Some("NoSuchKey"), Kind::NotFound),
            (404, None, Kind::NotFound),
            (404, Some("NoSuchBucket"), Kind::NoSuchBucket),
            (412, Some("PreconditionFailed"), Kind::AlreadyExists),
            (412, None, Kind::AlreadyExists),
            (403, Some("AccessDenied"), Kind::AccessDenied),
            (403, Some("InvalidAccessKeyId"), Kind::BadCredentials),
            (503, Some("SlowDown"), Kind::Transient),
            (500, Some("InternalError"), Kind::Transient),
            (429, None, Kind::Transient),
            (400, Some("InvalidRequest"), Kind::Other),
        ] {
            assert_eq!(kind(&answered(status, code)), want, "{status} {code:?}");
        }
        let uri = "s3://bucket/p/cases/x/case.json";
        assert!(matches!(
            store_error(uri, &answered(412, Some("PreconditionFailed"))),
            StoreError::AlreadyExists { .. }
        ));
        assert!(store_error(uri, &answered(503, Some("SlowDown"))).is_transient());
        assert!(matches!(
            store_error(uri, &answered(403, Some("AccessDenied"))),
            StoreError::AccessDenied { .. }
        ));
        let unreachable: SdkError<PutObjectError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let e = store_error(uri, &unreachable);
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("S3 is unreachable"), "{e}");
    }
}
