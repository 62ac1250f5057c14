use super::*;

const EXAMPLE: &str = include_str!("../../../config/policy.example.yaml");

fn load(doc: &str) -> Result<Policy, PolicyError> {
    Policy::from_bytes("policy.yaml", doc.as_bytes())
}

fn err(doc: &str) -> String {
    load(doc).expect_err("must be refused").to_string()
}

/// A complete caller entry; every test that needs a valid caller starts from it.
const BASE_CALLER: &str = r#"
  - id: a
    identities: [{ type: san_uri, value: "spiffe://x/a" }]
    cognito_client: a
    allowed_scopes: [s/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
"#;

/// [`BASE_CALLER`] without its `quotas`, for the tests about that field.
const CALLER_WITHOUT_QUOTAS: &str = r#"
  - id: a
    identities: [{ type: san_uri, value: "spiffe://x/a" }]
    cognito_client: a
    allowed_scopes: [s/read]
    max_token_lifetime_seconds: 3600
"#;

#[test]
fn example_policy_loads() {
    let p = load(EXAMPLE).unwrap();
    assert_eq!(p.callers().len(), 3);
    assert_eq!(p.version.len(), 16);
    let reporting = p.caller_for(&IdentityKey::SanDns("reporting.svc.example.internal".into())).unwrap();
    assert_eq!(reporting.id.as_str(), "reporting");
    assert_eq!(
        reporting.quotas,
        vec![QuotaWindow { name: "day".into(), length: Duration::from_secs(86_400), limit: 3 }]
    );
    let partner = p
        .caller_for(&IdentityKey::Jwt {
            issuer: "https://idp.acme.example".into(),
            subject: "acme-billing-sync".into(),
        })
        .unwrap();
    assert_eq!(partner.id.as_str(), "partner-acme");
    assert_eq!(
        p.issuer("https://idp.acme.example").unwrap().algorithms,
        vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]
    );
    assert!(p.has_certificate_callers());
}

#[test]
fn version_is_content_hash() {
    let a = load(EXAMPLE).unwrap();
    let b = load(&format!("{EXAMPLE}\n# comment\n")).unwrap();
    assert_ne!(a.version, b.version);
    assert_eq!(a.version, load(EXAMPLE).unwrap().version);
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    assert!(err("version: 1\ncalers: []\n").contains("unknown field"));
    let e = err(&format!("version: 1\ncallers:{BASE_CALLER}    tokn_reuse: true\n"));
    assert!(e.contains("unknown field") && e.contains("tokn_reuse"), "{e}");
    let e = err("version: 1\ncallers:\n  - id: a\n    identities: [{ type: san_uri, value: \"spiffe://x\", extra: 1 }]\n    cognito_client: a\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn duplicate_callers_are_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}{}", BASE_CALLER.replace("spiffe://x/a", "spiffe://x/b"));
    let e = err(&doc);
    assert!(e.contains("policy.yaml") && e.contains("\"a\"") && e.contains("duplicate caller id"), "{e}");
}

#[test]
fn identity_mapped_to_two_callers_is_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}{}", BASE_CALLER.replace("id: a", "id: b"));
    let e = err(&doc);
    assert!(
        e.contains("caller \"b\"") && e.contains("identities") && e.contains("already mapped to caller \"a\""),
        "{e}"
    );
}

#[test]
fn san_dns_identities_collide_case_insensitively() {
    let doc = "version: 1\ncallers:\n  - id: a\n    identities: [{ type: san_dns, value: Svc.Example }]\n    cognito_client: a\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n  - id: b\n    identities: [{ type: san_dns, value: svc.example }]\n    cognito_client: b\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n";
    assert!(err(doc).contains("already mapped"));
}

#[test]
fn default_scope_outside_allowed_is_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}    default_scopes: [s/admin]\n");
    let e = err(&doc);
    assert!(e.contains("default_scopes") && e.contains("s/admin") && e.contains("not in allowed_scopes"), "{e}");
}

#[test]
fn field_errors_name_caller_and_field() {
    let cases = [
        ("    quotas: [{ per: fortnight, limit: 1 }]\n", "quotas.per"),
        ("    quotas: [{ per: day, limit: 0 }]\n", "quotas.limit"),
        ("    quotas: [{ per: day, limit: 1 }, { per: 86400s, limit: 2 }]\n", "quotas.per"),
        ("    quotas: unlimited\n    usage_plan_key: short\n", "usage_plan_key"),
    ];
    for (extra, field) in cases {
        let e = err(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}{extra}"));
        assert!(e.contains("caller \"a\"") && e.contains(field), "{field}: {e}");
    }
    let e = err(&BASE_CALLER.replace("3600", "10").replace("\n  - id", "version: 1\ncallers:\n  - id"));
    assert!(e.contains("max_token_lifetime_seconds"), "{e}");
    let e = err(&format!("version: 1\ncallers:{}", BASE_CALLER.replace("cognito_client: a", "cognito_client: a/../b")));
    assert!(e.contains("cognito_client"), "{e}");
    let e = err(&format!("version: 1\ncallers:{}", BASE_CALLER.replace("s/read", "\"bad scope\"")));
    assert!(e.contains("allowed_scopes"), "{e}");
}

