//! The pre-token-generation trigger, as a user pool with `LambdaVersion: V3_0` runs it for machine-to-machine
//! tokens. NOT FOR PRODUCTION.
//!
//! Why: the broker's caller claims reach a token only through this trigger, and the trigger only believes client
//! metadata whose MAC verifies. A test of the whole path needs a Cognito that builds the trigger event from a real
//! token request, calls the trigger and applies its answer the way Cognito does, at both token entry points.
//!
//! What it mimics (Developer Guide, "Pre token generation Lambda trigger"):
//! - Before signing any client-credentials access token, at `/oauth2/token` and in `GetClientToken` alike, the
//!   configured trigger gets a version 3 event: `version` `"3"`, `triggerSource`
//!   `TokenGeneration_ClientCredentials`, `region` (the pool id's prefix), `userPoolId`, `userName`,
//!   `callerContext {awsSdkVersion, clientId}`, `request {userAttributes: {}, groupConfiguration, scopes,
//!   clientMetadata}` and `response {claimsAndScopeOverrideDetails: null}`. `scopes` are the scopes being granted;
//!   `clientMetadata` is the request's metadata unchanged and unchecked, and absent when the request had none (as
//!   in the events Cognito sends for flows without metadata). `userName` and `groupConfiguration` are those of the
//!   documented client-credentials example event.
//! - From the answer, only `response.claimsAndScopeOverrideDetails.accessTokenGeneration` is read:
//!   `claimsToAddOrOverride` (any JSON value, as version 2 and 3 allow), `claimsToSuppress` ("If your function both
//!   suppresses and replaces a claim value, then Amazon Cognito suppresses the claim"), `scopesToAdd` (a scope with
//!   a blank is not added, as documented) and `scopesToSuppress`, applied to the `scope` claim.
//! - The guide's "claims and scopes reference" lists the claims a trigger can neither add, modify nor suppress:
//!   `acr`, `amr`, `at_hash`, `auth_time`, `azp`, `client_id`, `device_key`, `event_id`, `exp`, `iat`,
//!   `identities`, `iss`, `jti`, `nbf`, `nonce`, `origin_jti`, `sub`, `token_use`, `username`, `version`, every
//!   `cognito:` claim (the group claims it lets a trigger set are user-only), and `aud` unless its value is the app
//!   client id; `scope` changes only through `scopesToAdd`/`scopesToSuppress`. What Cognito does with an answer that
//!   tries is not documented; the stand-in drops those entries (and says so in a debug line), so no answer can ever
//!   change them. Every other name, `cnf` included, is "any claim not in the user pool token schema" and is written.
//! - A trigger that fails (the Lambda returns an error) fails the token request, as Cognito does. In the API that
//!   is `UserLambdaValidationException` with "PreTokenGeneration failed with error <the function's message>.", what
//!   Cognito answers for a trigger error in its authentication operations; `GetClientToken`'s reference does not
//!   list trigger exceptions, so the SDK reports it by its code. An answer Cognito cannot read is
//!   `InvalidLambdaResponseException`. At `/oauth2/token` both are HTTP 400 `invalid_request` with the same text in
//!   `error_description`: the hosted endpoints report a failed trigger as `invalid_request` with that description
//!   (the redirect flows show it), and this is the one place the stand-in adds an `error_description`, so a test can
//!   tell a refused token from a malformed request.
//!
//! Without a configured trigger, client metadata is accepted and ignored, as Cognito without a trigger.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use tb_shared::context::KeySet;

/// The function behind a trigger: the event in, the event with Cognito's `response` filled in out, or the error
/// message the Lambda fails with.
type Hook = dyn Fn(Value) -> Result<Value, String> + Send + Sync;

/// A pre-token-generation trigger for [`super::StandinConfig::pre_token_generation`].
#[derive(Clone)]
pub struct PreTokenGeneration {
    hook: Arc<Hook>,
    what: &'static str,
}

impl PreTokenGeneration {
    /// The project's trigger: [`tb_trigger::customize`] with `prefix` and `keys` at the current time, failing with
    /// the refusal's fixed reason (never a metadata value) as its message.
    pub fn caller_claims(prefix: tb_trigger::ClaimPrefix, keys: KeySet) -> Self {
        let keys = Arc::new(keys);
        let hook = move |event: Value| {
            tb_trigger::customize(event, &prefix, &keys, SystemTime::now()).map_err(|r| r.reason().to_owned())
        };
        Self { hook: Arc::new(hook), what: "tb-trigger caller claims" }
    }

