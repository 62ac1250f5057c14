//! `brokerctl policy check | explain`: the operator's view of the policy document.
//!
//! `check` runs exactly the loader both Lambdas run ([`Policy::load`]), so "check passes" means "the functions will
//! start with this file". `explain` builds the authorizer's real [`Authorizer`] from the same policy, truststore and
//! CRL files and asks it to decide on one certificate or JWT, so the answer cannot drift from production: there is
//! no second implementation of the identity rules here, only a report of what the production code decided and of
//! what the policy then grants.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tb_authorizer::{build, Config, Decision, DenyReason, Deps, Presented, Trust, TrustSources};
use tb_authorizer::{FileObjectSource, HttpJwksFetcher, JwksFetcher, JwksFetcherConfig, MemoryJwksFetcher};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::policy::{Caller, Identity, Policy, PolicyError};
use tb_shared::telemetry::MetricsSink;

use crate::Exit;

/// Validates a policy file with the functions' own loader and summarises it.
pub fn check(path: &Path) -> Result<String, PolicyError> {
    let policy = Policy::load(path)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK (policy version {}, {} callers, {} issuers)",
        path.display(),
        policy.version,
        policy.callers().len(),
        policy.issuers().len()
    );
    for c in policy.callers() {
        let kinds: Vec<&str> = c.identities.iter().map(identity_kind).collect();
        let _ = writeln!(
            out,
            "  caller {}{}: identities [{}], scopes [{}]",
            c.id,
            if c.enabled { "" } else { " (disabled)" },
            kinds.join(", "),
            c.allowed_scopes.to_param()
        );
        if c.quotas.is_empty() {
            // Loading accepts it because the document says so in words; it is still worth a second look, since one
            // unlimited caller can spend the account-wide Cognito budget every other caller shares.
            let _ = writeln!(
                out,
                "  warning: caller {} has quotas: unlimited; it can spend Cognito's account-wide request budget alone",
                c.id
            );
        }
    }
    Ok(out)
}

fn identity_kind(i: &Identity) -> &'static str {
    match i {
        Identity::SanUri(_) => "san_uri",
        Identity::SanDns(_) => "san_dns",
        Identity::SubjectCn { .. } => "subject_cn",
        Identity::CertSha256(_) => "cert_sha256",
        Identity::SpkiSha256(_) => "spki_sha256",
        Identity::Jwt { .. } => "jwt",
    }
}

/// What `policy explain` is asked about.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    pub policy: PathBuf,
    /// A client certificate (one PEM block), as API Gateway would pass it.
    pub cert: Option<PathBuf>,
    /// A file holding a partner JWT (compact form; surrounding whitespace ignored).
    pub jwt: Option<PathBuf>,
    /// The CA bundle the authorizer validates certificates against (required with `cert`).
    pub truststore: Option<PathBuf>,
    /// A CRL bundle; when given, revocation is checked exactly as in production (fail closed).
    pub crl: Option<PathBuf>,
    /// A JWKS document to use instead of fetching the issuer's `jwks_url` (offline explain).
    pub jwks: Option<PathBuf>,
    /// Decision time (default now), e.g. to ask "will this certificate still pass next month?".
    pub at: Option<SystemTime>,
}

/// The outcome of `explain`: a report for people and an exit code for scripts.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub report: String,
    pub exit_code: Exit,
}

/// Why explain could not decide at all.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Input(String),
}

