//! The authorizer Lambda binary: configuration and adapters once at cold start, then one handler call per event.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tb_authorizer::{build, handle, Config, Deps, InitError};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tb_shared::telemetry::init_lambda_logging("authorizer");
    let app = match init().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(event = "init_failed", error = %e, "authorizer cannot start");
            tb_shared::runtime::report_init_error("Runtime.InitError", &format!("authorizer cannot start: {e}")).await;
            return Err(e.into());
        }
    };
    let app = &app;
    run(service_fn(move |event: LambdaEvent<_>| async move { handle(app, event).await })).await
}

async fn init() -> Result<tb_authorizer::App, InitError> {
    let cfg = Config::from_env()?;
    let deps = Deps::from_config(&cfg).await?;
    build(&cfg, deps).await
}
