//! The composition root: from a [`Config`] and the adapters in [`Deps`] to a ready [`App`]. The Lambda's `main`,
//! the local stack, `brokerctl policy explain`, the tests and the benchmarks all build the authorizer here, so a
//! setting or a check added once applies everywhere. Everything that can fail does so here, once, with a message
//! that names what is wrong; nothing is read from the environment per invocation.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tb_shared::clock::Clock;
use tb_shared::context::{KeyRing, KeySource, SsmKeySource};
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CallerIdHasher, MetricsSink, STACK_DIMENSION};

use crate::config::{Config, ObjectLocation};
use crate::decision::{Authorizer, DecisionCacheConfig};
use crate::jwt::JwtVerifier;
use crate::metrics::{self, outage};
use crate::mtls::{CertVerifier, MtlsConfig};
use crate::sources::{
    s3_client, FileObjectSource, HttpJwksFetcher, JwksFetcher, JwksFetcherConfig, ObjectSource, S3ObjectSource,
    S3_OPERATION_TIMEOUT,
};

/// Everything a warm authorizer keeps between invocations.
#[derive(Debug)]
pub struct App {
    /// The decision core: verifiers, policy and decision cache.
    pub authorizer: Authorizer,
    /// Where EMF metric lines go.
    pub metrics: MetricsSink,
    /// How caller ids appear in logs.
    pub hasher: CallerIdHasher,
    /// The time every check is made at.
    pub clock: Clock,
    /// The keys an Allow's context is signed with, kept fresh.
    pub(crate) context_keys: KeyRing,
    /// Lifetime of the MAC on an Allow's context.
    pub(crate) context_mac_ttl: Duration,
    /// The certificate verifier, whose failed reads of the trust material the handler reports.
    certs: Option<Arc<CertVerifier>>,
    /// Why the cold-start read of the trust material failed, if it did.
    trust_load_error: Option<String>,
}

impl App {
    /// Why the trust material could not be read at cold start (`None` when it was, or when certificates play no
    /// part). The function starts anyway and refuses certificate callers until a refresh loads the material; a
    /// tool that reads a truststore the operator named can treat this as an input error instead.
    pub fn trust_load_error(&self) -> Option<&str> {
        self.trust_load_error.as_deref()
    }