#[test]
fn cert_pins_must_be_sha256_hex() {
    let doc = format!(
        "version: 1\ncallers:{}",
        BASE_CALLER.replace("{ type: san_uri, value: \"spiffe://x/a\" }", "{ type: cert_sha256, value: abcd }")
    );
    assert!(err(&doc).contains("identities.cert_sha256"));
}

#[test]
fn jwt_identity_needs_a_configured_issuer() {
    let doc = format!(
        "version: 1\ncallers:{}",
        BASE_CALLER.replace(
            "{ type: san_uri, value: \"spiffe://x/a\" }",
            "{ type: jwt, issuer: \"https://nope\", subject: s }"
        )
    );
    assert!(err(&doc).contains("is not listed under issuers"));
}

#[test]
fn issuers_refuse_symmetric_algorithms_and_plain_http() {
    let issuer = |alg: &str, url: &str| {
        format!("version: 1\nissuers:\n  - issuer: https://i\n    jwks_url: {url}\n    audiences: [a]\n    algorithms: [{alg}]\n    max_token_age_seconds: 300\n")
    };
    assert!(load(&issuer("RS256", "https://i/jwks")).is_ok());
    assert!(load(&issuer("ES256", "http://127.0.0.1:9/jwks")).is_ok());
    for alg in ["HS256", "none", "NONE", "rs256"] {
        let e = err(&issuer(alg, "https://i/jwks"));
        assert!(e.contains("issuer \"https://i\"") && e.contains("algorithms"), "{alg}: {e}");
    }
    assert!(err(&issuer("RS256", "http://idp.example/jwks")).contains("jwks_url"));
}

#[test]
fn wrong_version_and_garbage_are_refused() {
    assert!(err("version: 2\n").contains("unsupported version"));
    assert!(err("[[[").contains("not a valid policy document"));
    assert!(err("").contains("policy.yaml"));
}

#[test]
fn usage_plan_key_is_hidden_from_debug() {
    let p = load(EXAMPLE).unwrap();
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("reporting-usage-plan-key-0001"), "{dbg}");
    let reporting = p.caller(&CallerId::try_from("reporting").unwrap()).unwrap();
    assert_eq!(reporting.usage_plan_key.as_ref().unwrap().expose(), "reporting-usage-plan-key-0001");
}

#[test]
fn a_caller_without_quotas_is_refused_naming_the_field() {
    let e = err(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}"));
    assert!(e.contains("caller \"a\"") && e.contains("quotas") && e.contains("unlimited"), "{e}");
    let e = err(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}    quotas: []\n"));
    assert!(e.contains("quotas") && e.contains("empty"), "{e}");
    for word in ["Unlimited", "none", "0", "{ per: day, limit: 1 }"] {
        let e = err(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}    quotas: {word}\n"));
        assert!(e.contains("caller \"a\"") && e.contains("quotas"), "{word}: {e}");
    }
}

#[test]
fn unlimited_quotas_must_be_written_and_mean_no_window() {
    let p = load(&format!("version: 1\ncallers:{BASE_CALLER}")).unwrap();
    assert!(p.callers()[0].quotas.is_empty());
    let p =
        load(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}    quotas: [{{ per: hour, limit: 5 }}]\n")).unwrap();
    assert_eq!(
        p.callers()[0].quotas,
        vec![QuotaWindow { name: "hour".into(), length: Duration::from_secs(3600), limit: 5 }]
    );
}

#[test]
fn a_typo_inside_a_quota_window_keeps_the_parsers_message() {
    let e = err(&format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}    quotas: [{{ per: day, limt: 1 }}]\n"));
    assert!(e.contains("quotas") && e.contains("limt"), "{e}");
}

const ISSUER_DOC: &str = "version: 1\nissuers:\n  - issuer: https://i\n    jwks_url: https://i/jwks\n    audiences: [a]\n    algorithms: [RS256]\n    max_token_age_seconds: 300\n";

