//! `brokerctl quota show | reset`.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use super::{CliError, CliResult};
use crate::exit::Exit;
use crate::quota::{self, QuotaCmdError};

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Show every quota window of CALLER: window, grants used in the current window, limit (from --policy), when it
    /// resets (RFC 3339 UTC and seconds from now). A caller with no counter yet shows 0 used.
    ///
    /// Exit codes: 0 shown; 2 DynamoDB failed or the policy is invalid; 64 bad command line or a caller not in the
    /// policy.
    Show(QuotaShowArgs),
    /// Reset CALLER's current window W (--window), or every window: deletes the counter item of the current window,
    /// so the broker counts from zero again, and prints the count each held. Other windows and callers are not
    /// touched.
    ///
    /// Exit codes: 0 reset; 2 DynamoDB failed or the policy is invalid; 64 bad command line, a caller not in the
    /// policy or a window the caller does not have.
    Reset(QuotaResetArgs),
}

impl QuotaCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            QuotaCommand::Show(a) => a.run().await,
            QuotaCommand::Reset(a) => a.run().await,
        }
    }
}

/// What both quota commands need: the table, the policy with the limits, where DynamoDB is.
#[derive(Debug, Args)]
pub struct QuotaTableArgs {
    /// The caller id, as the policy names it.
    caller: String,
    /// The policy document the broker runs with (the limits come from it).
    #[arg(long, env = "POLICY_FILE")]
    policy: PathBuf,
    /// The quota table (stack output QuotaTableName; the broker's QUOTA_TABLE).
    #[arg(long, env = "QUOTA_TABLE")]
    table: String,
    /// AWS region (default: the SDK's usual chain, AWS_REGION or the profile).
    #[arg(long)]
    region: Option<String>,
    /// AWS-compatible endpoint (e.g. moto) for DynamoDB.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Print JSON instead of text, for scripts.
    #[arg(long)]
    json: bool,
}

impl QuotaTableArgs {
    async fn open(&self) -> Result<(aws_sdk_dynamodb::Client, tb_shared::policy::Policy), CliError> {
        let policy = tb_shared::policy::Policy::load(&self.policy).map_err(|e| CliError::failed(e.to_string()))?;
        Ok((quota::client(self.endpoint.as_deref(), self.region.as_deref()).await, policy))
    }
}

fn cli_error(e: QuotaCmdError) -> CliError {
    match e {
        QuotaCmdError::Usage(m) => CliError::usage(m),
        QuotaCmdError::Failed(m) => CliError::failed(m),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|e| CliError::failed(format!("writing JSON: {e}")))
}

#[derive(Debug, Args)]
pub struct QuotaShowArgs {
    #[command(flatten)]
    table: QuotaTableArgs,
}

impl QuotaShowArgs {
    /// Prints the caller's windows ([`Exit::Ok`]).
    pub async fn run(self) -> CliResult {
        let (ddb, policy) = self.table.open().await?;
        let usage = quota::show(&ddb, &self.table.table, &policy, &self.table.caller, SystemTime::now())
            .await
            .map_err(cli_error)?;
        if self.table.json {
            println!("{}", json(&usage)?);
        } else {
            print!("{}", usage.render());
        }
        Ok(Exit::Ok)
    }
}

#[derive(Debug, Args)]
pub struct QuotaResetArgs {
    #[command(flatten)]
    table: QuotaTableArgs,
    /// The window to reset, by its name in the policy (minute, hour, day, 90s); default: every window.
    #[arg(long)]
    window: Option<String>,
}

impl QuotaResetArgs {
    /// Resets, prints what it reset and the caller's windows afterwards ([`Exit::Ok`]).
    pub async fn run(self) -> CliResult {
        let (ddb, policy) = self.table.open().await?;
        let t = &self.table;
        let now = SystemTime::now();
        let reset =
            quota::reset(&ddb, &t.table, &policy, &t.caller, self.window.as_deref(), now).await.map_err(cli_error)?;
        let after = quota::show(&ddb, &t.table, &policy, &t.caller, now).await.map_err(cli_error)?;
        if t.json {
            println!("{}", json(&serde_json::json!({ "reset": reset, "after": after }))?);
            return Ok(Exit::Ok);
        }
        if reset.is_empty() {
            println!("caller {} has no quota windows (quotas: unlimited): nothing to reset", after.caller);
        }
        for r in &reset {
            println!("reset {} window {}: {} grant(s) cleared (item {})", after.caller, r.window, r.previous, r.key);
        }
        print!("{}", after.render());
        Ok(Exit::Ok)
    }
}
