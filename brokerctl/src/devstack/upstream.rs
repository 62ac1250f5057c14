//! Where the local stack's broker gets its tokens, and what the app-client credentials it reads say about that.
//!
//! By default that is the Cognito stand-in, configured as the deployment's user pool would be: the project's own
//! pre-token-generation trigger (`tb-trigger`, default claim prefix `tb:`) runs before every client-credentials
//! token and holds the stack's context key set, the one the broker signs each token request's client metadata with,
//! so every token names its caller (`tb:callerId`, `tb:authMethod`, `tb:credentialFingerprint`,
//! `tb:policyVersion`, and `cnf.x5t#S256` for a certificate-bound caller). The app clients of
//! [`state::APP_CLIENTS`] get their tokens where the table says: the hosted `/oauth2/token`, or `GetClientToken` on
//! the stand-in's API endpoint.
//!
//! With `--token-url` a real token endpoint replaces the stand-in, and only what can work there is configured: every
//! app client uses that hosted endpoint (a `GetClientToken` client of a real pool would need its region and the
//! client's own flow, which the stack cannot know), and no trigger is installed anywhere. The broker still sends the
//! signed caller claims as `aws_client_metadata`; a pool without a trigger ignores them, so those tokens carry no
//! caller claims and no `cnf`. A pool running the project's trigger would refuse them: the stack's key set is made
//! afresh at every start and never leaves the process.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tb_devkit::cognito::{ClientFlow, CognitoStandin, PreTokenGeneration, StandinClient, StandinConfig};
use tb_shared::context::KeySet;

use super::state::{self, AppClientSecret, DevUpstream};
use super::{setup, DevError};

/// The claim prefix of the trigger the stand-in runs: `tb_trigger`'s default, as the deployment template sets it.
pub const CLAIM_PREFIX: &str = "tb:";

/// What the broker's credentials point at.
#[derive(Debug, Clone)]
pub enum UpstreamTarget {
    /// The Cognito stand-in: its hosted endpoint at `token_url`, its API (`GetClientToken`) at `api_url` in `region`.
    Standin { token_url: String, api_url: String, region: String },
    /// A real token endpoint (`--token-url`): every app client uses it.
    Real { token_url: String },
}

impl UpstreamTarget {
    /// The stand-in's endpoints; the region is that of its pool id (`us-east-1_devpool` gives `us-east-1`), as a
    /// user pool's region is the prefix of its id.
    pub fn standin(standin: &CognitoStandin) -> Self {
        let pool = standin.pool_id();
        let region = pool.split_once('_').map_or(pool.as_str(), |(r, _)| r).to_owned();
        UpstreamTarget::Standin { token_url: standin.token_url(), api_url: standin.base_url(), region }
    }

    /// How the broker gets `app_client`'s tokens here.
    pub fn mode_of(&self, app_client: &str) -> DevUpstream {
        match self {
            UpstreamTarget::Real { .. } => DevUpstream::TokenEndpoint,
            UpstreamTarget::Standin { .. } => app_client_upstream(app_client),
        }
    }

    /// The credentials document of one app client in the broker's format (the SSM SecureString's value).
    pub fn credentials(&self, s: &AppClientSecret) -> SecretString {
        let doc = match (self, self.mode_of(&s.app_client)) {
            (UpstreamTarget::Standin { api_url, region, .. }, DevUpstream::GetClientToken) => serde_json::json!({
                "client_id": s.client_id, "client_secret": s.client_secret,
                "upstream": "get_client_token", "region": region, "endpoint_url": api_url,
            }),
            (UpstreamTarget::Standin { token_url, .. } | UpstreamTarget::Real { token_url }, _) => {
                serde_json::json!({"client_id": s.client_id, "client_secret": s.client_secret, "token_url": token_url})
            }
        };
        SecretString::from(doc.to_string())
    }
}

/// The mode [`state::APP_CLIENTS`] gives an app client (the hosted endpoint for one it does not name).
fn app_client_upstream(app_client: &str) -> DevUpstream {
    state::APP_CLIENTS.iter().find(|a| a.name == app_client).map_or(DevUpstream::TokenEndpoint, |a| a.upstream)
}

/// Starts the stand-in with one client per app-client secret (its scopes, validity and flow from
/// [`state::APP_CLIENTS`]) and the project's trigger holding `keys` (the document both functions read).
pub async fn start_standin(secrets: &[AppClientSecret], keys: &KeySet) -> Result<CognitoStandin, DevError> {
    let clients = secrets
        .iter()
        .map(|s| {
            let app = state::APP_CLIENTS.iter().find(|a| a.name == s.app_client);
            let (scopes, validity) = app.map_or((&[][..], 3600), |a| (a.scopes, a.token_validity_secs));
            let flow = match app_client_upstream(&s.app_client) {
                DevUpstream::TokenEndpoint => ClientFlow::ClientCredentials,
                DevUpstream::GetClientToken => ClientFlow::ClientTokenAuth,
            };
            StandinClient::new(&s.client_id, &s.client_secret, scopes)
                .token_validity(Duration::from_secs(validity))
                .flow(flow)
        })
        .collect();
    // The trigger gets its own copy of the set, parsed from the same document, as the Lambda would read it.
    let trigger_keys = KeySet::parse(keys.to_document().expose_secret().as_bytes()).map_err(setup("context key"))?;
    let config = StandinConfig {
        pre_token_generation: Some(PreTokenGeneration::caller_claims(Default::default(), trigger_keys)),
        ..StandinConfig::new(clients)
    };
    CognitoStandin::start(config).await.map_err(setup("Cognito stand-in"))
}

/// The placeholder access key of [`signing_config`].
pub const PLACEHOLDER_ACCESS_KEY_ID: &str = "local-stack-placeholder";

/// The AWS configuration the local stack's broker signs `GetClientToken` with. In Lambda the broker takes its role's
/// credentials from the environment; Cognito evaluates no IAM policy for that operation and the stand-in checks no
/// signature, but the SDK sends no unsigned request. So that `brokerctl dev` needs no AWS account, a process without
/// credentials in its environment gets placeholder ones, handed to the broker alone (the process environment is left
/// untouched); credentials already in the environment are used as they are.
pub fn signing_config() -> aws_config::SdkConfig {
    let env = tb_shared::aws::lambda_sdk_config();
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        return env;
    }
    let placeholder = aws_sdk_ssm::config::Credentials::new(
        PLACEHOLDER_ACCESS_KEY_ID,
        PLACEHOLDER_ACCESS_KEY_ID,
        None,
        None,
        "brokerctl-dev",
    );
    env.into_builder().credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(placeholder)).build()
}
