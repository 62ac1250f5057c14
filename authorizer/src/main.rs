//! The authorizer Lambda binary: configuration and clients once at cold start, then one handler per event.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tb_authorizer::{config::Config, handler, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tb_shared::telemetry::init_lambda_logging("authorizer");
    let app = match Config::from_env().map_err(setup::SetupError::from) {
        Ok(cfg) => setup::build_app(&cfg).await,
        Err(e) => Err(e),
    };
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(event = "init_failed", error = %e, "authorizer cannot start");
            tb_shared::runtime::report_init_error("Runtime.InitError", &format!("authorizer cannot start: {e}")).await;
            return Err(e.into());
        }
    };
    let app = &app;
    run(service_fn(move |event: LambdaEvent<_>| async move { handler::handle(app, event).await })).await
}
