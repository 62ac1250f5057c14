//! Cognito's `GetClientToken` API: an M2M access token from the app client's id and secret, through the AWS SDK
//! (JSON protocol), with the approved scopes and the signed caller claims as `ClientMetadata`. No user-pool domain is
//! needed; the app client must have `ALLOW_CLIENT_TOKEN_AUTH` as its only flow. The SDK signs the request with the
//! function's AWS credentials, but Cognito does not evaluate IAM for this operation: the app client's id and secret
//! are what authenticates, as at the hosted endpoint, so the function's role needs no Cognito permission.
//!
//! One SDK client per (region, endpoint), built on first use from the function's AWS configuration (the Lambda's
//! role credentials) and kept for the life of the instance. The SDK's own retries are off: the broker's retry,
//! breaker and deadline apply to this mode exactly as to the hosted endpoint, and Cognito's error types map to the
//! same classification ([`classify`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cognito;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use secrecy::ExposeSecret;
use tb_shared::ids::ScopeSet;
use tokio::sync::OnceCell;

use super::{checked_token, Attempt, ClientMetadata, IssuedToken, UpstreamError};
use crate::credentials::ClientCredentials;

/// The SDK clients, by region and endpoint.
pub(super) struct ClientTokenApi {
    connect_timeout: Duration,
    sdk: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<HashMap<(String, Option<String>), cognito::Client>>,
}

impl std::fmt::Debug for ClientTokenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTokenApi").field("connect_timeout", &self.connect_timeout).finish_non_exhaustive()
    }
}

impl ClientTokenApi {
    pub(super) fn new(connect_timeout: Duration) -> Self {
        ClientTokenApi { connect_timeout, sdk: OnceCell::new(), clients: Mutex::new(HashMap::new()) }
    }

    pub(super) fn use_aws_config(&self, sdk: aws_config::SdkConfig) -> bool {
        self.sdk.set(sdk).is_ok()
    }

    /// The client for `region` at `endpoint_url` (AWS's own endpoint when `None`).
    async fn client(&self, region: &str, endpoint_url: Option<&url::Url>) -> cognito::Client {
        let key = (region.to_owned(), endpoint_url.map(|u| u.as_str().trim_end_matches('/').to_owned()));
        if let Some(c) = tb_shared::sync::lock(&self.clients).get(&key) {
            return c.clone();
        }
        // The function's AWS configuration, read once: the role's credentials from the Lambda environment.
        let sdk = self.sdk.get_or_init(|| async { tb_shared::aws::lambda_sdk_config() }).await;
        let timeouts =
            aws_smithy_types::timeout::TimeoutConfig::builder().connect_timeout(self.connect_timeout).build();
        let mut conf = cognito::config::Builder::from(sdk)
            .region(cognito::config::Region::new(key.0.clone()))
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        // Only the credentials say where the secret may go: an `AWS_ENDPOINT_URL` in the environment (meant for the
        // function's other clients) is never inherited, so without `endpoint_url` it is AWS's own endpoint.
        conf.set_endpoint_url(key.1.clone());
        let client = cognito::Client::from_conf(conf.build());
        tb_shared::sync::lock(&self.clients).insert(key, client.clone());
        client
    }

    /// One attempt, within `timeout`.
    pub(super) async fn attempt(
        &self,
        region: &str,
        endpoint_url: Option<&url::Url>,
        creds: &ClientCredentials,
        scopes: &ScopeSet,
        metadata: &ClientMetadata,
        timeout: Duration,
    ) -> Attempt {
        let started = tokio::time::Instant::now();
        let client = self.client(region, endpoint_url).await;
        let Some(left) = timeout.checked_sub(started.elapsed()) else {
            return Attempt::Retryable("upstream_timeout");
        };
        let call = client
            .get_client_token()
            .client_id(&creds.client_id)
            .secret(creds.client_secret.expose_secret())
            .set_scopes(Some(scopes.iter().map(|s| s.as_str().to_owned()).collect()))
            .set_client_metadata((!metadata.is_empty()).then(|| metadata.clone().into_iter().collect()))
            .send();
        let out = match tokio::time::timeout(left, call).await {
            Err(_) => return Attempt::Retryable("upstream_timeout"),
            Ok(Err(e)) => return classify(&e),
            Ok(Ok(out)) => out,
        };
        let Some(result) = out.client_authentication_result else {
            return Attempt::Done(Err(UpstreamError::BadResponse("answer carries no ClientAuthenticationResult")));
        };
        let expires_in = u64::try_from(result.expires_in).ok();
        Attempt::Done(
            checked_token(result.token_type.as_deref(), expires_in, result.access_token)
                // GetClientToken does not say which scopes it granted: as requested, or it would have refused.
                .map(|(access_token, expires_in)| IssuedToken { access_token, expires_in, scope: scopes.clone() }),
        )
    }
}

