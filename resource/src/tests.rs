use proptest::prelude::*;
use serde_json::json;

use super::*;

/// SHA-256 of the empty string in base64url: a known answer that needs no certificate.
const EMPTY_SHA256: &str = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

const CERT_A: &[u8] = b"0\x82 certificate A (the hash does not care whether this is DER)";
const CERT_B: &[u8] = b"0\x82 certificate B";

fn claims(extra: Value) -> Map<String, Value> {
    let mut m = json!({"iss": "https://issuer.example", "token_use": "access", "scope": "api/read"});
    if let (Value::Object(m), Value::Object(extra)) = (&mut m, extra) {
        m.extend(extra);
    }
    match m {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn bound_to(der: &[u8]) -> Map<String, Value> {
    claims(json!({"cnf": {"x5t#S256": certificate_thumbprint(der)}}))
}

#[test]
fn the_thumbprint_is_base64url_of_sha256_without_padding() {
    assert_eq!(certificate_thumbprint(b""), EMPTY_SHA256);
    let t = certificate_thumbprint(CERT_A);
    assert_eq!(t.len(), THUMBPRINT_LEN);
    assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
    assert_ne!(t, certificate_thumbprint(CERT_B));
}

#[test]
fn a_token_without_cnf_is_unbound_with_or_without_a_certificate() {
    let c = claims(json!({}));
    assert_eq!(check_certificate_binding(&c, None), Ok(Binding::Unbound));
    assert_eq!(check_certificate_binding(&c, Some(CERT_A)), Ok(Binding::Unbound));
}

#[test]
fn a_bound_token_passes_only_with_its_certificate() {
    let c = bound_to(CERT_A);
    assert_eq!(check_certificate_binding(&c, Some(CERT_A)), Ok(Binding::Bound));
    assert_eq!(check_certificate_binding(&c, Some(CERT_B)), Err(BindingError::Mismatch));
    assert_eq!(check_certificate_binding(&c, None), Err(BindingError::NoCertificate));
    // An empty certificate is no certificate, even for a token bound to the digest of nothing.
    let empty = claims(json!({"cnf": {"x5t#S256": EMPTY_SHA256}}));
    assert_eq!(check_certificate_binding(&empty, Some(b"")), Err(BindingError::NoCertificate));
    // One byte more or less is another certificate.
    assert_eq!(check_certificate_binding(&c, Some(&CERT_A[..CERT_A.len() - 1])), Err(BindingError::Mismatch));
    let longer = [CERT_A, b"\0"].concat();
    assert_eq!(check_certificate_binding(&c, Some(&longer)), Err(BindingError::Mismatch));
}

#[test]
fn every_cnf_that_cannot_be_enforced_is_malformed_with_or_without_a_certificate() {
    let good = certificate_thumbprint(CERT_A);
    let cases = [
        ("null", json!(null)),
        ("a string", json!(good)),
        ("an array", json!([{"x5t#S256": good}])),
        ("a number", json!(1)),
        ("an empty object", json!({})),
        ("another method only (DPoP)", json!({"jkt": good})),
        ("the SHA-1 thumbprint only", json!({"x5t": "AAAAAAAAAAAAAAAAAAAAAAAAAAA"})),
        ("a second method beside it", json!({"x5t#S256": good, "jkt": good})),
        ("a number thumbprint", json!({"x5t#S256": 12})),
        ("a null thumbprint", json!({"x5t#S256": null})),
        ("an object thumbprint", json!({"x5t#S256": {"value": good}})),
        ("an empty thumbprint", json!({"x5t#S256": ""})),
        ("with padding", json!({"x5t#S256": format!("{good}=")})),
        ("one character short", json!({"x5t#S256": &good[..42]})),
        ("one character long", json!({"x5t#S256": format!("{good}A")})),
        ("hex", json!({"x5t#S256": hex_of(CERT_A)})),
        ("standard base64 alphabet", json!({"x5t#S256": EMPTY_SHA256.replace('-', "+").replace('_', "/")})),
        ("trailing whitespace", json!({"x5t#S256": format!("{} ", &good[..42])})),
        ("a line break", json!({"x5t#S256": format!("{}\n{}", &good[..20], &good[21..])})),
        // RFC 8705's own example value sets trailing bits a SHA-256 digest never has: no encoder emits it, and
        // accepting it would give one digest several spellings.
        ("non-canonical trailing bits", json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})),
        ("the name in another case", json!({"X5T#S256": good})),
    ];
    for (what, cnf) in cases {
        let c = claims(json!({ "cnf": cnf }));
        for cert in [None, Some(CERT_A), Some(CERT_B)] {
            assert_eq!(check_certificate_binding(&c, cert), Err(BindingError::Malformed), "{what}, {cert:?}");
        }
    }
}

