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

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "debug" | "trace" => LevelFilter::DEBUG,
        _ => LevelFilter::INFO,
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .flatten_event(true)
                .with_target(false)
                .without_time(),
        )
        .with(lambda_log_filter(level))
        .try_init();
    tracing::info!(service, "logging initialised");
}

/// What a function logs at `level`: its own events at that level, and the libraries it runs on held to the level
/// that is useful in an incident (the runtime at info, the SDK and HTTP stacks at warn). A per-target filter rather
/// than `EnvFilter`, whose directive syntax needs a regular-expression engine in every function binary for a fixed
/// set of directives.
fn lambda_log_filter(level: LevelFilter) -> Targets {
    Targets::new().with_default(level).with_target("lambda_runtime", LevelFilter::INFO).with_targets(
        ["aws_smithy_runtime", "aws_config", "hyper", "reqwest", "rustls"].map(|t| (t, LevelFilter::WARN)),
    )
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

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_functions_own_events_follow_the_level_and_the_libraries_stay_quiet() {
        let f = lambda_log_filter(LevelFilter::DEBUG);
        assert!(f.would_enable("tb_broker::handler", &Level::DEBUG));
        assert!(!f.would_enable("tb_broker::handler", &Level::TRACE));
        assert!(f.would_enable("lambda_runtime::layers", &Level::INFO));
        assert!(!f.would_enable("lambda_runtime::layers", &Level::DEBUG), "raw events are logged below info");
        for lib in ["aws_smithy_runtime::client", "aws_config", "hyper::proto", "reqwest::connect", "rustls::client"] {
            assert!(f.would_enable(lib, &Level::WARN), "{lib}");
            assert!(!f.would_enable(lib, &Level::INFO), "{lib}");
        }
        let f = lambda_log_filter(LevelFilter::ERROR);
        assert!(!f.would_enable("tb_authorizer::decision", &Level::WARN));
        assert!(f.would_enable("tb_authorizer::decision", &Level::ERROR));
        assert!(f.would_enable("lambda_runtime", &Level::INFO), "the runtime's own lines, as before, at any level");
    }
}
