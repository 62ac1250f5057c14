//! The Cognito app-client credentials the broker authenticates with, one SSM SecureString per app client.
//!
//! The parameter value is JSON. `client_id` and `client_secret` always; then where tokens come from:
//! - `"upstream": "token_endpoint"` (the default when `upstream` is absent): the user pool's hosted OAuth
//!   `/oauth2/token`, given as `token_url`, or as `domain_prefix` plus `region` (Cognito's hosted domain; `token_url`
//!   wins when both are set);
//! - `"upstream": "get_client_token"`: Cognito's `GetClientToken` API in `region` (the app client must have
//!   `ALLOW_CLIENT_TOKEN_AUTH` as its only flow; no user-pool domain is needed), optionally at `endpoint_url` instead
//!   of AWS's own endpoint (the local stand-in; https, or http only to a loopback host).
//!
//! Unknown keys are refused, and so are keys of the other mode, so a typo (`tokenurl`) or a half-edited parameter
//! cannot silently fall back to something else.
//!
//! Sources: [`ssm::SsmCredentialSource`] (production), [`memory::MemoryCredentialSource`] (tests, local stack), and
//! [`cache::CachedCredentials`] in front of either (TTL, single flight, bounded stale serving, refresh on rotation).

use std::net::IpAddr;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

mod cache;
mod memory;
mod ssm;

pub use cache::{CacheConfig, CachedCredentials};
pub use memory::MemoryCredentialSource;
pub(crate) use ssm::client_config as ssm_client_config;
pub use ssm::{is_valid_prefix as is_valid_ssm_prefix, SsmConfig, SsmCredentialSource};

/// One app client's credentials. `Debug` never shows the secret (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The Cognito app client id.
    pub client_id: String,
    /// Its secret; exposed only where an upstream request is built.
    pub client_secret: SecretString,
    /// Where tokens for this app client come from.
    pub upstream: UpstreamEndpoint,
}

/// Where the broker asks for an app client's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEndpoint {
    /// The user pool's hosted OAuth 2.0 `/oauth2/token` endpoint (client credentials grant, Basic authentication).
    TokenEndpoint(url::Url),
    /// Cognito's `GetClientToken` API (AWS JSON protocol, signed with the function's own AWS credentials).
    GetClientToken {
        /// The user pool's region.
        region: String,
        /// The API's endpoint when it is not AWS's own for `region` (the local stand-in).
        endpoint_url: Option<url::Url>,
    },
}

impl UpstreamEndpoint {
    /// The mode's name in the parameter (`upstream`), in logs and in metrics.
    pub fn mode(&self) -> &'static str {
        match self {
            UpstreamEndpoint::TokenEndpoint(_) => MODE_TOKEN_ENDPOINT,
            UpstreamEndpoint::GetClientToken { .. } => MODE_GET_CLIENT_TOKEN,
        }
    }
}

impl std::fmt::Display for UpstreamEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamEndpoint::TokenEndpoint(u) => write!(f, "{u}"),
            UpstreamEndpoint::GetClientToken { region, endpoint_url: None } => write!(f, "GetClientToken in {region}"),
            UpstreamEndpoint::GetClientToken { region, endpoint_url: Some(u) } => {
                write!(f, "GetClientToken in {region} at {u}")
            }
        }
    }
}

impl ClientCredentials {
    /// Credentials for the hosted `/oauth2/token` endpoint at `token_url`.
    pub fn token_endpoint(client_id: impl Into<String>, client_secret: SecretString, token_url: url::Url) -> Self {
        ClientCredentials {
            client_id: client_id.into(),
            client_secret,
            upstream: UpstreamEndpoint::TokenEndpoint(token_url),
        }
    }
}

/// `upstream` value of the hosted-endpoint mode.
pub const MODE_TOKEN_ENDPOINT: &str = "token_endpoint";
/// `upstream` value of the `GetClientToken` mode.
pub const MODE_GET_CLIENT_TOKEN: &str = "get_client_token";

/// Why credentials could not be had. Messages never contain the parameter value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum CredentialError {
    #[error("credential store unavailable: {0}")]
    Unavailable(String),
    #[error("no credentials configured for this app client")]
    NotFound,
    #[error("credential parameter is malformed: {0}")]
    Malformed(String),
    #[error("the token endpoint refused these credentials and the store still holds them")]
    Refused,
}

/// A credential store: reads an app client's credentials by the name the policy gives (`cognito_client`). SSM in
/// the Lambda, memory in the local stack and tests; the broker puts a [`CachedCredentials`] in front of it.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    /// The stored credentials of `app_client`.
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError>;
}

#[async_trait]
impl<T: CredentialSource + ?Sized> CredentialSource for std::sync::Arc<T> {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        (**self).get(app_client).await
    }
}

