//! The broker Lambda's entry point: logging, configuration read once, clients built once, then the runtime loop.
//! Everything else lives in the library so tests and the local stack run the same code.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use tb_broker::config::BrokerConfig;
use tb_broker::{bootstrap, handle};
use tb_shared::telemetry::{init_lambda_logging, MetricsSink};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_lambda_logging("broker");
    let broker = match init().await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            // Failing init makes Lambda report an init error on the first invocation: loud, and no request served
            // with a half-built broker.
            tracing::error!(error = %e, "broker failed to initialise");
            tb_shared::runtime::report_init_error("Runtime.InitError", &format!("broker cannot start: {e}")).await;
            return Err(e.into());
        }
    };
    tracing::info!(policy_version = %broker.policy.version, "broker ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| handle(event, Arc::clone(&broker)))).await
}

async fn init() -> Result<tb_broker::Broker, bootstrap::InitError> {
    let cfg = BrokerConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    bootstrap::build(&cfg, &sdk, MetricsSink::stdout(&cfg.metrics_namespace))
}
