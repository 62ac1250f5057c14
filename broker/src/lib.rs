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
//! - [`TokenReuse`]: the opt-in in-memory reuse of still-fresh tokens, and [`FleetCache`] behind it: the opt-in
//!   fleet-wide reuse through DynamoDB, sealed with KMS data keys, one Cognito call per key through a lease.

#![warn(missing_docs, unreachable_pub)]

mod app;
mod caller_context;
mod config;
mod credentials;
mod error;
mod fleet;
mod handler;
mod metrics;
mod quota;
mod request;
mod response;
mod reuse;
mod upstream;

pub use app::{build, build_for_aws, App, Deps, InitError};
pub use config::Config;
pub use credentials::{
    is_valid_ssm_prefix, CacheConfig, CachedCredentials, ClientCredentials, CredentialError, CredentialSource,
    Credentials, MemoryCredentialSource, SsmConfig, SsmCredentialSource, UpstreamEndpoint, MODE_GET_CLIENT_TOKEN,
    MODE_TOKEN_ENDPOINT,
};
pub use error::BrokerError;
pub use fleet::{DataKeySource, FleetCache, FleetSettings, KmsDataKeys};
pub use handler::handle;
pub use metrics::{names as metric_names, SERVICE as METRICS_SERVICE};
pub use quota::{
    Charge, ChargedCounter, DynamoQuotaConfig, DynamoQuotaStore, MemoryQuotaStore, QuotaError, QuotaOutcome, QuotaStore,
};
pub use reuse::TokenReuse;

/// The fleet token cache's layout and encryption context (see `docs/token-cache.md`): what the template, tools and
/// tests need to create the table, grant KMS, and look at items.
pub mod token_cache {
    pub use crate::fleet::sealed::{APP_CLIENT_KEY, CERT_THUMBPRINT_KEY, PURPOSE, PURPOSE_KEY, SCOPES_KEY};
    pub use crate::fleet::table::{KEY_ATTR, TTL_ATTR};
}
pub use upstream::{ClientMetadata, Upstream, UpstreamSettings};

/// The DynamoDB quota table's layout (see `docs/quota-table.md`): what tools and tests need to create the table and
/// read its counters.
pub mod quota_table {
    pub use crate::quota::dynamo::{counter_key, COUNT_ATTR, KEY_ATTR, TTL_ATTR};
}
