//! One POST to the receiver: HTTP/1.1 over rustls (the platform's roots) or plain HTTP, a
//! timeout around the whole exchange, at most [`MAX_RESPONSE_BYTES`] of the answer read, and
//! no redirect followed (a 3xx is an answer like any other, so a receiver cannot send the body,
//! or the token, to another host). The client and the exchange (`client_for`, `exchange`) are
//! also what `custody approve --server` sends with.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::NotifyError;
use crate::terminal;

/// The most of a receiver's answer read (it is only logged).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What one attempt gave.
#[derive(Debug)]
pub enum Outcome {
    /// A 2xx.
    Delivered,
    /// An answer that a retry cannot change (a 4xx other than 408 and 429, or a redirect).
    Refused(StatusCode, String),
    /// Worth another attempt: a 5xx, 408, 429, a connection error or the timeout.
    Failed(String),
}

/// The HTTP/1.1 client notifications (and `custody approve --server`) send with.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `url`'s scheme: `https` verified against the platform's roots and never plain
/// HTTP; `http` plain only (a machine may have no roots). Redirects are never followed.
pub fn client_for(url: &Uri) -> Result<HttpClient, NotifyError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let https = if url.scheme_str() == Some("https") {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| NotifyError::Tls(e.to_string()))?
            .https_only()
    } else {
        // Plain HTTP needs no roots; TLS is never used.
        let config = rustls::ClientConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifyError::Tls(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(config).https_or_http()
    };
    let connector = https.enable_http1().build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// Sends `request` and reads the answer: its status and at most `max_bytes` of its body, all
/// within `timeout`. `Err` says why there is no answer (the URL is not in it).
pub async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(StatusCode, Result<Bytes, String>), String> {
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            // The error's source says why (refused, DNS, TLS).
            let mut why = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                why = format!("{why}: {source}");
            }
            why
        })?;
        let status = response.status();
        let body = match Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
        {
            Ok(b) => Ok(b.to_bytes()),
            Err(_) => Err(String::from("(answer unreadable or too large)")),
        };
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(answer) => answer,
    }
}

pub struct Sender {
    client: HttpClient,
    url: Uri,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl Sender {
    pub fn new(url: Uri, token: Option<&[u8]>, timeout: Duration) -> Result<Self, NotifyError> {
        let authorization = token
            .map(|t| {
                let mut v = HeaderValue::from_bytes(&[b"Bearer ", t].concat()).map_err(|_| {
                    NotifyError::Config("the token holds characters a header cannot carry".into())
                })?;
                v.set_sensitive(true);
                Ok::<_, NotifyError>(v)
            })
            .transpose()?;
        let client = client_for(&url)?;
        Ok(Self {
            client,
            url,
            authorization,
            timeout,
        })
    }

    /// POSTs `body` once.
    pub async fn post(&self, body: &[u8]) -> Outcome {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("custody/", env!("CARGO_PKG_VERSION")));
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let request = match request.body(Full::new(Bytes::copy_from_slice(body))) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(StatusCode::BAD_REQUEST, e.to_string()),
        };
        match exchange(&self.client, request, self.timeout, MAX_RESPONSE_BYTES).await {
            Err(why) => Outcome::Failed(why),
            Ok((status, body)) => {
                // What the receiver said, for the log.
                let said: String = match body {
                    Ok(b) => String::from_utf8_lossy(&b).chars().take(200).collect(),
                    Err(why) => why,
                };
                classify(status, terminal::escape(&said).into_owned())
            }
        }
    }
}

fn classify(status: StatusCode, said: String) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Outcome::Failed(format!("{status}: {said}"))
    } else {
        Outcome::Refused(status, said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_answers_are_retried() {
        assert!(matches!(
            classify(StatusCode::OK, String::new()),
            Outcome::Delivered
        ));
        assert!(matches!(
            classify(StatusCode::NO_CONTENT, String::new()),
            Outcome::Delivered
        ));
        for transient in [500, 502, 503, 408, 429] {
            let s = StatusCode::from_u16(transient).unwrap();
            assert!(
                matches!(classify(s, String::new()), Outcome::Failed(_)),
                "{s}"
            );
        }
        for permanent in [301, 302, 307, 400, 401, 403, 404, 413] {
            let s = StatusCode::from_u16(permanent).unwrap();
            assert!(
                matches!(classify(s, String::new()), Outcome::Refused(..)),
                "{s}"
            );
        }
    }
}
