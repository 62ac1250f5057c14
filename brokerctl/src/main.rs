//! The `brokerctl` binary: argument parsing and exit codes only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use brokerctl::{devstack, policy, publish, truststore};
use clap::{Parser, Subcommand};

/// Exit code for a command line that could not be parsed (BSD sysexits EX_USAGE), kept apart from the commands'
/// own codes so a script can tell "bad invocation" from "bad bundle".
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(name = "brokerctl", version, about = "token-broker operator and developer tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and explain the policy document.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Check, compare and publish the mTLS truststore (CA bundle).
    #[command(subcommand)]
    Truststore(TruststoreCmd),
    /// Run the whole chain locally: mTLS and partner listeners, API Gateway's behaviour, the authorizer and broker
    /// handlers, a Cognito stand-in and a sample resource server. NOT FOR PRODUCTION.
    Dev(DevArgs),
}

#[derive(clap::Args)]
struct DevArgs {
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

#[derive(Subcommand)]
enum DevAction {
    /// Print a fresh partner JWT (valid five minutes) signed with the state directory's partner key.
    Token,
    /// Revoke an example client's certificate (order-processing, reporting, stranger) in the state directory's
    /// CRL; a running stack refuses it after its next trust refresh (10 s).
    Revoke { client: String },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Load FILE with the functions' own strict loader. Exit 0 when valid, 2 with the loader's error (naming file,
    /// caller or issuer, field and reason) when not.
    Check { file: PathBuf },
    /// Decide on one client certificate or partner JWT with the authorizer's own code and explain the answer.
    ///
    /// Exit codes: 0 allow, 3 deny (403), 4 unauthorized (401), 2 input unusable.
    Explain {
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
    },
}

#[derive(Subcommand)]
enum TruststoreCmd {
    /// Check a CA bundle: parse, CA flags, chain depth <= 4, key and signature strength, duplicates, expiry.
    ///
    /// Exit codes: 0 no findings; 1 warnings only (e.g. a CA expiring soon); 2 errors (expired, not a CA, chain too
    /// deep, RSA < 2048 or EC < 256 bits, SHA-1/MD5 signature, duplicate subject, missing issuer, unreadable
    /// bundle); 64 bad command line.
    Check {
        bundle: PathBuf,
        /// Warn about certificates expiring within this many days.
        #[arg(long, default_value_t = 30)]
        expiry_warning_days: u64,
    },
    /// List certificates added and removed between two bundles, by SHA-256 fingerprint.
    ///
    /// Exit codes: 0 identical, 1 different, 2 a bundle is unreadable.
    Diff { old: PathBuf, new: PathBuf },
    /// Check BUNDLE, upload it as a new version of s3://BUCKET/KEY and pin the custom domain to that version.
    ///
    /// Refuses (exit 2, nothing changed) when the bundle has errors, the domain does not already read its
    /// truststore from s3://BUCKET/KEY, or the bucket is not versioned. Prints API Gateway's truststore warnings.
    Publish {
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
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("brokerctl: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(run(cli));
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Policy(PolicyCmd::Check { file }) => match policy::check(&file) {
            Ok(summary) => {
                print!("{summary}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
        Command::Policy(PolicyCmd::Explain { policy: p, cert, jwt, truststore, crl, jwks }) => {
            let input = policy::ExplainInput { policy: p, cert, jwt, truststore, crl, jwks, at: None };
            match policy::explain(&input).await {
                Ok(x) => {
                    print!("{}", x.report);
                    x.exit_code
                }
                Err(e) => {
                    eprintln!("{e}");
                    policy::EXIT_ERROR
                }
            }
        }
        Command::Truststore(TruststoreCmd::Check { bundle, expiry_warning_days }) => {
            let bytes = match std::fs::read(&bundle) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: {e}", bundle.display());
                    return truststore::EXIT_ERRORS;
                }
            };
            let opts = truststore::CheckOptions {
                now: std::time::SystemTime::now(),
                expiry_warning: std::time::Duration::from_secs(expiry_warning_days.saturating_mul(86_400)),
            };
            let report = truststore::check_bundle(&bytes, &opts);
            print!("{}", report.render(&bundle.display().to_string()));
            report.exit_code()
        }
        Command::Truststore(TruststoreCmd::Diff { old, new }) => {
            let (a, b) = match (std::fs::read(&old), std::fs::read(&new)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) => {
                    eprintln!("{}: {e}", old.display());
                    return 2;
                }
                (_, Err(e)) => {
                    eprintln!("{}: {e}", new.display());
                    return 2;
                }
            };
            match truststore::diff_bundles(&a, &b) {
                Ok(d) => {
                    print!("{}", d.render());
                    d.exit_code()
                }
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
        Command::Truststore(TruststoreCmd::Publish { bundle, bucket, key, domain, endpoint, apigateway_endpoint }) => {
            let bytes = match std::fs::read(&bundle) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: {e}", bundle.display());
                    return 2;
                }
            };
            let input = publish::PublishInput { bundle: bytes, bucket, key, domain, endpoint, apigateway_endpoint };
            match publish::publish(&input).await {
                Ok(o) => {
                    print!("{}", o.check.render(&bundle.display().to_string()));
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
                        0
                    } else {
                        for w in &o.truststore_warnings {
                            println!("API Gateway truststore warning: {w}");
                        }
                        1
                    }
                }
                Err(publish::PublishError::CheckFailed(report)) => {
                    print!("{}", report.render(&bundle.display().to_string()));
                    eprintln!("refusing to publish: the bundle has errors; nothing was uploaded");
                    2
                }
                Err(e) => {
                    eprintln!("publish failed: {e}");
                    2
                }
            }
        }
    }
}

async fn dev(args: DevArgs) -> i32 {
    match args.action {
        Some(DevAction::Token) => {
            return match devstack::DevState::open(&args.state_dir).and_then(|s| s.partner_token()) {
                Ok(t) => {
                    println!("{t}");
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
        Some(DevAction::Revoke { client }) => {
            return match devstack::DevState::open(&args.state_dir).and_then(|s| s.revoke(&client)) {
                Ok(_) => {
                    println!("revoked {client}; a running stack refuses it after its next trust refresh");
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
        None => {}
    }
    if args.authorizer_cache_ttl > 0 && args.identity_header.is_none() {
        eprintln!(
            "--authorizer-cache-ttl needs --identity-header: API Gateway keys its cache on identity sources only"
        );
        return EXIT_USAGE.into();
    }
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let opts = devstack::DevOptions {
        state_dir: args.state_dir,
        mtls_addr: (localhost, args.mtls_port).into(),
        partner_addr: (localhost, args.partner_port).into(),
        resource_addr: (localhost, args.resource_port).into(),
        aws_endpoint: args.aws_endpoint,
        token_url: args.token_url,
        policy: args.policy,
        gateway: devstack::GatewaySettings {
            stage_rate: args.stage_rate,
            stage_burst: args.stage_burst,
            require_usage_plan_key: args.require_usage_plan_key,
            authorizer_cache_ttl: std::time::Duration::from_secs(args.authorizer_cache_ttl),
            identity_sources: args.identity_header.into_iter().map(devstack::IdentitySource::Header).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let stack = match devstack::DevStack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("brokerctl dev: {e}");
            return 2;
        }
    };
    println!("{}", stack.curl_commands());
    println!("ready; Ctrl-C stops the stack");
    // Runs until the process is interrupted; the default SIGINT handling ends it.
    std::future::pending::<()>().await;
    0
}
