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
    /// CN, expiry; with --crls, that every CA has a CRL signed by its key, fresh for --min-validity, and (with
    /// --published) not older than the published one.
    ///
    /// Exit codes: 0 no findings; 1 warnings only (e.g. a CA expiring soon, two CAs sharing a CN, a superseded CRL);
    /// 2 errors (expired, not a CA, chain too deep, RSA < 2048 or EC < 256 bits or below the --policy key floor,
    /// SHA-1/MD5 signature, duplicate subject, missing issuer, a CN two CAs share that an unpinned subject_cn rule of
    /// the --policy names, unreadable bundle; a CA without a CRL, a CRL stale or valid for less than --min-validity,
    /// a CRL no CA signed, a CRL older than the published one, a CRL bundle the authorizer refuses); 64 bad command
    /// line.
    Check(TruststoreCheckArgs),
    /// List certificates added and removed between two bundles, by SHA-256 fingerprint.
    ///
    /// Exit codes: 0 identical, 1 different, 2 a bundle is unreadable.
    Diff(TruststoreDiffArgs),
    /// Check BUNDLE and --crls, upload them as new versions (CRLs first) and pin the custom domain to the new
    /// bundle's version; or, with --crls alone, publish the CRL bundle only.
    ///
    /// Refuses (exit 2, nothing uploaded) what would turn callers into 401s: a bundle with errors (e.g. an expired
    /// CA); a CA of the new or the published bundle without a CRL fresh for --min-validity in the CRLs published
    /// after this (--crls, else the CRL object already there; none there: not required); a CRL no CA signed; a CRL
    /// older than the published one of its CA; a CA of the published bundle that the new one drops without
    /// --allow-removal. --force publishes anyway and prints what it overrode (exit 1). Also refuses, even with
    /// --force, when the domain does not read its truststore from s3://BUCKET/KEY or the bucket is not versioned.
    /// Exit 1 also when there are warnings, including API Gateway's truststore warnings.
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
    /// The CRL bundle (PEM or DER) to check against the CAs of BUNDLE, as the authorizer would load it.
    #[arg(long)]
    crls: Option<PathBuf>,
    /// With --crls: each CA's CRL must stay valid at least this long (90m, 36h, 3d).
    #[arg(long, requires = "crls", value_parser = parse_duration, default_value = "24h")]
    min_validity: Duration,
    /// With --crls: the CRL bundle published now (a file, or s3://BUCKET/KEY); no CRL may be older than its CRL of
    /// the same CA.
    #[arg(long, requires = "crls")]
    published: Option<String>,
    /// AWS-compatible endpoint (e.g. moto) for an s3:// --published.
    #[arg(long)]
    endpoint: Option<String>,
}

/// A duration as operators write it: 90m, 36h, 3d (humantime's units).
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 90m, 36h or 3d: {e}"))
}

/// Reads `--published`: a file, or the current version of an S3 object (a missing object is an error here: the
/// operator named it).
async fn read_published(location: &str, endpoint: Option<&str>) -> Result<Vec<u8>, CliError> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return read_input(std::path::Path::new(location));
    };
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| CliError::usage(format!("--published {location}: expected s3://BUCKET/KEY")))?;
    let sdk = crate::aws::sdk_config(endpoint).await;
    let s3 = crate::aws::s3_client(&sdk, endpoint);
    match publish::read_object(&s3, bucket, key, None).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(CliError::failed(format!("{location}: no such object"))),
        Err(e) => Err(CliError::failed(format!("{location}: {e}"))),
    }
}

