//! The trigger Lambda's entry point: logging, configuration and the key set read once, then the runtime loop.
//! Everything else lives in the library so the tests run the same code.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tb_trigger::{build, handle, App, Config, Deps, InitError};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tb_shared::telemetry::init_lambda_logging("trigger");
    let app = match init().await {
        Ok(app) => app,
        Err(e) => {
            // Failing init makes Lambda report an init error on every invocation, so Cognito fails client-credentials
            // tokens loudly rather than issuing them without verified caller claims.
            tracing::error!(event = "init_failed", error = %e, "trigger cannot start");
            tb_shared::runtime::report_init_error("Runtime.InitError", &format!("trigger cannot start: {e}")).await;
            return Err(e.into());
        }
    };
    tracing::info!(claim_prefix = %app.prefix, "trigger ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<_>| async move { handle(app, event).await })).await
}

async fn init() -> Result<App, InitError> {
    let cfg = Config::from_env()?;
    let sdk = tb_shared::aws::lambda_sdk_config();
    let deps = Deps::from_sdk_config(&cfg, &sdk)?;
    build(&cfg, deps).await
}