/// Decides on one credential with the production authorizer and explains the result.
pub async fn explain(input: &ExplainInput) -> Result<Explanation, ExplainError> {
    let policy = Arc::new(Policy::load(&input.policy)?);
    let read = |p: &Path| std::fs::read(p).map_err(|e| ExplainError::Input(format!("{}: {e}", p.display())));
    let cert_pem = match &input.cert {
        Some(p) => Some(
            String::from_utf8(read(p)?)
                .map_err(|_| ExplainError::Input(format!("{}: not UTF-8 PEM text", p.display())))?,
        ),
        None => None,
    };
    let token = match &input.jwt {
        Some(p) => Some(
            String::from_utf8(read(p)?)
                .map_err(|_| ExplainError::Input(format!("{}: not text", p.display())))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    if cert_pem.is_none() && token.is_none() {
        return Err(ExplainError::Input("give --cert or --jwt".into()));
    }

    let trust = match (&cert_pem, &input.truststore) {
        (Some(_), None) => return Err(ExplainError::Input(
            "--truststore is required with --cert: the authorizer validates the chain before it identifies a caller"
                .into(),
        )),
        (_, Some(ts)) => Trust::Sources(TrustSources {
            truststore: Arc::new(FileObjectSource::new(ts)),
            crls: input
                .crl
                .as_ref()
                .map(|c| Arc::new(FileObjectSource::new(c)) as Arc<dyn tb_authorizer::ObjectSource>),
        }),
        // Only a JWT to explain: certificates play no part, whatever callers the policy has.
        (None, None) => Trust::Ignored,
    };

    let jwks: Arc<dyn JwksFetcher> = match &input.jwks {
        Some(p) => {
            let doc = read(p)?;
            let mem = MemoryJwksFetcher::default();
            for i in policy.issuers() {
                mem.set(&i.jwks_url, doc.clone());
            }
            Arc::new(mem)
        }
        None => Arc::new(
            HttpJwksFetcher::new(&JwksFetcherConfig::default())
                .map_err(|e| ExplainError::Input(format!("JWKS client: {e}")))?,
        ),
    };

    // The authorizer built as the Lambda builds it, with the clock stopped at `--at` so every time check (certificate
    // validity, CRL freshness, JWT exp/nbf/iat) is made at that moment.
    let policy_path = input.policy.display().to_string();
    // A policy that hashes caller ids needs a key to build; explain's report names callers in clear, so any key
    // of the required length does.
    let cfg = Config::read(&Env::from_pairs([
        ("POLICY_FILE", policy_path.as_str()),
        ("CALLER_HASH_KEY", "policy-explain-caller-hash-key"),
    ]))
    .map_err(|e| ExplainError::Input(e.to_string()))?;
    let now = input.at.unwrap_or_else(SystemTime::now);
    // Explain decides and never answers API Gateway, so it signs no context; the build still loads a key set, and a
    // throwaway key made here keeps the deployment's key out of an operator's tool.
    let throwaway = tb_shared::context::KeySet::single("explain", rand::random::<[u8; 32]>().to_vec())
        .map_err(|e| ExplainError::Input(e.to_string()))?;
    let deps = Deps {
        trust,
        jwks,
        metrics: MetricsSink::to_writer("Explain", std::io::sink()),
        clock: Clock::fixed(now),
        context_keys: Arc::new(tb_shared::context::MemoryKeySource::new(throwaway.to_document())),
    };
    let app = build(&cfg, deps).await.map_err(|e| match e {
        tb_authorizer::InitError::Truststore(t) => ExplainError::Input(format!("trust material: {t}")),
        other => ExplainError::Input(other.to_string()),
    })?;
    // The Lambda starts without trust material it cannot read (and refuses certificates until a refresh loads it);
    // here the operator named the files, so an unreadable one is a mistake in the command, not a decision.
    if let Some(e) = app.trust_load_error() {
        return Err(ExplainError::Input(format!("trust material: {e}")));
    }
    let presented = Presented { client_cert_pem: cert_pem.as_deref(), bearer: token.as_deref() };
    let (decision, _) = app.authorizer.decide(presented, app.clock.now()).await;

    let mut out = String::new();
    let _ = writeln!(out, "policy: {} (version {})", input.policy.display(), policy.version);
    if let Some(pem) = &cert_pem {
        describe_certificate(&mut out, pem);
    }
    if let Some(t) = &token {
        describe_token(&mut out, t);
    }
    let exit_code = match &decision {
        Decision::Allow(a) => {
            let _ = writeln!(out, "decision: ALLOW (API Gateway calls the broker)");
            let _ = writeln!(out, "auth method: {}", a.context.auth_method);
            if let Some(c) = policy.caller(&a.context.caller_id) {
                describe_caller(&mut out, c);
            }
            Exit::Ok
        }
        Decision::Deny(d) => {
            let _ = writeln!(out, "decision: DENY (403 unauthorized_client)");
            let _ = writeln!(out, "reason: {} ({})", d.reason.code(), deny_text(d.reason));
            if let Some(c) = d.caller.as_ref().and_then(|id| policy.caller(id)) {
                describe_caller(&mut out, c);
            }
            Exit::Deny
        }
        Decision::Unauthorized(r) => {
            let _ = writeln!(out, "decision: UNAUTHORIZED (401 invalid_client)");
            let detail = r.detail();
            if detail.is_empty() {
                let _ = writeln!(out, "reason: {}", r.code());
            } else {
                let _ = writeln!(out, "reason: {}: {detail}", r.code());
            }
            Exit::Unauthorized
        }
    };
    Ok(Explanation { report: out, exit_code })
}

fn deny_text(r: DenyReason) -> &'static str {
    match r {
        DenyReason::UnknownCaller => "the credential is valid but no caller's identities match it",
        DenyReason::AmbiguousCaller => "the certificate matches identities of more than one caller",
        DenyReason::DisabledCaller => "the caller is registered with enabled: false",
        DenyReason::RevokedCertificate => "the certificate is on its issuer's CRL",
        DenyReason::CallerMismatch => "the certificate and the JWT belong to different callers",
    }
}

fn describe_caller(out: &mut String, c: &Caller) {
    let _ = writeln!(out, "caller: {}{}", c.id, if c.enabled { "" } else { " (disabled)" });
    let _ = writeln!(out, "allowed scopes: {}", c.allowed_scopes.to_param());
    let _ = writeln!(out, "default scopes: {}", c.default_scopes.to_param());
    let quotas: Vec<String> = c.quotas.iter().map(|q| format!("{} per {}", q.limit, q.name)).collect();
    let _ = writeln!(out, "quotas: {}", if quotas.is_empty() { "unlimited".to_owned() } else { quotas.join(", ") });
    let _ = writeln!(out, "max token lifetime: {} s", c.max_token_lifetime.as_secs());
    let reuse = match (c.token_reuse, c.fleet_token_reuse) {
        (false, _) => "off",
        (true, false) => "on (each broker instance's memory)",
        (true, true) => "on (memory, then the fleet token cache shared by every instance)",
    };
    let _ = writeln!(out, "token reuse: {reuse}");
    let _ = writeln!(out, "cognito app client: {}", c.cognito_client);
    // The key value itself is credential-like: say whether there is one, never print it.
    let _ = writeln!(out, "usage plan key: {}", if c.usage_plan_key.is_some() { "set" } else { "none" });
}

/// What an operator needs to register or debug a certificate: every property an identity rule can match.
fn describe_certificate(out: &mut String, pem: &str) {
    let parsed = x509_parser::pem::parse_x509_pem(pem.as_bytes());
    let Ok((_, block)) = parsed else {
        let _ = writeln!(out, "certificate: not parseable PEM");
        return;
    };
    let fp = hex::encode(Sha256::digest(&block.contents));
    let _ = writeln!(out, "certificate sha256: {fp}");
    let Ok(cert) = block.parse_x509() else {
        let _ = writeln!(out, "certificate: DER does not parse");
        return;
    };
    let _ = writeln!(out, "  subject: {}", cert.subject());
    let _ = writeln!(out, "  issuer: {}", cert.issuer());
    let _ = writeln!(out, "  serial: {}", cert.raw_serial_as_string());
    let _ = writeln!(out, "  not after: {}", cert.validity().not_after);
    let spki = hex::encode(Sha256::digest(cert.public_key().raw));
    let _ = writeln!(out, "  spki sha256: {spki}");
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::URI(u) => {
                    let _ = writeln!(out, "  san uri: {u}");
                }
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    let _ = writeln!(out, "  san dns: {d}");
                }
                _ => {}
            }
        }
    }
}

/// The token's unverified `iss`/`sub`/`exp`: identifiers an operator needs to match a policy entry. The token
/// itself is never printed.
fn describe_token(out: &mut String, token: &str) {
    let fp = hex::encode(&Sha256::digest(token.as_bytes())[..8]);
    let _ = writeln!(out, "jwt sha256 prefix: {fp}");
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(claims) = claims else {
        let _ = writeln!(out, "  (payload not readable)");
        return;
    };
    for k in ["iss", "sub"] {
        if let Some(v) = claims.get(k).and_then(|v| v.as_str()) {
            let _ = writeln!(out, "  {k} (unverified): {v}");
        }
    }
    if let Some(exp) = claims.get("exp").and_then(|v| v.as_u64()) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if exp < now {
            let _ = writeln!(out, "  exp: {exp} (expired {} s ago)", now - exp);
        } else {
            let _ = writeln!(out, "  exp: {exp} (in {} s)", exp - now);
        }
    }
}
