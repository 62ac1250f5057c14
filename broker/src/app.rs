//! The composition root: from a [`Config`] and the adapters in [`Deps`] to a ready [`App`]. The Lambda's `main`,
//! the local stack, the tests and the benchmarks all build the broker here, so the credential cache, the upstream
//! client and the caller-id hashing are set up one way everywhere; only the adapters differ.

use std::sync::Arc;

use tb_shared::clock::Clock;
use tb_shared::context::{KeyError, KeyRing, KeySource, SsmKeySource};
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CallerIdHasher, MetricsSink, STACK_DIMENSION};

use crate::config::{Config, CONTEXT_KEY_PARAMETER};
use crate::credentials::{
    CachedCredentials, CredentialError, CredentialSource, Credentials, SsmConfig, SsmCredentialSource,
};
use crate::fleet::FleetCache;
use crate::quota::{DynamoQuotaConfig, DynamoQuotaStore, QuotaStore};
use crate::reuse::TokenReuse;
use crate::upstream::Upstream;

/// Everything the handler depends on, built once per cold start and shared by all invocations.
pub struct App {
    /// The policy document.
    pub policy: Arc<Policy>,
    /// Per-caller grant quotas.
    pub quotas: Arc<dyn QuotaStore>,
    /// App-client credentials, cached in front of their store.
    pub credentials: Arc<dyn Credentials>,
    /// The Cognito token endpoint client (timeouts, retry, breaker).
    pub upstream: Upstream,
    /// In-memory token reuse for callers that opt in.
    pub reuse: TokenReuse,
    /// The fleet-wide token cache behind it, for callers with `fleet_token_reuse` (set by [`build_for_aws`], or by
    /// a test or the local stack after [`build`]).
    pub fleet: Option<FleetCache>,
    /// Where EMF metric lines go.
    pub metrics: MetricsSink,
    /// How caller ids appear in logs (plain or keyed hash, per the policy's `hash_caller_ids`).
    pub hasher: CallerIdHasher,
    /// The time quota windows are charged at and context MACs are checked against.
    pub clock: Clock,
    /// The keys the authorizer's context MAC is checked with, kept fresh from their store.
    pub context_keys: KeyRing,
}

/// Why the function could not start. Messages name the setting, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] tb_shared::env::ConfigError),
    /// The policy document could not be loaded.
    #[error("policy: {0}")]
    Policy(#[from] tb_shared::policy::PolicyError),
    /// Hashed caller ids need a key.
    #[error("the policy sets hash_caller_ids but CALLER_HASH_KEY is not set")]
    MissingHashKey,
    /// The credential store could not be set up.
    #[error("credential source: {0}")]
    Credentials(#[from] CredentialError),
    /// The upstream HTTP client could not be built.
    #[error("upstream HTTP client: {0}")]
    Upstream(#[from] reqwest::Error),
    /// The context-MAC key set could not be read at cold start: without it no context can be verified, so the
    /// broker would refuse every request. The message names the variable and the reason, never a key.
    #[error("{CONTEXT_KEY_PARAMETER}: {0}")]
    ContextKeys(KeyError),
    /// A caller shares its tokens through the fleet cache, but the function has none configured.
    #[error("caller {0} has fleet_token_reuse, but TOKEN_CACHE_TABLE and TOKEN_CACHE_KMS_KEY are not set")]
    FleetCacheNotConfigured(String),
}

/// The adapters the broker talks to the outside world through.
pub struct Deps {
    /// Quota counters.
    pub quotas: Arc<dyn QuotaStore>,
    /// The credential store; [`build`] puts the configured cache in front of it.
    pub credentials: Arc<dyn CredentialSource>,
    /// Where metrics go.
    pub metrics: MetricsSink,
    /// The time quota windows are charged at and context MACs are checked against.
    pub clock: Clock,
    /// Where the context-MAC key set comes from; [`build`] loads it once and refreshes it per its configuration.
    pub context_keys: Arc<dyn KeySource>,
}

impl Deps {
    /// The production adapters: DynamoDB quotas, SSM credentials and the SSM context-key parameter
    /// (`CONTEXT_KEY_PARAMETER`, required here) through one AWS SDK config (loaded once; `AWS_ENDPOINT_URL` points it
    /// at an emulator), metrics to stdout with the stack's `Stack` dimension on every line, the system clock.
    pub fn from_aws(cfg: &Config, sdk: &aws_config::SdkConfig) -> Result<Deps, InitError> {
        let key_parameter = cfg.context_key_parameter.clone().ok_or_else(|| {
            tb_shared::env::ConfigError::new(
                CONTEXT_KEY_PARAMETER,
                "is required: the SSM SecureString of the key set the authorizer signs its context with",
            )
        })?;
        // The same client settings as the credential reads: one budget per SSM operation, retries included.
        let ssm = aws_sdk_ssm::Client::from_conf(crate::credentials::ssm_client_config(sdk, cfg.aws_operation_timeout));
        let mut quota_cfg = DynamoQuotaConfig::new(cfg.quota_table.clone());
        quota_cfg.operation_timeout = cfg.aws_operation_timeout;
        let mut ssm_cfg = SsmConfig::new(cfg.ssm_prefix.clone());
        ssm_cfg.operation_timeout = cfg.aws_operation_timeout;
        Ok(Deps {
            quotas: Arc::new(DynamoQuotaStore::from_sdk_config(sdk, quota_cfg)),
            credentials: Arc::new(SsmCredentialSource::from_sdk_config(sdk, ssm_cfg)?),
            metrics: MetricsSink::stdout(&cfg.metrics_namespace).with_dimension(STACK_DIMENSION, &cfg.stack_name),
            clock: Clock::system(),
            context_keys: Arc::new(SsmKeySource::new(ssm, key_parameter)),
        })
    }
}

/// Builds the broker the way the Lambda runs it: the production adapters of [`Deps::from_aws`], and the fleet token
/// cache on DynamoDB and KMS when the configuration names one.
pub async fn build_for_aws(cfg: &Config, sdk: &aws_config::SdkConfig) -> Result<App, InitError> {
    let deps = Deps::from_aws(cfg, sdk)?;
    let clock = deps.clock.clone();
    let mut app = build(cfg, deps).await?;
    app.fleet = cfg.token_cache.clone().map(|s| FleetCache::from_sdk_config(sdk, s, clock));
    Ok(app)
}

/// Builds the broker: loads the policy and the context-MAC key set, puts the configured cache in front of the
/// credential store, and builds the upstream client.
pub async fn build(cfg: &Config, deps: Deps) -> Result<App, InitError> {
    let policy = Policy::load(&cfg.policy_file)?;
    if cfg.token_cache.is_none() {
        if let Some(c) = policy.callers().iter().find(|c| c.fleet_token_reuse) {
            return Err(InitError::FleetCacheNotConfigured(c.id.as_str().to_owned()));
        }
    }
    let hasher = CallerIdHasher::for_policy(policy.hash_caller_ids, cfg.caller_hash_key.as_ref())
        .ok_or(InitError::MissingHashKey)?;
    let context_keys =
        KeyRing::load(deps.context_keys, cfg.context_keys, deps.clock.clone()).await.map_err(InitError::ContextKeys)?;
    Ok(App {
        policy: Arc::new(policy),
        quotas: deps.quotas,
        credentials: Arc::new(CachedCredentials::new(deps.credentials, cfg.credentials_cache.clone())),
        upstream: Upstream::new(cfg.upstream.clone())?,
        reuse: TokenReuse::new(),
        fleet: None,
        metrics: deps.metrics,
        hasher,
        clock: deps.clock,
        context_keys,
    })
}
