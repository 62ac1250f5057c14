//! The Lambda handler: pulls the credentials out of a REQUEST authorizer event, asks [`Authorizer::decide`], signs
//! an Allow's context with the current context key, logs the decision and emits its metrics, and maps it to API
//! Gateway's answer.
//!
//! The decision may come from the decision cache; the context MAC never does. It binds this request's API and stage
//! and an expiry, so it is made for each answer. When the key set is unavailable (past its stale bound while reads
//! fail) an Allow becomes a 401 counted as the authorizer's outage (`context_keys_unavailable`), never an Allow
//! without a MAC.

use std::time::{Instant, SystemTime};

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as RequestEvent;
use http::header::AUTHORIZATION;
use lambda_runtime::LambdaEvent;
use tb_shared::telemetry::{Unit, SERVICE_DIMENSION};

use crate::app::App;
use crate::decision::{Decision, Presented, UnauthorizedReason};
use crate::metrics::{self, names, outage, SERVICE};
use crate::response::{respond, AuthorizerResponse, Signing, Unauthorized};

/// Handles one REQUEST authorizer event, at the time the app's clock gives.
pub async fn handle(app: &App, event: LambdaEvent<RequestEvent>) -> Result<AuthorizerResponse, Unauthorized> {
    handle_request(app, &event.payload, app.clock.now()).await
}

/// The handler's work on a parsed event at a given time (the seam tests and benchmarks use).
pub async fn handle_request(
    app: &App,
    req: &RequestEvent,
    now: SystemTime,
) -> Result<AuthorizerResponse, Unauthorized> {
    let started = Instant::now();
    let request_id = req.request_context.request_id.as_deref().unwrap_or("-");
    let method_arn = req.method_arn.as_deref().unwrap_or("");

    let (mut decision, info) = match presented(req) {
        Ok(p) => app.authorizer.decide(p, now).await,
        Err(reason) => (Decision::Unauthorized(reason), Default::default()),
    };
    // Only an Allow is signed, so only an Allow needs the keys: a Deny or a 401 is answered during a key outage.
    let mut keys = None;
    if matches!(decision, Decision::Allow(_)) {
        match app.context_keys.current().await {
            Ok(k) => keys = Some(k),
            Err(e) => decision = Decision::Unauthorized(UnauthorizedReason::ContextKeysUnavailable(e.to_string())),
        }
    }

    let outage = match &decision {
        Decision::Unauthorized(r) => metrics::outage_of(r),
        _ => None,
    };
    let mut m = app.metrics.start();
    m.dimension(SERVICE_DIMENSION, SERVICE).property("requestId", request_id);
    match &decision {
        Decision::Allow(a) => {
            tracing::info!(
                event = "decision",
                request_id,
                decision = "allow",
                caller = %app.hasher.display(&a.context.caller_id),
                auth_method = a.context.auth_method.as_str(),
                credential = %a.context.credential_fingerprint,
                cache_hit = info.cache_hit,
                trust_refreshed = info.trust_refreshed,
                "caller allowed"
            );
            m.put(names::ALLOWS, Unit::Count, 1.0);
        }
        Decision::Deny(d) => {
            let caller = d.caller.as_ref().map(|c| app.hasher.display(c)).unwrap_or_else(|| "unknown".into());
            tracing::warn!(
                event = "decision",
                request_id,
                decision = "deny",
                reason = d.reason.code(),
                caller = %caller,
                credential = %d.fingerprint,
                cache_hit = info.cache_hit,
                trust_refreshed = info.trust_refreshed,
                "caller denied"
            );
            m.put(names::DENIALS, Unit::Count, 1.0).property("reason", d.reason.code());
        }
        Decision::Unauthorized(r) => {
            match outage {
                Some(outage) => tracing::error!(
                    event = "decision",
                    request_id,
                    decision = "unauthorized",
                    reason = r.code(),
                    detail = r.detail(),
                    outage,
                    "the authorizer cannot decide; refusing"
                ),
                None => tracing::warn!(
                    event = "decision",
                    request_id,
                    decision = "unauthorized",
                    reason = r.code(),
                    detail = r.detail(),
                    "credential missing or invalid"
                ),
            }
            m.put(names::UNAUTHORIZED, Unit::Count, 1.0).property("reason", r.code());
        }
    }
    if info.cache_hit {
        m.put(names::DECISION_CACHE_HITS, Unit::Count, 1.0);
    }
    m.put(names::DECISION_LATENCY, Unit::Microseconds, started.elapsed().as_micros() as f64);
    m.flush();
    if let Decision::Unauthorized(r) = &decision {
        metrics::unauthorized_by_reason(&app.metrics, r, request_id);
    }

    if let Some(outage) = outage {
        metrics::authorizer_error(&app.metrics, outage, Some(request_id));
    }
    if app.take_trust_read_failures() > 0 {
        // The refresh this request ran (or one since the last request) could not read the trust material.
        metrics::authorizer_error(&app.metrics, outage::TRUST_REFRESH_FAILED, Some(request_id));
    }

    let signing = keys.as_deref().map(|keys| Signing { keys, now, ttl: app.context_mac_ttl });
    let answer = respond(&decision, method_arn, signing);
    if answer.is_err() && !matches!(decision, Decision::Unauthorized(_)) {
        tracing::error!(event = "bad_method_arn", request_id, "methodArn is not an execute-api ARN; refusing");
        metrics::authorizer_error(&app.metrics, outage::BAD_METHOD_ARN, Some(request_id));
    }
    answer
}

/// Finds the credentials on the request. The certificate comes only from `requestContext.identity.clientCert`
/// (API Gateway fills it after the TLS handshake; a header cannot forge it); the token only from exactly one
/// `Authorization: Bearer` header.
fn presented(req: &RequestEvent) -> Result<Presented<'_>, UnauthorizedReason> {
    let client_cert_pem = req
        .request_context
        .identity
        .as_ref()
        .and_then(|i| i.client_cert.as_ref())
        .and_then(|c| c.client_cert_pem.as_deref())
        .filter(|p| !p.is_empty());

    let mut values = req.headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() || req.multi_value_headers.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err(UnauthorizedReason::MalformedAuthorization);
    }
    let bearer = match first {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| UnauthorizedReason::MalformedAuthorization)?;
            let (scheme, token) = v.split_once(' ').ok_or(UnauthorizedReason::MalformedAuthorization)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
                return Err(UnauthorizedReason::MalformedAuthorization);
            }
            Some(token)
        }
    };
    Ok(Presented { client_cert_pem, bearer })
}
