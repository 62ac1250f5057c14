//! `brokerctl secret put`, and the parameter-name options it shares with `cognito rotate-secret`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use tb_broker::{CredentialSource, SsmCredentialSource};

use super::{CliError, CliResult};
use crate::exit::Exit;
use crate::secret::{self, PutOptions, SecretError};

/// Which SSM parameter: `--name`, or `--prefix` with the app client named directly (`--client`) or through a
/// caller of the policy (`--caller` with `--policy`).
#[derive(Debug, Clone, Args)]
pub struct ParameterArgs {
    /// The full parameter name, e.g. /token-broker/cognito/order-processing.
    #[arg(long, value_name = "PARAM", conflicts_with_all = ["prefix", "caller", "client"])]
    pub name: Option<String>,
    /// The broker's SSM_PREFIX (the template's SsmPrefix), e.g. /token-broker/cognito.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// A caller id of the policy: its cognito_client names the parameter. Needs --policy.
    #[arg(long, value_name = "ID", conflicts_with = "client", requires = "policy")]
    pub caller: Option<String>,
    /// The policy document that maps --caller to its cognito_client.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The app client's name as the policy's cognito_client gives it.
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
}

impl ParameterArgs {
    /// The parameter name these options give.
    pub fn resolve(&self) -> Result<String, CliError> {
        let input = |e: SecretError| CliError::usage(e.to_string());
        if let Some(n) = &self.name {
            let (prefix, last) = n.rsplit_once('/').unwrap_or(("", n));
            return secret::parameter_name(prefix, last).map_err(input);
        }
        let prefix = self
            .prefix
            .as_deref()
            .ok_or_else(|| CliError::usage("give --name, or --prefix with --client or --caller"))?;
        let client = match (&self.caller, &self.client, &self.policy) {
            (Some(id), None, Some(path)) => {
                let policy = tb_shared::policy::Policy::load(path).map_err(|e| CliError::failed(e.to_string()))?;
                let caller = policy
                    .callers()
                    .iter()
                    .find(|c| c.id.as_str() == id)
                    .ok_or_else(|| CliError::failed(format!("{}: no caller {id:?}", path.display())))?;
                caller.cognito_client.clone()
            }
            (None, Some(c), _) => c.clone(),
            _ => return Err(CliError::usage("give --client NAME, or --caller ID with --policy FILE")),
        };
        secret::parameter_name(prefix, &client).map_err(input)
    }
}

/// The AWS options of the commands that write SSM.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region (default: the SDK's usual chain, AWS_REGION or the profile).
    #[arg(long)]
    pub region: Option<String>,
    /// AWS-compatible endpoint (e.g. moto) for every AWS call.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store an app client's credentials for the broker: read them from standard input, check them with the
    /// broker's own rules, write the SSM SecureString.
    ///
    /// Standard input holds exactly the JSON the broker reads (the only input; the secret is never taken from the
    /// command line, an environment variable or a file name):
    ///
    ///   {"client_id":"...","client_secret":"...","token_url":"https://<domain>.auth.<region>.amazoncognito.com/oauth2/token"}
    ///
    /// or "domain_prefix" and "region" instead of "token_url"; or, for Cognito's GetClientToken API instead of the
    /// hosted endpoint (an app client whose only flow is ALLOW_CLIENT_TOKEN_AUTH):
    ///
    ///   {"client_id":"...","client_secret":"...","upstream":"get_client_token","region":"eu-west-1"}
    ///
    /// Unknown keys, keys of the other mode, an http token URL (other than to a
    /// loopback host) and malformed values are refused exactly as the broker refuses them. The secret is never
    /// printed.
    ///
    /// The parameter is --name, or {--prefix}/{cognito_client} with the app client named by --client, or by --caller
    /// through --policy. An existing parameter is refused unless --overwrite is given, which writes a new version
    /// (brokers pick it up within CREDENTIALS_TTL_SECONDS). Overwriting does not keep the previous KMS key by itself:
    /// give --kms-key-id again (without it, SSM's default key is used). --cognito-secret-id records which of the app
    /// client's Cognito secrets the value holds, in the parameter's description, for `cognito rotate-secret`.
    ///
    /// After writing, the value is read back through the broker's own SSM credential source.
    ///
    /// Exit codes: 0 written and read back; 2 refused or failed (nothing written unless the message says so);
    /// 64 bad command line.
    Put(SecretPutArgs),
}

impl SecretCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            SecretCommand::Put(a) => a.run().await,
        }
    }
}

#[derive(Debug, Args)]
pub struct SecretPutArgs {
    #[command(flatten)]
    pub parameter: ParameterArgs,
    /// KMS key (id, ARN or alias) of the SecureString: the template's SsmKmsKeyArn.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// Replace the value of an existing parameter.
    #[arg(long)]
    pub overwrite: bool,
    /// The Cognito secret id (ClientSecretId) of the value's secret, recorded in the parameter's description.
    #[arg(long, value_name = "ID")]
    pub cognito_secret_id: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl SecretPutArgs {
    /// Reads standard input and writes the parameter.
    pub async fn run(self) -> CliResult {
        let value = secret::read_value(std::io::stdin().lock()).map_err(|e| CliError::failed(e.to_string()))?;
        self.put(value).await
    }

    /// Checks and writes `value` (what standard input held), then reads it back through the broker's SSM source.
    pub async fn put(self, value: SecretString) -> CliResult {
        let name = self.parameter.resolve()?;
        let failed = |e: SecretError| CliError::failed(e.to_string());
        let creds =
            secret::validate(&value).await.map_err(|e| CliError::failed(format!("{e}; nothing was written")))?;
        if let Some(id) = &self.cognito_secret_id {
            if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c == ')') {
                return Err(CliError::usage("--cognito-secret-id must be 1-128 characters without spaces or ')'"));
            }
        }
        let sdk = crate::aws::sdk_config_in(self.aws.endpoint.as_deref(), self.aws.region.as_deref()).await;
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let opts = PutOptions {
            kms_key_id: self.kms_key_id.clone(),
            overwrite: self.overwrite,
            description: secret::description(self.cognito_secret_id.as_deref()),
        };
        let version = secret::put(&ssm, &name, &value, &opts).await.map_err(failed)?;
        println!(
            "wrote {name} version {version} (SecureString, key {}): client_id {}, tokens from {}",
            self.kms_key_id.as_deref().unwrap_or("SSM's default"),
            creds.client_id,
            creds.upstream
        );
        match &self.cognito_secret_id {
            Some(id) => println!("recorded Cognito secret id {id} in the description"),
            None => println!("no Cognito secret id recorded (cognito rotate-secret adopts the client's only secret)"),
        }
        // Read back exactly as the broker does: same source, same parser, same name composition.
        let (prefix, last) = name.rsplit_once('/').unwrap_or(("", &name));
        let source = SsmCredentialSource::with_client(ssm, prefix)
            .map_err(|e| CliError::failed(format!("written, but cannot read it back: {e}")))?;
        match source.get(last).await {
            Ok(back) if back.client_id == creds.client_id && back.upstream == creds.upstream => {
                println!("read back through the broker's SSM credential source: ok");
                Ok(Exit::Ok)
            }
            Ok(_) => Err(CliError::failed(format!("written, but {name} reads back different credentials"))),
            Err(e) => Err(CliError::failed(format!("written, but the broker's SSM source cannot read it: {e}"))),
        }
    }
}