/// Cognito's error types, mapped onto the hosted endpoint's classification: throttling and internal errors are
/// retried like a 429 or 5xx; a refused secret is `invalid_client` (the credentials are read again once); anything
/// else is an answer the broker cannot use, named by a fixed string (Cognito's message is never kept).
fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Attempt {
    match e {
        SdkError::TimeoutError(_) => Attempt::Retryable("upstream_timeout"),
        SdkError::DispatchFailure(d) if d.is_timeout() => Attempt::Retryable("upstream_timeout"),
        SdkError::DispatchFailure(_) => Attempt::Retryable("upstream_connect_failed"),
        SdkError::ResponseError(_) => Attempt::Retryable("upstream_5xx"),
        SdkError::ServiceError(s) => Attempt::from_code(s.err().code()),
        SdkError::ConstructionFailure(_) => {
            Attempt::Done(Err(UpstreamError::BadResponse("GetClientToken request could not be built or signed")))
        }
        _ => Attempt::Retryable("upstream_connect_failed"),
    }
}

impl Attempt {
    fn from_code(code: Option<&str>) -> Attempt {
        let bad = |why| Attempt::Done(Err(UpstreamError::BadResponse(why)));
        match code.unwrap_or_default() {
            "TooManyRequestsException" | "LimitExceededException" => Attempt::Retryable("upstream_throttled"),
            "InternalErrorException" | "InternalServerError" | "ServiceUnavailable" => {
                Attempt::Retryable("upstream_5xx")
            }
            "NotAuthorizedException" => Attempt::Done(Err(UpstreamError::InvalidClient)),
            "InvalidParameterException" => bad("upstream refused the approved scopes or the request"),
            "ResourceNotFoundException" => bad("app client or user pool not found"),
            "OperationNotEnabledException" => bad("app client may not use GetClientToken"),
            "ForbiddenException" => bad("upstream web ACL refused the request"),
            // Cognito could not run the trigger (throttled, timed out, starting): passing, like a 5xx.
            "UnexpectedLambdaException" => Attempt::Retryable("upstream_5xx"),
            // The trigger refused the token or answered something Cognito cannot use: the same request fails again.
            "UserLambdaValidationException" | "InvalidLambdaResponseException" => {
                bad("pre token generation trigger refused the token")
            }
            _ => bad("upstream error answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(a: Attempt) -> Option<UpstreamError> {
        match a {
            Attempt::Done(Err(e)) => Some(e),
            _ => None,
        }
    }
    fn retry(a: Attempt) -> Option<&'static str> {
        match a {
            Attempt::Retryable(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn cognito_error_types_map_onto_the_classification() {
        assert_eq!(retry(Attempt::from_code(Some("TooManyRequestsException"))), Some("upstream_throttled"));
        assert_eq!(retry(Attempt::from_code(Some("InternalErrorException"))), Some("upstream_5xx"));
        assert_eq!(retry(Attempt::from_code(Some("UnexpectedLambdaException"))), Some("upstream_5xx"));
        assert_eq!(done(Attempt::from_code(Some("NotAuthorizedException"))), Some(UpstreamError::InvalidClient));
        for code in [
            "InvalidParameterException",
            "ResourceNotFoundException",
            "OperationNotEnabledException",
            "ForbiddenException",
            "UserLambdaValidationException",
            "InvalidLambdaResponseException",
            "SomethingNew",
        ] {
            assert!(matches!(done(Attempt::from_code(Some(code))), Some(UpstreamError::BadResponse(_))), "{code}");
        }
        assert!(matches!(done(Attempt::from_code(None)), Some(UpstreamError::BadResponse(_))));
    }
}