#[test]
fn issuer_claim_settings_default_to_aud_and_nothing_extra() {
    let p = load(ISSUER_DOC).unwrap();
    let i = p.issuer("https://i").unwrap();
    assert_eq!(i.audience_claim, "aud");
    assert!(i.required_claims.is_empty());
    let p = load(&format!("{ISSUER_DOC}    audience_claim: client_id\n    required_claims: [nbf, jti]\n")).unwrap();
    let i = p.issuer("https://i").unwrap();
    assert_eq!(i.audience_claim, "client_id");
    assert_eq!(i.required_claims, vec!["nbf".to_owned(), "jti".to_owned()]);
}

#[test]
fn issuer_claim_settings_refuse_nonsense() {
    for (extra, field) in [
        ("    audience_claim: \"\"\n", "audience_claim"),
        ("    audience_claim: exp\n", "audience_claim"),
        ("    audience_claim: sub\n", "audience_claim"),
        ("    audience_claim: \"a b\"\n", "audience_claim"),
        ("    required_claims: [jti, jti]\n", "required_claims"),
        ("    required_claims: [\"\"]\n", "required_claims"),
    ] {
        let e = err(&format!("{ISSUER_DOC}{extra}"));
        assert!(e.contains("issuer \"https://i\"") && e.contains(field), "{extra}: {e}");
    }
}

#[test]
fn the_key_floor_defaults_to_rsa_2048_and_p256_and_can_only_be_raised() {
    assert_eq!(load("version: 1\n").unwrap().key_floor, KeyFloor { min_rsa_bits: 2048, min_ec_bits: 256 });
    let p = load("version: 1\nsettings:\n  min_rsa_key_bits: 3072\n  min_ec_key_bits: 384\n").unwrap();
    assert_eq!(p.key_floor, KeyFloor { min_rsa_bits: 3072, min_ec_bits: 384 });
    for (doc, field) in [
        ("settings:\n  min_rsa_key_bits: 1024\n", "settings.min_rsa_key_bits"),
        ("settings:\n  min_rsa_key_bits: 100000\n", "settings.min_rsa_key_bits"),
        ("settings:\n  min_ec_key_bits: 224\n", "settings.min_ec_key_bits"),
        ("settings:\n  min_ec_key_bits: 300\n", "settings.min_ec_key_bits"),
    ] {
        let e = err(&format!("version: 1\n{doc}"));
        assert!(e.contains(field), "{doc}: {e}");
    }
}

#[test]
fn subject_cn_may_pin_its_issuer_key() {
    let with = |extra: &str| {
        format!(
            "version: 1\ncallers:{}",
            BASE_CALLER.replace(
                "{ type: san_uri, value: \"spiffe://x/a\" }",
                &format!("{{ type: subject_cn, cn: svc, issuer_cn: \"Example CA\"{extra} }}"),
            )
        )
    };
    let p = load(&with("")).unwrap();
    assert_eq!(
        p.callers()[0].identities,
        vec![Identity::SubjectCn { cn: "svc".into(), issuer_cn: "Example CA".into(), issuer_spki_sha256: None }]
    );
    let hex = "AB".repeat(32);
    let p = load(&with(&format!(", issuer_spki_sha256: {hex}"))).unwrap();
    assert_eq!(
        p.callers()[0].identities,
        vec![Identity::SubjectCn {
            cn: "svc".into(),
            issuer_cn: "Example CA".into(),
            issuer_spki_sha256: Some(hex.to_ascii_lowercase())
        }]
    );
    assert!(err(&with(", issuer_spki_sha256: abcd")).contains("identities.subject_cn.issuer_spki_sha256"));
}

/// Every bounded field is accepted at its bound and refused one past it, so a limit cannot drift unseen.
mod limits {
    use super::*;

    fn caller_with(field_line: &str) -> String {
        let base = BASE_CALLER.replace("    max_token_lifetime_seconds: 3600\n", "");
        format!("version: 1\ncallers:{base}{field_line}")
    }

    fn with_lifetime(line: &str) -> String {
        format!("{}    max_token_lifetime_seconds: 3600\n", caller_with(line))
    }

    #[test]
    fn cognito_client_is_1_to_128_characters() {
        let doc = |name: &str| {
            format!(
                "version: 1\ncallers:{}",
                BASE_CALLER.replace("cognito_client: a", &format!("cognito_client: \"{name}\""))
            )
        };
        assert!(load(&doc(&"c".repeat(128))).is_ok());
        assert!(err(&doc(&"c".repeat(129))).contains("cognito_client"));
        assert!(err(&doc("")).contains("cognito_client"));
    }