    /// How many reads of the truststore or CRL bundle failed since the last call, and resets the count: the
    /// handler reports them as `AuthorizerErrors` with reason `trust_refresh_failed`.
    pub(crate) fn take_trust_read_failures(&self) -> u64 {
        self.certs.as_ref().map_or(0, |c| c.take_read_failures())
    }
}

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] tb_shared::env::ConfigError),
    /// The policy document could not be loaded.
    #[error("policy: {0}")]
    Policy(#[from] tb_shared::policy::PolicyError),
    /// Certificate callers need a truststore.
    #[error("the policy has certificate callers but TRUSTSTORE_URI is not set")]
    NoTruststore,
    /// Hashed caller ids need a key.
    #[error("the policy sets hash_caller_ids but CALLER_HASH_KEY is not set")]
    MissingHashKey,
    /// The trust material's location cannot be used (an S3 URI without an object key). Material that cannot be
    /// *read* does not stop the cold start: see [`build`].
    #[error("truststore: {0}")]
    Truststore(String),
    /// The JWKS HTTP client could not be built.
    #[error("JWKS client: {0}")]
    Jwks(String),
    /// The context-MAC key set could not be loaded at cold start: without it no Allow could carry a context the
    /// broker accepts, so the function does not start. The reason names the parameter and what went wrong, never
    /// key material.
    #[error("context keys (CONTEXT_KEY_PARAMETER): {0}")]
    ContextKeys(#[from] tb_shared::context::KeyError),
}

/// Where the truststore and the CRLs are read from.
#[derive(Clone)]
pub struct TrustSources {
    /// The CA bundle.
    pub truststore: Arc<dyn ObjectSource>,
    /// The CRL bundle; when present, every certificate's revocation status must be known.
    pub crls: Option<Arc<dyn ObjectSource>>,
}

/// Whether and from where certificates' trust material comes.
#[derive(Clone)]
pub enum Trust {
    /// Verify certificates against the trust material these sources hold.
    Sources(TrustSources),
    /// None configured: [`build`] refuses a policy with certificate callers (the Lambda's rule: a deployment that
    /// names certificate callers but cannot verify certificates is a misconfiguration, not a JWT-only service).
    None,
    /// Certificates are not considered, whatever the policy says: for tools that only explain a JWT decision.
    Ignored,
}

/// The adapters the authorizer talks to the outside world through.
pub struct Deps {
    /// Trust material for client certificates.
    pub trust: Trust,
    /// Fetches partners' JWKS documents.
    pub jwks: Arc<dyn JwksFetcher>,
    /// Where metrics go.
    pub metrics: MetricsSink,
    /// The time checks are made at.
    pub clock: Clock,
    /// Where the context-MAC key set is read from (SSM in Lambda, memory in tests and the local stack).
    pub context_keys: Arc<dyn KeySource>,
}

/// Budget of one read of the context key set, retries included: a small SecureString, read at cold start and then
/// once per `CONTEXT_KEYS_TTL_SECONDS` inside a request, so it must stay well inside the authorizer's 5 s timeout.
pub const SSM_OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

impl Deps {
    /// The production adapters: trust material from the configured S3 objects or files, JWKS over HTTPS, the
    /// context key set from the SSM SecureString `CONTEXT_KEY_PARAMETER` (required here), metrics to stdout with the
    /// stack's `Stack` dimension on every line, the system clock.
    pub async fn from_config(cfg: &Config) -> Result<Deps, InitError> {
        cfg.required_context_key_parameter()?;
        let sdk = tb_shared::aws::lambda_sdk_config();
        Self::from_sdk_config(cfg, &sdk)
    }

    /// The production adapters, with S3 and SSM reached through `sdk` (an emulator's endpoint, or one that never
    /// answers, in tests). The S3 client gets [`S3_OPERATION_TIMEOUT`] (see [`s3_client`]), the SSM client
    /// [`SSM_OPERATION_TIMEOUT`].
    pub fn from_sdk_config(cfg: &Config, sdk: &SdkConfig) -> Result<Deps, InitError> {
        let parameter = cfg.required_context_key_parameter()?;
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .timeout_config(tb_shared::aws::timeouts(SSM_OPERATION_TIMEOUT))
                .build(),
        );
        let s3 = needs_s3(cfg).then(|| s3_client(sdk, S3_OPERATION_TIMEOUT));
        let source = |loc: &ObjectLocation| -> Result<Arc<dyn ObjectSource>, InitError> {
            Ok(match loc {
                ObjectLocation::File(p) => Arc::new(FileObjectSource::new(p)),
                ObjectLocation::S3 { uri, version } => {
                    let client = s3.clone().ok_or_else(|| InitError::Truststore("no S3 client".into()))?;
                    let src = S3ObjectSource::from_uri(client, uri)
                        .ok_or_else(|| InitError::Truststore("bad S3 URI".into()))?;
                    Arc::new(src.with_version(version.clone()))
                }
            })
        };
        let trust = match &cfg.truststore {
            Some(loc) => Trust::Sources(TrustSources {
                truststore: source(loc)?,
                crls: cfg.crls.as_ref().map(&source).transpose()?,
            }),
            None => Trust::None,
        };
        let jwks = HttpJwksFetcher::new(&JwksFetcherConfig::default()).map_err(|e| InitError::Jwks(e.to_string()))?;
        Ok(Deps {
            trust,
            jwks: Arc::new(jwks),
            metrics: MetricsSink::stdout(&cfg.metrics_namespace).with_dimension(STACK_DIMENSION, &cfg.stack_name),
            clock: Clock::system(),
            context_keys: Arc::new(SsmKeySource::new(ssm, parameter)),
        })
    }
}

