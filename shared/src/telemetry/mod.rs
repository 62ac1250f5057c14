//! Logs and metrics for both functions.
//!
//! Logs are JSON lines through `tracing`, written to an injectable writer so tests can capture and scan them.
//! Metrics are CloudWatch Embedded Metric Format (EMF) lines written straight to the same kind of writer: CloudWatch
//! extracts metrics from top-level JSON objects, so EMF must not be wrapped inside a log record.
//!
//! Neither ever receives a secret: the types that hold secrets print a placeholder, and no event, header map or
//! request body is logged.

mod emf;
mod redact;

use std::io::Write;
use std::sync::{Arc, Mutex};

pub use emf::{Metrics, MetricsSink, Unit};
pub use redact::CallerIdHasher;

/// The dimension every EMF line of both functions carries, whose value is the deployment's stack name (`STACK_NAME`,
/// see [`crate::env::Env::stack_name`]): two stacks in one account and namespace (production and staging, or two
/// tenants) write separate series, and one stack's alarms never count the other's requests.
pub const STACK_DIMENSION: &str = "Stack";

/// The dimension naming the function that wrote a line (`authorizer` or `broker`).
pub const SERVICE_DIMENSION: &str = "Service";

/// A cloneable, thread-safe writer that collects everything written to it. Tests install it as the log and metric
/// writer and scan the captured text for leaked secrets.
#[derive(Clone, Default)]
pub struct CaptureWriter {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl CaptureWriter {
    /// Everything written so far, as lossy UTF-8.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&crate::sync::lock(&self.buf)).into_owned()
    }
    /// Drops what was captured.
    pub fn clear(&self) {
        crate::sync::lock(&self.buf).clear();
    }
}

impl Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        crate::sync::lock(&self.buf).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the JSON log subscriber for a Lambda function, writing to stdout.
///
/// The level comes from `LOG_LEVEL` (default `info`). `trace` is refused and lowered to `debug`: at trace level the
/// Lambda runtime logs raw events, which carry Authorization headers and client-certificate PEMs.
pub fn init_lambda_logging(service: &'static str) {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let level = match level.to_ascii_lowercase().as_str() {
        "error" => "error",
        "warn" => "warn",
        "debug" | "trace" => "debug",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{level},lambda_runtime=info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn,reqwest=warn,rustls=warn"
    ));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .try_init();
    tracing::info!(service, "logging initialised");
}

/// A JSON subscriber writing to `writer`, for tests that capture logs. Use with
/// `tracing::subscriber::with_default` or `set_default`.
pub fn capture_subscriber(writer: CaptureWriter) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .flatten_event(true)
        .with_current_span(true)
        .with_writer(writer)
        .finish()
}

/// Installs a capturing JSON subscriber as this thread's default and returns its guard.
///
/// Rebuilds tracing's callsite interest cache afterwards: a callsite first hit by another test thread while no
/// subscriber was interested is cached as "never", and would otherwise stay silent here (a flaky leak scan that
/// captures nothing proves nothing).
///
/// The rebuild does not close every gap: a callsite whose first hit on a thread *without* a capture is in flight
/// while this runs can still store "never" after the rebuild. So a test binary that captures logs holds only tests
/// that call this first; tests without a capture live in another binary.
pub fn capture_default(writer: CaptureWriter) -> tracing::subscriber::DefaultGuard {
    let guard = tracing::subscriber::set_default(capture_subscriber(writer));
    tracing::callsite::rebuild_interest_cache();
    guard
}
