//! The one Kubernetes client: connecting (kubeconfig, a context, or in-cluster), reading with
//! bounded bodies, lists read page by page, and transient faults (a connection refused, a 5xx,
//! a 429, a timeout) retried with backoff, so a brief API outage does not lose an incident.
//! The Kubernetes source reads through it; containment writes through the same client.

use std::path::Path;
use std::time::Duration;

use futures_util::AsyncReadExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The largest response body read whole (one object, or one page of a list).
pub const MAX_RESPONSE: u64 = 64 * 1024 * 1024;
/// The largest list kept, all pages together.
pub const MAX_LIST: u64 = 256 * 1024 * 1024;
/// Items asked for per page of a list.
pub const PAGE: u32 = 500;

/// A connected client and the API server's URL, as recorded in provenance.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub server: String,
    pub retry: Retry,
}

/// A request that failed: what the API server said (or why nothing was said), and its HTTP
/// status when it sent one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KubeError {
    pub message: String,
    pub status: Option<u16>,
}

impl KubeError {
    fn of(e: &kube::Error) -> Self {
        Self {
            message: describe(e),
            status: status_code(e),
        }
    }

    fn local(message: String) -> Self {
        Self {
            message,
            status: None,
        }
    }
}

/// How transient faults are retried: `attempts` tries in all, waiting `first` and then twice as
/// long each time, at most `longest`. The default rides out an outage of about 7 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first: Duration,
    pub longest: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            first: Duration::from_millis(250),
            longest: Duration::from_secs(4),
        }
    }
}

impl Retry {
    /// No retries: one try.
    pub const ONCE: Retry = Retry {
        attempts: 1,
        first: Duration::ZERO,
        longest: Duration::ZERO,
    };

    /// The wait before try `n` (1-based; try 1 does not wait).
    fn delay(&self, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let doubled = self.first.saturating_mul(1u32 << (n - 2).min(16));
        doubled.min(self.longest)
    }
}

/// Connects with the kubeconfig file `kubeconfig`, or the context `context` of the default
/// kubeconfig, or whatever `kube` infers (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster, String> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        (None, Some(context)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("cannot use kubeconfig context {context}: {e}"))?,
        (None, None) => kube::Config::infer().await.map_err(|e| {
            format!(
                "no cluster: neither KUBECONFIG/~/.kube/config nor in-cluster configuration works: {e}"
            )
        })?,
    };
    let server = config.cluster_url.to_string();
    // One retry policy, ours, for every transient fault (kube's own retries only 429/503/504,
    // for minutes, and would multiply with ours).
    let mut config = config;
    config.default_retry = false;
    let client = kube::Client::try_from(config).map_err(|e| describe(&e))?;
    Ok(Cluster {
        client,
        server,
        retry: Retry::default(),
    })
}

/// `kube` errors as people read them: the API server's status message and code when it sent one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let t = s.to_string();
                if !text.contains(&t) {
                    text.push_str(": ");
                    text.push_str(&t);
                }
                source = s.source();
            }
            text
        }
    }
}

/// The HTTP status of an error the API server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether trying again may succeed: the server was unreachable or timed out, or it answered
/// 429 (too many requests) or a 5xx. A 4xx other than 429 is an answer, never retried.
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// A label selector as the API's `labelSelector` parameter.
pub fn selector_string(selector: &LabelSelector) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        });
    }
    if parts.is_empty() {
        // An empty selector selects every pod of the namespace: never what a Deployment means.
        return Err("the selector is empty".into());
    }
    Ok(parts.join(","))
}

/// Percent-encodes a path segment or query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Waits `wait`, in short steps so that SIGINT/SIGTERM cuts the wait short; `false` if a signal
/// asked the process to stop.
async fn backoff(wait: Duration) -> bool {
    const TICK: Duration = Duration::from_millis(50);
    let mut left = wait;
    while !left.is_zero() {
        if crate::interrupt::requested().is_some() {
            return false;
        }
        let step = left.min(TICK);
        tokio::time::sleep(step).await;
        left -= step;
    }
    crate::interrupt::requested().is_none()
}

