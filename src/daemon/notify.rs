//! Notifications: an outgoing webhook that tells the security team a case is sealed, a plan
//! awaits approval, and a plan reached its quorum, was rejected or expired. One POST carries a
//! Slack-compatible `text` and the event's details as JSON (`message`).
//!
//! A notification never holds up a case: [`Notifier::notify`] only puts the event on a bounded
//! queue and returns; a [`Delivery`] task POSTs the events one at a time (`post`), retrying a
//! failing receiver with exponential backoff up to `max_attempts`, each attempt under a
//! timeout. When the queue is full the new event is dropped with a warning. [`NotifyMetrics`]
//! counts what was sent, failed and dropped.

mod message;
mod post;

use std::fmt;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub use message::{body, mrkdwn, text, Event};
pub use post::{client_for, exchange, HttpClient};

/// Why notifications cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify: {0}")]
    Config(String),
    #[error("notify: TLS for the receiver: {0}")]
    Tls(String),
}

/// Where and how notifications are delivered.
#[derive(Clone)]
pub struct NotifyConfig {
    /// The receiver, `http` or `https`.
    pub url: http::Uri,
    /// Sent as `Authorization: Bearer …` when set; never logged.
    pub token: Option<Vec<u8>>,
    /// The limit on each attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    /// Attempts per event, the first included (1 to 20).
    pub max_attempts: u32,
    /// Events waiting for delivery; further ones are dropped.
    pub queue: usize,
    /// The wait before the first retry; it doubles after each, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Slack puts its secret in the webhook's path: show the host only, and never the token.
        f.debug_struct("NotifyConfig")
            .field("host", &self.url.host())
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("queue", &self.queue)
            .finish()
    }
}

impl NotifyConfig {
    /// A receiver at `url` with the defaults: 10 s per attempt, 5 attempts, 256 queued, retries
    /// after 1 s, 2 s, 4 s … up to 60 s. The URL must be `http://` or `https://` with a host and
    /// without user information (a token goes in `token`).
    pub fn new(url: &str) -> Result<Self, NotifyError> {
        let bad = |why: &str| NotifyError::Config(format!("url: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("give an http:// or https:// URL"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "user information in the URL is not sent: use token_file",
            ));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            url: uri,
            token: None,
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            queue: 256,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        })
    }

    /// The wait after attempt `attempt` (1, 2, …) failed.
    fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What the notifier counted, for the daemon's `/metrics` (cheap to clone: each counter is
/// shared).
#[derive(Clone, Debug, Default)]
pub struct NotifyMetrics {
    /// Events the receiver accepted (2xx).
    pub sent: Counter,
    /// Events given up after their last attempt, or refused by the receiver.
    pub failed: Counter,
    /// Events dropped because the queue was full or the delivery task had ended.
    pub dropped: Counter,
    /// Attempts that failed and were retried.
    pub retries: Counter,
}

impl NotifyMetrics {
    /// Registers the counters as `notifications_sent`, `_failed`, `_dropped` and `_retries`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "notifications_sent",
            "Notifications the receiver accepted",
            self.sent.clone(),
        );
        registry.register(
            "notifications_failed",
            "Notifications given up after their last attempt or refused by the receiver",
            self.failed.clone(),
        );
        registry.register(
            "notifications_dropped",
            "Notifications dropped because the queue was full",
            self.dropped.clone(),
        );
        registry.register(
            "notifications_retries",
            "Notification attempts that failed and were retried",
            self.retries.clone(),
        );
    }
}

/// The handle the daemon notifies through. Cloning it is cheap; once every clone is dropped,
/// the [`Delivery`] task delivers what is queued and ends.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Event>,
    metrics: NotifyMetrics,
}

/// The task that delivers queued events: run it with `tokio::spawn(delivery.run())`.
pub struct Delivery {
    events: mpsc::Receiver<Event>,
    sender: post::Sender,
    config: NotifyConfig,
    metrics: NotifyMetrics,
}

impl Notifier {
    /// The notifier and its delivery task, not started.
    pub fn new(
        config: NotifyConfig,
        metrics: NotifyMetrics,
    ) -> Result<(Self, Delivery), NotifyError> {
        if !(1..=20).contains(&config.max_attempts) || !(1..=100_000).contains(&config.queue) {
            return Err(NotifyError::Config(format!(
                "max_attempts must be 1 to 20 and queue 1 to 100000 (got {} and {})",
                config.max_attempts, config.queue
            )));
        }
        let sender =
            post::Sender::new(config.url.clone(), config.token.as_deref(), config.timeout)?;
        let (queue, events) = mpsc::channel(config.queue);
        let notifier = Self {
            queue,
            metrics: metrics.clone(),
        };
        Ok((
            notifier,
            Delivery {
                events,
                sender,
                config,
                metrics,
            },
        ))
    }

    /// The notifier with its delivery task spawned on the current Tokio runtime.
    pub fn start(
        config: NotifyConfig,
        metrics: NotifyMetrics,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), NotifyError> {
        let (notifier, delivery) = Self::new(config, metrics)?;
        Ok((notifier, tokio::spawn(delivery.run())))
    }

    /// Queues `event` and returns at once; a full queue drops it (logged, counted).
    pub fn notify(&self, event: Event) {
        if let Err(e) = self.queue.try_send(event) {
            let (why, event) = match e {
                mpsc::error::TrySendError::Full(ev) => ("the notification queue is full", ev),
                mpsc::error::TrySendError::Closed(ev) => ("notifications have stopped", ev),
            };
            self.metrics.dropped.inc();
            warn!(event = event.name(), case = %event.case(), "Notification dropped: {why}.");
        }
    }

    pub fn metrics(&self) -> &NotifyMetrics {
        &self.metrics
    }
}

impl Delivery {
    /// Delivers events until every [`Notifier`] is dropped and the queue is empty.
    pub async fn run(mut self) {
        while let Some(event) = self.events.recv().await {
            self.deliver(&event).await;
        }
    }

    async fn deliver(&self, event: &Event) {
        let body = body(event);
        let host = self.config.url.host().unwrap_or_default();
        for attempt in 1..=self.config.max_attempts {
            match self.sender.post(&body).await {
                post::Outcome::Delivered => {
                    self.metrics.sent.inc();
                    debug!(event = event.name(), case = %event.case(), attempt, "Notification sent.");
                    return;
                }
                post::Outcome::Refused(status, said) => {
                    self.metrics.failed.inc();
                    warn!(event = event.name(), case = %event.case(), host, %status, said, "Notification refused by the receiver; not retried.");
                    return;
                }
                post::Outcome::Failed(why) if attempt < self.config.max_attempts => {
                    self.metrics.retries.inc();
                    let wait = self.config.backoff_after(attempt);
                    debug!(
                        event = event.name(),
                        attempt,
                        host,
                        why,
                        ?wait,
                        "Notification failed; retrying."
                    );
                    tokio::time::sleep(wait).await;
                }
                post::Outcome::Failed(why) => {
                    self.metrics.failed.inc();
                    warn!(event = event.name(), case = %event.case(), host, why, attempts = attempt, "Notification given up.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
