//! `brokerctl dev`: the whole chain on one machine, started in-process so end-to-end tests can drive it.
//!
//! ```text
//! client --mTLS--> [mtls listener] --\                                   /--> authorizer handler (in-process)
//!                                     >-- gateway (throttle, cache, ... )
//! partner --TLS--> [partner listener]/                                   \--> broker handler --HTTP--> Cognito stand-in
//!                                                                                                 (pre-token-generation
//!                                                                                                  trigger: tb-trigger)
//! ```
//!
//! Both listeners are real TLS (rustls) on 127.0.0.1; the mTLS one requires a client certificate that chains to a
//! root of the truststore, and checks no more than that, as the API Gateway custom domain does. The gateway ([`gateway`]) reproduces what API Gateway does
//! between the handshake and the Lambdas with `infra/template.yaml`'s settings, and calls the production handlers
//! of both functions. Quotas and secrets live in memory unless `aws_endpoint` points DynamoDB, SSM and S3 (the
//! truststore and CRL objects) at an AWS-compatible endpoint such as moto; `token_url` replaces the Cognito stand-in
//! with a real token endpoint ([`upstream`] says what then changes).
//!
//! The context-MAC key set is made afresh at every start (one random key, never written to the state directory or
//! printed): both functions share it in memory, or, with `aws_endpoint`, read it from the SecureString
//! [`AwsNames::context_key_parameter`] that the stack writes there, as a deployment's functions read theirs. The
//! stand-in's pre-token-generation trigger holds the same set, as the deployed trigger reads the same parameter: the
//! broker signs each token request's caller claims with it and the trigger writes them into the token only if they
//! verify.

pub mod gateway;
pub mod listener;
mod printout;
pub mod resource;
pub mod state;
pub mod upstream;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tb_authorizer::{
    FileObjectSource, HttpJwksFetcher, JwksFetcherConfig, ObjectSource, S3ObjectSource, Trust, TrustSources,
};
use tb_broker::{MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::CognitoStandin;
use tb_shared::clock::Clock;
use tb_shared::context::{KeySet, KeySource, MemoryKeySource, SsmKeySource};
use tb_shared::env::Env;
use tb_shared::policy::{Caller, Policy};
use tb_shared::telemetry::{MetricsSink, STACK_DIMENSION};
use tokio::task::JoinHandle;

pub use gateway::{GatewaySettings, GatewayStats, IdentitySource, IpRateLimit};
pub use state::{DevState, DevUpstream, StateError, APP_CLIENTS, CLIENTS};
pub use upstream::UpstreamTarget;

/// Names of the resources created on an AWS-compatible endpoint.
#[derive(Debug, Clone)]
pub struct AwsNames {
    pub quota_table: String,
    pub ssm_prefix: String,
    pub bucket: String,
}

impl AwsNames {
    /// The SecureString of the context-MAC key set (the template's `ContextKeyParameterName`): `context-key` beside
    /// the credentials prefix, outside it as the template keeps it (`/token-broker-dev/cognito` gives
    /// `/token-broker-dev/context-key`), so stacks with their own prefix on one emulator have their own key set.
    pub fn context_key_parameter(&self) -> String {
        let parent = self.ssm_prefix.rsplit_once('/').map_or("", |(p, _)| p);
        format!("{parent}/context-key")
    }

    /// The fleet token cache's table: the quota table's name with `-tokens` for its `-quota` ending (or added).
    pub fn token_cache_table(&self) -> String {
        let base = self.quota_table.strip_suffix("-quota").unwrap_or(&self.quota_table);
        format!("{base}-tokens")
    }

    /// The alias of the KMS key that seals the fleet cache's tokens.
    pub fn token_cache_key_alias(&self) -> String {
        format!("alias/{}", self.token_cache_table())
    }
}

impl Default for AwsNames {
    fn default() -> Self {
        AwsNames {
            quota_table: "token-broker-dev-quota".into(),
            ssm_prefix: "/token-broker-dev/cognito".into(),
            bucket: "token-broker-dev-trust".into(),
        }
    }
}

/// How to start the stack. `Default` binds every listener to an OS-chosen port on 127.0.0.1 (what tests want).
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Where keys, certificates, secrets and the policy live (created on first run).
    pub state_dir: PathBuf,
    pub mtls_addr: SocketAddr,
    pub partner_addr: SocketAddr,
    pub resource_addr: SocketAddr,
    /// The sample resource server's mutual-TLS listener (client certificate optional, for certificate-bound tokens).
    pub resource_mtls_addr: SocketAddr,
    /// DynamoDB, SSM and S3 on this endpoint instead of the embedded stores.
    pub aws_endpoint: Option<String>,
    pub aws_names: AwsNames,
    /// With `aws_endpoint`: the DynamoDB, SSM and S3 operation timeout instead of the functions' production defaults.
    /// A single-threaded emulator shared by parallel test suites can queue a call past the production limit.
    pub aws_operation_timeout: Option<Duration>,
    /// A real token endpoint instead of the Cognito stand-in (the app-client secrets must then be real ones: put
    /// them in the state directory's `secrets.json`).
    pub token_url: Option<String>,
    /// A policy file to use instead of the generated one.
    pub policy: Option<PathBuf>,
    pub gateway: GatewaySettings,
    /// The authorizer's `TRUST_REFRESH_SECONDS`: how soon a CRL or truststore change bites.
    pub trust_refresh: Duration,
    /// The authorizer's `DECISION_CACHE_TTL_SECONDS`.
    pub decision_cache_ttl: Duration,
}