    /// Any function as the trigger, for a test of how Cognito applies an answer. Its error message reaches the
    /// caller in Cognito's error, so it must not hold a secret.
    pub fn from_fn(f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static) -> Self {
        Self { hook: Arc::new(f), what: "custom function" }
    }

    pub(super) fn invoke(&self, event: Value) -> Result<Value, String> {
        (self.hook)(event)
    }
}

impl fmt::Debug for PreTokenGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PreTokenGeneration").field(&self.what).finish()
    }
}

/// What the event is built from.
pub(super) struct EventInput<'a> {
    pub pool_id: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub metadata: Option<&'a HashMap<String, String>>,
}

/// The version 3 client-credentials event Cognito sends the trigger.
pub(super) fn event(input: &EventInput<'_>) -> Value {
    let region = input.pool_id.split_once('_').map_or(input.pool_id, |(region, _)| region);
    let mut request = json!({
        "userAttributes": {},
        "groupConfiguration": null,
        "scopes": input.scopes,
    });
    if let Some(metadata) = input.metadata {
        request["clientMetadata"] = json!(metadata);
    }
    json!({
        "version": "3",
        "triggerSource": "TokenGeneration_ClientCredentials",
        "region": region,
        "userPoolId": input.pool_id,
        "userName": "ClientCredentials",
        "callerContext": { "awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": input.client_id },
        "request": request,
        "response": { "claimsAndScopeOverrideDetails": null },
    })
}

/// Claims of Cognito's access tokens that a trigger can neither add, modify nor suppress (see the module doc);
/// `aud` and `cognito:` claims are handled in [`is_protected`].
const PROTECTED_CLAIMS: [&str; 21] = [
    "acr",
    "amr",
    "at_hash",
    "auth_time",
    "azp",
    "client_id",
    "device_key",
    "event_id",
    "exp",
    "iat",
    "identities",
    "iss",
    "jti",
    "nbf",
    "nonce",
    "origin_jti",
    "scope",
    "sub",
    "token_use",
    "username",
    "version",
];

/// Whether the trigger may not set claim `name` to `value` in a token for `client_id`.
fn is_protected(name: &str, value: &Value, client_id: &str) -> bool {
    if name == "aud" {
        // "You can add an aud claim to access tokens, but its value must match the app client ID".
        return value.as_str() != Some(client_id);
    }
    PROTECTED_CLAIMS.contains(&name) || name.starts_with("cognito:")
}

/// The access-token part of a trigger's answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Overrides {
    add: Map<String, Value>,
    suppress: Vec<String>,
    scopes_to_add: Vec<String>,
    scopes_to_suppress: Vec<String>,
}

/// A list member of the answer: absent or null is empty, otherwise an array of strings.
fn strings(v: Option<&Value>) -> Result<Vec<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|i| i.as_str().map(str::to_owned).ok_or(())).collect(),
        Some(_) => Err(()),
    }
}

/// An object member of the answer: absent or null is `None`, otherwise an object.
fn object(v: Option<&Value>) -> Result<Option<&Map<String, Value>>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(()),
    }
}

impl Overrides {
    /// Reads the answer; `Err` when a member has a type Cognito would not accept.
    pub(super) fn from_event(answer: &Value) -> Result<Self, ()> {
        let response = object(answer.get("response"))?;
        let details = object(response.and_then(|r| r.get("claimsAndScopeOverrideDetails")))?;
        let Some(access) = object(details.and_then(|d| d.get("accessTokenGeneration")))? else {
            return Ok(Self::default());
        };
        Ok(Self {
            add: object(access.get("claimsToAddOrOverride"))?.cloned().unwrap_or_default(),
            suppress: strings(access.get("claimsToSuppress"))?,
            scopes_to_add: strings(access.get("scopesToAdd"))?,
            scopes_to_suppress: strings(access.get("scopesToSuppress"))?,
        })
    }

