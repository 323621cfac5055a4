//! `GET /metrics`: Prometheus text through `prometheus-client`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    cases_opened: Family<Labels, Counter>,
    collections: Family<Labels, Counter>,
    webhook_requests: Family<Labels, Counter>,
    bytes_collected: Counter,
    collection_seconds: Histogram,
    queue_depth: Gauge,
    overloaded: Counter,
    spool_uploads: Family<Labels, Counter>,
    spooled_cases: Gauge,
    plans_proposed: Family<Labels, Counter>,
    plan_proposals_failed: Family<Labels, Counter>,
    approvals: Family<Labels, Counter>,
    plans_expired: Counter,
    plan_expiry_failures: Counter,
    open_plans: Gauge,
    block_expiries: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("custody");
        let cases_opened = Family::<Labels, Counter>::default();
        let collections = Family::<Labels, Counter>::default();
        let webhook_requests = Family::<Labels, Counter>::default();
        let bytes_collected = Counter::default();
        let collection_seconds = Histogram::new(exponential_buckets(0.25, 2.0, 12));
        let queue_depth = Gauge::default();
        let overloaded = Counter::default();
        let spool_uploads = Family::<Labels, Counter>::default();
        let spooled_cases = Gauge::default();
        let plans_proposed = Family::<Labels, Counter>::default();
        let plan_proposals_failed = Family::<Labels, Counter>::default();
        let approvals = Family::<Labels, Counter>::default();
        let plans_expired = Counter::default();
        let plan_expiry_failures = Counter::default();
        let open_plans = Gauge::default();
        let block_expiries = Family::<Labels, Counter>::default();
        registry.register(
            "block_expiries",
            "Executed plans whose expired blocks were looked at, by outcome (expired, stale, refused, failed, busy, error)",
            block_expiries.clone(),
        );
        registry.register(
            "cases_opened",
            "Cases opened, by trigger",
            cases_opened.clone(),
        );
        registry.register(
            "collections",
            "Collections ended, by outcome (sealed, failed, error)",
            collections.clone(),
        );
        registry.register(
            "webhook_requests",
            "Alertmanager webhook requests, by response code",
            webhook_requests.clone(),
        );
        registry.register(
            "collected_bytes",
            "Log bytes sealed",
            bytes_collected.clone(),
        );
        registry.register(
            "collection_seconds",
            "Time from the start of a collection to its sealed and stored bundle",
            collection_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Collections waiting for a worker",
            queue_depth.clone(),
        );
        registry.register(
            "overloaded",
            "Requests refused because the collection queue was full",
            overloaded.clone(),
        );
        registry.register(
            "spool_uploads",
            "Uploads of sealed cases from the local spool to S3, by outcome (stored, kept)",
            spool_uploads.clone(),
        );
        registry.register(
            "spooled_cases",
            "Cases sealed into the local spool and not yet in S3",
            spooled_cases.clone(),
        );
        registry.register(
            "plans_proposed",
            "Containment plans proposed, by trigger (api, alert)",
            plans_proposed.clone(),
        );
        registry.register(
            "plan_proposals_failed",
            "Proposals that did not store a plan, by trigger (api, alert)",
            plan_proposals_failed.clone(),
        );
        registry.register(
            "approvals",
            "Approvals sent to the daemon, by outcome (approve, reject, refused)",
            approvals.clone(),
        );
        registry.register(
            "plans_expired",
            "Plans this replica journaled as expired unexecuted (plan_expired)",
            plans_expired.clone(),
        );
        registry.register(
            "plan_expiry_failures",
            "Looks at open plans that failed (the store, the claim, a collection under way, an unreadable plan) and are tried again later",
            plan_expiry_failures.clone(),
        );
        registry.register(
            "open_plans",
            "Plans watched for expiry: proposed, not expired, not rejected",
            open_plans.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            cases_opened,
            collections,
            webhook_requests,
            bytes_collected,
            collection_seconds,
            queue_depth,
            overloaded,
            spool_uploads,
            spooled_cases,
            plans_proposed,
            plan_proposals_failed,
            approvals,
            plans_expired,
            plan_expiry_failures,
            open_plans,
            block_expiries,
        }
    }

    /// Registers the notifier's counters (`notifications_*`).
    pub fn register_notify(&self, notify: &super::notify::NotifyMetrics) {
        if let Ok(mut registry) = self.registry.lock() {
            notify.register(&mut registry);
        }
    }

    pub fn plan_proposed(&self, trigger: &str) {
        self.plans_proposed
            .get_or_create(&vec![("trigger".into(), trigger.into())])
            .inc();
    }

    pub fn plan_proposal_failed(&self, trigger: &str) {
        self.plan_proposals_failed
            .get_or_create(&vec![("trigger".into(), trigger.into())])
            .inc();
    }

    pub fn approval(&self, outcome: &str) {
        self.approvals
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn block_expiry(&self, outcome: &str) {
        self.block_expiries
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn plan_expired(&self) {
        self.plans_expired.inc();
    }

    pub fn plan_expiry_failed(&self) {
        self.plan_expiry_failures.inc();
    }

    pub fn open_plans(&self, n: usize) {
        self.open_plans.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn case_opened(&self, trigger: &str) {
        self.cases_opened
            .get_or_create(&vec![("trigger".into(), trigger.into())])
            .inc();
    }

    pub fn collection(&self, outcome: &str) {
        self.collections
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn webhook(&self, code: u16) {
        self.webhook_requests
            .get_or_create(&vec![("code".into(), code.to_string())])
            .inc();
    }

    pub fn bytes(&self, n: u64) {
        self.bytes_collected.inc_by(n);
    }

    pub fn sealed_in(&self, d: Duration) {
        self.collection_seconds.observe(d.as_secs_f64());
    }

    pub fn queue_depth(&self, n: usize) {
        self.queue_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn overloaded(&self) {
        self.overloaded.inc();
    }

    pub fn spool_upload(&self, outcome: &str) {
        self.spool_uploads
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn spooled_cases(&self, n: usize) {
        self.spooled_cases.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = encode(&mut out, &registry);
        }
        out
    }
}
