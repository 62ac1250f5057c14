//! `brokerctl dev`: the local stack, and its `token` and `revoke` helpers (built with the `dev` feature only).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{CliError, CliResult};
use crate::devstack;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// State directory (development CA, certificates, keys, secrets, policy); created on first run.
    #[arg(long, default_value = ".devstack", global = true)]
    state_dir: PathBuf,
    /// Port of the mutual-TLS listener (the mTLS custom domain).
    #[arg(long, default_value_t = 8443)]
    mtls_port: u16,
    /// Port of the partner listener (no client certificates).
    #[arg(long, default_value_t = 8444)]
    partner_port: u16,
    /// Port of the sample resource server.
    #[arg(long, default_value_t = 8445)]
    resource_port: u16,
    /// Send DynamoDB, SSM and S3 calls to this AWS-compatible endpoint (e.g. moto) instead of embedded stores.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Use this token endpoint instead of the Cognito stand-in (secrets.json must then hold real credentials).
    #[arg(long)]
    token_url: Option<String>,
    /// Use this policy instead of the generated one.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Stage rate limit, requests/s (infra default 50).
    #[arg(long, default_value_t = 50.0)]
    stage_rate: f64,
    /// Stage burst (infra default 100).
    #[arg(long, default_value_t = 100)]
    stage_burst: u32,
    /// Require the authorizer's usageIdentifierKey to be a usage-plan key (infra RequireUsagePlanKey, default off).
    #[arg(long)]
    require_usage_plan_key: bool,
    /// API Gateway authorizer cache TTL in seconds (infra: 0, off). With a TTL, --identity-header is required.
    #[arg(long, default_value_t = 0)]
    authorizer_cache_ttl: u64,
    /// Identity source header of the authorizer (the gateway cache key), e.g. Authorization.
    #[arg(long)]
    identity_header: Option<String>,
    #[command(subcommand)]
    action: Option<DevAction>,
}

#[derive(Debug, Subcommand)]
pub enum DevAction {
    /// Print a fresh partner JWT (valid five minutes) signed with the state directory's partner key.
    Token,
    /// Revoke an example client's certificate (order-processing, reporting, stranger) in the state directory's
    /// CRL; a running stack refuses it after its next trust refresh (10 s).
    Revoke { client: String },
}

impl DevArgs {
    /// `token` and `revoke` answer at once; without an action the stack runs until the process is interrupted.
    pub async fn run(self) -> CliResult {
        match self.action {
            Some(DevAction::Token) => {
                let token = devstack::DevState::open(&self.state_dir)
                    .and_then(|s| s.partner_token())
                    .map_err(|e| CliError::failed(e.to_string()))?;
                println!("{token}");
                Ok(Exit::Ok)
            }
            Some(DevAction::Revoke { client }) => {
                devstack::DevState::open(&self.state_dir)
                    .and_then(|s| s.revoke(&client))
                    .map_err(|e| CliError::failed(e.to_string()))?;
                println!("revoked {client}; a running stack refuses it after its next trust refresh");
                Ok(Exit::Ok)
            }
            None => self.serve().await,
        }
    }

    async fn serve(self) -> CliResult {
        if self.authorizer_cache_ttl > 0 && self.identity_header.is_none() {
            return Err(CliError::usage(
                "--authorizer-cache-ttl needs --identity-header: API Gateway keys its cache on identity sources only",
            ));
        }
        let localhost = std::net::Ipv4Addr::LOCALHOST;
        let opts = devstack::DevOptions {
            state_dir: self.state_dir,
            mtls_addr: (localhost, self.mtls_port).into(),
            partner_addr: (localhost, self.partner_port).into(),
            resource_addr: (localhost, self.resource_port).into(),
            aws_endpoint: self.aws_endpoint,
            token_url: self.token_url,
            policy: self.policy,
            gateway: devstack::GatewaySettings {
                stage_rate: self.stage_rate,
                stage_burst: self.stage_burst,
                require_usage_plan_key: self.require_usage_plan_key,
                authorizer_cache_ttl: Duration::from_secs(self.authorizer_cache_ttl),
                identity_sources: self.identity_header.into_iter().map(devstack::IdentitySource::Header).collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let stack =
            devstack::DevStack::start(opts).await.map_err(|e| CliError::failed(format!("brokerctl dev: {e}")))?;
        println!("{}", stack.curl_commands());
        println!("ready; Ctrl-C stops the stack");
        // Runs until the process is interrupted; the default SIGINT handling ends it.
        std::future::pending::<()>().await;
        Ok(Exit::Ok)
    }
}
