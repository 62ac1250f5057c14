//! `brokerctl policy check | explain`.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use super::{CliError, CliResult};
use crate::exit::Exit;
use crate::policy;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load FILE with the functions' own strict loader. Exit 0 when valid, 2 with the loader's error (naming file,
    /// caller or issuer, field and reason) when not.
    Check(PolicyCheckArgs),
    /// Decide on one client certificate or partner JWT with the authorizer's own code and explain the answer.
    ///
    /// Exit codes: 0 allow, 3 deny (403), 4 unauthorized (401), 2 input unusable.
    Explain(PolicyExplainArgs),
}

impl PolicyCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            PolicyCommand::Check(a) => a.run().await,
            PolicyCommand::Explain(a) => a.run().await,
        }
    }
}

#[derive(Debug, Args)]
pub struct PolicyCheckArgs {
    file: PathBuf,
}

impl PolicyCheckArgs {
    /// Prints the summary of a valid policy ([`Exit::Ok`]); an invalid one fails with the loader's error.
    pub async fn run(self) -> CliResult {
        let summary = policy::check(&self.file).map_err(|e| CliError::failed(e.to_string()))?;
        print!("{summary}");
        Ok(Exit::Ok)
    }
}

#[derive(Debug, Args)]
pub struct PolicyExplainArgs {
    /// The policy document.
    #[arg(long)]
    policy: PathBuf,
    /// A client certificate (PEM) as the caller would present it.
    #[arg(long, conflicts_with = "jwt", required_unless_present = "jwt")]
    cert: Option<PathBuf>,
    /// A file holding a partner JWT.
    #[arg(long)]
    jwt: Option<PathBuf>,
    /// CA bundle to validate the certificate against (required with --cert).
    #[arg(long)]
    truststore: Option<PathBuf>,
    /// CRL bundle (PEM or DER); revocation is then checked as in production, failing closed.
    #[arg(long)]
    crl: Option<PathBuf>,
    /// A JWKS document to use instead of fetching the issuer's jwks_url.
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// Decide at this time instead of now: an RFC 3339 time (2027-01-31T00:00:00Z) or an offset from now (+30d,
    /// -2h). Every time check moves with it: certificate validity, CRL freshness, JWT exp, nbf and iat.
    #[arg(long, value_parser = parse_at, allow_hyphen_values = true)]
    at: Option<SystemTime>,
}

/// `--at`: an RFC 3339 time, or `+DURATION` / `-DURATION` from now (humantime's units: s, m, h, d, w, ...).
fn parse_at(s: &str) -> Result<SystemTime, String> {
    let offset = |d: &str| humantime::parse_duration(d).map_err(|e| format!("{s:?}: {e}"));
    if let Some(d) = s.strip_prefix('+') {
        return SystemTime::now().checked_add(offset(d)?).ok_or_else(|| format!("{s:?} is too far ahead"));
    }
    if let Some(d) = s.strip_prefix('-') {
        return SystemTime::now().checked_sub(offset(d)?).ok_or_else(|| format!("{s:?} is too far back"));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor an offset (+30d, -2h)"))
}

impl PolicyExplainArgs {
    /// Prints the explanation; the exit code is the decision's ([`Exit::Ok`], [`Exit::Deny`],
    /// [`Exit::Unauthorized`]).
    pub async fn run(self) -> CliResult {
        let PolicyExplainArgs { policy, cert, jwt, truststore, crl, jwks, at } = self;
        let input = policy::ExplainInput { policy, cert, jwt, truststore, crl, jwks, at };
        let x = policy::explain(&input).await.map_err(|e| CliError::failed(e.to_string()))?;
        print!("{}", x.report);
        Ok(x.exit_code)
    }
}
