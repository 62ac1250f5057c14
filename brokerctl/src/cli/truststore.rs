//! `brokerctl truststore check | diff | publish`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::{read_input, CliError, CliResult};
use crate::exit::Exit;
use crate::{publish, truststore};

#[derive(Debug, Subcommand)]
pub enum TruststoreCommand {
    /// Check a CA bundle: parse, CA flags, chain depth <= 4, key and signature strength, duplicates, CAs sharing a
    /// CN, expiry.
    ///
    /// Exit codes: 0 no findings; 1 warnings only (e.g. a CA expiring soon, two CAs sharing a CN); 2 errors
    /// (expired, not a CA, chain too deep, RSA < 2048 or EC < 256 bits or below the --policy key floor, SHA-1/MD5
    /// signature, duplicate subject, missing issuer, a CN two CAs share that an unpinned subject_cn rule of the
    /// --policy names, unreadable bundle); 64 bad command line.
    Check(TruststoreCheckArgs),
    /// List certificates added and removed between two bundles, by SHA-256 fingerprint.
    ///
    /// Exit codes: 0 identical, 1 different, 2 a bundle is unreadable.
    Diff(TruststoreDiffArgs),
    /// Check BUNDLE, upload it as a new version of s3://BUCKET/KEY and pin the custom domain to that version.
    ///
    /// Refuses (exit 2, nothing changed) when the bundle has errors, the domain does not already read its
    /// truststore from s3://BUCKET/KEY, or the bucket is not versioned. Prints API Gateway's truststore warnings.
    Publish(TruststorePublishArgs),
}

impl TruststoreCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            TruststoreCommand::Check(a) => a.run().await,
            TruststoreCommand::Diff(a) => a.run().await,
            TruststoreCommand::Publish(a) => a.run().await,
        }
    }
}

#[derive(Debug, Args)]
pub struct TruststoreCheckArgs {
    bundle: PathBuf,
    /// Warn about certificates expiring within this many days.
    #[arg(long, default_value_t = 30)]
    expiry_warning_days: u64,
    /// The policy document of the deployment: check CA keys against its key floor and its subject_cn rules against
    /// CAs that share a CN.
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl TruststoreCheckArgs {
    /// Prints the report; the exit code is the report's ([`truststore::Report::exit_code`]).
    pub async fn run(self) -> CliResult {
        let bytes = read_input(&self.bundle)?;
        let opts = truststore::CheckOptions {
            now: SystemTime::now(),
            expiry_warning: Duration::from_secs(self.expiry_warning_days.saturating_mul(86_400)),
        };
        let report = match &self.policy {
            Some(path) => {
                let policy = tb_shared::policy::Policy::load(path).map_err(|e| CliError::failed(e.to_string()))?;
                truststore::check_bundle_for_policy(&bytes, &opts, &policy)
            }
            None => truststore::check_bundle(&bytes, &opts),
        };
        print!("{}", report.render(&self.bundle.display().to_string()));
        Ok(report.exit_code())
    }
}

#[derive(Debug, Args)]
pub struct TruststoreDiffArgs {
    old: PathBuf,
    new: PathBuf,
}

impl TruststoreDiffArgs {
    /// Prints the difference: [`Exit::Ok`] when identical, [`Exit::Findings`] when not.
    pub async fn run(self) -> CliResult {
        let old = read_input(&self.old)?;
        let new = read_input(&self.new)?;
        let d = truststore::diff_bundles(&old, &new).map_err(CliError::failed)?;
        print!("{}", d.render());
        Ok(d.exit_code())
    }
}

#[derive(Debug, Args)]
pub struct TruststorePublishArgs {
    bundle: PathBuf,
    #[arg(long)]
    bucket: String,
    #[arg(long)]
    key: String,
    /// The mTLS custom domain name.
    #[arg(long)]
    domain: String,
    /// AWS-compatible endpoint (e.g. moto) for S3 and API Gateway.
    #[arg(long)]
    endpoint: Option<String>,
    /// Endpoint for API Gateway only (defaults to --endpoint).
    #[arg(long)]
    apigateway_endpoint: Option<String>,
}

impl TruststorePublishArgs {
    /// Publishes and prints what changed: [`Exit::Ok`], or [`Exit::Findings`] when API Gateway reports truststore
    /// warnings.
    pub async fn run(self) -> CliResult {
        let TruststorePublishArgs { bundle: path, bucket, key, domain, endpoint, apigateway_endpoint } = self;
        let bundle = read_input(&path)?;
        let name = path.display().to_string();
        let input = publish::PublishInput { bundle, bucket, key, domain, endpoint, apigateway_endpoint };
        let o = match publish::publish(&input).await {
            Ok(o) => o,
            Err(publish::PublishError::CheckFailed(report)) => {
                print!("{}", report.render(&name));
                return Err(CliError::failed("refusing to publish: the bundle has errors; nothing was uploaded"));
            }
            Err(e) => return Err(CliError::failed(format!("publish failed: {e}"))),
        };
        print!("{}", o.check.render(&name));
        println!("uploaded s3://{}/{} version {}", input.bucket, input.key, o.version_id);
        println!(
            "domain {} now pinned to version {} (previous: {}; status: {})",
            input.domain,
            o.version_id,
            o.previous_version.as_deref().unwrap_or("none"),
            o.domain_status.as_deref().unwrap_or("unknown")
        );
        if o.truststore_warnings.is_empty() {
            println!("API Gateway reports no truststore warnings");
            return Ok(Exit::Ok);
        }
        for w in &o.truststore_warnings {
            println!("API Gateway truststore warning: {w}");
        }
        Ok(Exit::Findings)
    }
}
