//! Lambda lifecycle pieces that `lambda_runtime` does not expose.
//!
//! A function whose configuration is unusable must say so through the Runtime API's `/init/error` rather than exit
//! silently or hang: Lambda then reports `Runtime.InitError` with our message on every invoke, which is what an
//! operator looks for after a bad deploy.

use std::time::Duration;

/// Reports an init failure to the Lambda Runtime API, when running under one (`AWS_LAMBDA_RUNTIME_API` set).
/// `message` must not contain secrets; setup errors name variables and files, never values.
pub async fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    let url = format!("http://{api}/2018-06-01/runtime/init/error");
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message, "stackTrace": [] });
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(2)).build() {
        Ok(c) => c,
        Err(_) => return,
    };
    if let Err(e) = client.post(url).header("Lambda-Runtime-Function-Error-Type", error_type).json(&body).send().await {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}
