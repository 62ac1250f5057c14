//! One invocation: the event from Cognito in, the event with claims (or unchanged) out, or an error that makes
//! Cognito fail the token. One decision log line per invocation, and EMF lines for client-credentials events.
//!
//! The log line names the request, the trigger source, the app client, the outcome, the refusal reason and, only
//! when the metadata verified, the caller (hashed when `CALLER_HASH_KEY` is set). It never holds the metadata, the
//! MAC, its key id or expiry, or anything else of the event.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::app::App;
use crate::customize::{customize_traced, needs_keys, Customized, Refusal};
use crate::event::CLIENT_CREDENTIALS;
use crate::metrics;

/// The `errorType` Cognito receives when the trigger fails a token.
pub const REFUSED_ERROR_TYPE: &str = "CallerClaimsRefused";

/// Handles one event.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    let request_id = ctx.request_id;
    let keys = if needs_keys(&payload) {
        match app.context_keys.current().await {
            Ok(keys) => Some(keys),
            Err(e) => {
                tracing::error!(event = "context_keys_unavailable", request_id, error = %e, "no usable context key set");
                None
            }
        }
    } else {
        None
    };
    let traced = customize_traced(payload, &app.prefix, keys.as_deref(), app.clock.now());
    let reason = traced.result.as_ref().err().map(Refusal::reason);
    log(app, &request_id, &traced, reason);
    if traced.trigger_source.as_deref() == Some(CLIENT_CREDENTIALS) {
        metrics::flush(&app.metrics, &request_id, reason);
    }
    traced.result.map_err(|r| refused(r.reason()))
}

fn refused(reason: &'static str) -> Diagnostic {
    Diagnostic { error_type: REFUSED_ERROR_TYPE.into(), error_message: format!("caller claims refused: {reason}") }
}

fn log(app: &App, request_id: &str, t: &Customized, reason: Option<&'static str>) {
    let source = t.trigger_source.as_deref().unwrap_or("-");
    let client = t.client_id.as_deref().unwrap_or("-");
    match (reason, &t.claims) {
        (Some(reason), _) => tracing::warn!(
            event = "trigger_decision",
            request_id,
            trigger_source = source,
            client_id = client,
            outcome = "refused",
            reason,
            "token refused"
        ),
        (None, Some(claims)) => tracing::info!(
            event = "trigger_decision",
            request_id,
            trigger_source = source,
            client_id = client,
            outcome = "claims_added",
            caller_id = %app.hasher.display(&claims.context.caller_id),
            bound = claims.cert_thumbprint.is_some(),
            "caller claims added"
        ),
        (None, None) => tracing::info!(
            event = "trigger_decision",
            request_id,
            trigger_source = source,
            client_id = client,
            outcome = "unchanged",
            "not a client-credentials token: unchanged"
        ),
    }
}