    /// Applies the answer to a token for `client_id`: its granted `scopes` and its claims beyond Cognito's fixed set.
    pub(super) fn apply(self, client_id: &str, scopes: &mut Vec<String>, extra: &mut Map<String, Value>) {
        for (name, value) in self.add {
            if is_protected(&name, &value, client_id) {
                tracing::debug!(claim = %name, "cognito stand-in: the trigger may not set this claim; dropped");
            } else if !self.suppress.contains(&name) {
                extra.insert(name, value);
            }
        }
        for name in &self.suppress {
            // Only claims the trigger itself added can be suppressed: every claim Cognito writes into a
            // client-credentials token is protected.
            extra.remove(name);
        }
        for scope in self.scopes_to_add {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                tracing::debug!("cognito stand-in: the trigger's scope has a blank; not added");
            } else if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.retain(|s| !self.scopes_to_suppress.contains(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(access: Value) -> Value {
        json!({ "response": { "claimsAndScopeOverrideDetails": { "accessTokenGeneration": access } } })
    }

    fn applied(access: Value) -> (Vec<String>, Map<String, Value>) {
        let mut scopes = vec!["a/r".to_owned(), "a/w".to_owned()];
        let mut extra = Map::new();
        Overrides::from_event(&answer(access)).unwrap().apply("client1", &mut scopes, &mut extra);
        (scopes, extra)
    }

    #[test]
    fn the_event_is_cognitos_version_3_client_credentials_event() {
        let scopes = vec!["a/r".to_owned()];
        let metadata = HashMap::from([("k".to_owned(), "v".to_owned())]);
        let input =
            EventInput { pool_id: "eu-west-1_abc", client_id: "c1", scopes: &scopes, metadata: Some(&metadata) };
        let e = event(&input);
        assert_eq!(e["version"], "3");
        assert_eq!(e["triggerSource"], "TokenGeneration_ClientCredentials");
        assert_eq!(e["region"], "eu-west-1");
        assert_eq!(e["userPoolId"], "eu-west-1_abc");
        assert_eq!(e["callerContext"]["clientId"], "c1");
        assert_eq!(e["request"]["scopes"], json!(["a/r"]));
        assert_eq!(e["request"]["clientMetadata"], json!({ "k": "v" }));
        assert_eq!(e["request"]["userAttributes"], json!({}));
        assert_eq!(e["response"], json!({ "claimsAndScopeOverrideDetails": null }));
        let without = event(&EventInput { metadata: None, ..input });
        assert!(without["request"].get("clientMetadata").is_none());
    }

    #[test]
    fn no_answer_changes_nothing() {
        for a in
            [json!({}), json!({ "response": null }), json!({ "response": { "claimsAndScopeOverrideDetails": null } })]
        {
            assert_eq!(Overrides::from_event(&a), Ok(Overrides::default()));
        }
        assert_eq!(applied(json!(null)), (vec!["a/r".to_owned(), "a/w".to_owned()], Map::new()));
    }

    #[test]
    fn claims_of_any_json_type_are_added_and_suppression_wins() {
        let (_, extra) = applied(json!({
            "claimsToAddOrOverride": { "tb:callerId": "svc", "cnf": { "x5t#S256": "abc" }, "n": 7, "gone": "x" },
            "claimsToSuppress": ["gone", "never-added"],
        }));
        assert_eq!(Value::Object(extra), json!({ "tb:callerId": "svc", "cnf": { "x5t#S256": "abc" }, "n": 7 }));
    }

    #[test]
    fn protected_claims_are_never_written() {
        let mut add = Map::new();
        for name in PROTECTED_CLAIMS.iter().chain(&["cognito:groups", "cognito:username", "aud"]) {
            add.insert((*name).to_owned(), json!("forged"));
        }
        let (scopes, extra) = applied(json!({ "claimsToAddOrOverride": add, "claimsToSuppress": ["sub", "exp"] }));
        assert!(extra.is_empty(), "{extra:?}");
        assert_eq!(scopes, ["a/r", "a/w"]);
        // aud only with the app client's id as its value.
        let (_, extra) = applied(json!({ "claimsToAddOrOverride": { "aud": "client1" } }));
        assert_eq!(extra.get("aud"), Some(&json!("client1")));
    }

    #[test]
    fn scopes_are_added_and_suppressed() {
        let (scopes, _) = applied(json!({
            "scopesToAdd": ["b/x", "a/r", "bad scope", ""],
            "scopesToSuppress": ["a/w", "b/y"],
        }));
        assert_eq!(scopes, ["a/r", "b/x"]);
        let (scopes, _) = applied(json!({ "scopesToAdd": ["b/x"], "scopesToSuppress": ["b/x"] }));
        assert_eq!(scopes, ["a/r", "a/w"]);
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_unreadable() {
        for access in [
            json!("x"),
            json!({ "claimsToAddOrOverride": ["a"] }),
            json!({ "claimsToSuppress": "a" }),
            json!({ "scopesToAdd": [1] }),
            json!({ "scopesToSuppress": {} }),
        ] {
            assert_eq!(Overrides::from_event(&answer(access.clone())), Err(()), "{access}");
        }
        assert_eq!(Overrides::from_event(&json!({ "response": [] })), Err(()));
        assert_eq!(Overrides::from_event(&json!({ "response": { "claimsAndScopeOverrideDetails": 1 } })), Err(()));
    }
}
