//! Health and metrics for deployment: [`Metrics`] counts an application's requests by
//! status, times them in a histogram, and samples each loop's open connections and lag;
//! [`Metrics::routes`] serves an opt-in `/healthz` and the Prometheus text format at
//! `/metrics` (`prometheus-client`).
//!
//! One `Metrics` is shared by every loop of a process (it is `Send + Sync`); each loop's
//! figures carry a `loop` label, so `sum(eddy_open_connections)` is the process's total.
//! Loop lag is how late a one-second timer fires: a loop busy with long callbacks shows it
//! at once, which is what a load balancer's health check cannot see.

use std::sync::{Arc, Mutex};

use eddy_core::http::HttpServer;
use eddy_core::task::{sleep, with_loop};
use eddy_core::{Duration, IoLoop};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::application::Route;
use crate::error::HttpError;
use crate::exchange::Exchange;
use crate::handler::RequestHandler;

/// How often each loop samples its connections and lag.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabel {
    r#loop: u32,
}

struct Inner {
    registry: Mutex<Registry>,
    /// The label the next watched loop gets.
    next_loop: std::sync::atomic::AtomicU32,
    requests: Family<StatusLabel, Counter>,
    latency: Histogram,
    open_connections: Family<LoopLabel, Gauge>,
    loop_lag: Family<LoopLabel, Gauge<f64, AtomicU64>>,
}

/// Request, connection and loop figures of one process, exposed for Prometheus.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `eddy_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("eddy");
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by status",
            requests.clone(),
        );
        // 100 µs to about 26 s.
        let latency = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "http_request_duration_seconds",
            "Time from routing to the end of the handler",
            latency.clone(),
        );
        let open_connections = Family::<LoopLabel, Gauge>::default();
        registry.register(
            "open_connections",
            "HTTP connections open now, by loop",
            open_connections.clone(),
        );
        let loop_lag = Family::<LoopLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "loop_lag_seconds",
            "How late the loop's last one-second sampling timer fired, by loop",
            loop_lag.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                next_loop: std::sync::atomic::AtomicU32::new(0),
                requests,
                latency,
                open_connections,
                loop_lag,
            }),
        }
    }

    /// Counts one finished request.
    pub fn record_request(&self, status: u16, took: Duration) {
        self.inner
            .requests
            .get_or_create(&StatusLabel { status })
            .inc();
        self.inner.latency.observe(took.as_secs_f64());
    }

    /// Samples `server`'s open connections and the loop's lag every [`SAMPLE_EVERY`], under
    /// the next loop label (0, 1, …), for as long as the loop runs. `Application::listen`
    /// calls it for applications with metrics.
    pub fn watch(&self, io: &mut IoLoop, server: &HttpServer) {
        let loop_index = self
            .inner
            .next_loop
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let metrics = self.clone();
        let server = server.clone();
        io.spawn_detached(async move {
            let label = LoopLabel { r#loop: loop_index };
            loop {
                let due = with_loop(|io| io.now()) + SAMPLE_EVERY;
                sleep(SAMPLE_EVERY).await;
                let lag = with_loop(|io| io.now()).saturating_duration_since(due);
                let open = i64::try_from(server.stats().open_connections).unwrap_or(i64::MAX);
                metrics
                    .inner
                    .open_connections
                    .get_or_create(&label)
                    .set(open);
                metrics
                    .inner
                    .loop_lag
                    .get_or_create(&label)
                    .set(lag.as_secs_f64());
            }
        });
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// `GET /healthz` (200 `ok`) and `GET /metrics` (the text exposition).
    pub fn routes(&self) -> Vec<Route> {
        let metrics = self.clone();
        vec![
            Route::new("/healthz", || Health),
            Route::new("/metrics", move || Exposition {
                metrics: metrics.clone(),
            }),
        ]
    }
}

/// `GET /healthz`: the loop answers, so the process is alive.
struct Health;

impl RequestHandler for Health {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_header("Content-Type", "text/plain; charset=utf-8")?;
        ex.set_header("Cache-Control", "no-store")?;
        ex.write("ok\n");
        Ok(())
    }
}

/// `GET /metrics`.
struct Exposition {
    metrics: Metrics,
}

impl RequestHandler for Exposition {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_header(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )?;
        ex.set_header("Cache-Control", "no-store")?;
        ex.write(self.metrics.encode());
        Ok(())
    }
}
