//! `brokerctl cognito rotate-secret`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::secret::{AwsArgs, ParameterArgs};
use super::{CliError, CliResult};
use crate::cognito::{self, ProvingClaims, RotateError, RotateOptions, RotateOutcome, StopAfter};
use crate::context_key::{ContextKeyError, KeyStore};
use crate::exit::Exit;

/// The broker's default CREDENTIALS_TTL_SECONDS (300 s) plus one minute.
const DEFAULT_WAIT: &str = "6m";

#[derive(Debug, Subcommand)]
pub enum CognitoCommand {
    /// Rotate an app client's secret with no downtime: add a second secret, switch the broker's SSM parameter to
    /// it, wait out the broker's credential cache, delete the old secret.
    ///
    /// Steps: (1) list the app client's secrets (the client id comes from the parameter's value; the parameter's
    /// description records which secret it holds, and a parameter without that record is adopted when the client
    /// has a single secret whose stored value gets a token); (2) generate a new secret, stage it in the
    /// SecureString PARAM/rotation-pending and add it to the app client; (3) check that it gets a token, write it to
    /// PARAM (same JSON, new client_secret, its secret id in the description) and delete the staged copy; (4) check
    /// that PARAM's value gets a token and wait --wait after PARAM was written; (5) delete the old secret. No secret
    /// is ever printed or taken from the command line.
    ///
    /// Resumable: run the same command again after an interruption at any step; it reads the state and continues
    /// (it never adds a third secret or deletes the one in SSM, and it refuses, changing nothing, when the state is
    /// not one it made, e.g. two secrets and neither recorded in PARAM). --dry-run prints the plan from the current
    /// state and changes nothing.
    ///
    /// --wait: every broker re-reads PARAM once its cached copy is CREDENTIALS_TTL_SECONDS old (300 s by default),
    /// so the default waits 6 minutes after the write. A broker that cannot read SSM keeps serving its cached copy
    /// for up to CREDENTIALS_MAX_STALE_SECONDS more (3600 s by default): if SSM reads were failing during the
    /// rotation (the broker logged "credential source unavailable; serving the last good credentials"), pass --wait
    /// 65m so no broker still holds the old secret when it is deleted.
    ///
    /// --context-key-parameter: on a user pool that runs the project's pre-token-generation trigger, every
    /// client-credentials request without the broker's signed caller claims is refused, so the checks above fail
    /// (the command then stops, changing nothing, and says so). Give the SSM SecureString of the context key set
    /// (the stack's ContextKeyParameterName; ssm:GetParameter and kms:Decrypt on it) and each check carries caller
    /// claims signed with it exactly as the broker signs them: callerId from --caller (else
    /// brokerctl-rotate-secret), authMethod jwt, credentialFingerprint brokerctl-rotate-secret, policyVersion of
    /// --policy (else brokerctl-no-policy), never a certificate thumbprint. The token is discarded unread.
    ///
    /// Flags only: the user pool id, prefix, KMS key and region are not read from the stack.
    ///
    /// Exit codes: 0 rotated (or planned with --dry-run); 2 refused or failed (the message says what was done;
    /// running again continues); 64 bad command line.
    RotateSecret(RotateSecretArgs),
}

impl CognitoCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            CognitoCommand::RotateSecret(a) => a.run().await,
        }
    }
}

#[derive(Debug, Args)]
pub struct RotateSecretArgs {
    #[command(flatten)]
    pub parameter: ParameterArgs,
    /// The user pool of the app client, e.g. eu-west-1_AbCdEf123.
    #[arg(long, value_name = "ID")]
    pub user_pool_id: String,
    /// KMS key of the SecureStrings written (default: the parameter's current key).
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// How long after PARAM is written the old secret stays (see above), e.g. 6m, 65m, 0s.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_WAIT, value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// How long a just-added secret may be refused by the token endpoint before the command gives up.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,
    /// The context key set's SSM parameter (the stack's ContextKeyParameterName): sign the checks' caller claims
    /// with it, for a user pool with the pre-token-generation trigger (see above).
    #[arg(long, value_name = "NAME")]
    pub context_key_parameter: Option<String>,
    /// Print the state and the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Endpoint for the Cognito user-pool API only (defaults to --endpoint).
    #[arg(long, value_name = "URL")]
    pub cognito_endpoint: Option<String>,
    /// Stop right after this step, as an interruption would (for tests of resumption).
    #[arg(long, hide = true, value_enum)]
    pub stop_after: Option<StopAfter>,
}

impl RotateSecretArgs {
    /// Runs the rotation, printing each step.
    pub async fn run(self) -> CliResult {
        let parameter = self.parameter.resolve()?;
        let sdk = crate::aws::sdk_config_in(self.aws.endpoint.as_deref(), self.aws.region.as_deref()).await;
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let cognito_client = cognito::client(&sdk, self.cognito_endpoint.as_deref());
        let http = cognito::http_client().map_err(CliError::failed)?;
        let claims = match &self.context_key_parameter {
            None => None,
            Some(name) => Some(self.proving_claims(&ssm, name).await?),
        };
        let opts = RotateOptions {
            user_pool_id: self.user_pool_id,
            parameter,
            kms_key_id: self.kms_key_id,
            wait: self.wait,
            verify_timeout: self.verify_timeout,
            claims,
            dry_run: self.dry_run,
            stop_after: self.stop_after,
        };
        let mut print = |line: &str| println!("{line}");
        match cognito::rotate(&ssm, &cognito_client, &http, &opts, &mut print).await {
            Ok(RotateOutcome::Rotated { old_secret_id, new_secret_id }) => {
                println!("rotated: {} now holds secret {new_secret_id}; {old_secret_id} is deleted", opts.parameter);
                Ok(Exit::Ok)
            }
            Ok(RotateOutcome::Planned) => Ok(Exit::Ok),
            Ok(RotateOutcome::Stopped(at)) => {
                println!("stopped after {at:?} as asked; run the command again to continue");
                Ok(Exit::Ok)
            }
            Err(e @ RotateError::Refused(_)) => Err(CliError::failed(e.to_string())),
            Err(e) => Err(CliError::failed(format!("{e}; run the command again to continue from here"))),
        }
    }

    /// The caller claims of the checks: the key set read from `name` as the functions read it, the caller of
    /// --caller, the version of --policy.
    async fn proving_claims(&self, ssm: &aws_sdk_ssm::Client, name: &str) -> Result<ProvingClaims, CliError> {
        let unusable = |e: String| CliError::failed(format!("--context-key-parameter: {e}; nothing was changed"));
        let store = KeyStore::new(ssm.clone(), name).map_err(|_| {
            CliError::usage(format!(
                "--context-key-parameter {name:?} is not a parameter path like /token-broker/context-key"
            ))
        })?;
        let keys = store
            .read()
            .await
            .map_err(|e| match e {
                ContextKeyError::Missing(n) => unusable(format!(
                    "parameter {n} does not exist; give the context key set the functions read, the stack's \
                     ContextKeyParameterName"
                )),
                other => unusable(other.to_string()),
            })?
            .keys;
        let version = match &self.parameter.policy {
            Some(path) => {
                Some(tb_shared::policy::Policy::load(path).map_err(|e| CliError::failed(e.to_string()))?.version)
            }
            None => None,
        };
        ProvingClaims::new(self.parameter.caller.as_deref(), version.as_deref(), keys, name).map_err(unusable)
    }
}
