//! The user-pool API side of the stand-in: Cognito's JSON 1.1 protocol on `POST /`, so the real AWS SDK
//! (`aws-sdk-cognitoidentityprovider`) pointed at the stand-in's base URL works. NOT FOR PRODUCTION.
//!
//! The protocol (AWS JSON 1.1, as the SDK speaks it): `POST /` with `X-Amz-Target:
//! AWSCognitoIdentityProviderService.<Operation>` and `Content-Type: application/x-amz-json-1.1`; the request and
//! answer are JSON objects with PascalCase members; timestamps are epoch seconds as JSON numbers; an error is HTTP
//! 400 (500 for internal errors) with `{"__type": "<ExceptionName>", "message": "..."}`.
//!
//! Operations served, with the errors Cognito documents for them (API Reference):
//! - `GetClientToken` (`ClientId`, `Secret`, optional `Scopes` and `ClientMetadata`): a client-credentials access
//!   token for an `ALLOW_CLIENT_TOKEN_AUTH` app client; see the `client_token` module for its errors. It is the
//!   only operation the fault switches and the token counters apply to: it is a token request, the others are not.
//! - `AddUserPoolClientSecret` (`UserPoolId`, `ClientId`, optional `ClientSecret` of 24-64 `[\w+]`): answers
//!   `ClientSecretDescriptor` with `ClientSecretId`, `ClientSecretCreateDate` and, only when the stand-in generated
//!   the value, `ClientSecretValue`. A third secret is `LimitExceededException`.
//! - `ListUserPoolClientSecrets`: `ClientSecrets`, ids and creation dates, never values.
//! - `DeleteUserPoolClientSecret` (`ClientSecretId`): an empty answer; an unknown id is `ResourceNotFoundException`,
//!   the last remaining secret `InvalidParameterException`.
//!
//! An unknown user pool or app client is `ResourceNotFoundException`; a missing or malformed member is
//! `InvalidParameterException`. Which exception Cognito picks for the secret limit and the last secret is not spelled
//! out in its reference (both operations list `LimitExceededException` and `InvalidParameterException`); these are
//! the stand-in's reading. Requests are not authenticated: the SDK signs them, and the signature is not checked.
//!
//! Adding an operation: a variant of [`Operation`], its name in [`Operation::from_target`], a handler in
//! [`dispatch`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client_token;
use super::keys::random_uuid;
use super::secrets::{SecretEntry, SecretsError};
use super::{lock, random_secret, Shared};

/// The `X-Amz-Target` prefix of every user-pool operation.
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";

/// The operations the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    GetClientToken,
    AddUserPoolClientSecret,
    ListUserPoolClientSecrets,
    DeleteUserPoolClientSecret,
}

impl Operation {
    /// The operation an `X-Amz-Target` value names, if the stand-in serves it.
    fn from_target(target: &str) -> Option<Self> {
        match target.strip_prefix(TARGET_PREFIX)? {
            "GetClientToken" => Some(Operation::GetClientToken),
            "AddUserPoolClientSecret" => Some(Operation::AddUserPoolClientSecret),
            "ListUserPoolClientSecrets" => Some(Operation::ListUserPoolClientSecrets),
            "DeleteUserPoolClientSecret" => Some(Operation::DeleteUserPoolClientSecret),
            _ => None,
        }
    }

    /// The operation's name, as counted by [`super::CognitoStandin::api_calls`].
    pub(super) fn name(self) -> &'static str {
        match self {
            Operation::GetClientToken => "GetClientToken",
            Operation::AddUserPoolClientSecret => "AddUserPoolClientSecret",
            Operation::ListUserPoolClientSecrets => "ListUserPoolClientSecrets",
            Operation::DeleteUserPoolClientSecret => "DeleteUserPoolClientSecret",
        }
    }
}

/// A Cognito API error: its HTTP status (400 but for internal errors), exception name and message. A message never
/// holds a secret or a metadata value.
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind, message: message.into() }
    }

    /// An error with another status than 400 (`InternalErrorException` is a 500).
    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", message)
    }
}

fn headers() -> [(header::HeaderName, HeaderValue); 2] {
    let request_id = HeaderValue::from_str(&random_uuid()).unwrap_or(HeaderValue::from_static("unknown"));
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1")),
        (header::HeaderName::from_static("x-amzn-requestid"), request_id),
    ]
}

fn error_answer(e: ApiError) -> Response {
    tracing::debug!(error = e.kind, "cognito stand-in API refused a request");
    let mut resp = (e.status, headers(), json!({ "__type": e.kind, "message": e.message }).to_string()).into_response();
    resp.headers_mut().insert(header::HeaderName::from_static("x-amzn-errortype"), HeaderValue::from_static(e.kind));
    resp
}