impl Cluster {
    /// A cluster reached through `client` (a mock service in tests), known as `server`.
    pub fn new(client: kube::Client, server: &str) -> Self {
        Self {
            client,
            server: server.to_owned(),
            retry: Retry::default(),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    async fn retried<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut n = 1;
        loop {
            match attempt().await {
                Err(e) if is_transient(&e) && n < self.retry.attempts => {
                    n += 1;
                    let wait = self.retry.delay(n);
                    tracing::warn!(request = what, error = %describe(&e), attempt = n, wait_ms = wait.as_millis() as u64, "Kubernetes API request failed; trying again.");
                    if !backoff(wait).await {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// Opens a GET's response body for streaming (a pod log). Only the request is retried: once
    /// bytes flow, a broken stream is the caller's to record.
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<impl futures_util::AsyncBufRead + Unpin, KubeError> {
        self.retried(path, || async {
            let request = http::Request::get(path)
                .body(Vec::new())
                .map_err(kube::Error::HttpError)?;
            self.client.request_stream(request).await
        })
        .await
        .map_err(|e| KubeError::of(&e))
    }

    /// GETs `path` whole, at most `MAX_RESPONSE` bytes.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, KubeError> {
        let read = self
            .retried(path, || async {
                let request = http::Request::get(path)
                    .body(Vec::new())
                    .map_err(kube::Error::HttpError)?;
                let body = self.client.request_stream(request).await?;
                let mut bytes = Vec::new();
                body.take(MAX_RESPONSE + 1)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(kube::Error::ReadEvents)?;
                Ok(bytes)
            })
            .await
            .map_err(|e| KubeError::of(&e))?;
        if read.len() as u64 > MAX_RESPONSE {
            return Err(KubeError::local(format!(
                "the answer to {path} is larger than {MAX_RESPONSE} bytes; not kept"
            )));
        }
        Ok(read)
    }

    /// Reads a whole list page by page (`limit` and `continue`), so no single answer is large,
    /// and returns it as one list document. A list that fits one page is returned exactly as the
    /// API server sent it; a longer one as the first page's `kind`, `apiVersion` and
    /// `resourceVersion` (the API serves every page from that version) with every page's items,
    /// each item's bytes as sent.
    pub async fn list(&self, path: &str) -> Result<Vec<u8>, KubeError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let first = self.get(&format!("{path}{separator}limit={PAGE}")).await?;
        let page: Page = parse_page(path, &first)?;
        let Some(mut token) = page.continue_token().map(str::to_owned) else {
            return Ok(first);
        };
        let mut items: Vec<Box<RawValue>> = page.items.iter().map(|i| (*i).to_owned()).collect();
        let mut total = first.len() as u64;
        let head = (
            page.kind.to_owned(),
            page.api_version.to_owned(),
            page.resource_version().map(str::to_owned),
        );
        loop {
            let next = self
                .get(&format!(
                    "{path}{separator}limit={PAGE}&continue={}",
                    encode(&token)
                ))
                .await?;
            total += next.len() as u64;
            if total > MAX_LIST {
                return Err(KubeError::local(format!(
                    "the list {path} is larger than {MAX_LIST} bytes; not kept"
                )));
            }
            let page: Page = parse_page(path, &next)?;
            items.extend(page.items.iter().map(|i| (*i).to_owned()));
            match page.continue_token() {
                Some(t) => token = t.to_owned(),
                None => break,
            }
        }
        let (kind, api_version, resource_version) = head;
        let whole = WholeList {
            kind: &kind,
            api_version: &api_version,
            metadata: WholeMeta {
                resource_version: resource_version.as_deref(),
            },
            items: &items,
        };
        serde_json::to_vec(&whole)
            .map_err(|e| KubeError::local(format!("cannot join the pages of {path}: {e}")))
    }
}

/// An answer read whole, whatever its status: what `send` returns, so a caller can tell a
/// refusal (a `Status` body) from a failure to ask, and read the headers custody needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Date` header, as sent (the API server's clock).
    pub date: Option<String>,
    /// Every `Warning` header, as sent (may hold any text: escape it when shown).
    pub warnings: Vec<String>,
    /// At most `MAX_RESPONSE` bytes.
    pub body: Vec<u8>,
}

impl Cluster {
    /// Sends one request with `body` (JSON, or a JSON patch when `content_type` says so) and
    /// reads the answer whole, at most `MAX_RESPONSE` bytes. Transient faults (no answer, 429,
    /// 5xx) are retried like reads; any other answer, 4xx included, is returned as it is.
    /// Only for requests that may be repeated: reads and `dryRun=All` writes.
    pub async fn send(
        &self,
        method: &http::Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, KubeError> {
        let answer = self
            .retried(path, || async {
                let mut request = http::Request::builder().method(method.clone()).uri(path);
                if let Some(ct) = content_type {
                    request = request.header(http::header::CONTENT_TYPE, ct);
                }
                let request = request
                    .body(kube::client::Body::from(body.to_vec()))
                    .map_err(kube::Error::HttpError)?;
                let response = self.client.send(request).await?;
                let answer = read_answer(response).await?;
                if answer.status == 429 || answer.status >= 500 {
                    return Err(kube::Error::Api(status_of(&answer).boxed()));
                }
                Ok(answer)
            })
            .await
            .map_err(|e| KubeError::of(&e))?;
        if answer.body.len() as u64 > MAX_RESPONSE {
            return Err(KubeError::local(format!(
                "the answer to {path} is larger than {MAX_RESPONSE} bytes; not kept"
            )));
        }
        Ok(answer)
    }

    /// `send`, tried once: for a real write, whose second try could meet its own first (a
    /// create or a guarded replace that landed answers 409 the second time). No answer, 429 or
    /// a 5xx is an error: the write's outcome is then unknown, for the caller to find out.
    pub async fn send_once(
        &self,
        method: &http::Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, KubeError> {
        let once = Cluster {
            retry: Retry::ONCE,
            ..self.clone()
        };
        once.send(method, path, content_type, body).await
    }

    /// A call through `pods/proxy`, sent once with `headers`: the answer whatever its status (a
    /// 5xx is the pod's or the proxy's answer, not a reason to send again), its body read up to
    /// `max_bytes`. `None` when no answer came, or it was longer: the caller records only that,
    /// never the error's text or the body (an admin endpoint's answer may echo its token).
    pub async fn call_once(
        &self,
        request: (&http::Method, &str, Option<&str>),
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: &[u8],
        max_bytes: u64,
    ) -> Option<(u16, Vec<u8>)> {
        let (method, path, content_type) = request;
        let mut builder = http::Request::builder().method(method.clone()).uri(path);
        if let Some(ct) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(kube::client::Body::from(body.to_vec())).ok()?;
        let response = self.client.send(request).await.ok()?;
        let answer = read_answer_of(response, max_bytes).await.ok()?;
        if answer.body.len() as u64 > max_bytes {
            return None;
        }
        Some((answer.status, answer.body))
    }
}

async fn read_answer(response: http::Response<kube::client::Body>) -> Result<Answer, kube::Error> {
    read_answer_of(response, MAX_RESPONSE).await
}

/// The answer, its body read up to one byte more than `limit` (so a longer one shows).
async fn read_answer_of(
    response: http::Response<kube::client::Body>,
    limit: u64,
) -> Result<Answer, kube::Error> {
    use futures_util::TryStreamExt;
    use http_body_util::BodyExt;
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let status = response.status().as_u16();
    let headers = response.headers();
    let date = headers.get(http::header::DATE).map(text);
    let warnings = headers
        .get_all(http::header::WARNING)
        .iter()
        .map(text)
        .collect();
    let mut body = Vec::new();
    response
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .into_async_read()
        .take(limit + 1)
        .read_to_end(&mut body)
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(Answer {
        status,
        date,
        warnings,
        body,
    })
}

/// The `Status` an answer carries, or one made from its text when it carries none.
fn status_of(answer: &Answer) -> kube::core::Status {
    serde_json::from_slice::<kube::core::Status>(&answer.body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]);
        kube::core::Status::failure(&text, "").with_code(answer.status)
    })
}

/// A list read in pages, written as one: each item as the bytes the server sent.
#[derive(serde::Serialize)]
struct WholeList<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: WholeMeta<'a>,
    items: &'a [Box<RawValue>],
}

#[derive(serde::Serialize)]
struct WholeMeta<'a> {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<&'a str>,
}

