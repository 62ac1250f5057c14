//! The composition root: from a [`Config`] and the adapters in [`Deps`] to a ready [`App`]. The Lambda's `main` and
//! the tests build the trigger here; only the adapters differ.

use std::sync::Arc;

use tb_shared::clock::Clock;
use tb_shared::context::{KeyError, KeyRing, KeySource, SsmKeySource};
use tb_shared::telemetry::{CallerIdHasher, MetricsSink, STACK_DIMENSION};

use crate::config::{Config, CONTEXT_KEY_PARAMETER};
use crate::prefix::ClaimPrefix;

/// Everything the handler depends on, built once per cold start.
#[derive(Debug)]
pub struct App {
    /// Prefix of the claims written into tokens.
    pub prefix: ClaimPrefix,
    /// The keys the broker's metadata MAC is checked with, kept fresh from their store.
    pub context_keys: KeyRing,
    /// Where EMF metric lines go.
    pub metrics: MetricsSink,
    /// The time MACs are checked against.
    pub clock: Clock,
    /// How caller ids appear in the decision log.
    pub hasher: CallerIdHasher,
}

/// Why the function could not start. Messages name the setting, never a value or a key.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] tb_shared::env::ConfigError),
    /// The context-MAC key set could not be read at cold start: without it no metadata verifies, and every
    /// client-credentials token would be refused, so the function does not start and says why.
    #[error("{CONTEXT_KEY_PARAMETER}: {0}")]
    ContextKeys(KeyError),
}

/// The adapters the trigger talks to the outside world through.
#[derive(Debug)]
pub struct Deps {
    /// Where the context-MAC key set comes from.
    pub context_keys: Arc<dyn KeySource>,
    /// Where metrics go.
    pub metrics: MetricsSink,
    /// The time MACs are checked against.
    pub clock: Clock,
}

impl Deps {
    /// The production adapters: the key set from the SSM SecureString `CONTEXT_KEY_PARAMETER` (required here)
    /// through `sdk` (whose endpoint an emulator may set), each read bounded by `AWS_OPERATION_TIMEOUT_MS`;
    /// metrics to stdout with the stack's `Stack` dimension; the system clock.
    pub fn from_sdk_config(cfg: &Config, sdk: &aws_config::SdkConfig) -> Result<Deps, InitError> {
        let parameter = cfg.required_context_key_parameter()?;
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .timeout_config(tb_shared::aws::timeouts(cfg.aws_operation_timeout))
                .build(),
        );
        Ok(Deps {
            context_keys: Arc::new(SsmKeySource::new(ssm, parameter)),
            metrics: MetricsSink::stdout(&cfg.metrics_namespace).with_dimension(STACK_DIMENSION, &cfg.stack_name),
            clock: Clock::system(),
        })
    }
}

/// Builds the trigger: loads the key set once (a failure stops the cold start) and sets up logging of caller ids.
pub async fn build(cfg: &Config, deps: Deps) -> Result<App, InitError> {
    let context_keys =
        KeyRing::load(deps.context_keys, cfg.context_keys, deps.clock.clone()).await.map_err(InitError::ContextKeys)?;
    let hasher = match &cfg.caller_hash_key {
        Some(key) => CallerIdHasher::keyed(secrecy::ExposeSecret::expose_secret(key).as_bytes()),
        None => CallerIdHasher::plain(),
    };
    Ok(App { prefix: cfg.claim_prefix.clone(), context_keys, metrics: deps.metrics, clock: deps.clock, hasher })
}
