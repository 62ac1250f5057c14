//! The composition root: from a [`Config`] and the adapters in [`Deps`] to a ready [`App`]. The Lambda's `main`,
//! the local stack, `brokerctl policy explain`, the tests and the benchmarks all build the authorizer here, so a
//! setting or a check added once applies everywhere. Everything that can fail does so here, once, with a message
//! that names what is wrong; nothing is read from the environment per invocation.

use std::sync::Arc;

use tb_shared::clock::Clock;
use tb_shared::policy::Policy;
use tb_shared::telemetry::{CallerIdHasher, MetricsSink};

use crate::config::{Config, ObjectLocation};
use crate::decision::{Authorizer, DecisionCacheConfig};
use crate::jwt::{JwtConfig, JwtVerifier};
use crate::mtls::{CertVerifier, MtlsConfig};
use crate::sources::{FileObjectSource, HttpJwksFetcher, JwksFetcher, JwksFetcherConfig, ObjectSource, S3ObjectSource};

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
    /// The trust material could not be read or parsed.
    #[error("truststore: {0}")]
    Truststore(String),
    /// The JWKS HTTP client could not be built.
    #[error("JWKS client: {0}")]
    Jwks(String),
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
}

impl Deps {
    /// The production adapters: trust material from the configured S3 objects or files, JWKS over HTTPS, metrics to
    /// stdout, the system clock.
    pub async fn from_config(cfg: &Config) -> Result<Deps, InitError> {
        let needs_s3 = [&cfg.truststore, &cfg.crls].iter().any(|l| matches!(l, Some(ObjectLocation::S3 { .. })));
        let s3 = if needs_s3 {
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            Some(aws_sdk_s3::Client::new(&shared))
        } else {
            None
        };
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
            metrics: MetricsSink::stdout(&cfg.metrics_namespace),
            clock: Clock::system(),
        })
    }
}

/// Builds the authorizer: loads the policy, loads the trust material once (a cold start with unreadable trust
/// material fails rather than refusing every caller), and prepares the JWT verifier and the decision cache.
pub async fn build(cfg: &Config, deps: Deps) -> Result<App, InitError> {
    let policy = Arc::new(Policy::load(&cfg.policy_file)?);
    let hasher = CallerIdHasher::for_policy(policy.hash_caller_ids, cfg.caller_hash_key.as_ref())
        .ok_or(InitError::MissingHashKey)?;

    let certs = match deps.trust {
        Trust::Sources(TrustSources { truststore, crls }) => {
            let mtls_cfg = MtlsConfig { refresh_interval: cfg.trust_refresh, require_crl: crls.is_some() };
            tracing::info!(
                truststore = %truststore.describe(),
                crls = %crls.as_ref().map(|c| c.describe()).unwrap_or_else(|| "none".into()),
                "loading trust material"
            );
            let verifier = CertVerifier::new(truststore, crls, mtls_cfg);
            verifier.refresh().await.map_err(|e| InitError::Truststore(e.to_string()))?;
            Some(Arc::new(verifier))
        }
        Trust::None if policy.has_certificate_callers() => return Err(InitError::NoTruststore),
        Trust::None | Trust::Ignored => None,
    };

    let jwts = if policy.issuers().is_empty() {
        None
    } else {
        let jwt_cfg = JwtConfig { unknown_kid_cooldown: cfg.jwks_refetch_cooldown, ..JwtConfig::default() };
        Some(Arc::new(JwtVerifier::new(policy.clone(), deps.jwks, jwt_cfg)))
    };

    tracing::info!(
        policy_version = %policy.version,
        callers = policy.callers().len(),
        issuers = policy.issuers().len(),
        "authorizer ready"
    );
    let authorizer = Authorizer::new(
        policy,
        certs,
        jwts,
        DecisionCacheConfig { ttl: cfg.decision_cache_ttl, max_entries: cfg.decision_cache_max_entries },
    );
    Ok(App { authorizer, metrics: deps.metrics, hasher, clock: deps.clock })
}
