//! `GetClientToken`: Cognito's API operation for machine-to-machine access tokens, the JSON 1.1 twin of the
//! token endpoint's client-credentials grant. NOT FOR PRODUCTION.
//!
//! What it mimics (API Reference, `GetClientToken`): request `ClientId`, `Secret` (an active secret of the app
//! client), optional `Scopes` ("If you don't specify any scopes, Amazon Cognito authorizes the scopes that are
//! configured for the app client"; an empty list is taken the same way) and optional `ClientMetadata` (string to
//! string, handed to the pre-token-generation trigger unchecked); answer
//! `{"ClientAuthenticationResult":{"AccessToken","ExpiresIn","TokenType":"Bearer"}}`. The token is the one the token
//! endpoint would issue for the same client and scopes. The operation is not signed with IAM credentials ("Amazon
//! Cognito doesn't evaluate IAM policies in requests for this API operation"), so nothing about the SDK's
//! signature is checked.
//!
//! Errors, from the exceptions the operation documents (`ForbiddenException`, `InternalErrorException`,
//! `InvalidParameterException`, `NotAuthorizedException`, `OperationNotEnabledException`,
//! `ResourceNotFoundException`, `TooManyRequestsException`), all HTTP 400 but the internal error:
//! - an unknown `ClientId`: `ResourceNotFoundException`, as Cognito's other client-id operations answer;
//! - a `Secret` that is none of the client's active secrets (compared in constant time with each):
//!   `NotAuthorizedException`;
//! - a client whose only flow is not `ALLOW_CLIENT_TOKEN_AUTH` (a [`super::ClientFlow::ClientCredentials`] client):
//!   `NotAuthorizedException`. The reference does not say which exception this is. `OperationNotEnabledException`
//!   is documented for operations unavailable "in the current region or for the current user pool configuration",
//!   a pool-wide condition, while this one is about one app client, which "isn't authorized" for the flow;
//!   `InvalidParameterException` (what `InitiateAuth` answers for a disabled flow) would make a misconfigured app
//!   client look like a malformed request to the caller, which must treat the two differently. So the stand-in
//!   answers what the client did wrong: used a flow it is not allowed;
//! - a scope the client is not allowed, a malformed scope, or no scope at all for a client without any:
//!   `InvalidParameterException`;
//! - a missing or mistyped member (no `ClientId`, a non-string metadata value): `InvalidParameterException`;
//! - the fault switches: a 5xx fault is `InternalErrorException` with the fault's status (500 for the usual
//!   `fail_next(n, 500)`); throttling is `TooManyRequestsException` with HTTP 400 in either [`super::ThrottleStyle`]
//!   (the style exists because the OAuth endpoint's throttling answer is undocumented; the API's is documented);
//!   delays hold the answer as at the token endpoint;
//! - the pre-token-generation trigger: see the `pretoken` module.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::ApiError;
use super::auth::parse_scope;
use super::faults::Injected;
use super::issue::{self, AuthFailure, EntryPoint, Grant, IssueError, ScopeRefusal};
use super::{ClientFlow, Shared};

/// The request members. No `Debug`: it holds the secret.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetClientTokenRequest {
    client_id: String,
    secret: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    client_metadata: Option<HashMap<String, String>>,
}

/// Counts a `GetClientToken` call as a token request, attributed to its `ClientId` when the body names one.
pub(super) fn count(shared: &Shared, body: &[u8]) {
    let named = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("ClientId").and_then(Value::as_str).map(str::to_owned));
    issue::count_token_request(shared, named);
}

/// Applies the fault switches to a `GetClientToken` call: waits out a delay, then answers an injected fault as the
/// API would.
pub(super) async fn injected_fault(shared: &Shared) -> Option<ApiError> {
    let (delay, injected) = shared.faults.take();
    if delay > Duration::ZERO {
        tokio::time::sleep(delay).await;
    }
    let injected = injected?;
    tracing::debug!(?injected, "cognito stand-in answered GetClientToken with an injected fault");
    Some(match injected {
        Injected::ServerError(code) => ApiError::new("InternalErrorException", "Internal server error.")
            .with_status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)),
        Injected::Throttled(_) => ApiError::new("TooManyRequestsException", "Rate exceeded"),
    })
}

/// Handles one `GetClientToken` request.
pub(super) fn get_client_token(shared: &Shared, r: GetClientTokenRequest) -> Result<Value, ApiError> {
    if r.client_id.is_empty() {
        return Err(ApiError::invalid("ClientId must not be empty."));
    }
    let client = issue::authenticate(shared, &r.client_id, &r.secret).map_err(|e| {
        tracing::debug!(client_id = %r.client_id, failure = ?e, "cognito stand-in refused GetClientToken");
        match e {
            AuthFailure::UnknownClient => {
                ApiError::not_found(format!("User pool client {} does not exist.", r.client_id))
            }
            AuthFailure::WrongSecret => ApiError::new("NotAuthorizedException", "Client authentication failed."),
        }
    })?;
    if client.flow != ClientFlow::ClientTokenAuth {
        tracing::debug!(client_id = %r.client_id, "cognito stand-in: GetClientToken for a client without the flow");
        return Err(ApiError::new(
            "NotAuthorizedException",
            "The app client is not enabled for ALLOW_CLIENT_TOKEN_AUTH.",
        ));
    }
    let requested = requested_scopes(r.scopes.unwrap_or_default())?;
    let scopes = issue::grant_scopes(requested, client.allowed_scopes).map_err(|e| match e {
        ScopeRefusal::NotAllowed => ApiError::invalid("Invalid scope requested."),
        ScopeRefusal::NoneGranted => ApiError::invalid("The app client has no scopes to grant."),
    })?;
    let grant = Grant {
        entry: EntryPoint::GetClientToken,
        client_id: &r.client_id,
        scopes,
        validity: client.validity,
        metadata: r.client_metadata.as_ref(),
    };
    let issued = issue::issue(shared, grant).map_err(|e| {
        let message = e.trigger_message().unwrap_or_default();
        match e {
            IssueError::TriggerFailed(_) => ApiError::new("UserLambdaValidationException", message),
            IssueError::TriggerResponseInvalid => ApiError::new("InvalidLambdaResponseException", message),
            IssueError::Signing => ApiError::new("InternalErrorException", "Internal server error.")
                .with_status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    })?;
    Ok(json!({
        "ClientAuthenticationResult": {
            "AccessToken": issued.access_token,
            "ExpiresIn": issued.expires_in,
            "TokenType": "Bearer",
        }
    }))
}

/// Checks each requested scope with the token endpoint's grammar (one scope token each: no blank, no forbidden
/// character) and drops duplicates, keeping the caller's order.
fn requested_scopes(scopes: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        match parse_scope(&s) {
            Some(tokens) if tokens.len() == 1 => {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            _ => return Err(ApiError::invalid("Invalid scope requested.")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_scopes_are_single_tokens_without_duplicates() {
        let got = requested_scopes(vec!["a/r".into(), "b/w".into(), "a/r".into()]).ok();
        assert_eq!(got, Some(vec!["a/r".to_owned(), "b/w".to_owned()]));
        assert!(requested_scopes(vec!["a/r b/w".into()]).is_err());
        assert!(requested_scopes(vec![String::new()]).is_err());
        assert!(requested_scopes(vec!["a\"b".into()]).is_err());
        assert_eq!(requested_scopes(vec![]).ok(), Some(vec![]));
    }
}
