//! What every AWS SDK client in the project shares: the SDK configuration of a function running in Lambda, how a
//! time budget becomes SDK timeouts, and how an SDK failure is described in a log line or an error without request
//! contents.

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;

/// The AWS SDK configuration of a function running in Lambda: the region Lambda sets (`AWS_REGION`, else
/// `AWS_DEFAULT_REGION`), the execution role's credentials from the environment variables Lambda sets
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and `AWS_ENDPOINT_URL` when set (an AWS API
/// emulator in tests and the local stack).
///
/// Not `aws_config::load_defaults`: its provider chains (profile files, SSO, web identity through STS, the container
/// and instance metadata endpoints) are never used inside Lambda, which always hands a function its role's
/// credentials in the environment, yet they link the STS client and the metadata clients into every function binary:
/// a few hundred kilobytes of each deployment zip, which must stay under its size limit. Clients built from this
/// configuration get the SDK's default HTTPS client, sleep and time source from their own defaults.
pub fn lambda_sdk_config() -> aws_config::SdkConfig {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials));
    if let Some(url) = env("AWS_ENDPOINT_URL") {
        b = b.endpoint_url(url);
    }
    b.build()
}

/// Default budget of one SDK operation, retries included: short enough that a slow dependency becomes a quick,
/// classified failure inside a Lambda's time, long enough for a retry after one stalled attempt.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(1_500);

/// SDK timeouts for a total budget per operation: each attempt gets half, so one stalled attempt still leaves room
/// for a retry; connecting gets at most one second (a refused or black-holed endpoint should not use the whole
/// budget). Waiting for the answer once the request is sent is bounded by the attempt (a server that accepts the
/// connection and then stays silent is cut at the socket, not only by the attempt's timer); it is not capped at a
/// second, because a request queued behind others at a slow but working endpoint must not be cut before the attempt
/// would be.
pub fn timeouts(total: Duration) -> TimeoutConfig {
    let attempt = total / 2;
    TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(1)))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(total)
        .build()
}

/// Describes an SDK failure by kind and service error code only: enough to tell a timeout from a permissions
/// problem, with nothing from the request (which may carry a secret parameter value).
pub fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out connecting".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "connection failed".to_owned(),
        SdkError::DispatchFailure(_) => "request could not be sent".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ServiceError(s) => format!("service error {}", s.err().code().unwrap_or("unknown")),
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        _ => "unknown SDK error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_get_half_connect_at_most_a_second_and_reads_the_attempt() {
        let t = timeouts(Duration::from_secs(4));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(4)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(t.read_timeout(), Some(Duration::from_secs(2)));
        let t = timeouts(Duration::from_millis(600));
        assert_eq!(t.connect_timeout(), Some(Duration::from_millis(300)));
        assert_eq!(t.read_timeout(), Some(Duration::from_millis(300)));
    }
}