/// What the handler needs from credentials: read an app client's credentials (cheaply, from a cache), and read them
/// again from the store when Cognito says the secret we hold is wrong (it was rotated). Implemented by
/// [`CachedCredentials`]; the handler takes this narrow trait so it can do nothing else to the cache.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The app client's credentials, from the cache when fresh (or stale within bounds while the store is down).
    /// [`CredentialError::Refused`] while the cached credentials are ones Cognito refused and the store, read again,
    /// still held: sending them again would only be refused again.
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError>;
    /// Cognito refused `rejected`: read the app client's credentials from the store again. Refetches only if the
    /// cache still holds `rejected`, so a burst of refusals costs one store read. When the store still holds
    /// `rejected`, answers [`CredentialError::Refused`] and holds them back (see [`CacheConfig::retry_after_failure`]),
    /// so a wrong secret in the store costs one store read and one Cognito call per hold, not per request.
    async fn refresh_rejected(
        &self,
        app_client: &str,
        rejected: &ClientCredentials,
    ) -> Result<ClientCredentials, CredentialError>;
}

const KEYS: &[&str] =
    &["client_id", "client_secret", "upstream", "token_url", "domain_prefix", "region", "endpoint_url"];
const MAX_CLIENT_ID_LEN: usize = 128;
const MAX_SECRET_LEN: usize = 1024;

/// Parses a parameter value (the JSON above) into credentials.
///
/// Every error message is built from fixed text and key names only, never from serde's messages: those quote the
/// offending value, and the value here holds the client secret.
pub(crate) fn parse_parameter(value: &SecretString) -> Result<ClientCredentials, CredentialError> {
    let malformed = |m: &str| CredentialError::Malformed(m.to_owned());
    let json: Value = serde_json::from_str(value.expose_secret()).map_err(|e| {
        CredentialError::Malformed(format!("not valid JSON (line {}, column {})", e.line(), e.column()))
    })?;
    let Value::Object(obj) = json else { return Err(malformed("not a JSON object")) };
    if obj.keys().any(|k| !KEYS.contains(&k.as_str())) {
        // The unknown key is not named: a mangled document may have the secret in key position.
        return Err(malformed(
            "unknown key (allowed: client_id, client_secret, upstream, token_url, domain_prefix, region, endpoint_url)",
        ));
    }

    let client_id = string(&obj, "client_id")?.ok_or_else(|| malformed("client_id is missing"))?;
    if client_id.is_empty()
        || client_id.len() > MAX_CLIENT_ID_LEN
        || !client_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return Err(malformed("client_id must be 1-128 characters of A-Z a-z 0-9 _ + - ."));
    }

    let secret = string(&obj, "client_secret")?.ok_or_else(|| malformed("client_secret is missing"))?;
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("client_secret must be 1-1024 printable ASCII characters"));
    }

    let upstream = match string(&obj, "upstream")?.unwrap_or(MODE_TOKEN_ENDPOINT) {
        MODE_TOKEN_ENDPOINT => {
            if obj.contains_key("endpoint_url") {
                return Err(malformed("endpoint_url is only for \"upstream\": \"get_client_token\""));
            }
            UpstreamEndpoint::TokenEndpoint(token_endpoint_url(&obj)?)
        }
        MODE_GET_CLIENT_TOKEN => {
            if obj.contains_key("token_url") || obj.contains_key("domain_prefix") {
                return Err(malformed(
                    "token_url and domain_prefix are for the hosted endpoint, not \"upstream\": \"get_client_token\"",
                ));
            }
            let region = string(&obj, "region")?.ok_or_else(|| malformed("region is required for get_client_token"))?;
            if !valid_region(region) {
                return Err(malformed("region is not an AWS region name such as eu-west-1"));
            }
            let endpoint_url = match string(&obj, "endpoint_url")? {
                None => None,
                Some(u) => {
                    let u = checked_url("endpoint_url", u)?;
                    if u.path() != "/" {
                        return Err(malformed("endpoint_url must be a base URL without a path"));
                    }
                    Some(u)
                }
            };
            UpstreamEndpoint::GetClientToken { region: region.to_owned(), endpoint_url }
        }
        _ => return Err(malformed("upstream must be \"token_endpoint\" or \"get_client_token\"")),
    };

    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: SecretString::from(secret.to_owned()),
        upstream,
    })
}

