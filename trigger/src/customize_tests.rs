use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use tb_shared::context::claims::{sign, CLAIMS_TTL, META_MAC, META_MAC_EXPIRES};
use tb_shared::context::{AuthMethod, CallerContext};
use tb_shared::ids::CallerId;

use super::*;
use crate::prefix::is_reserved_claim;

const CLIENT: &str = "4k1f7ea9mb0tq2vhs3ugxy85dn";
const THUMB: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
const T0: u64 = 1_900_000_000;

fn keys() -> KeySet {
    tb_devkit::fixtures::context_key_set()
}
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0)
}
fn caller(bound: bool) -> CallerClaims {
    CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from("order-processing").unwrap(),
            auth_method: if bound { AuthMethod::Mtls } else { AuthMethod::Jwt },
            credential_fingerprint: if bound { THUMB.into() } else { "0f1e2d3c4b5a6978".into() },
            policy_version: "9a8b7c6d5e4f3a2b".into(),
        },
        cert_thumbprint: bound.then(|| THUMB.to_owned()),
    }
}
fn signed(bound: bool, client: &str) -> BTreeMap<String, String> {
    sign(&caller(bound), client, &keys(), now(), CLAIMS_TTL)
}
fn event_with(metadata: Value) -> Value {
    json!({
        "version": "3",
        "triggerSource": "TokenGeneration_ClientCredentials",
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_Ab12Cd34E",
        "userName": "ClientCredentials",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": CLIENT},
        "request": {
            "userAttributes": {},
            "groupConfiguration": null,
            "scopes": ["orders/read", "orders/write"],
            "clientMetadata": metadata
        },
        "response": {"claimsAndScopeOverrideDetails": null}
    })
}
fn event(bound: bool) -> Value {
    event_with(json!(signed(bound, CLIENT)))
}
fn run(event: Value) -> Result<Value, Refusal> {
    customize(event, &ClaimPrefix::default(), &keys(), now())
}
fn added(out: &Value) -> &Map<String, Value> {
    out.pointer("/response/claimsAndScopeOverrideDetails/accessTokenGeneration/claimsToAddOrOverride")
        .and_then(Value::as_object)
        .expect("claims written")
}

#[test]
fn verified_metadata_adds_the_prefixed_claims_and_nothing_else() {
    let input = event(false);
    let out = run(input.clone()).unwrap();
    let claims = added(&out);
    let want = json!({
        "tb:callerId": "order-processing",
        "tb:authMethod": "jwt",
        "tb:credentialFingerprint": "0f1e2d3c4b5a6978",
        "tb:policyVersion": "9a8b7c6d5e4f3a2b"
    });
    assert_eq!(Value::Object(claims.clone()), want);
    // Only the claims: nothing suppressed, no scope change, no ID-token or group change.
    let details = out.pointer("/response/claimsAndScopeOverrideDetails").unwrap();
    assert_eq!(details.as_object().unwrap().keys().collect::<Vec<_>>(), ["accessTokenGeneration"]);
    let access = details.get("accessTokenGeneration").unwrap().as_object().unwrap();
    assert_eq!(access.keys().collect::<Vec<_>>(), ["claimsToAddOrOverride"]);
    // Every other field comes back as it came in.
    let mut rest = out.clone();
    rest["response"]["claimsAndScopeOverrideDetails"] = Value::Null;
    assert_eq!(rest, input);
}

#[test]
fn a_bound_token_gets_cnf_as_a_json_object() {
    let out = run(event(true)).unwrap();
    let claims = added(&out);
    assert_eq!(claims["cnf"], json!({"x5t#S256": THUMB}));
    assert_eq!(claims["tb:authMethod"], "mtls");
    assert_eq!(claims["tb:credentialFingerprint"], THUMB);
    assert_eq!(claims.len(), 5);
}

#[test]
fn the_prefix_is_applied_and_no_prefixed_claim_is_reserved() {
    for p in ["tb:", "acme_", "x.y-"] {
        let prefix = ClaimPrefix::parse(p).unwrap();
        let out = customize(event(true), &prefix, &keys(), now()).unwrap();
        for name in added(&out).keys() {
            if name == CNF_CLAIM {
                continue;
            }
            assert!(name.starts_with(p), "{name}");
            assert!(!is_reserved_claim(name), "{name}");
        }
    }
}

