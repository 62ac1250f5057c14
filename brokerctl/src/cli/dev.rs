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
    /// Port of the sample resource server's mutual-TLS listener (where certificate-bound tokens are served).
    #[arg(long, default_value_t = 8446)]
    resource_mtls_port: u16,
    /// Send DynamoDB, SSM and S3 calls to this AWS-compatible endpoint (e.g. moto) instead of embedded stores.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Use this token endpoint instead of the Cognito stand-in (secrets.json must then hold real credentials). Every
    /// app client then uses it, and no pre-token-generation trigger runs: tokens carry no caller claims of the stack.
    #[arg(long)]
    token_url: Option<String>,
    /// Use this policy instead of the generated one.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Rate limit of the mTLS domain's stage, requests/s (infra ThrottlingRateLimit).
    #[arg(long, default_value_t = defaults().stage_rate)]
    stage_rate: f64,
    /// Burst of the mTLS domain's stage (infra ThrottlingBurstLimit).
    #[arg(long, default_value_t = defaults().stage_burst)]
    stage_burst: u32,
    /// Rate limit of the partner domain's own stage, requests/s (infra PartnerThrottlingRateLimit).
    #[arg(long, default_value_t = defaults().partner_rate)]
    partner_rate: f64,
    /// Burst of the partner domain's own stage (infra PartnerThrottlingBurstLimit).
    #[arg(long, default_value_t = defaults().partner_burst)]
    partner_burst: u32,
    /// Put the partner stage behind the WAF per-IP rate rule (infra PartnerWafEnabled, default off): an address
    /// sending more than this many requests within 5 minutes gets 403 until it slows down. Without a value, the
    /// infra default PartnerWafRateLimit (300).
    #[arg(long, num_args = 0..=1, default_missing_value = "300", value_name = "REQUESTS")]
    partner_waf_rate_limit: Option<u32>,
    /// The WAF rule's evaluation window in seconds: 60, 120, 300 (the infra template's) or 600.
    #[arg(long, default_value_t = 300, requires = "partner_waf_rate_limit", value_name = "SECONDS")]
    partner_waf_window: u64,
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

/// The gateway's defaults, which are the deployment template's parameter defaults.
fn defaults() -> devstack::GatewaySettings {
    devstack::GatewaySettings::default()
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

    /// The gateway emulation's settings from the command line, or why they are unusable.
    fn gateway_settings(&self) -> Result<devstack::GatewaySettings, CliError> {
        if self.authorizer_cache_ttl > 0 && self.identity_header.is_none() {
            return Err(CliError::usage(
                "--authorizer-cache-ttl needs --identity-header: API Gateway keys its cache on identity sources only",
            ));
        }
        let partner_ip_rate_limit = match self.partner_waf_rate_limit {
            Some(limit) => Some(
                devstack::IpRateLimit::new(limit, Duration::from_secs(self.partner_waf_window))
                    .map_err(|e| CliError::usage(format!("--partner-waf-rate-limit/--partner-waf-window: {e}")))?,
            ),
            None => None,
        };
        Ok(devstack::GatewaySettings {
            stage_rate: self.stage_rate,
            stage_burst: self.stage_burst,
            partner_rate: self.partner_rate,
            partner_burst: self.partner_burst,
            partner_ip_rate_limit,
            require_usage_plan_key: self.require_usage_plan_key,
            authorizer_cache_ttl: Duration::from_secs(self.authorizer_cache_ttl),
            identity_sources: self.identity_header.iter().cloned().map(devstack::IdentitySource::Header).collect(),
            ..Default::default()
        })
    }

    async fn serve(self) -> CliResult {
        let gateway = self.gateway_settings()?;
        let localhost = std::net::Ipv4Addr::LOCALHOST;
        let opts = devstack::DevOptions {
            state_dir: self.state_dir,
            mtls_addr: (localhost, self.mtls_port).into(),
            partner_addr: (localhost, self.partner_port).into(),
            resource_addr: (localhost, self.resource_port).into(),
            resource_mtls_addr: (localhost, self.resource_mtls_port).into(),
            aws_endpoint: self.aws_endpoint,
            token_url: self.token_url,
            policy: self.policy,
            gateway,
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn settings(args: &[&str]) -> Result<devstack::GatewaySettings, CliError> {
        let cli =
            Cli::try_parse_from(["brokerctl", "dev"].iter().chain(args)).map_err(|e| CliError::usage(e.to_string()))?;
        match cli.command {
            Command::Dev(d) => d.gateway_settings(),
            _ => Err(CliError::usage("not the dev command")),
        }
    }

    #[test]
    fn the_defaults_are_the_templates_with_no_waf() {
        let s = settings(&[]).unwrap();
        let d = devstack::GatewaySettings::default();
        assert_eq!(
            (s.stage_rate, s.stage_burst, s.partner_rate, s.partner_burst),
            (d.stage_rate, d.stage_burst, d.partner_rate, d.partner_burst)
        );
        assert_eq!(s.partner_ip_rate_limit, None);
    }

    #[test]
    fn each_stage_takes_its_own_limits() {
        let s = settings(&["--stage-rate", "7", "--stage-burst", "8", "--partner-rate", "2", "--partner-burst", "3"])
            .unwrap();
        assert_eq!((s.stage_rate, s.stage_burst, s.partner_rate, s.partner_burst), (7.0, 8, 2.0, 3));
    }

    #[test]
    fn the_waf_rule_defaults_to_the_templates_and_refuses_what_waf_would() {
        let s = settings(&["--partner-waf-rate-limit"]).unwrap();
        assert_eq!(s.partner_ip_rate_limit, Some(devstack::IpRateLimit::TEMPLATE));
        let s = settings(&["--partner-waf-rate-limit", "50", "--partner-waf-window", "60"]).unwrap();
        assert_eq!(s.partner_ip_rate_limit, devstack::IpRateLimit::new(50, Duration::from_secs(60)).ok());
        for bad in
            [&["--partner-waf-rate-limit", "5"][..], &["--partner-waf-rate-limit", "50", "--partner-waf-window", "30"]]
        {
            let e = settings(bad).unwrap_err();
            assert_eq!(e.exit, Exit::Usage, "{bad:?}: {}", e.message);
            assert!(e.message.contains("--partner-waf-rate-limit"), "{}", e.message);
        }
        assert!(settings(&["--partner-waf-window", "60"]).is_err(), "a window without the rule");
    }
}