fn needs_s3(cfg: &Config) -> bool {
    [&cfg.truststore, &cfg.crls].iter().any(|l| matches!(l, Some(ObjectLocation::S3 { .. })))
}

/// Builds the authorizer: loads the policy and the context key set, reads the trust material once, and prepares the
/// JWT verifier and the decision cache.
///
/// A context key set that cannot be read or is invalid stops the cold start ([`InitError::ContextKeys`]): without it
/// every Allow would carry a context the broker refuses, so failing here, visibly, is the only useful answer.
///
/// Trust material that cannot be read (S3 unreachable or denied, an object missing, a bundle the loaders refuse) does
/// not stop the cold start: partner (JWT) callers do not depend on it, and a function that fails its init would take
/// them down with the certificate callers. The failure is logged and reported (`AuthorizerErrors`, reason
/// `trust_refresh_failed`, and `TrustRefreshFailures` by object); certificate callers are refused with an outage
/// reason (`no_trust_material`, `revocation_unknown`) until a refresh, every `TRUST_REFRESH_SECONDS`, loads the
/// material. Configuration errors (a policy with certificate callers and no truststore configured) still stop the
/// cold start.
pub async fn build(cfg: &Config, deps: Deps) -> Result<App, InitError> {
    let policy = Arc::new(Policy::load(&cfg.policy_file)?);
    let hasher = CallerIdHasher::for_policy(policy.hash_caller_ids, cfg.caller_hash_key.as_ref())
        .ok_or(InitError::MissingHashKey)?;
    let context_keys = KeyRing::load(deps.context_keys, cfg.context_keys, deps.clock.clone()).await?;
    tracing::info!(signing_key_id = context_keys.current().await?.signing().id(), "context keys loaded");

    let mut trust_load_error = None;
    let certs = match deps.trust {
        Trust::Sources(TrustSources { truststore, crls }) => {
            let mtls_cfg = MtlsConfig { refresh_interval: cfg.trust_refresh, require_crl: crls.is_some() };
            tracing::info!(
                truststore = %truststore.describe(),
                crls = %crls.as_ref().map(|c| c.describe()).unwrap_or_else(|| "none".into()),
                "loading trust material"
            );
            let verifier =
                CertVerifier::new(truststore, crls, mtls_cfg).with_policy(&policy).with_metrics(deps.metrics.clone());
            if let Err(e) = verifier.refresh().await {
                tracing::error!(
                    event = "trust_load_failed",
                    error = %e,
                    truststore_loaded = verifier.is_ready(),
                    "trust material could not be read at cold start; certificate callers are refused until a \
                     refresh loads it, partner callers are served"
                );
                // Reported here, once, rather than again by the first request.
                verifier.take_read_failures();
                metrics::authorizer_error(&deps.metrics, outage::TRUST_REFRESH_FAILED, None);
                trust_load_error = Some(e.to_string());
            }
            Some(Arc::new(verifier))
        }
        Trust::None if policy.has_certificate_callers() => return Err(InitError::NoTruststore),
        Trust::None | Trust::Ignored => None,
    };

    let jwts = if policy.issuers().is_empty() {
        None
    } else {
        let jwt_cfg = cfg.jwt_config();
        Some(Arc::new(JwtVerifier::new(policy.clone(), deps.jwks, jwt_cfg).with_metrics(deps.metrics.clone())))
    };

    tracing::info!(
        policy_version = %policy.version,
        callers = policy.callers().len(),
        issuers = policy.issuers().len(),
        "authorizer ready"
    );
    let authorizer = Authorizer::new(
        policy,
        certs.clone(),
        jwts,
        DecisionCacheConfig { ttl: cfg.decision_cache_ttl, max_entries: cfg.decision_cache_max_entries },
    );
    Ok(App {
        authorizer,
        metrics: deps.metrics,
        hasher,
        clock: deps.clock,
        context_keys,
        context_mac_ttl: cfg.context_mac_ttl,
        certs,
        trust_load_error,
    })
}