#[test]
fn tampered_other_client_and_expired_metadata_is_refused() {
    let mismatch = Err(Refusal::Metadata(ClaimsError::Mismatch));
    for (key, value) in [("callerId", "billing"), ("policyVersion", "0000000000000000"), ("authMethod", "mtls")] {
        let mut m = signed(false, CLIENT);
        m.insert(key.into(), value.into());
        assert_eq!(run(event_with(json!(m))), mismatch, "{key}");
    }
    let mut m = signed(false, CLIENT);
    let tag = m[META_MAC].clone();
    let flipped = if tag.starts_with('A') { tag.replacen('A', "B", 1) } else { format!("A{}", &tag[1..]) };
    m.insert(META_MAC.into(), flipped);
    assert_eq!(run(event_with(json!(m))), mismatch, "a changed MAC");
    assert_eq!(run(event_with(json!(signed(false, "another-app-client")))), mismatch, "another app client's metadata");
    let late = customize(event(false), &ClaimPrefix::default(), &keys(), now() + CLAIMS_TTL + Duration::from_secs(1));
    assert_eq!(late, Err(Refusal::Metadata(ClaimsError::Expired)));
    let mut m = signed(false, CLIENT);
    m.insert(META_MAC_EXPIRES.into(), (T0 + 100_000).to_string());
    assert_eq!(run(event_with(json!(m))), Err(Refusal::Metadata(ClaimsError::Expired)), "a far-future expiry");
    let other_keys =
        KeySet::single("test-1", b"another-32-byte-context-key-here".to_vec()).expect("a valid single-key set");
    let r = customize(event(false), &ClaimPrefix::default(), &other_keys, now());
    assert_eq!(r, mismatch, "another key with the same id");
}

#[test]
fn missing_or_malformed_metadata_is_refused() {
    let missing = Err(Refusal::Metadata(ClaimsError::Missing));
    assert_eq!(run(event_with(Value::Null)), missing);
    assert_eq!(run(event_with(json!({}))), missing);
    let mut no_metadata = event(false);
    no_metadata["request"].as_object_mut().unwrap().remove("clientMetadata");
    assert_eq!(run(no_metadata), missing);
    let malformed = Err(Refusal::Metadata(ClaimsError::Malformed));
    assert_eq!(run(event_with(json!("callerId=order-processing"))), malformed);
    assert_eq!(run(event_with(json!(["callerId"]))), malformed);
    let mut m = json!(signed(false, CLIENT));
    m["policyVersion"] = json!(7);
    assert_eq!(run(event_with(m)), malformed, "a non-string value");
    let mut m = signed(false, CLIENT);
    m.insert("role".into(), "admin".into());
    assert_eq!(run(event_with(json!(m))), Err(Refusal::Metadata(ClaimsError::UnexpectedKey)));
}

#[test]
fn a_client_credentials_event_needs_version_3_a_client_id_and_a_request() {
    for version in [json!("2"), json!("1"), json!(null), json!("3.0")] {
        let mut e = event(false);
        e["version"] = version.clone();
        assert_eq!(run(e), Err(Refusal::UnexpectedVersion), "{version}");
    }
    let mut e = event(false);
    e["version"] = json!(3);
    assert_eq!(run(e), Err(Refusal::MalformedEvent), "a number where Cognito sends a string");
    for caller_context in
        [json!({"awsSdkVersion": "x"}), json!({"clientId": ""}), json!(null), json!({"clientId": null})]
    {
        let mut e = event(false);
        e["callerContext"] = caller_context.clone();
        assert_eq!(run(e), Err(Refusal::MissingClientId), "{caller_context}");
    }
    let mut e = event(false);
    e.as_object_mut().unwrap().remove("callerContext");
    assert_eq!(run(e), Err(Refusal::MissingClientId));
    let mut e = event(false);
    e["request"] = Value::Null;
    assert_eq!(run(e), Err(Refusal::MalformedEvent));
    let mut e = event(false);
    e["request"]["scopes"] = json!("orders/read");
    assert_eq!(run(e), Err(Refusal::MalformedEvent));
}

#[test]
fn events_that_are_not_pre_token_generation_events_are_refused() {
    for e in
        [json!(null), json!([]), json!("TokenGeneration_ClientCredentials"), json!({}), json!({"triggerSource": 1})]
    {
        assert_eq!(run(e.clone()), Err(Refusal::MalformedEvent), "{e}");
    }
    let mut e = event(false);
    e["response"] = json!("none");
    assert_eq!(run(e), Err(Refusal::MalformedEvent));
}