/// `POST /`: one JSON 1.1 operation.
pub(super) async fn dispatch(State(shared): State<Arc<Shared>>, headers_in: HeaderMap, body: Bytes) -> Response {
    let target = headers_in.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(op) = Operation::from_target(target) else {
        return error_answer(ApiError::new("UnknownOperationException", "the stand-in does not serve this operation"));
    };
    if op == Operation::GetClientToken {
        // A token request: counted and subject to the fault switches before anything is checked, as at the token
        // endpoint.
        client_token::count(&shared, &body);
        if let Some(e) = client_token::injected_fault(&shared).await {
            return error_answer(e);
        }
    }
    let json_1_1 = headers_in
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-amz-json-1.1"));
    if !json_1_1 {
        return error_answer(ApiError::new(
            "SerializationException",
            "Content-Type must be application/x-amz-json-1.1",
        ));
    }
    *lock(&shared.counters.api_calls).entry(op.name()).or_insert(0) += 1;
    let result = match op {
        Operation::GetClientToken => parse(&body).and_then(|r| client_token::get_client_token(&shared, r)),
        Operation::AddUserPoolClientSecret => parse(&body).and_then(|r| add_secret(&shared, r)),
        Operation::ListUserPoolClientSecrets => parse(&body).and_then(|r| list_secrets(&shared, r)),
        Operation::DeleteUserPoolClientSecret => parse(&body).and_then(|r| delete_secret(&shared, r)),
    };
    match result {
        Ok(v) => (StatusCode::OK, headers(), v.to_string()).into_response(),
        Err(e) => error_answer(e),
    }
}

/// Reads the request members. serde's messages are not passed on: a request may carry a secret.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::invalid("the request is not a valid JSON object for this operation"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClientRef {
    user_pool_id: String,
    client_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddRequest {
    #[serde(flatten)]
    client: ClientRef,
    client_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    #[serde(flatten)]
    client: ClientRef,
    #[serde(rename = "NextToken")]
    _next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    #[serde(flatten)]
    client: ClientRef,
    client_secret_id: String,
}

/// Checks the pool and client, then runs `f` on the client's secrets under the lock.
fn with_client<R>(
    shared: &Shared,
    c: &ClientRef,
    f: impl FnOnce(&mut super::secrets::ClientSecrets) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    if c.user_pool_id != shared.pool_id {
        return Err(ApiError::not_found(format!("User pool {} does not exist.", c.user_pool_id)));
    }
    let mut clients = lock(&shared.clients);
    let entry = clients
        .get_mut(&c.client_id)
        .ok_or_else(|| ApiError::not_found(format!("User pool client {} does not exist.", c.client_id)))?;
    f(&mut entry.secrets)
}

/// Epoch seconds with milliseconds, the JSON 1.1 timestamp form.
fn timestamp(e: &SecretEntry) -> f64 {
    // Millisecond counts of real dates fit f64's 53-bit mantissa exactly.
    e.created_ms as f64 / 1000.0
}

fn add_secret(shared: &Shared, r: AddRequest) -> Result<Value, ApiError> {
    let custom = r.client_secret.is_some();
    if let Some(s) = &r.client_secret {
        let ok = (24..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'+');
        if !ok {
            return Err(ApiError::invalid("ClientSecret must be 24-64 characters of [\\w+]"));
        }
    }
    let value = r.client_secret.unwrap_or_else(random_secret);
    let (id, created) = with_client(shared, &r.client, |secrets| match secrets.add(&value) {
        Ok(e) => Ok((e.id.clone(), timestamp(e))),
        Err(SecretsError::Limit) => {
            Err(ApiError::new("LimitExceededException", "An app client can have at most 2 client secrets."))
        }
        Err(_) => Err(ApiError::new("InternalServerException", "unexpected secret state")),
    })?;
    tracing::info!(client_id = %r.client.client_id, secret_id = %id, "cognito stand-in added a client secret");
    let mut descriptor = json!({ "ClientSecretId": id, "ClientSecretCreateDate": created });
    if !custom {
        descriptor["ClientSecretValue"] = Value::String(value);
    }
    Ok(json!({ "ClientSecretDescriptor": descriptor }))
}

fn list_secrets(shared: &Shared, r: ListRequest) -> Result<Value, ApiError> {
    let list = with_client(shared, &r.client, |secrets| {
        Ok(secrets
            .entries()
            .iter()
            .map(|e| json!({ "ClientSecretId": e.id, "ClientSecretCreateDate": timestamp(e) }))
            .collect::<Vec<_>>())
    })?;
    Ok(json!({ "ClientSecrets": list }))
}

fn delete_secret(shared: &Shared, r: DeleteRequest) -> Result<Value, ApiError> {
    with_client(shared, &r.client, |secrets| match secrets.delete(&r.client_secret_id) {
        Ok(()) => Ok(()),
        Err(SecretsError::UnknownId) => {
            Err(ApiError::not_found(format!("Client secret {} does not exist.", r.client_secret_id)))
        }
        Err(SecretsError::LastSecret) => {
            Err(ApiError::invalid("The last client secret of an app client cannot be deleted."))
        }
        Err(SecretsError::Limit) => Err(ApiError::new("InternalServerException", "unexpected secret state")),
    })?;
    tracing::info!(client_id = %r.client.client_id, secret_id = %r.client_secret_id, "cognito stand-in deleted a client secret");
    Ok(json!({}))
}