impl Default for DevOptions {
    fn default() -> Self {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        DevOptions {
            state_dir: PathBuf::from(".devstack"),
            mtls_addr: any,
            partner_addr: any,
            resource_addr: any,
            resource_mtls_addr: any,
            aws_endpoint: None,
            aws_names: AwsNames::default(),
            aws_operation_timeout: None,
            token_url: None,
            policy: None,
            gateway: GatewaySettings::default(),
            trust_refresh: Duration::from_secs(10),
            decision_cache_ttl: Duration::from_secs(60),
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("policy: {0}")]
    Policy(#[from] tb_shared::policy::PolicyError),
    #[error("{what}: {reason}")]
    Setup { what: &'static str, reason: String },
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> DevError {
    move |e| DevError::Setup { what, reason: e.to_string() }
}

/// Where the CRL lives, so a revocation can be published where the authorizer reads it.
enum CrlTarget {
    File,
    S3 { client: aws_sdk_s3::Client, bucket: String, key: String },
}

/// The namespace of the stack's metrics (written to a sink: EMF lines would drown the console, and the functions'
/// own tests cover them).
const METRICS_NAMESPACE: &str = "TokenBrokerDev";

/// The local stack's caller-hash key: fixed, so its logs hash a caller id the same way on every run, and only
/// used when a policy given with `--policy` sets `hash_caller_ids` (the template passes the deployment's own key).
const DEV_CALLER_HASH_KEY: &str = "token-broker-local-stack-caller-hash-key";

/// The local stack's `STACK_NAME`, where the template passes the CloudFormation stack's name: the `Stack` dimension
/// of both functions' metrics, as a deployment named `token-broker-dev` would have it.
pub const DEV_STACK_NAME: &str = "token-broker-dev";

/// The authorizer's environment in the local stack: the deployment template's `Environment` block with the stack's
/// own values where the template takes a parameter. Everything else is the functions' default, as in the template.
pub fn authorizer_env(opts: &DevOptions, policy_path: &Path) -> Vec<(String, String)> {
    vec![
        ("POLICY_FILE".into(), policy_path.display().to_string()),
        ("TRUST_REFRESH_SECONDS".into(), opts.trust_refresh.as_secs().to_string()),
        ("DECISION_CACHE_TTL_SECONDS".into(), opts.decision_cache_ttl.as_secs().to_string()),
        ("METRICS_NAMESPACE".into(), METRICS_NAMESPACE.into()),
        ("STACK_NAME".into(), DEV_STACK_NAME.into()),
        ("CALLER_HASH_KEY".into(), DEV_CALLER_HASH_KEY.into()),
        ("CONTEXT_KEY_PARAMETER".into(), opts.aws_names.context_key_parameter()),
    ]
}

/// The broker's environment in the local stack, like [`authorizer_env`]. With an emulator endpoint,
/// [`DevOptions::aws_operation_timeout`] becomes `AWS_OPERATION_TIMEOUT_MS`.
pub fn broker_env(opts: &DevOptions, policy_path: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("POLICY_FILE".into(), policy_path.display().to_string()),
        ("QUOTA_TABLE".into(), opts.aws_names.quota_table.clone()),
        ("SSM_PREFIX".into(), opts.aws_names.ssm_prefix.clone()),
        ("METRICS_NAMESPACE".into(), METRICS_NAMESPACE.into()),
        ("STACK_NAME".into(), DEV_STACK_NAME.into()),
        ("CALLER_HASH_KEY".into(), DEV_CALLER_HASH_KEY.into()),
        ("CONTEXT_KEY_PARAMETER".into(), opts.aws_names.context_key_parameter()),
    ];
    if let (Some(_), Some(t)) = (&opts.aws_endpoint, opts.aws_operation_timeout) {
        env.push(("AWS_OPERATION_TIMEOUT_MS".into(), t.as_millis().to_string()));
    }
    // On an AWS-compatible endpoint the broker also gets its fleet token cache, as the template's
    // FleetTokenCacheEnabled gives it (in memory there is one broker instance, so nothing to share).
    if opts.aws_endpoint.is_some() {
        env.push(("TOKEN_CACHE_TABLE".into(), opts.aws_names.token_cache_table()));
        env.push(("TOKEN_CACHE_KMS_KEY".into(), opts.aws_names.token_cache_key_alias()));
        if let Some(t) = opts.aws_operation_timeout {
            env.push(("TOKEN_CACHE_TIMEOUT_MS".into(), t.as_millis().clamp(50, 5_000).to_string()));
        }
    }
    env
}

/// A running local stack. Dropping it stops every listener.
pub struct DevStack {
    pub mtls_addr: SocketAddr,
    pub partner_addr: SocketAddr,
    pub resource_addr: SocketAddr,
    pub resource_mtls_addr: SocketAddr,
    pub token_url: String,
    pub jwks_url: String,
    pub policy_path: PathBuf,
    state: DevState,
    stats: Arc<GatewayStats>,
    standin: Option<CognitoStandin>,
    upstream: UpstreamTarget,
    policy: Arc<Policy>,
    context_keys: KeySet,
    crl_target: CrlTarget,
    aws_names: AwsNames,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DevStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevStack")
            .field("mtls_addr", &self.mtls_addr)
            .field("partner_addr", &self.partner_addr)
            .field("resource_addr", &self.resource_addr)
            .field("resource_mtls_addr", &self.resource_mtls_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DevStack {
    /// Starts everything and returns once every listener accepts connections.
    pub async fn start(opts: DevOptions) -> Result<DevStack, DevError> {
        let state = DevState::open(&opts.state_dir)?;
        let crl_pem = state.write_crl()?;
        let mut tasks = Vec::new();

        // The partner's JWKS, served over real HTTP on loopback like a partner's endpoint.
        let jwks = state.partner_jwks()?;
        let (jwks_server, jwks_task) =
            tb_devkit::jwt::JwksServer::start(jwks).await.map_err(setup("partner JWKS server"))?;
        tasks.push(jwks_task);
        state.write_partner_files()?;
        let policy_path = match &opts.policy {
            Some(p) => p.clone(),
            None => state.write_policy(&jwks_server.url)?,
        };
        let policy = Arc::new(Policy::load(&policy_path)?);

        // A new development key set at every start: nothing signed by an earlier run is accepted, and there is no
        // key file to protect. Both functions and the stand-in's trigger hold it.
        let key_id = crate::context_key::new_key_id(std::time::SystemTime::now()).map_err(setup("context key"))?;
        let context_keys = crate::context_key::initial(&key_id).map_err(setup("context key"))?;

        // The token endpoint: the Cognito stand-in running the project's trigger, or a real one.
        let secrets = state.secrets.clone();
        let (standin, token_url, target) = match &opts.token_url {
            Some(u) => (None, u.clone(), UpstreamTarget::Real { token_url: u.clone() }),
            None => {
                let standin = upstream::start_standin(&secrets, &context_keys).await?;
                let target = UpstreamTarget::standin(&standin);
                let url = standin.token_url();
                (Some(standin), url, target)
            }
        };
        let credential_json = |s: &state::AppClientSecret| target.credentials(s);

        // Both functions built by their own builders from the environment the template would give them; only the
        // adapters are the stack's: embedded stores, or the AWS-compatible endpoint.
        let authorizer_cfg = tb_authorizer::Config::read(&Env::from_pairs(authorizer_env(&opts, &policy_path)))
            .map_err(setup("authorizer configuration"))?;
        let broker_cfg = tb_broker::Config::read(&Env::from_pairs(broker_env(&opts, &policy_path)))
            .map_err(setup("broker configuration"))?;
        let metrics = || {
            MetricsSink::to_writer(METRICS_NAMESPACE, std::io::sink())
                .with_dimension(STACK_DIMENSION, &authorizer_cfg.stack_name)
        };
        let truststore_pem =
            std::fs::read_to_string(state.paths.truststore()).map_err(setup("reading the truststore"))?;
        let (trust, broker_deps, authorizer_keys, crl_target, fleet_sdk) = match &opts.aws_endpoint {
            None => {
                let mem = MemoryCredentialSource::new();
                for s in &secrets {
                    mem.insert_raw(&s.app_client, credential_json(s));
                }
                let trust = TrustSources {
                    truststore: Arc::new(FileObjectSource::new(state.paths.truststore())),
                    crls: Some(Arc::new(FileObjectSource::new(state.paths.crl()))),
                };
                // Both functions read one source, as both read one parameter in a deployment.
                let keys: Arc<dyn KeySource> = Arc::new(MemoryKeySource::new(context_keys.to_document()));
                let deps = tb_broker::Deps {
                    quotas: Arc::new(MemoryQuotaStore::new()),
                    credentials: Arc::new(mem),
                    metrics: metrics(),
                    clock: Clock::system(),
                    context_keys: keys.clone(),
                };
                (trust, deps, keys, CrlTarget::File, None)
            }
            Some(endpoint) => {
                let names = &opts.aws_names;
                let sdk = crate::aws::sdk_config(Some(endpoint)).await;
                let s3 = crate::aws::s3_client(&sdk, Some(endpoint));
                prepare_aws(&sdk, &s3, names, &truststore_pem, &crl_pem, &secrets, &credential_json).await?;
                // The key set in SSM, where both functions read it through their own SSM key source (the broker's
                // from `from_aws`, with CONTEXT_KEY_PARAMETER set as the template sets it).
                let ssm = aws_sdk_ssm::Client::new(&sdk);
                let opts_put = crate::secret::PutOptions {
                    kms_key_id: None,
                    overwrite: true,
                    description: crate::context_key::DESCRIPTION.to_owned(),
                };
                crate::secret::put(&ssm, &names.context_key_parameter(), &context_keys.to_document(), &opts_put)
                    .await
                    .map_err(setup("writing the context key set to SSM"))?;
                // The authorizer reads trust material with its own S3 client and timeouts (a shared emulator may
                // queue a call past the production budget: `aws_operation_timeout` raises it, as for the broker).
                let timeout = opts.aws_operation_timeout.unwrap_or(tb_authorizer::S3_OPERATION_TIMEOUT);
                let trust_s3 = tb_authorizer::s3_client(&sdk, timeout);
                let trust = TrustSources {
                    truststore: Arc::new(S3ObjectSource::new(trust_s3.clone(), &names.bucket, "truststore.pem")),
                    crls: Some(
                        Arc::new(S3ObjectSource::new(trust_s3, &names.bucket, "crl.pem")) as Arc<dyn ObjectSource>
                    ),
                };
                let mut deps = tb_broker::Deps::from_aws(&broker_cfg, &sdk).map_err(setup("AWS adapters"))?;
                deps.metrics = metrics();
                // The authorizer's own SSM client, with its production budget unless the emulator needs more.
                let ssm_timeout = opts.aws_operation_timeout.unwrap_or(tb_authorizer::SSM_OPERATION_TIMEOUT);
                let authorizer_ssm = aws_sdk_ssm::Client::from_conf(
                    aws_sdk_ssm::config::Builder::from(&sdk)
                        .timeout_config(tb_shared::aws::timeouts(ssm_timeout))
                        .build(),
                );
                let keys: Arc<dyn KeySource> =
                    Arc::new(SsmKeySource::new(authorizer_ssm, names.context_key_parameter()));
                let crl_target = CrlTarget::S3 { client: s3, bucket: names.bucket.clone(), key: "crl.pem".into() };
                (trust, deps, keys, crl_target, Some(sdk))
            }
        };
        let authorizer_deps = tb_authorizer::Deps {
            trust: Trust::Sources(trust),
            jwks: Arc::new(HttpJwksFetcher::new(&JwksFetcherConfig::default()).map_err(setup("JWKS client"))?),
            metrics: metrics(),
            clock: Clock::system(),
            context_keys: authorizer_keys,
        };
        let authorizer_app = Arc::new(
            tb_authorizer::build(&authorizer_cfg, authorizer_deps).await.map_err(setup("building the authorizer"))?,
        );
        let mut broker = tb_broker::build(&broker_cfg, broker_deps).await.map_err(setup("building the broker"))?;
        broker.upstream.use_aws_config(upstream::signing_config());
        if let (Some(sdk), Some(settings)) = (&fleet_sdk, broker_cfg.token_cache.clone()) {
            broker.fleet = Some(tb_broker::FleetCache::from_sdk_config(sdk, settings, Clock::system()));
        }
        let broker = Arc::new(broker);

        let mut gw_settings = opts.gateway.clone();
        if gw_settings.usage_plan_keys.is_empty() {
            gw_settings.usage_plan_keys = policy
                .callers()
                .iter()
                .filter_map(|c| c.usage_plan_key.as_ref().map(|k| k.expose().to_owned()))
                .collect();
        }
        let stats = Arc::new(GatewayStats::default());
        let gw = Arc::new(gateway::Gateway::new(gw_settings, authorizer_app, broker, stats.clone()));

        let mtls_tls = listener::server_config(&state.server_cert_pem, &state.server_key_pem, Some(&truststore_pem))
            .map_err(setup("mTLS listener TLS"))?;
        let open_tls = listener::server_config(&state.server_cert_pem, &state.server_key_pem, None)
            .map_err(setup("listener TLS"))?;
        let gw_handler = |gw: Arc<gateway::Gateway>| -> listener::Handler {
            Arc::new(move |req, conn| {
                let gw = gw.clone();
                Box::pin(async move { gw.handle(req, &conn).await })
            })
        };
        let (mtls_addr, t) = listener::serve(opts.mtls_addr, mtls_tls, gateway::Domain::Mtls, gw_handler(gw.clone()))
            .await
            .map_err(setup("binding the mTLS listener"))?;
        tasks.push(t);
        let (partner_addr, t) =
            listener::serve(opts.partner_addr, open_tls.clone(), gateway::Domain::Partner, gw_handler(gw.clone()))
                .await
                .map_err(setup("binding the partner listener"))?;
        tasks.push(t);

        // The resource server trusts the token issuer's JWKS: the stand-in's, whose issuer is its base URL + pool.
        let (rs_jwks, rs_issuer) = match &standin {
            Some(s) => (s.jwks_url(), s.issuer()),
            None => (String::new(), String::new()),
        };
        let rs = Arc::new(resource::ResourceServer::new(rs_jwks, rs_issuer));
        // Its mTLS listener accepts certificates of the stack's CA, the one every example client's chains to.
        let rs_mtls_tls =
            listener::optional_client_cert_config(&state.server_cert_pem, &state.server_key_pem, &state.ca_cert_pem)
                .map_err(setup("resource server mTLS listener TLS"))?;
        let rs_listeners = resource::serve(rs, (opts.resource_addr, open_tls), (opts.resource_mtls_addr, rs_mtls_tls))
            .await
            .map_err(setup("binding the resource server"))?;
        let (resource_addr, resource_mtls_addr) = (rs_listeners.plain_addr, rs_listeners.mtls_addr);
        tasks.extend(rs_listeners.tasks);

        Ok(DevStack {
            mtls_addr,
            partner_addr,
            resource_addr,
            resource_mtls_addr,
            token_url,
            jwks_url: jwks_server.url.clone(),
            policy_path,
            state,
            stats,
            standin,
            upstream: target,
            policy,
            context_keys,
            crl_target,
            aws_names: opts.aws_names.clone(),
            tasks,
        })
    }

    /// `https://127.0.0.1:PORT` of the mTLS listener.
    pub fn mtls_url(&self) -> String {
        format!("https://{}", self.mtls_addr)
    }

    /// `https://127.0.0.1:PORT` of the partner listener.
    pub fn partner_url(&self) -> String {
        format!("https://{}", self.partner_addr)
    }

    /// `https://127.0.0.1:PORT` of the sample resource server.
    pub fn resource_url(&self) -> String {
        format!("https://{}", self.resource_addr)
    }

    /// `https://127.0.0.1:PORT` of the sample resource server's mTLS listener, where a certificate-bound token is
    /// served to the client presenting its certificate.
    pub fn resource_mtls_url(&self) -> String {
        format!("https://{}", self.resource_mtls_addr)
    }

    /// What the gateway did so far.
    pub fn stats(&self) -> &GatewayStats {
        &self.stats
    }

    /// The state directory.
    pub fn state(&self) -> &DevState {
        &self.state
    }

    /// The names of the table, parameters and bucket on the AWS-compatible endpoint (unused without one).
    pub fn aws_names(&self) -> &AwsNames {
        &self.aws_names
    }

    /// The Cognito stand-in, when it is used.
    pub fn standin(&self) -> Option<&CognitoStandin> {
        self.standin.as_ref()
    }

    /// Where the broker's credentials send it for each app client's tokens.
    pub fn upstream(&self) -> &UpstreamTarget {
        &self.upstream
    }

    /// The policy both functions run with (its `version` is the `policyVersion` every context and token carries).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A caller of the policy by id.
    pub fn caller(&self, id: &str) -> Option<&Caller> {
        self.policy.callers().iter().find(|c| c.id.as_str() == id)
    }

    /// This run's context key set, which the authorizer signs contexts with, the broker signs caller claims with and
    /// the stand-in's trigger verifies them with. For tests that play someone calling Cognito directly with metadata
    /// of their own making; the stack never prints or writes it.
    pub fn context_key_set(&self) -> &KeySet {
        &self.context_keys
    }

    /// Revokes an example client's certificate: adds it to the CRL and publishes the CRL where the authorizer
    /// reads it (the file, or the S3 object). It bites at the authorizer's next trust refresh.
    pub async fn revoke(&self, client: &str) -> Result<(), DevError> {
        let crl = self.state.revoke(client)?;
        if let CrlTarget::S3 { client, bucket, key } = &self.crl_target {
            client.put_object().bucket(bucket).key(key).body(crl.into_bytes().into()).send().await.map_err(|e| {
                DevError::Setup {
                    what: "uploading the CRL",
                    reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                }
            })?;
        }
        Ok(())
    }
}

/// Creates (or reuses) the bucket, table and parameters on the AWS-compatible endpoint and uploads the truststore
/// and CRL.
async fn prepare_aws(
    sdk: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    names: &AwsNames,
    truststore_pem: &str,
    crl_pem: &str,
    secrets: &[state::AppClientSecret],
    credential_json: &dyn Fn(&state::AppClientSecret) -> SecretString,
) -> Result<(), DevError> {
    use secrecy::ExposeSecret as _;
    let ctx = |what: &'static str| move |e: String| DevError::Setup { what, reason: e };
    match s3.create_bucket().bucket(&names.bucket).send().await {
        Ok(_) => {}
        Err(e) => {
            let already = e
                .as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists());
            if !already {
                return Err(ctx("creating the truststore bucket")(
                    aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                ));
            }
        }
    }
    for (key, body) in [("truststore.pem", truststore_pem), ("crl.pem", crl_pem)] {
        s3.put_object()
            .bucket(&names.bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .map_err(|e| ctx("uploading trust material")(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
    }
    // The table as the template and docs/quota-table.md define it, TTL included (counters of ended windows expire).
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    tb_devkit::moto::try_create_quota_table(&ddb, &names.quota_table).await.map_err(ctx("creating the quota table"))?;
    // The fleet token cache: its table (the quota table's layout) and the KMS key behind an alias.
    tb_devkit::moto::try_create_quota_table(&ddb, &names.token_cache_table())
        .await
        .map_err(ctx("creating the token cache table"))?;
    ensure_kms_alias(sdk, &names.token_cache_key_alias()).await.map_err(ctx("creating the token cache key"))?;
    let ssm = aws_sdk_ssm::Client::new(sdk);
    for s in secrets {
        ssm.put_parameter()
            .name(format!("{}/{}", names.ssm_prefix, s.app_client))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .value(credential_json(s).expose_secret())
            .send()
            .await
            .map_err(|e| {
                ctx("writing app-client credentials to SSM")(aws_sdk_ssm::error::DisplayErrorContext(&e).to_string())
            })?;
    }
    Ok(())
}

/// The KMS key behind `alias`, created with the alias when there is none yet (a second start reuses it).
async fn ensure_kms_alias(sdk: &aws_config::SdkConfig, alias: &str) -> Result<(), String> {
    let kms = aws_sdk_kms::Client::new(sdk);
    if kms.describe_key().key_id(alias).send().await.is_ok() {
        return Ok(());
    }
    let key = kms
        .create_key()
        .description("token-broker local stack: fleet token cache data keys")
        .send()
        .await
        .map_err(|e| aws_sdk_kms::error::DisplayErrorContext(&e).to_string())?;
    let key_id = key.key_metadata().map(|m| m.key_id().to_owned()).ok_or("CreateKey answered without a key id")?;
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await
        .map_err(|e| aws_sdk_kms::error::DisplayErrorContext(&e).to_string())?;
    Ok(())
}

/// A relative display of `path` under the current directory, for shorter curl commands.
pub fn display_path(path: &Path) -> String {
    match std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf)) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}
