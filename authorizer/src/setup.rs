//! Cold-start wiring: from [`Config`] to a ready [`App`]. Everything that can fail does so here, once, with a
//! message that names what is wrong; nothing is read from the environment per invocation.

use std::sync::Arc;

use tb_shared::policy::Policy;
use tb_shared::sources::{FileObjectSource, HttpJwksFetcher, JwksFetcherConfig, ObjectSource, S3ObjectSource};
use tb_shared::telemetry::{CallerIdHasher, MetricsSink};

use crate::config::{Config, ObjectLocation};
use crate::decision::{Authorizer, DecisionCacheConfig};
use crate::handler::App;
use crate::jwt::{JwtConfig, JwtVerifier};
use crate::mtls::{CertVerifier, MtlsConfig};

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Policy(#[from] tb_shared::policy::PolicyError),
    #[error("the policy has certificate callers but TRUSTSTORE_URI is not set")]
    NoTruststore,
    #[error("the policy asks for hashed caller ids but CALLER_HASH_KEY is not set")]
    NoHashKey,
    #[error("truststore: {0}")]
    Truststore(String),
    #[error("JWKS client: {0}")]
    Jwks(String),
}

/// Builds the application from the environment's configuration.
pub async fn build_app(cfg: &Config) -> Result<App, SetupError> {
    let policy = Arc::new(Policy::load(&cfg.policy_file)?);
    let s3 = if matches!(cfg.truststore, Some(ObjectLocation::S3 { .. }))
        || matches!(cfg.crls, Some(ObjectLocation::S3 { .. }))
    {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Some(aws_sdk_s3::Client::new(&shared))
    } else {
        None
    };
    let source = |loc: &ObjectLocation| -> Result<Arc<dyn ObjectSource>, SetupError> {
        Ok(match loc {
            ObjectLocation::File(p) => Arc::new(FileObjectSource::new(p)),
            ObjectLocation::S3 { uri, version } => {
                let client = s3.clone().ok_or_else(|| SetupError::Truststore("no S3 client".into()))?;
                let src =
                    S3ObjectSource::from_uri(client, uri).ok_or_else(|| SetupError::Truststore("bad S3 URI".into()))?;
                Arc::new(src.with_version(version.clone()))
            }
        })
    };

    let certs = match &cfg.truststore {
        Some(loc) => {
            let trust = source(loc)?;
            let crls = cfg.crls.as_ref().map(&source).transpose()?;
            let mtls_cfg = MtlsConfig { refresh_interval: cfg.trust_refresh, require_crl: crls.is_some() };
            tracing::info!(truststore = %trust.describe(), crls = %crls.as_ref().map(|c| c.describe()).unwrap_or_else(|| "none".into()), "loading trust material");
            let verifier = CertVerifier::new(trust, crls, mtls_cfg);
            verifier.refresh().await.map_err(|e| SetupError::Truststore(e.to_string()))?;
            Some(Arc::new(verifier))
        }
        None if policy.has_certificate_callers() => return Err(SetupError::NoTruststore),
        None => None,
    };

    let jwts = if policy.issuers().is_empty() {
        None
    } else {
        let fetcher =
            HttpJwksFetcher::new(&JwksFetcherConfig::default()).map_err(|e| SetupError::Jwks(e.to_string()))?;
        let jwt_cfg = JwtConfig { unknown_kid_cooldown: cfg.jwks_refetch_cooldown, ..JwtConfig::default() };
        Some(Arc::new(JwtVerifier::new(policy.clone(), Arc::new(fetcher), jwt_cfg)))
    };

    let hasher = match (&cfg.caller_hash_key, policy.hash_caller_ids) {
        (Some(k), true) => CallerIdHasher::keyed(k),
        (None, true) => return Err(SetupError::NoHashKey),
        _ => CallerIdHasher::plain(),
    };
    tracing::info!(policy_version = %policy.version, callers = policy.callers().len(), issuers = policy.issuers().len(), "authorizer ready");
    let authorizer = Authorizer::new(
        policy,
        certs,
        jwts,
        DecisionCacheConfig { ttl: cfg.decision_cache_ttl, max_entries: cfg.decision_cache_max_entries },
    );
    Ok(App { authorizer, metrics: MetricsSink::stdout(&cfg.metrics_namespace), hasher })
}
