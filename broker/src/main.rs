//! The broker Lambda's entry point: logging, configuration read once, adapters built once, then the runtime loop.
//! Everything else lives in the library so tests and the local stack run the same code.

// The GetClientToken call nests the AWS SDK's futures deeper than the default limit allows the compiler to lay out.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, LambdaEvent};
use tb_broker::{build_for_aws, handle, App, Config, InitError};
use tb_shared::telemetry::init_lambda_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_lambda_logging("broker");
    let app = match init().await {
        Ok(app) => app,
        Err(e) => {
            // Failing init makes Lambda report an init error on the first invocation: loud, and no request served
            // with a half-built broker.
            tracing::error!(event = "init_failed", error = %e, "broker cannot start");
            tb_shared::runtime::report_init_error("Runtime.InitError", &format!("broker cannot start: {e}")).await;
            return Err(e.into());
        }
    };
    tracing::info!(policy_version = %app.policy.version, "broker ready");
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move { handle(app, event).await })).await
}

async fn init() -> Result<App, InitError> {
    let cfg = Config::from_env()?;
    let sdk = tb_shared::aws::lambda_sdk_config();
    build_for_aws(&cfg, &sdk).await
}
