//! The answer API Gateway expects from a REQUEST authorizer, and the one place that maps a [`Decision`] to it.
//!
//! - Allow: `principalId` = caller id, an IAM policy allowing `execute-api:Invoke` on the token method of this API
//!   for every stage (API Gateway may reuse a cached answer for another stage of the same API), the flat string
//!   context of [`tb_shared::context`] with its MAC (bound to this request's API and stage, see
//!   [`tb_shared::context::mac`]), and `usageIdentifierKey` when the caller has a usage plan. An Allow is never
//!   answered without the MAC: the broker refuses a context without one.
//! - Deny: the same shape with `Effect: Deny`; API Gateway answers 403.
//! - Unauthorized: not a policy at all but the function error whose message is exactly `Unauthorized`; API Gateway
//!   answers 401.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tb_shared::context::{sign, ApiBinding, KeySet};

use crate::decision::Decision;

/// The only HTTP method and resource this authorizer ever allows.
pub(crate) const TOKEN_METHOD: &str = "POST";
/// The token resource path.
pub(crate) const TOKEN_RESOURCE: &str = "oauth2/token";

/// A REQUEST authorizer response. Written by hand rather than taken from `aws_lambda_events` so that
/// `usageIdentifierKey` is omitted instead of sent as `null`, and the JSON is exactly what the docs show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    /// The caller id (or `unknown` on a Deny).
    pub principal_id: String,
    /// Allow or Deny on the token method.
    pub policy_document: PolicyDocument,
    /// The caller context (flat strings), on an Allow.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub context: HashMap<String, Value>,
    /// The usage-plan API key, when the caller has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_identifier_key: Option<String>,
}

/// IAM policy document of the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// IAM policy language version (`2012-10-17`).
    pub version: &'static str,
    /// One statement: Allow or Deny `execute-api:Invoke`.
    pub statement: Vec<Statement>,
}

/// One statement of the policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// `execute-api:Invoke`.
    pub action: &'static str,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// The token method's ARN on every stage of the API (a cached policy must hold for each).
    pub resource: Vec<String>,
}

/// The error whose message makes API Gateway answer 401. Its text must be exactly `Unauthorized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

impl From<Unauthorized> for lambda_runtime::Diagnostic {
    fn from(_: Unauthorized) -> Self {
        lambda_runtime::Diagnostic { error_type: "Unauthorized".into(), error_message: "Unauthorized".into() }
    }
}