impl TruststoreCheckArgs {
    /// Prints the report; the exit code is the report's ([`truststore::Report::exit_code`]).
    pub async fn run(self) -> CliResult {
        let bytes = read_input(&self.bundle)?;
        let opts = truststore::CheckOptions {
            now: SystemTime::now(),
            expiry_warning: Duration::from_secs(self.expiry_warning_days.saturating_mul(86_400)),
        };
        let mut report = match &self.policy {
            Some(path) => {
                let policy = tb_shared::policy::Policy::load(path).map_err(|e| CliError::failed(e.to_string()))?;
                truststore::check_bundle_for_policy(&bytes, &opts, &policy)
            }
            None => truststore::check_bundle(&bytes, &opts),
        };
        if let Some(crl_path) = &self.crls {
            let crls = read_input(crl_path)?;
            let published = match &self.published {
                Some(p) => Some(read_published(p, self.endpoint.as_deref()).await?),
                None => None,
            };
            let crl_opts = truststore::CrlCheckOptions { now: opts.now, min_validity: self.min_validity };
            let name = self.bundle.display().to_string();
            report.add_crls(truststore::check_crls(&[(&name, &bytes)], &crls, published.as_deref(), &crl_opts));
        }
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
    /// The new CA bundle (PEM). Without it, --crls alone is published.
    #[arg(required_unless_present = "crls", requires = "domain")]
    bundle: Option<PathBuf>,
    /// The stack's truststore bucket (output TruststoreBucketName).
    #[arg(long)]
    bucket: String,
    /// The truststore object (the stack's TruststoreUri).
    #[arg(long, default_value = publish::DEFAULT_TRUSTSTORE_KEY)]
    key: String,
    /// The mTLS custom domain name: pinned to the new bundle's version. With --crls alone it says which truststore
    /// version the CRLs are checked against (default: the latest version of --key).
    #[arg(long)]
    domain: Option<String>,
    /// A CRL bundle (PEM) to publish to --crl-key, uploaded before the bundle.
    #[arg(long)]
    crls: Option<PathBuf>,
    /// With --crls alone: the bundle to be published next; its CAs must have CRLs in --crls too (it is checked,
    /// not uploaded).
    #[arg(long, requires = "crls", conflicts_with = "bundle")]
    next_bundle: Option<PathBuf>,
    /// The CRL object (the stack's CrlUri).
    #[arg(long, default_value = publish::DEFAULT_CRL_KEY)]
    crl_key: String,
    /// Each CA's CRL must stay valid at least this long (90m, 36h, 3d).
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    min_validity: Duration,
    /// SHA-256 fingerprint (as `truststore diff` prints it) of a CA of the published bundle that the new bundle
    /// drops on purpose; repeat for several.
    #[arg(long = "allow-removal", value_name = "SHA256")]
    allow_removal: Vec<String>,
    /// Publish even when the checks refuse, and print what was overridden.
    #[arg(long)]
    force: bool,
    /// AWS-compatible endpoint (e.g. moto) for S3 and API Gateway.
    #[arg(long)]
    endpoint: Option<String>,
    /// Endpoint for API Gateway only (defaults to --endpoint).
    #[arg(long)]
    apigateway_endpoint: Option<String>,
}

impl TruststorePublishArgs {
    /// Publishes and prints what changed: [`Exit::Ok`], or [`Exit::Findings`] when there are warnings (from the
    /// checks or API Gateway) or `--force` overrode a refusal.
    pub async fn run(self) -> CliResult {
        let bundle = match &self.bundle {
            Some(p) => Some(read_input(p)?),
            None => None,
        };
        let crls = match &self.crls {
            Some(p) => Some(read_input(p)?),
            None => None,
        };
        let next_bundle = match &self.next_bundle {
            Some(p) => Some(read_input(p)?),
            None => None,
        };
        let name = match (&self.bundle, &self.crls) {
            (Some(b), _) => b.display().to_string(),
            (None, Some(c)) => c.display().to_string(),
            (None, None) => String::new(),
        };
        let input = publish::PublishInput {
            bundle,
            next_bundle,
            bucket: self.bucket,
            key: self.key,
            domain: self.domain,
            crls,
            crl_key: self.crl_key,
            min_crl_validity: self.min_validity,
            allow_removed: self.allow_removal,
            force: self.force,
            endpoint: self.endpoint,
            apigateway_endpoint: self.apigateway_endpoint,
        };
        let o = match publish::publish(&input).await {
            Ok(o) => o,
            Err(publish::PublishError::CheckFailed(report)) => {
                print!("{}", report.render(&name));
                return Err(CliError::failed(
                    "refusing to publish: these errors would refuse callers; nothing was uploaded (--force overrides)",
                ));
            }
            Err(e) => return Err(CliError::failed(format!("publish failed: {e}"))),
        };
        print!("{}", o.check.render(&name));
        for f in &o.overridden {
            println!("FORCED over {}: {}", f.code, f.message);
        }
        if let Some(v) = &o.crl_version {
            println!("uploaded s3://{}/{} version {v}", input.bucket, input.crl_key);
        }
        let mut exit = if o.overridden.is_empty() { o.check.exit_code() } else { Exit::Findings };
        if let (Some(p), Some(domain)) = (&o.truststore, &input.domain) {
            println!("uploaded s3://{}/{} version {}", input.bucket, input.key, p.version_id);
            println!(
                "domain {domain} now pinned to version {} (previous: {}; status: {})",
                p.version_id,
                p.previous_version.as_deref().unwrap_or("none"),
                p.domain_status.as_deref().unwrap_or("unknown")
            );
            println!(
                "the authorizer still pins the previous version: deploy the stack with TruststoreVersion={}",
                p.version_id
            );
            if p.truststore_warnings.is_empty() {
                println!("API Gateway reports no truststore warnings");
            }
            for w in &p.truststore_warnings {
                println!("API Gateway truststore warning: {w}");
                exit = Exit::Findings;
            }
        }
        Ok(exit)
    }
}