/// One page of a list, its items kept as the bytes the server sent.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default, borrow)]
    kind: &'a str,
    #[serde(default, rename = "apiVersion", borrow)]
    api_version: &'a str,
    #[serde(default, borrow)]
    metadata: ListMeta<'a>,
    #[serde(default, borrow)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ListMeta<'a> {
    #[serde(default, rename = "continue", borrow)]
    continue_token: Option<&'a str>,
    #[serde(default, rename = "resourceVersion", borrow)]
    resource_version: Option<&'a str>,
}

impl Page<'_> {
    fn continue_token(&self) -> Option<&str> {
        self.metadata.continue_token.filter(|t| !t.is_empty())
    }

    fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version
    }
}

fn parse_page<'a>(path: &str, bytes: &'a [u8]) -> Result<Page<'a>, KubeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| KubeError::local(format!("the answer to {path} is not a list: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_longest_wait() {
        let r = Retry::default();
        let waits: Vec<u64> = (1..=r.attempts)
            .map(|n| r.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [0, 250, 500, 1000, 2000, 4000]);
        // Enough to ride out a brief outage, not so long that a dead cluster stalls a case.
        let total: u64 = waits.iter().sum();
        assert!((5_000..=10_000).contains(&total), "{total}");
    }

    #[test]
    fn only_unanswered_requests_throttling_and_server_errors_are_transient() {
        let api = |code| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
    }

    /// Serves `answers` (status, body) in order to whatever is asked, on a thread of its own;
    /// returns the cluster and a handle giving back the requests seen.
    fn mock(
        answers: Vec<(u16, String)>,
    ) -> (
        Cluster,
        std::thread::JoinHandle<Vec<String>>,
        tokio::runtime::Runtime,
    ) {
        use ::kube::client::Body;
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut seen = Vec::new();
                for (code, body) in answers {
                    let Some((request, send)) = handle.next_request().await else {
                        break;
                    };
                    seen.push(request.uri().to_string());
                    send.send_response(
                        http::Response::builder()
                            .status(code)
                            .body(Body::from(body.into_bytes()))
                            .unwrap(),
                    );
                }
                seen
            })
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async { ::kube::Client::new(service, "default") });
        let mut cluster = Cluster::new(client, "https://mock");
        cluster.retry.first = Duration::from_millis(1);
        (cluster, server, rt)
    }

    fn status_body(code: u16, reason: &str) -> String {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "etcdserver: request timed out", "reason": reason, "code": code})
        .to_string()
    }

    #[test]
    fn a_list_of_several_pages_is_read_whole_with_each_item_as_sent() {
        let page = |items: &str, next: Option<&str>| {
            let cont = next.map_or(String::new(), |t| format!(r#","continue":"{t}""#));
            format!(
                r#"{{"kind":"EventList","apiVersion":"v1","metadata":{{"resourceVersion":"77"{cont}}},"items":[{items}]}}"#
            )
        };
        let (cluster, server, rt) = mock(vec![
            (200, page(r#"{"b":1, "a":2}"#, Some("tok/1+"))),
            (200, page(r#"{"z":[]}"#, Some("t2"))),
            (200, page("", None)),
        ]);
        let whole = rt
            .block_on(cluster.list("/api/v1/namespaces/n/events"))
            .unwrap();
        drop((cluster, rt));
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                "/api/v1/namespaces/n/events?limit=500",
                "/api/v1/namespaces/n/events?limit=500&continue=tok%2F1%2B",
                "/api/v1/namespaces/n/events?limit=500&continue=t2",
            ]
        );
        let text = String::from_utf8(whole).unwrap();
        // Each item's bytes exactly as sent (key order and spacing kept).
        assert!(text.contains(r#"[{"b":1, "a":2},{"z":[]}]"#), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], "EventList");
        assert_eq!(v["metadata"]["resourceVersion"], "77");
        assert!(v["metadata"].get("continue").is_none());
    }

    #[test]
    fn a_list_of_one_page_is_kept_exactly_as_sent() {
        let body = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[ {"x":1} ]}"#;
        let (cluster, server, rt) = mock(vec![(200, body.to_owned())]);
        let got = rt
            .block_on(cluster.list("/api/v1/namespaces/n/pods?labelSelector=a%3Db"))
            .unwrap();
        drop((cluster, rt));
        assert_eq!(got, body.as_bytes());
        assert_eq!(
            server.join().unwrap(),
            ["/api/v1/namespaces/n/pods?labelSelector=a%3Db&limit=500"]
        );
    }

    #[test]
    fn transient_failures_are_retried_and_answers_are_not() {
        let (cluster, server, rt) = mock(vec![
            (503, status_body(503, "ServiceUnavailable")),
            (429, status_body(429, "TooManyRequests")),
            (200, "{}".to_owned()),
        ]);
        assert_eq!(rt.block_on(cluster.get("/x")).unwrap(), b"{}");
        drop((cluster, rt));
        assert_eq!(server.join().unwrap().len(), 3);

        let (cluster, server, rt) = mock(vec![
            (403, status_body(403, "Forbidden")),
            (200, "{}".to_owned()),
        ]);
        let e = rt.block_on(cluster.get("/x")).unwrap_err();
        assert_eq!(e.status, Some(403));
        drop((cluster, rt));
        assert_eq!(
            server.join().unwrap().len(),
            1,
            "a refusal is never retried"
        );

        // Retries are spent: the last answer is the error.
        let mut answers = vec![(500, status_body(500, "InternalError")); 6];
        answers.push((200, "{}".to_owned()));
        let (cluster, server, rt) = mock(answers);
        let e = rt.block_on(cluster.get("/x")).unwrap_err();
        assert_eq!(e.status, Some(500));
        assert!(e.message.contains("etcdserver"), "{}", e.message);
        drop((cluster, rt));
        assert_eq!(server.join().unwrap().len(), 6);
    }

    #[test]
    fn selectors_and_encoding() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "gw"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "x", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(selector_string(&sel).unwrap(), "app=gw,tier in (a,b),!x");
        assert!(selector_string(&LabelSelector::default()).is_err());
        assert_eq!(encode("a b/c=d,é"), "a%20b%2Fc%3Dd%2C%C3%A9");
    }
}