    #[test]
    fn a_quota_window_is_1s_to_366_days() {
        let doc = |per: &str| {
            format!("version: 1\ncallers:{CALLER_WITHOUT_QUOTAS}    quotas: [{{ per: {per}, limit: 1 }}]\n")
        };
        assert!(load(&doc("1s")).is_ok());
        assert!(load(&doc("31622400s")).is_ok());
        assert!(err(&doc("31622401s")).contains("quotas.per"));
        assert!(err(&doc("0s")).contains("quotas.per"));
    }

    #[test]
    fn token_lifetime_is_60_to_86400_seconds() {
        for (secs, ok) in [(59, false), (60, true), (86_400, true), (86_401, false)] {
            let doc = caller_with(&format!("    max_token_lifetime_seconds: {secs}\n"));
            assert_eq!(load(&doc).is_ok(), ok, "{secs}");
        }
    }

    #[test]
    fn usage_plan_key_is_20_to_128_printable_characters() {
        for (key, ok) in [
            ("k".repeat(19), false),
            ("k".repeat(20), true),
            ("k".repeat(128), true),
            ("k".repeat(129), false),
            (format!("{} {}", "k".repeat(10), "k".repeat(10)), false),
        ] {
            let doc = with_lifetime(&format!("    usage_plan_key: \"{key}\"\n"));
            assert_eq!(load(&doc).is_ok(), ok, "{} characters", key.len());
        }
    }

    #[test]
    fn identity_values_are_1_to_1024_characters() {
        let doc = |cn: &str| {
            format!(
                "version: 1\ncallers:{}",
                BASE_CALLER.replace(
                    "{ type: san_uri, value: \"spiffe://x/a\" }",
                    &format!("{{ type: subject_cn, cn: \"{cn}\", issuer_cn: CA }}")
                )
            )
        };
        assert!(load(&doc(&"n".repeat(1024))).is_ok());
        assert!(err(&doc(&"n".repeat(1025))).contains("identities.subject_cn.cn"));
        assert!(err(&doc("   ")).contains("identities.subject_cn.cn"));
    }

    fn issuer_doc(issuer: &str, extra: &str) -> String {
        format!(
            "version: 1\nissuers:\n  - issuer: \"{issuer}\"\n    jwks_url: https://i/jwks\n    audiences: [a]\n    algorithms: [RS256]\n    max_token_age_seconds: 300\n{extra}"
        )
    }

    #[test]
    fn issuer_string_is_1_to_1024_characters() {
        assert!(load(&issuer_doc(&"i".repeat(1024), "")).is_ok());
        assert!(err(&issuer_doc(&"i".repeat(1025), "")).contains("must be 1-1024"));
        assert!(err(&issuer_doc("", "")).contains("must be 1-1024"));
    }

    #[test]
    fn every_audience_must_be_non_empty() {
        let doc = issuer_doc("https://i", "").replace("audiences: [a]", "audiences: [a, \"\"]");
        assert!(err(&doc).contains("audiences"));
        let doc = issuer_doc("https://i", "").replace("audiences: [a]", "audiences: []");
        assert!(err(&doc).contains("audiences"));
    }

    #[test]
    fn token_age_leeway_and_subject_claim_bounds() {
        let age = |n: u64| {
            issuer_doc("https://i", "").replace("max_token_age_seconds: 300", &format!("max_token_age_seconds: {n}"))
        };
        assert!(load(&age(1)).is_ok() && load(&age(86_400)).is_ok());
        assert!(err(&age(0)).contains("max_token_age_seconds"));
        assert!(err(&age(86_401)).contains("max_token_age_seconds"));
        assert!(load(&issuer_doc("https://i", "    leeway_seconds: 300\n")).is_ok());
        assert!(err(&issuer_doc("https://i", "    leeway_seconds: 301\n")).contains("leeway_seconds"));
        let claim = |n: usize| issuer_doc("https://i", &format!("    subject_claim: \"{}\"\n", "c".repeat(n)));
        assert!(load(&claim(128)).is_ok());
        assert!(err(&claim(129)).contains("subject_claim"));
        assert!(err(&claim(0)).contains("subject_claim"));
        let claim = |n: usize| issuer_doc("https://i", &format!("    audience_claim: \"{}\"\n", "c".repeat(n)));
        assert!(load(&claim(128)).is_ok());
        assert!(err(&claim(129)).contains("audience_claim"));
    }