fn hex_of(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_descriptions_fit_rfc_6750_and_name_no_thumbprint() {
    let all = [BindingError::NoCertificate, BindingError::Mismatch, BindingError::Malformed];
    let thumbprints = [certificate_thumbprint(CERT_A), certificate_thumbprint(CERT_B)];
    for e in all {
        let d = e.error_description();
        // RFC 6750 §3: error-description = *( %x20-21 / %x23-5B / %x5D-7E )
        assert!(!d.is_empty() && d.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{d}");
        assert_eq!(e.to_string(), d);
        assert_eq!(e.www_authenticate(), format!("Bearer error=\"invalid_token\", error_description=\"{d}\""));
        for shown in [format!("{e:?}"), e.to_string(), e.www_authenticate()] {
            for t in &thumbprints {
                assert!(!shown.contains(t.as_str()), "{shown}");
            }
        }
    }
    let descriptions: std::collections::HashSet<_> = all.iter().map(|e| e.error_description()).collect();
    assert_eq!(descriptions.len(), all.len(), "each failure says what went wrong");
}

/// Any JSON value, nested a few levels, with the claim and member names of interest among its keys.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![Just("cnf".to_owned()), Just("x5t#S256".to_owned()), Just("jkt".to_owned()), ".{0,6}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,50}".prop_map(Value::from),
        "[A-Za-z0-9_-]{43}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::from(certificate_thumbprint(&b))),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_claims() -> impl Strategy<Value = Map<String, Value>> {
    let cnf = prop_oneof![
        arb_json(),
        arb_json().prop_map(|v| json!({ "x5t#S256": v })),
        "[A-Za-z0-9_=+/ -]{40,46}".prop_map(|s| json!({ "x5t#S256": s })),
    ];
    (proptest::collection::btree_map(".{0,8}", arb_json(), 0..4), proptest::option::of(cnf)).prop_map(|(m, cnf)| {
        let mut m: Map<String, Value> = m.into_iter().collect();
        if let Some(cnf) = cnf {
            m.insert(CONFIRMATION_CLAIM.to_owned(), cnf);
        }
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the claims and bytes, the check answers (no panic), and `Bound` only ever means that the token names
    /// exactly the presented certificate.
    #[test]
    fn arbitrary_claims_never_panic_and_bound_means_that_certificate(
        mut c in arb_claims(),
        cert in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        bind in 0..3u8,
        extra in arb_json(),
    ) {
        // A third of the cases name the presented bytes, half of those with another member beside the thumbprint.
        if let (1 | 2, Some(der)) = (bind, &cert) {
            let mut cnf = json!({"x5t#S256": certificate_thumbprint(der)});
            if bind == 2 {
                cnf["jkt"] = extra;
            }
            c.insert(CONFIRMATION_CLAIM.to_owned(), cnf);
        }
        let r = check_certificate_binding(&c, cert.as_deref());
        if let (1, Some(der)) = (bind, &cert) {
            let expected = if der.is_empty() { Err(BindingError::NoCertificate) } else { Ok(Binding::Bound) };
            prop_assert_eq!(r, expected);
        }
        if let (2, Some(_)) = (bind, &cert) {
            prop_assert_eq!(r, Err(BindingError::Malformed));
        }
        if r == Ok(Binding::Bound) {
            let named = c.get("cnf").and_then(|v| v.get("x5t#S256")).and_then(Value::as_str);
            let presented = cert.as_deref().map(certificate_thumbprint);
            prop_assert_eq!(named, presented.as_deref());
        }
        if r == Ok(Binding::Unbound) {
            prop_assert!(!c.contains_key("cnf"));
        }
    }

    /// A token bound to one certificate passes with it and with no other.
    #[test]
    fn a_binding_passes_only_with_the_exact_certificate(
        a in proptest::collection::vec(any::<u8>(), 1..256),
        b in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let c = bound_to(&a);
        prop_assert_eq!(check_certificate_binding(&c, Some(&a)), Ok(Binding::Bound));
        prop_assert_eq!(check_certificate_binding(&c, None), Err(BindingError::NoCertificate));
        let expected = if b.is_empty() {
            Err(BindingError::NoCertificate)
        } else if a == b {
            Ok(Binding::Bound)
        } else {
            Err(BindingError::Mismatch)
        };
        prop_assert_eq!(check_certificate_binding(&c, Some(&b)), expected);
    }

    /// Changing any one character of a thumbprint never leaves a token that passes with the original certificate.
    #[test]
    fn an_altered_thumbprint_never_binds(
        a in proptest::collection::vec(any::<u8>(), 1..256),
        at in 0..THUMBPRINT_LEN,
        with in any::<char>(),
    ) {
        let t = certificate_thumbprint(&a);
        let altered: String =
            t.chars().enumerate().map(|(i, ch)| if i == at { with } else { ch }).collect();
        prop_assume!(altered != t);
        let c = claims(json!({"cnf": {"x5t#S256": altered}}));
        let r = check_certificate_binding(&c, Some(&a));
        prop_assert!(matches!(r, Err(BindingError::Mismatch | BindingError::Malformed)), "{:?}", r);
    }
}