/// Derives the resource ARN that covers the token method on every stage of the API the request came through.
///
/// `methodArn` looks like `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{VERB}/{path}`. The answer
/// allows `arn:aws:execute-api:{region}:{account}:{apiId}/*/POST/oauth2/token`: a cached Allow then stays valid when
/// API Gateway reuses it for another stage, and never covers another method or path.
pub(crate) fn token_resource_arn(method_arn: &str) -> Option<String> {
    let mut parts = method_arn.splitn(6, ':');
    let (arn, partition, service, region, account, rest) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if arn != "arn" || service != "execute-api" || partition.is_empty() || region.is_empty() || account.is_empty() {
        return None;
    }
    let api_id = rest.split('/').next()?;
    let ok = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok(api_id) || !ok(region) || !account.bytes().all(|b| b.is_ascii_digit()) || !ok(partition) {
        return None;
    }
    Some(format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/*/{TOKEN_METHOD}/{TOKEN_RESOURCE}"))
}

/// What an Allow's context MAC is made with: the current key set, the time of the answer and the MAC's lifetime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signing<'a> {
    pub(crate) keys: &'a KeySet,
    pub(crate) now: SystemTime,
    pub(crate) ttl: Duration,
}

/// Maps a decision to the authorizer's answer. The single place where decisions become responses.
///
/// An Allow is signed here, per answer, for the API and stage of this request's `methodArn`; a decision may come
/// from the cache, but its MAC never does. An Allow without `signing`, or whose `methodArn` names no API and
/// stage, is refused (`Unauthorized`) rather than answered unsigned.
pub(crate) fn respond(
    decision: &Decision,
    method_arn: &str,
    signing: Option<Signing<'_>>,
) -> Result<AuthorizerResponse, Unauthorized> {
    let resource = token_resource_arn(method_arn).ok_or(Unauthorized)?;
    match decision {
        Decision::Allow(allow) => {
            let api = ApiBinding::from_method_arn(method_arn).ok_or(Unauthorized)?;
            let signing = signing.ok_or(Unauthorized)?;
            let mut context = allow.context.to_map();
            for (key, value) in sign(&allow.context, &api, signing.keys, signing.now, signing.ttl) {
                context.insert(key.to_owned(), Value::String(value));
            }
            Ok(AuthorizerResponse {
                principal_id: allow.context.caller_id.to_string(),
                policy_document: policy("Allow", resource),
                context,
                usage_identifier_key: allow.usage_plan_key.as_ref().map(|k| k.expose().to_owned()),
            })
        }
        Decision::Deny(deny) => Ok(AuthorizerResponse {
            principal_id: deny.principal.clone(),
            policy_document: policy("Deny", resource),
            context: HashMap::new(),
            usage_identifier_key: None,
        }),
        Decision::Unauthorized(_) => Err(Unauthorized),
    }
}

fn policy(effect: &'static str, resource: String) -> PolicyDocument {
    PolicyDocument {
        version: "2012-10-17",
        statement: vec![Statement { action: "execute-api:Invoke", effect, resource: vec![resource] }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_covers_every_stage_of_the_token_method_only() {
        assert_eq!(
            token_resource_arn("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/oauth2/token").as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/POST/oauth2/token")
        );
        assert_eq!(
            token_resource_arn("arn:aws-cn:execute-api:cn-north-1:123456789012:abc/v2/GET/other").as_deref(),
            Some("arn:aws-cn:execute-api:cn-north-1:123456789012:abc/*/POST/oauth2/token")
        );
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:123456789012:function/x",
            "arn:aws:execute-api:us-east-1:notanaccount:abc/prod/POST/oauth2/token",
            "arn:aws:execute-api:us-east-1:123456789012:*/prod/POST/oauth2/token",
            "arn:aws:execute-api:us-east-1:123456789012",
        ] {
            assert_eq!(token_resource_arn(bad), None, "{bad}");
        }
    }

    use tb_shared::context::{verify, AuthMethod, CallerContext, MAC_KEYS};

    fn allow() -> Decision {
        Decision::Allow(crate::decision::Allow {
            context: CallerContext {
                caller_id: tb_shared::ids::CallerId::try_from("reporting").unwrap(),
                auth_method: AuthMethod::Mtls,
                credential_fingerprint: "0123456789abcdef".into(),
                policy_version: "v1".into(),
            },
            usage_plan_key: None,
        })
    }

    #[test]
    fn an_allow_is_signed_for_the_api_and_stage_of_its_method_arn_and_never_answered_unsigned() {
        let keys = KeySet::single("k1", vec![9u8; 32]).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let signing = Signing { keys: &keys, now, ttl: Duration::from_secs(300) };
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/oauth2/token";
        let answer = respond(&allow(), arn, Some(signing)).unwrap();
        for key in MAC_KEYS {
            assert!(answer.context[key].is_string(), "{key} missing: {:?}", answer.context);
        }
        assert_eq!(answer.context["contextMacExpires"], Value::String("1800000300".into()));
        let Decision::Allow(a) = allow() else { unreachable!() };
        let prod = ApiBinding { api_id: "a1b2c3".into(), stage: "prod".into() };
        assert_eq!(verify(&answer.context, &a.context, &prod, &keys, now), Ok(()));
        let beta = ApiBinding { api_id: "a1b2c3".into(), stage: "beta".into() };
        assert!(verify(&answer.context, &a.context, &beta, &keys, now).is_err());

        assert_eq!(respond(&allow(), arn, None), Err(Unauthorized), "never an Allow without a MAC");
        let no_stage = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3";
        assert_eq!(respond(&allow(), no_stage, Some(signing)), Err(Unauthorized));
    }

    #[test]
    fn unauthorized_message_is_exact() {
        let d: lambda_runtime::Diagnostic = Unauthorized.into();
        assert_eq!(d.error_message, "Unauthorized");
        assert_eq!(Unauthorized.to_string(), "Unauthorized");
    }
}