/// The hosted endpoint: `token_url`, or the URL of `domain_prefix` and `region`.
fn token_endpoint_url(obj: &Map<String, Value>) -> Result<url::Url, CredentialError> {
    let malformed = |m: &str| CredentialError::Malformed(m.to_owned());
    match string(obj, "token_url")? {
        Some(u) => checked_url("token_url", u),
        None => {
            let prefix = string(obj, "domain_prefix")?;
            let region = string(obj, "region")?;
            match (prefix, region) {
                (Some(p), Some(r)) => cognito_url(p, r),
                (None, None) => Err(malformed("token_url, or domain_prefix and region, is required")),
                _ => Err(malformed("domain_prefix and region must be given together")),
            }
        }
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &'static str) -> Result<Option<&'a str>, CredentialError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CredentialError::Malformed(format!("{key} must be a string"))),
    }
}

/// The Cognito hosted-UI token endpoint for a domain prefix and region. Both are checked against Cognito's own
/// grammar so that neither can smuggle a different host or path into the URL.
fn cognito_url(prefix: &str, region: &str) -> Result<url::Url, CredentialError> {
    let prefix_ok = (1..=63).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !prefix.starts_with('-')
        && !prefix.ends_with('-');
    if !prefix_ok {
        return Err(CredentialError::Malformed("domain_prefix must be 1-63 of a-z 0-9 - (not at either end)".into()));
    }
    if !valid_region(region) {
        return Err(CredentialError::Malformed("region is not an AWS region name such as eu-west-1".into()));
    }
    url::Url::parse(&format!("https://{prefix}.auth.{region}.amazoncognito.com/oauth2/token"))
        .map_err(|_| CredentialError::Malformed("domain_prefix and region do not form a URL".into()))
}

/// `xx-name(-name)*-N`: two-letter area, one or more lowercase words, a 1-2 digit number (`us-gov-west-1`).
fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let n = parts.len();
    n >= 3
        && r.len() <= 32
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..n - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&parts[n - 1].len())
        && parts[n - 1].bytes().all(|b| b.is_ascii_digit())
}