#[test]
fn a_missing_or_null_response_is_created_and_other_response_fields_kept() {
    let mut e = event(false);
    e.as_object_mut().unwrap().remove("response");
    assert_eq!(added(&run(e).unwrap()).len(), 4);
    let mut e = event(false);
    e["response"] = Value::Null;
    assert_eq!(added(&run(e).unwrap()).len(), 4);
    let mut e = event(false);
    e["response"] = json!({"claimsAndScopeOverrideDetails": {"accessTokenGeneration": {"claimsToAddOrOverride":
        {"tb:callerId": "forged", "role": "admin"}}}, "other": 1});
    let out = run(e).unwrap();
    assert_eq!(added(&out).len(), 4, "only verified claims reach the token");
    assert_eq!(added(&out)["tb:callerId"], "order-processing");
    assert_eq!(out["response"]["other"], 1);
}

#[test]
fn user_flow_events_come_back_unchanged_whatever_their_metadata() {
    for source in [
        "TokenGeneration_HostedAuth",
        "TokenGeneration_Authentication",
        "TokenGeneration_NewPasswordChallenge",
        "TokenGeneration_AuthenticateDevice",
        "TokenGeneration_RefreshTokens",
    ] {
        for metadata in [json!(signed(false, CLIENT)), json!({"callerId": "forged"}), Value::Null] {
            let mut e = event_with(metadata);
            e["triggerSource"] = json!(source);
            e["version"] = json!("2");
            let traced = customize_traced(e.clone(), &ClaimPrefix::default(), None, now());
            assert_eq!(traced.result, Ok(e), "{source}");
            assert!(traced.claims.is_none());
            assert_eq!(traced.trigger_source.as_deref(), Some(source));
        }
    }
}

#[test]
fn the_trace_names_the_client_and_the_caller_only_when_verified() {
    let ok = customize_traced(event(true), &ClaimPrefix::default(), Some(&keys()), now());
    assert_eq!(ok.client_id.as_deref(), Some(CLIENT));
    assert_eq!(ok.trigger_source.as_deref(), Some(CLIENT_CREDENTIALS));
    assert_eq!(ok.claims, Some(caller(true)));
    let refused =
        customize_traced(event_with(json!(signed(false, "x"))), &ClaimPrefix::default(), Some(&keys()), now());
    assert!(refused.result.is_err() && refused.claims.is_none());
    assert_eq!(refused.client_id.as_deref(), Some(CLIENT));
    let mut odd = event(false);
    odd["callerContext"]["clientId"] = json!("has space\n");
    odd["triggerSource"] = json!("x".repeat(MAX_LOGGED_LEN + 1));
    let t = customize_traced(odd, &ClaimPrefix::default(), Some(&keys()), now());
    assert_eq!((t.client_id, t.trigger_source), (None, None), "odd values are not copied into logs");
}

#[test]
fn reasons_are_distinct_and_refusals_show_no_event_values() {
    let all = [
        Refusal::MalformedEvent,
        Refusal::UnexpectedVersion,
        Refusal::MissingClientId,
        Refusal::Metadata(ClaimsError::Missing),
        Refusal::Metadata(ClaimsError::UnexpectedKey),
        Refusal::Metadata(ClaimsError::Malformed),
        Refusal::Metadata(ClaimsError::UnknownKey),
        Refusal::Metadata(ClaimsError::Expired),
        Refusal::Metadata(ClaimsError::Mismatch),
        Refusal::KeysUnavailable,
    ];
    let reasons: std::collections::BTreeSet<_> = all.iter().map(Refusal::reason).collect();
    assert_eq!(reasons.len(), all.len());
    let m = signed(true, CLIENT);
    for r in all {
        let shown = format!("{r} {r:?}");
        for value in m.values().chain([&CLIENT.to_owned()]) {
            assert!(!shown.contains(value.as_str()), "{shown} shows {value}");
        }
    }
}

#[test]
fn without_a_key_set_client_credentials_tokens_are_refused_and_others_pass() {
    assert!(needs_keys(&event(false)));
    let t = customize_traced(event(false), &ClaimPrefix::default(), None, now());
    assert_eq!(t.result, Err(Refusal::KeysUnavailable));
    assert_eq!(t.client_id.as_deref(), Some(CLIENT));
    let mut user = event(false);
    user["triggerSource"] = json!("TokenGeneration_RefreshTokens");
    assert!(!needs_keys(&user));
    assert_eq!(customize_traced(user.clone(), &ClaimPrefix::default(), None, now()).result, Ok(user));
    assert!(!needs_keys(&json!(null)));
    assert_eq!(
        customize_traced(json!(null), &ClaimPrefix::default(), None, now()).result,
        Err(Refusal::MalformedEvent)
    );
}
