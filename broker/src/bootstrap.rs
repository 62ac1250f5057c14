//! Cold-start wiring: from a [`BrokerConfig`] to a ready [`Broker`] with its AWS clients, caches and upstream client.
//!
//! Kept out of `main.rs` so the moto test can build the broker exactly as the Lambda does, and so every failure at
//! init is a typed error naming what is wrong.

use std::sync::Arc;

use secrecy::ExposeSecret;
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CallerIdHasher, MetricsSink};

use crate::config::BrokerConfig;
use crate::credentials::{CacheConfig, CachedCredentials, SsmConfig, SsmCredentialSource};
use crate::handler::Broker;
use crate::quota::{DynamoQuotaConfig, DynamoQuotaStore};
use crate::reuse::TokenReuse;
use crate::upstream::{Upstream, UpstreamSettings};

/// Why the function could not start. Messages name the setting, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("policy: {0}")]
    Policy(#[from] tb_shared::policy::PolicyError),
    #[error("the policy sets hash_caller_ids but CALLER_HASH_KEY is not set")]
    MissingHashKey,
    #[error("credential source: {0}")]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error("upstream HTTP client: {0}")]
    Upstream(#[from] reqwest::Error),
}

/// Builds the broker from configuration and an AWS SDK config (loaded once; `AWS_ENDPOINT_URL` points it at moto).
pub fn build(cfg: &BrokerConfig, sdk: &aws_config::SdkConfig, metrics: MetricsSink) -> Result<Broker, InitError> {
    let policy = Policy::load(&cfg.policy_file)?;
    let hasher = match (&cfg.caller_hash_key, policy.hash_caller_ids) {
        (_, false) => CallerIdHasher::plain(),
        (Some(key), true) => CallerIdHasher::keyed(key.expose_secret().as_bytes()),
        (None, true) => return Err(InitError::MissingHashKey),
    };
    let quotas = DynamoQuotaStore::from_sdk_config(sdk, DynamoQuotaConfig::new(cfg.quota_table.clone()));
    let ssm = SsmCredentialSource::from_sdk_config(sdk, SsmConfig::new(cfg.ssm_prefix.clone()))?;
    let cache_config =
        CacheConfig { ttl: cfg.credentials_ttl, max_stale: cfg.credentials_max_stale, ..CacheConfig::default() };
    let credentials = CachedCredentials::new(ssm, cache_config);
    let upstream = Upstream::new(UpstreamSettings {
        connect_timeout: cfg.upstream_connect_timeout,
        attempt_timeout: cfg.upstream_timeout,
        breaker_failure_threshold: cfg.breaker_failure_threshold,
        breaker_open_for: cfg.breaker_open,
    })?;
    Ok(Broker {
        policy: Arc::new(policy),
        quotas: Arc::new(quotas),
        credentials: Arc::new(credentials),
        upstream,
        reuse: TokenReuse::new(),
        metrics,
        hasher,
    })
}
