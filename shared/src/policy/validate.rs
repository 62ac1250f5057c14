//! Turns the raw document into a [`Policy`], refusing every inconsistency with an error that names where it is.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::raw::{RawCaller, RawIdentity, RawIssuer, RawPolicy, RawQuota, RawSettings};
use super::{Caller, Identity, JwtAlgorithm, JwtIssuer, KeyFloor, Policy, QuotaWindow, UsagePlanKey};
use crate::ids::{CallerId, Scope, ScopeSet};

/// The only document version this build understands.
pub(crate) const POLICY_FORMAT_VERSION: u32 = 1;
/// Upper bound on a caller's token lifetime: Cognito's own maximum access-token validity is one day.
const MAX_LIFETIME_SECONDS: u64 = 86_400;
/// Upper bound on a partner token's accepted age; a longer one defeats the point of short-lived assertions.
const MAX_TOKEN_AGE_SECONDS: u64 = 86_400;
/// Upper bound on clock leeway.
const MAX_LEEWAY_SECONDS: u64 = 300;
/// Longest quota window: counters carry a TTL of one window, and a year is already more than anyone needs.
const MAX_WINDOW_SECONDS: u64 = 366 * 86_400;

/// Why a policy document was refused. Every variant names the file; field-level variants name the caller or
/// issuer and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read, or is too large to be a policy.
    #[error("{file}: cannot read policy: {reason}")]
    Io {
        /// The policy file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The file is not YAML of the policy's shape (bad syntax, unknown key, wrong type).
    #[error("{file}: not a valid policy document: {reason}")]
    Syntax {
        /// The policy file.
        file: String,
        /// The parser's message.
        reason: String,
    },
    /// A top-level field is wrong, such as an unsupported `version`.
    #[error("{file}: {field}: {reason}")]
    Document {
        /// The policy file.
        file: String,
        /// The offending top-level field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One caller's entry is wrong or clashes with another caller's.
    #[error("{file}: caller {caller:?}: {field}: {reason}")]
    Caller {
        /// The policy file.
        file: String,
        /// The caller's id as written.
        caller: String,
        /// The offending field, dotted for nested ones (`quotas.per`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One issuer's entry is wrong or duplicates another.
    #[error("{file}: issuer {issuer:?}: {field}: {reason}")]
    Issuer {
        /// The policy file.
        file: String,
        /// The issuer string as written.
        issuer: String,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn caller(&self, caller: &str, field: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError::Caller {
            file: self.file.to_owned(),
            caller: caller.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
    fn issuer(&self, issuer: &str, field: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError::Issuer {
            file: self.file.to_owned(),
            issuer: issuer.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

pub(super) fn build(file: &str, raw: RawPolicy, version: String) -> Result<Policy, PolicyError> {
    let ctx = Ctx { file };
    if raw.version != POLICY_FORMAT_VERSION {
        return Err(PolicyError::Document {
            file: file.to_owned(),
            field: "version".into(),
            reason: format!("unsupported version {}, expected {POLICY_FORMAT_VERSION}", raw.version),
        });
    }

    let mut issuers = Vec::with_capacity(raw.issuers.len());
    let mut issuer_names = HashSet::new();
    for ri in raw.issuers {
        let iss = build_issuer(&ctx, ri)?;
        if !issuer_names.insert(iss.issuer.clone()) {
            return Err(ctx.issuer(&iss.issuer, "issuer", "duplicate issuer"));
        }
        issuers.push(iss);
    }

    let mut callers = Vec::with_capacity(raw.callers.len());
    let mut by_id = HashMap::new();
    let mut by_identity = HashMap::new();
    let mut usage_keys: HashMap<String, String> = HashMap::new();
    for rc in raw.callers {
        let caller = build_caller(&ctx, rc, &issuer_names)?;
        let idx = callers.len();
        if by_id.insert(caller.id.clone(), idx).is_some() {
            return Err(ctx.caller(caller.id.as_str(), "id", "duplicate caller id"));
        }
        for identity in &caller.identities {
            if let Some(&other) = by_identity.get(&identity.key()) {
                let other: &Caller = &callers[other];
                let reason = if other.id == caller.id {
                    "the same identity is listed twice".to_owned()
                } else {
                    format!("identity {identity:?} is already mapped to caller {:?}", other.id.as_str())
                };
                return Err(ctx.caller(caller.id.as_str(), "identities", reason));
            }
            by_identity.insert(identity.key(), idx);
        }
        if let Some(key) = &caller.usage_plan_key {
            if let Some(other) = usage_keys.insert(key.expose().to_owned(), caller.id.to_string()) {
                return Err(ctx.caller(
                    caller.id.as_str(),
                    "usage_plan_key",
                    format!("the same key is used by caller {other:?}"),
                ));
            }
        }
        callers.push(caller);
    }

    let key_floor = build_key_floor(file, &raw.settings)?;
    Ok(Policy {
        version,
        hash_caller_ids: raw.settings.hash_caller_ids,
        key_floor,
        callers,
        by_id,
        by_identity,
        issuers,
    })
}

fn build_caller(ctx: &Ctx<'_>, rc: RawCaller, issuers: &HashSet<String>) -> Result<Caller, PolicyError> {
    let id = CallerId::try_from(rc.id.as_str()).map_err(|e| ctx.caller(&rc.id, "id", e.to_string()))?;
    let name = id.as_str();

    if rc.identities.is_empty() {
        return Err(ctx.caller(name, "identities", "at least one identity is required"));
    }
    let mut identities = Vec::with_capacity(rc.identities.len());
    for ri in rc.identities {
        identities.push(build_identity(ctx, name, ri, issuers)?);
    }

    if rc.cognito_client.is_empty()
        || rc.cognito_client.len() > 128
        || !rc.cognito_client.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ctx.caller(
            name,
            "cognito_client",
            "must be 1-128 characters of A-Z a-z 0-9 . _ - (it names an SSM parameter)",
        ));
    }

    let allowed_scopes = scopes(ctx, name, "allowed_scopes", &rc.allowed_scopes)?;
    if allowed_scopes.is_empty() {
        return Err(ctx.caller(name, "allowed_scopes", "at least one scope is required"));
    }
    let default_scopes = scopes(ctx, name, "default_scopes", &rc.default_scopes)?;
    if let Some(outside) = default_scopes.difference(&allowed_scopes).next() {
        return Err(ctx.caller(name, "default_scopes", format!("{:?} is not in allowed_scopes", outside.as_str())));
    }

    let raw_quotas = match rc.quotas {
        None => {
            return Err(ctx.caller(
                name,
                "quotas",
                "required: list at least one window, or write `quotas: unlimited` to grant without limit",
            ))
        }
        Some(serde_norway::Value::String(word)) if word == "unlimited" => Vec::new(),
        Some(serde_norway::Value::Sequence(seq)) if seq.is_empty() => {
            return Err(ctx.caller(
                name,
                "quotas",
                "an empty list is not a limit: list at least one window, or write `quotas: unlimited`",
            ))
        }
        Some(v @ serde_norway::Value::Sequence(_)) => {
            serde_norway::from_value::<Vec<RawQuota>>(v).map_err(|e| ctx.caller(name, "quotas", e.to_string()))?
        }
        Some(_) => {
            return Err(ctx.caller(name, "quotas", "expected a list of windows or the word `unlimited`"));
        }
    };
    let mut quotas: Vec<QuotaWindow> = Vec::with_capacity(raw_quotas.len());
    for q in raw_quotas {
        let (wname, secs) = parse_window(&q.per).ok_or_else(|| {
            ctx.caller(
                name,
                "quotas.per",
                format!("{:?}: expected second, minute, hour, day or a number of seconds like 900s", q.per),
            )
        })?;
        if secs == 0 || secs > MAX_WINDOW_SECONDS {
            return Err(ctx.caller(name, "quotas.per", format!("window must be 1s..{MAX_WINDOW_SECONDS}s")));
        }
        if q.limit == 0 {
            return Err(ctx.caller(name, "quotas.limit", "must be at least 1 (disable the caller instead)"));
        }
        if quotas.iter().any(|w| w.length.as_secs() == secs) {
            return Err(ctx.caller(name, "quotas.per", format!("two quotas for the same window {wname}")));
        }
        quotas.push(QuotaWindow { name: wname, length: Duration::from_secs(secs), limit: q.limit });
    }

    if rc.max_token_lifetime_seconds < 60 || rc.max_token_lifetime_seconds > MAX_LIFETIME_SECONDS {
        return Err(ctx.caller(name, "max_token_lifetime_seconds", format!("must be 60..={MAX_LIFETIME_SECONDS}")));
    }

    if rc.fleet_token_reuse && !rc.token_reuse {
        return Err(ctx.caller(
            name,
            "fleet_token_reuse",
            "needs token_reuse: true (the in-memory cache stays in front of the fleet cache)",
        ));
    }

    // A bound token names the certificate that asked for it; a caller that may also come in with a JWT has no
    // certificate on that path, and a token it got there would silently be unbound.
    if rc.bind_token_to_certificate && identities.iter().any(|i| matches!(i, Identity::Jwt { .. })) {
        return Err(ctx.caller(
            name,
            "bind_token_to_certificate",
            "needs every identity to be a certificate identity (this caller has a jwt identity)",
        ));
    }

    if let Some(key) = &rc.usage_plan_key {
        // API Gateway API key values are 20-128 printable characters.
        if key.len() < 20 || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ctx.caller(name, "usage_plan_key", "must be 20-128 printable ASCII characters"));
        }
    }

    Ok(Caller {
        id,
        enabled: rc.enabled,
        identities,
        cognito_client: rc.cognito_client,
        allowed_scopes,
        default_scopes,
        quotas,
        max_token_lifetime: Duration::from_secs(rc.max_token_lifetime_seconds),
        token_reuse: rc.token_reuse,
        fleet_token_reuse: rc.fleet_token_reuse,
        bind_token_to_certificate: rc.bind_token_to_certificate,
        usage_plan_key: rc.usage_plan_key.map(UsagePlanKey::new),
    })
}

fn build_identity(
    ctx: &Ctx<'_>,
    caller: &str,
    ri: RawIdentity,
    issuers: &HashSet<String>,
) -> Result<Identity, PolicyError> {
    let nonempty = |field: &str, v: &str| {
        if v.trim().is_empty() || v.len() > 1024 {
            Err(ctx.caller(caller, field, "must be 1-1024 characters"))
        } else {
            Ok(())
        }
    };
    let sha = |field: &str, v: &str| {
        if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(v.to_ascii_lowercase())
        } else {
            Err(ctx.caller(caller, field, "must be 64 hex digits (SHA-256)"))
        }
    };
    Ok(match ri {
        RawIdentity::SanUri { value } => {
            nonempty("identities.san_uri", &value)?;
            if !value.contains(':') {
                return Err(ctx.caller(caller, "identities.san_uri", "must be an absolute URI"));
            }
            Identity::SanUri(value)
        }
        RawIdentity::SanDns { value } => {
            nonempty("identities.san_dns", &value)?;
            if value.contains('*') {
                return Err(ctx.caller(caller, "identities.san_dns", "wildcards are not allowed"));
            }
            Identity::SanDns(value.to_ascii_lowercase())
        }
        RawIdentity::SubjectCn { cn, issuer_cn, issuer_spki_sha256 } => {
            nonempty("identities.subject_cn.cn", &cn)?;
            nonempty("identities.subject_cn.issuer_cn", &issuer_cn)?;
            let issuer_spki_sha256 =
                issuer_spki_sha256.map(|v| sha("identities.subject_cn.issuer_spki_sha256", &v)).transpose()?;
            Identity::SubjectCn { cn, issuer_cn, issuer_spki_sha256 }
        }
        RawIdentity::CertSha256 { value } => Identity::CertSha256(sha("identities.cert_sha256", &value)?),
        RawIdentity::SpkiSha256 { value } => Identity::SpkiSha256(sha("identities.spki_sha256", &value)?),
        RawIdentity::Jwt { issuer, subject } => {
            nonempty("identities.jwt.subject", &subject)?;
            if !issuers.contains(&issuer) {
                return Err(ctx.caller(
                    caller,
                    "identities.jwt.issuer",
                    format!("{issuer:?} is not listed under issuers"),
                ));
            }
            Identity::Jwt { issuer, subject }
        }
    })
}

fn scopes(ctx: &Ctx<'_>, caller: &str, field: &str, list: &[String]) -> Result<ScopeSet, PolicyError> {
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let scope = Scope::try_from(s.as_str()).map_err(|e| ctx.caller(caller, field, format!("{s:?}: {e}")))?;
        if out.contains(&scope) {
            return Err(ctx.caller(caller, field, format!("{s:?} is listed twice")));
        }
        out.push(scope);
    }
    Ok(ScopeSet::from_scopes(out))
}

fn parse_window(per: &str) -> Option<(String, u64)> {
    let secs = match per {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        other => other.strip_suffix('s')?.parse::<u64>().ok()?,
    };
    let name = match per {
        "second" | "minute" | "hour" | "day" => per.to_owned(),
        _ => format!("{secs}s"),
    };
    Some((name, secs))
}

fn build_issuer(ctx: &Ctx<'_>, ri: RawIssuer) -> Result<JwtIssuer, PolicyError> {
    let name = ri.issuer.clone();
    if ri.issuer.is_empty() || ri.issuer.len() > 1024 {
        return Err(ctx.issuer(&name, "issuer", "must be 1-1024 characters"));
    }
    let url = url::Url::parse(&ri.jwks_url).map_err(|e| ctx.issuer(&name, "jwks_url", e.to_string()))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(ctx.issuer(&name, "jwks_url", "must be https (http only for a loopback development server)"));
    }
    if ri.audiences.is_empty() || ri.audiences.iter().any(|a| a.is_empty()) {
        return Err(ctx.issuer(&name, "audiences", "at least one non-empty audience is required"));
    }
    if ri.algorithms.is_empty() {
        return Err(ctx.issuer(&name, "algorithms", "at least one algorithm is required"));
    }
    let mut algorithms = Vec::new();
    for a in &ri.algorithms {
        let alg = JwtAlgorithm::from_name(a).ok_or_else(|| {
            ctx.issuer(
                &name,
                "algorithms",
                format!("{a:?} is not an accepted asymmetric algorithm (RS*, PS*, ES256, ES384, EdDSA)"),
            )
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if ri.max_token_age_seconds == 0 || ri.max_token_age_seconds > MAX_TOKEN_AGE_SECONDS {
        return Err(ctx.issuer(&name, "max_token_age_seconds", format!("must be 1..={MAX_TOKEN_AGE_SECONDS}")));
    }
    if ri.leeway_seconds > MAX_LEEWAY_SECONDS {
        return Err(ctx.issuer(&name, "leeway_seconds", format!("must be 0..={MAX_LEEWAY_SECONDS}")));
    }
    let subject_claim = ri.subject_claim.unwrap_or_else(|| "sub".to_owned());
    if subject_claim.is_empty() || subject_claim.len() > 128 {
        return Err(ctx.issuer(&name, "subject_claim", "must be 1-128 characters"));
    }
    let audience_claim = ri.audience_claim.unwrap_or_else(|| "aud".to_owned());
    if !claim_name_ok(&audience_claim) {
        return Err(ctx.issuer(&name, "audience_claim", "must be 1-128 characters, no spaces"));
    }
    if matches!(audience_claim.as_str(), "iss" | "exp" | "iat" | "nbf") || audience_claim == subject_claim {
        return Err(ctx.issuer(
            &name,
            "audience_claim",
            format!("{audience_claim:?} cannot name the audience (it is a time, the issuer or the subject claim)"),
        ));
    }
    let mut required_claims: Vec<String> = Vec::with_capacity(ri.required_claims.len());
    for c in ri.required_claims {
        if !claim_name_ok(&c) {
            return Err(ctx.issuer(&name, "required_claims", format!("{c:?}: must be 1-128 characters, no spaces")));
        }
        if required_claims.contains(&c) {
            return Err(ctx.issuer(&name, "required_claims", format!("{c:?} is listed twice")));
        }
        required_claims.push(c);
    }
    Ok(JwtIssuer {
        issuer: ri.issuer,
        jwks_url: ri.jwks_url,
        audiences: ri.audiences,
        algorithms,
        max_token_age: Duration::from_secs(ri.max_token_age_seconds),
        leeway: Duration::from_secs(ri.leeway_seconds),
        subject_claim,
        audience_claim,
        required_claims,
    })
}

/// A JSON member name as a policy may write it: non-empty, bounded, printable, no whitespace.
fn claim_name_ok(c: &str) -> bool {
    !c.is_empty() && c.len() <= 128 && c.chars().all(|ch| !ch.is_whitespace() && !ch.is_control())
}

/// The weakest leaf key the authorizer accepts. The defaults are the floor; a policy may only raise it.
fn build_key_floor(file: &str, s: &RawSettings) -> Result<KeyFloor, PolicyError> {
    let err = |field: &str, reason: &str| PolicyError::Document {
        file: file.to_owned(),
        field: format!("settings.{field}"),
        reason: reason.to_owned(),
    };
    let min_rsa_bits = s.min_rsa_key_bits.unwrap_or(KeyFloor::DEFAULT.min_rsa_bits);
    if !(KeyFloor::DEFAULT.min_rsa_bits..=16_384).contains(&min_rsa_bits) {
        return Err(err("min_rsa_key_bits", "must be 2048..=16384 (2048 is the floor; it can only be raised)"));
    }
    let min_ec_bits = s.min_ec_key_bits.unwrap_or(KeyFloor::DEFAULT.min_ec_bits);
    if !matches!(min_ec_bits, 256 | 384 | 521) {
        return Err(err("min_ec_key_bits", "must be 256, 384 or 521 (the curve sizes P-256, P-384, P-521)"));
    }
    Ok(KeyFloor { min_rsa_bits, min_ec_bits })
}
