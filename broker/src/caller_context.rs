//! The first check of every request: is the caller context really the authorizer's?
//!
//! `requestContext.authorizer` is written by API Gateway from the authorizer's answer, but the broker is a Lambda
//! function: any principal allowed `lambda:InvokeFunction` on it can invoke it directly with a context of its own
//! making and name any caller. The authorizer therefore adds a MAC over the context, the API id and stage it was made
//! for, and an expiry ([`tb_shared::context::mac`]); the broker recomputes it here, with the key set it reads from the
//! same SSM parameter, before it looks at the method, the body, the policy, the quota, the credentials or Cognito.
//!
//! The API and stage come from the event's own `requestContext.apiId` and `requestContext.stage`, which API Gateway
//! always sets. An event without them was not made by API Gateway; they are then taken as empty, which no MAC was
//! ever made for (the authorizer signs only an API id and stage it read from a well-formed `methodArn`), so the
//! check fails as a `mismatch` like any other context made for another API or stage.
//!
//! A context is also accepted again when API Gateway replays it from its authorizer cache, as long as its MAC has not
//! expired: the authorizer's `CONTEXT_MAC_TTL_SECONDS` must be at least the gateway's cache TTL.

use aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
use std::sync::Arc;

use tb_shared::context::{verify, ApiBinding, CallerContext, KeySet, KEY_MAC_KEY_ID};

use crate::app::App;
use crate::error::BrokerError;

/// Longest API id, stage or key id written to a log line as received; anything longer or unprintable is replaced.
/// These values come from the event, which a direct invoke can fill with anything.
const MAX_LOGGED_LEN: usize = 128;

/// Checks the MAC of `ctx` (read from `rc.authorizer`) for the API and stage `rc` names, at the app's time, and
/// answers the key set it used: the request signs its caller claims with the same set, so one request reads the key
/// ring once, before anything is charged.
///
/// [`BrokerError::ContextKeysUnavailable`] when no usable key set can be had (logged here with the store's reason);
/// [`BrokerError::ForgedContext`] when the MAC is missing, malformed, made with a key the broker does not hold,
/// expired, or does not match.
pub(crate) async fn check(
    broker: &App,
    rc: &ApiGatewayProxyRequestContext,
    ctx: &CallerContext,
) -> Result<Arc<KeySet>, BrokerError> {
    let keys = broker.context_keys.current().await.map_err(|e| {
        tracing::error!(
            event = "context_keys_unavailable",
            error = %e,
            "context keys cannot be read and the last set read is past its stale bound; refusing every request"
        );
        BrokerError::ContextKeysUnavailable
    })?;
    let api = binding(rc);
    verify(&rc.authorizer.fields, ctx, &api, &keys, broker.clock.now()).map_err(BrokerError::ForgedContext)?;
    Ok(keys)
}

/// The API and stage the event says it came through (empty when it does not say).
fn binding(rc: &ApiGatewayProxyRequestContext) -> ApiBinding {
    ApiBinding { api_id: rc.apiid.clone().unwrap_or_default(), stage: rc.stage.clone().unwrap_or_default() }
}

/// What the log line of a refused context says about it, beside the claimed caller: where the event claims to come
/// from and which key the MAC names. None of it is secret (the key id is carried in every context); the MAC itself
/// is never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedContext {
    pub(crate) api_id: String,
    pub(crate) stage: String,
    pub(crate) key_id: String,
}

impl RefusedContext {
    /// The loggable description of the event's context.
    pub(crate) fn of(rc: &ApiGatewayProxyRequestContext) -> Self {
        let api = binding(rc);
        let key_id = match rc.authorizer.fields.get(KEY_MAC_KEY_ID) {
            Some(serde_json::Value::String(s)) => loggable(s),
            Some(_) => "<not a string>".to_owned(),
            None => "-".to_owned(),
        };
        RefusedContext { api_id: loggable(&api.api_id), stage: loggable(&api.stage), key_id }
    }
}

/// `s` when it is short printable ASCII, else a placeholder: a direct invoke must not be able to write long or
/// control-character values into the broker's log.
fn loggable(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else if s.len() <= MAX_LOGGED_LEN && s.bytes().all(|b| b.is_ascii_graphic()) {
        s.to_owned()
    } else {
        "<invalid>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_short_printable_values_are_logged_as_received() {
        let mut rc = ApiGatewayProxyRequestContext::default();
        rc.apiid = Some("a1b2c3d4e5".into());
        rc.stage = Some("x".repeat(MAX_LOGGED_LEN + 1));
        rc.authorizer.fields.insert(KEY_MAC_KEY_ID.into(), json!("key\nid"));
        let r = RefusedContext::of(&rc);
        assert_eq!((r.api_id.as_str(), r.stage.as_str(), r.key_id.as_str()), ("a1b2c3d4e5", "<invalid>", "<invalid>"));
        rc.authorizer.fields.insert(KEY_MAC_KEY_ID.into(), json!(7));
        rc.stage = None;
        let r = RefusedContext::of(&rc);
        assert_eq!((r.stage.as_str(), r.key_id.as_str()), ("-", "<not a string>"));
        rc.authorizer.fields.clear();
        assert_eq!(RefusedContext::of(&rc).key_id, "-");
    }
}
