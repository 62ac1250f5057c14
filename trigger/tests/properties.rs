//! Properties of the trigger's decision over generated events: it never panics, never writes a claim unless the
//! broker's metadata verified for the app client the event names, refuses any change to signed metadata, and hands
//! user-flow events back exactly as they came.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tb_shared::context::claims::{sign, CLAIMS_TTL};
use tb_shared::context::{AuthMethod, CallerClaims, CallerContext, KeySet};
use tb_shared::ids::CallerId;
use tb_trigger::{customize, is_reserved_claim, ClaimPrefix, Refusal, CNF_CLAIM};

const CC: &str = "TokenGeneration_ClientCredentials";
const CLIENT: &str = "4k1f7ea9mb0tq2vhs3ugxy85dn";
const T0: u64 = 1_900_000_000;
const CLAIMS_PATH: &str = "/response/claimsAndScopeOverrideDetails/accessTokenGeneration/claimsToAddOrOverride";

fn keys() -> KeySet {
    tb_devkit::fixtures::context_key_set()
}
fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Metadata maps whose keys are mostly the contract's own, with any string values.
fn any_metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        Just("callerId".to_owned()),
        Just("authMethod".to_owned()),
        Just("credentialFingerprint".to_owned()),
        Just("policyVersion".to_owned()),
        Just("certThumbprint".to_owned()),
        Just("claimsMac".to_owned()),
        Just("claimsMacKeyId".to_owned()),
        Just("claimsMacExpires".to_owned()),
        "\\PC{0,10}",
    ];
    proptest::collection::btree_map(key, "\\PC{0,50}", 0..10)
}

fn caller(caller_id: &str, bound: bool, version: &str) -> CallerClaims {
    let thumb = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from(caller_id).unwrap(),
            auth_method: if bound { AuthMethod::Mtls } else { AuthMethod::Jwt },
            credential_fingerprint: if bound { thumb.into() } else { "0011223344556677".into() },
            policy_version: version.into(),
        },
        cert_thumbprint: bound.then(|| thumb.to_owned()),
    }
}

fn event(source: &str, client: Value, metadata: Value) -> Value {
    json!({
        "version": "3",
        "triggerSource": source,
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_Ab12Cd34E",
        "userName": "ClientCredentials",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": client},
        "request": {"userAttributes": {}, "groupConfiguration": null, "scopes": [], "clientMetadata": metadata},
        "response": {"claimsAndScopeOverrideDetails": null}
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary JSON as an event: no panic; a client-credentials event is refused (nothing here is signed) and
    /// anything else that is accepted comes back unchanged.
    #[test]
    fn arbitrary_events_never_panic_and_never_gain_claims(e in any_json()) {
        let out = customize(e.clone(), &ClaimPrefix::default(), &keys(), at(T0));
        if let Ok(v) = out {
            prop_assert_eq!(v, e);
        }
    }

    /// A well-formed event with arbitrary metadata, client id, source, version and response: refused when it is a
    /// client-credentials event, unchanged otherwise.
    #[test]
    fn unsigned_metadata_never_produces_claims(
        metadata in any_metadata(),
        client in prop_oneof![Just(json!(CLIENT)), any_json()],
        source in prop_oneof![Just(CC.to_owned()), Just("TokenGeneration_Authentication".to_owned()), "\\PC{0,30}"],
        version in prop_oneof![Just(json!("3")), any_json()],
        response in any_json(),
    ) {
        let mut e = event(&source, client, json!(metadata));
        e["version"] = version;
        e["response"] = response;
        let out = customize(e.clone(), &ClaimPrefix::default(), &keys(), at(T0));
        if source == CC {
            prop_assert!(out.is_err(), "{:?}", out);
        } else {
            prop_assert_eq!(out, Ok(e));
        }
    }

    /// Signed metadata verifies within its lifetime and only there; the claims are exactly the signed ones, under
    /// the prefix, and none is reserved.
    #[test]
    fn signed_metadata_verifies_within_its_lifetime(
        caller_id in "[a-z][a-z0-9-]{0,30}",
        bound in any::<bool>(),
        version in "[0-9a-f]{16}",
        offset in 0u64..400,
        prefix in prop_oneof![Just("tb:"), Just("acme_"), Just("x.")],
    ) {
        let prefix = ClaimPrefix::parse(prefix).unwrap();
        let m = sign(&caller(&caller_id, bound, &version), CLIENT, &keys(), at(T0), CLAIMS_TTL);
        let out = customize(event(CC, json!(CLIENT), json!(m)), &prefix, &keys(), at(T0 + offset));
        if offset <= CLAIMS_TTL.as_secs() {
            let out = out.unwrap();
            let claims = out.pointer(CLAIMS_PATH).unwrap().as_object().unwrap();
            prop_assert_eq!(&claims[&prefix.claim("callerId")], &json!(caller_id));
            prop_assert_eq!(&claims[&prefix.claim("policyVersion")], &json!(version));
            prop_assert_eq!(claims.contains_key(CNF_CLAIM), bound);
            prop_assert_eq!(claims.len(), if bound { 5 } else { 4 });
            for name in claims.keys().filter(|n| n.as_str() != CNF_CLAIM) {
                prop_assert!(!is_reserved_claim(name), "{}", name);
            }
        } else {
            prop_assert_eq!(out, Err(Refusal::Metadata(tb_shared::context::ClaimsError::Expired)));
        }
    }

    /// Any change to one entry of signed metadata (or signing it for another app client) fails the token.
    #[test]
    fn tampered_or_misdirected_metadata_is_refused(
        key in prop_oneof![
            Just("callerId"), Just("authMethod"), Just("credentialFingerprint"), Just("policyVersion"),
            Just("certThumbprint"), Just("claimsMac"), Just("claimsMacKeyId"), Just("claimsMacExpires"),
        ],
        value in "\\PC{0,60}",
        bound in any::<bool>(),
        other_client in "[a-z0-9]{1,26}",
    ) {
        let signed = sign(&caller("order-processing", bound, "9a8b7c6d5e4f3a2b"), CLIENT, &keys(), at(T0), CLAIMS_TTL);
        let mut m = signed.clone();
        m.insert(key.to_owned(), value);
        if m != signed {
            let out = customize(event(CC, json!(CLIENT), json!(m)), &ClaimPrefix::default(), &keys(), at(T0));
            prop_assert!(out.is_err(), "{}: {:?}", key, out);
        }
        if other_client != CLIENT {
            let out = customize(event(CC, json!(other_client), json!(signed)), &ClaimPrefix::default(), &keys(), at(T0));
            prop_assert_eq!(out, Err(Refusal::Metadata(tb_shared::context::ClaimsError::Mismatch)));
        }
    }
}