/// A URL the broker may send a client secret to (`what` names the key for the error): https, or http only to a
/// loopback host (the local stand-in). No user info, query or fragment: the endpoint is a plain URL, anything else
/// is a mistake or an attempt.
fn checked_url(what: &str, raw: &str) -> Result<url::Url, CredentialError> {
    let malformed = |m: &str| CredentialError::Malformed(format!("{what} {m}"));
    let u = url::Url::parse(raw).map_err(|_| malformed("is not a URL"))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(malformed("has no host")),
    };
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(malformed("must be https (http only to a loopback host)")),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(malformed("must not carry user info"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(malformed("must not carry a query or fragment"));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-VALUE-never-logged";

    fn parse(json: &str) -> Result<ClientCredentials, CredentialError> {
        parse_parameter(&SecretString::from(json.to_owned()))
    }

    #[test]
    fn full_token_url_form() {
        let c = parse(&format!(
            r#"{{"client_id":"abc123","client_secret":"{SECRET}","token_url":"https://login.example.com/oauth2/token"}}"#
        ))
        .unwrap();
        assert_eq!(c.client_id, "abc123");
        assert_eq!(c.client_secret.expose_secret(), SECRET);
        assert_eq!(c.upstream.to_string(), "https://login.example.com/oauth2/token");
    }

    #[test]
    fn domain_prefix_and_region_form() {
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","domain_prefix":"my-pool-1","region":"eu-west-1"}}"#
        ))
        .unwrap();
        assert_eq!(c.upstream.to_string(), "https://my-pool-1.auth.eu-west-1.amazoncognito.com/oauth2/token");
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","domain_prefix":"p","region":"us-gov-west-1"}}"#
        ))
        .unwrap();
        assert_eq!(c.upstream.to_string(), "https://p.auth.us-gov-west-1.amazoncognito.com/oauth2/token");
    }

    #[test]
    fn token_url_wins_over_domain_prefix() {
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"https://auth.example.com/oauth2/token",
                "domain_prefix":"p","region":"eu-west-1"}}"#
        ))
        .unwrap();
        assert_eq!(c.upstream.to_string(), "https://auth.example.com/oauth2/token");
    }

    #[test]
    fn get_client_token_mode() {
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","upstream":"get_client_token","region":"eu-west-1"}}"#
        ))
        .unwrap();
        assert_eq!(c.upstream, UpstreamEndpoint::GetClientToken { region: "eu-west-1".into(), endpoint_url: None });
        assert_eq!(c.upstream.mode(), "get_client_token");
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","upstream":"get_client_token","region":"eu-west-1",
                "endpoint_url":"http://127.0.0.1:4566/"}}"#
        ))
        .unwrap();
        assert_eq!(c.upstream.to_string(), "GetClientToken in eu-west-1 at http://127.0.0.1:4566/");
        let explicit = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","upstream":"token_endpoint","token_url":"https://a.example/t"}}"#
        ))
        .unwrap();
        assert_eq!(explicit.upstream.mode(), "token_endpoint");
    }

    #[test]
    fn the_modes_keys_do_not_mix() {
        let gct = r#""upstream":"get_client_token","region":"eu-west-1""#;
        for (extra, why) in [
            (gct.to_string().replace(r#","region":"eu-west-1""#, ""), "region is required"),
            (format!(r#"{gct},"token_url":"https://a.example/t""#), "token_url and domain_prefix"),
            (format!(r#"{gct},"domain_prefix":"p""#), "token_url and domain_prefix"),
            (format!(r#"{gct},"endpoint_url":"http://cognito.example/""#), "endpoint_url must be https"),
            (format!(r#"{gct},"endpoint_url":"https://cognito.example/x""#), "without a path"),
            (format!(r#"{gct},"endpoint_url":"https://u:p@cognito.example/""#), "user info"),
            (r#""upstream":"get_client_token","region":"eu.west-1""#.to_owned(), "region is not"),
            (r#""upstream":"GetClientToken","region":"eu-west-1""#.to_owned(), "upstream must be"),
            (r#""upstream":7,"region":"eu-west-1""#.to_owned(), "upstream must be a string"),
            (
                r#""token_url":"https://a.example/t","endpoint_url":"https://b.example/""#.to_owned(),
                "endpoint_url is only",
            ),
        ] {
            let j = format!(r#"{{"client_id":"a","client_secret":"{SECRET}",{extra}}}"#);
            match parse(&j) {
                Err(CredentialError::Malformed(m)) => assert!(m.contains(why), "{extra}: {m}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in ["http://127.0.0.1:8080/oauth2/token", "http://localhost:1/t", "http://[::1]:9/t"] {
            let j = format!(r#"{{"client_id":"a","client_secret":"{SECRET}","token_url":"{ok}"}}"#);
            assert!(parse(&j).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/oauth2/token",
            "http://127.0.0.1.nip.io/t",
            "ftp://127.0.0.1/t",
            "https://user:pw@auth.example.com/t",
            "https://auth.example.com/t?x=1",
            "https://auth.example.com/t#f",
            "not a url",
            "file:///etc/passwd",
        ] {
            let j = format!(r#"{{"client_id":"a","client_secret":"{SECRET}","token_url":"{bad}"}}"#);
            assert!(matches!(parse(&j), Err(CredentialError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn prefix_and_region_grammar() {
        for (p, r) in [
            ("evil.com/x", "eu-west-1"),
            ("UPPER", "eu-west-1"),
            ("-lead", "eu-west-1"),
            ("trail-", "eu-west-1"),
            ("", "eu-west-1"),
            ("p", "eu-west"),
            ("p", "eu-west-123"),
            ("p", "eu.west-1"),
            ("p", "EU-west-1"),
            ("p", "eu--1"),
            ("p", "example.com#-1"),
        ] {
            let j = format!(r#"{{"client_id":"a","client_secret":"{SECRET}","domain_prefix":"{p}","region":"{r}"}}"#);
            assert!(matches!(parse(&j), Err(CredentialError::Malformed(_))), "{p} {r}");
        }
        let long = "a".repeat(64);
        let j =
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}","domain_prefix":"{long}","region":"eu-west-1"}}"#);
        assert!(parse(&j).is_err());
    }

    #[test]
    fn refusals_never_quote_the_secret() {
        let cases = [
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}","token_url":"https://x.example/t","extra":1}}"#),
            format!(r#"{{"client_id":"a","{SECRET}":"x","token_url":"https://x.example/t"}}"#),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}" "token_url":"https://x.example/t"}}"#),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}"}}"#),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}","domain_prefix":"p"}}"#),
            format!(r#"{{"client_id":"{SECRET} x","client_secret":"y","token_url":"https://x.example/t"}}"#),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET} with space","token_url":"https://x.example/t"}}"#),
            format!(r#"{{"client_id":"a","client_secret":["{SECRET}"],"token_url":"https://x.example/t"}}"#),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}","token_url":"http://{SECRET}.example/t"}}"#),
            format!(r#"["{SECRET}"]"#),
            SECRET.to_string(),
            format!(r#"{{"client_id":"a","client_secret":"{SECRET}","token_url":"https://x.example/t"}} trailing"#),
        ];
        for c in &cases {
            let err = parse(c).unwrap_err();
            assert!(matches!(err, CredentialError::Malformed(_)), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cr3t"), "secret leaked in {shown}");
        }
        let empty = parse(r#"{"client_id":"a","client_secret":"","token_url":"https://x.example/t"}"#).unwrap_err();
        assert!(matches!(empty, CredentialError::Malformed(_)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = parse(&format!(
            r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"https://x.example/oauth2/token"}}"#
        ))
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("abc"), "the client id is not secret and helps debugging: {shown}");
    }
}
