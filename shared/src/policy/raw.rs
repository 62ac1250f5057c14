//! The document exactly as written, before validation. Every struct denies unknown keys so a misspelt field is an
//! error at load rather than a silently ignored rule.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub version: u32,
    #[serde(default)]
    pub settings: RawSettings,
    #[serde(default)]
    pub callers: Vec<RawCaller>,
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    #[serde(default)]
    pub hash_caller_ids: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCaller {
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub identities: Vec<RawIdentity>,
    pub cognito_client: String,
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<RawQuota>,
    pub max_token_lifetime_seconds: u64,
    #[serde(default)]
    pub token_reuse: bool,
    #[serde(default)]
    pub usage_plan_key: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub(super) enum RawIdentity {
    SanUri { value: String },
    SanDns { value: String },
    SubjectCn { cn: String, issuer_cn: String },
    CertSha256 { value: String },
    SpkiSha256 { value: String },
    Jwt { issuer: String, subject: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    /// `second`, `minute`, `hour`, `day`, or a whole number of seconds such as `900s`.
    pub per: String,
    pub limit: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub max_token_age_seconds: u64,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default)]
    pub subject_claim: Option<String>,
}

fn default_leeway() -> u64 {
    30
}
