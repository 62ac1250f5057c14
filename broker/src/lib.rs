//! The broker Lambda: turns an authorised `POST /oauth2/token` into a Cognito client-credentials grant under the
//! caller's policy, quotas and credentials, and answers with a token response that leaks nothing.
//!
//! Read in this order:
//! - [`Config`] (the environment) and [`build`] with its [`Deps`] (the adapters): the one composition root that the
//!   Lambda's `main`, the local stack, the tests and the benchmarks share;
//! - [`handle`]: one proxy event in, one answer out (caller context and its MAC, request grammar, scopes, reuse, quota,
//!   credentials, upstream, response), with its log line and metrics;
//! - [`BrokerError`]: every refusal, and the one mapping to what a caller sees;
//! - the outside systems, each behind a trait with its adapters: [`QuotaStore`] (DynamoDB, memory),
//!   [`CredentialSource`] (SSM, memory) behind the [`CachedCredentials`] cache, and [`Upstream`] (Cognito's hosted
//!   token endpoint or its `GetClientToken` API, per app client, with timeouts, one retry and a circuit breaker);
//! - [`TokenReuse`]: the opt-in in-memory reuse of still-fresh tokens.

#![warn(missing_docs, unreachable_pub)]

mod app;
mod caller_context;
mod config;
mod credentials;
mod error;
mod handler;
mod metrics;
mod quota;
mod request;
mod response;
mod reuse;
mod upstream;

pub use app::{build, App, Deps, InitError};
pub use config::Config;
pub use credentials::{
    is_valid_ssm_prefix, CacheConfig, CachedCredentials, ClientCredentials, CredentialError, CredentialSource,
    Credentials, MemoryCredentialSource, SsmConfig, SsmCredentialSource, UpstreamEndpoint, MODE_GET_CLIENT_TOKEN,
    MODE_TOKEN_ENDPOINT,
};
pub use error::BrokerError;
pub use handler::handle;
pub use metrics::{names as metric_names, SERVICE as METRICS_SERVICE};
pub use quota::{
    Charge, ChargedCounter, DynamoQuotaConfig, DynamoQuotaStore, MemoryQuotaStore, QuotaError, QuotaOutcome, QuotaStore,
};
pub use reuse::TokenReuse;
pub use upstream::{ClientMetadata, Upstream, UpstreamSettings};

/// The DynamoDB quota table's layout (see `docs/quota-table.md`): what tools and tests need to create the table and
/// read its counters.
pub mod quota_table {
    pub use crate::quota::dynamo::{counter_key, COUNT_ATTR, KEY_ATTR, TTL_ATTR};
}