    #[test]
    fn defaults_are_enabled_callers_and_thirty_seconds_of_leeway() {
        let p = load(&format!("version: 1\ncallers:{BASE_CALLER}")).unwrap();
        assert!(p.callers()[0].enabled);
        let p = load(&issuer_doc("https://i", "")).unwrap();
        assert_eq!(p.issuers().len(), 1);
        assert_eq!(p.issuers()[0].leeway, Duration::from_secs(30));
        assert_eq!(p.issuers()[0].subject_claim, "sub");
    }

    #[test]
    fn a_policy_may_be_exactly_one_mebibyte_and_no_more() {
        let head = format!("version: 1\ncallers:{BASE_CALLER}#");
        let fill = |total: usize| format!("{head}{}", "x".repeat(total - head.len()));
        assert!(load(&fill(MAX_POLICY_BYTES)).is_ok());
        assert_eq!(MAX_POLICY_BYTES, 1024 * 1024);
        let e = err(&fill(MAX_POLICY_BYTES + 1));
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn every_algorithm_name_round_trips_and_loads() {
        let all = [
            ("RS256", JwtAlgorithm::RS256),
            ("RS384", JwtAlgorithm::RS384),
            ("RS512", JwtAlgorithm::RS512),
            ("PS256", JwtAlgorithm::PS256),
            ("PS384", JwtAlgorithm::PS384),
            ("PS512", JwtAlgorithm::PS512),
            ("ES256", JwtAlgorithm::ES256),
            ("ES384", JwtAlgorithm::ES384),
            ("EdDSA", JwtAlgorithm::EdDSA),
        ];
        for (name, alg) in all {
            assert_eq!(JwtAlgorithm::from_name(name), Some(alg), "{name}");
            assert_eq!(alg.name(), name);
            let doc = issuer_doc("https://i", "").replace("algorithms: [RS256]", &format!("algorithms: [{name}]"));
            assert_eq!(load(&doc).unwrap().issuers()[0].algorithms, vec![alg]);
        }
    }

    #[test]
    fn certificate_callers_are_told_apart_from_partners() {
        assert!(load(&format!("version: 1\ncallers:{BASE_CALLER}")).unwrap().has_certificate_callers());
        let partner_only = format!(
            "{}callers:{}",
            issuer_doc("https://i", ""),
            BASE_CALLER.replace(
                "{ type: san_uri, value: \"spiffe://x/a\" }",
                "{ type: jwt, issuer: \"https://i\", subject: s }"
            )
        );
        assert!(!load(&partner_only).unwrap().has_certificate_callers());
        assert!(!load("version: 1\n").unwrap().has_certificate_callers());
    }

    #[test]
    fn usage_plan_key_debug_is_exactly_the_redaction() {
        let p = load(EXAMPLE).unwrap();
        let reporting = p.caller(&CallerId::try_from("reporting").unwrap()).unwrap();
        assert_eq!(format!("{:?}", reporting.usage_plan_key.as_ref().unwrap()), "UsagePlanKey(<redacted>)");
    }
}

#[test]
fn certificate_binding_is_off_by_default_and_only_for_certificate_callers() {
    let plain = load(&format!("version: 1\ncallers:{BASE_CALLER}")).unwrap();
    assert!(!plain.callers()[0].bind_token_to_certificate);
    assert!(!plain.callers()[0].fleet_token_reuse && !plain.callers()[0].token_reuse);
    let fleet = load(&format!("version: 1\ncallers:{BASE_CALLER}    token_reuse: true\n    fleet_token_reuse: true\n"))
        .unwrap();
    assert!(fleet.callers()[0].fleet_token_reuse && fleet.callers()[0].token_reuse);
    let e = load(&format!("version: 1\ncallers:{BASE_CALLER}    fleet_token_reuse: true\n")).unwrap_err().to_string();
    assert!(e.contains("fleet_token_reuse") && e.contains("needs token_reuse: true"), "{e}");
    let bound = load(&format!("version: 1\ncallers:{BASE_CALLER}    bind_token_to_certificate: true\n")).unwrap();
    assert!(bound.callers()[0].bind_token_to_certificate);
    let with_jwt = format!(
        "{ISSUER_DOC}callers:\n  - id: a\n    identities:\n      - {{ type: san_uri, value: \"spiffe://x/a\" }}\n      \
         - {{ type: jwt, issuer: \"https://i\", subject: s }}\n    cognito_client: a\n    allowed_scopes: [s/read]\n    \
         max_token_lifetime_seconds: 3600\n    quotas: unlimited\n    bind_token_to_certificate: true\n"
    );
    let e = err(&with_jwt);
    assert!(e.contains("bind_token_to_certificate") && e.contains("jwt identity"), "{e}");
    assert!(load(&with_jwt.replace("    bind_token_to_certificate: true\n", "")).is_ok());
}
