//! The trigger against the event and response shapes AWS documents for the pre-token-generation trigger (version 3,
//! client-credentials and user sign-in), kept as fixtures in `tests/fixtures/` with this project's own values.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tb_shared::context::claims::{sign, CLAIMS_TTL};
use tb_shared::context::{AuthMethod, CallerClaims, CallerContext};
use tb_shared::ids::CallerId;
use tb_trigger::event::{ClaimsAndScopeOverrideDetails, TriggerEvent, CLIENT_CREDENTIALS, EVENT_VERSION};
use tb_trigger::{customize, ClaimPrefix};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture present")).expect("fixture is JSON")
}

/// Every object key path of `v` (`a/b/c`), arrays and leaves not descended into.
fn paths(v: &Value, at: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let p = format!("{at}/{k}");
            out.push(p.clone());
            paths(child, &p, out);
        }
    }
}

#[test]
fn the_documented_client_credentials_event_is_read() {
    let raw = fixture("client_credentials_event.json");
    let e: TriggerEvent = serde_json::from_value(raw).unwrap();
    assert_eq!(e.version.as_deref(), Some(EVENT_VERSION));
    assert_eq!(e.trigger_source.as_deref(), Some(CLIENT_CREDENTIALS));
    assert_eq!(e.region.as_deref(), Some("eu-central-1"));
    assert_eq!(e.user_pool_id.as_deref(), Some("eu-central-1_Zy98Xw76V"));
    assert_eq!(e.user_name.as_deref(), Some("ClientCredentials"));
    let caller = e.caller_context.unwrap();
    assert_eq!(caller.client_id.as_deref(), Some("6q2p0r8s1t4u7v3w5x9y0z1a2b"));
    assert_eq!(caller.awssdk_version.as_deref(), Some("aws-sdk-unknown-unknown"));
    let request = e.request.unwrap();
    assert_eq!(request.user_attributes.unwrap().len(), 0);
    assert_eq!(request.group_configuration, None, "null in a client-credentials event");
    assert_eq!(request.scopes.unwrap(), ["inventory-api/read", "inventory-api/write"]);
    assert_eq!(request.client_metadata, Some(json!({"example-key": "example-value"})));
}

#[test]
fn the_documented_user_sign_in_event_is_read() {
    let e: TriggerEvent = serde_json::from_value(fixture("user_authentication_event.json")).unwrap();
    assert_eq!(e.trigger_source.as_deref(), Some("TokenGeneration_Authentication"));
    let request = e.request.unwrap();
    assert_eq!(request.user_attributes.unwrap()["email_verified"], "true");
    assert_eq!(request.group_configuration.unwrap()["groupsToOverride"], json!(["warehouse-staff"]));
}

#[test]
fn the_documented_response_reads_as_our_type_and_ours_has_its_shape() {
    let documented = fixture("client_credentials_response.json");
    let details = &documented["response"]["claimsAndScopeOverrideDetails"];
    let read: ClaimsAndScopeOverrideDetails = serde_json::from_value(details.clone()).unwrap();
    assert_eq!(read.access_token_generation.claims_to_add_or_override["limits"]["daily"], 500);

    // A verified request: the fixture's event with the broker's signed metadata in place of the example pair.
    let keys = tb_devkit::fixtures::context_key_set();
    let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let thumb = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    let claims = CallerClaims {
        context: CallerContext {
            caller_id: CallerId::try_from("inventory-sync").unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: thumb.into(),
            policy_version: "00112233aabbccdd".into(),
        },
        cert_thumbprint: Some(thumb.into()),
    };
    let mut input = fixture("client_credentials_event.json");
    input["request"]["clientMetadata"] = json!(sign(&claims, "6q2p0r8s1t4u7v3w5x9y0z1a2b", &keys, now, CLAIMS_TTL));
    let out = customize(input.clone(), &ClaimPrefix::default(), &keys, now).unwrap();

    // Ours uses only paths the documented response has (claim names aside), and changes nothing else.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    paths(&out["response"], "", &mut ours);
    paths(&documented["response"], "", &mut theirs);
    let claims_at = "/claimsAndScopeOverrideDetails/accessTokenGeneration/claimsToAddOrOverride";
    for p in ours.iter().filter(|p| !p.starts_with(&format!("{claims_at}/"))) {
        assert!(theirs.contains(p), "{p} is not in the documented response");
    }
    let written = out.pointer(&format!("/response{claims_at}")).unwrap();
    assert_eq!(
        written,
        &json!({
            "tb:callerId": "inventory-sync",
            "tb:authMethod": "mtls",
            "tb:credentialFingerprint": thumb,
            "tb:policyVersion": "00112233aabbccdd",
            "cnf": {"x5t#S256": thumb}
        })
    );
    let mut rest = out.clone();
    rest["response"]["claimsAndScopeOverrideDetails"] = Value::Null;
    assert_eq!(rest, input, "every other field of the event comes back as it came");
}

#[test]
fn the_documented_events_without_broker_metadata() {
    let keys = tb_devkit::fixtures::context_key_set();
    let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    // The documented client-credentials example carries arbitrary metadata: refused.
    let r = customize(fixture("client_credentials_event.json"), &ClaimPrefix::default(), &keys, now);
    assert_eq!(r.unwrap_err().reason(), "metadata_unexpected_key");
    // A user's sign-in passes through untouched, even with a callerId in its metadata.
    let user = fixture("user_authentication_event.json");
    assert_eq!(customize(user.clone(), &ClaimPrefix::default(), &keys, now), Ok(user));
}
