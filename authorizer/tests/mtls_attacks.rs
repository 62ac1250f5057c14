//! Attack suite for the mTLS half of the authorizer: each malicious or broken client certificate is refused with the
//! exact error kind and the status class docs/design.md gives (401 Unauthorized vs 403 Deny); each identity rule
//! maps a genuine certificate to the right caller. Every key and certificate is generated here, at test time.

#[path = "common/mtls_fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixture::*;
use proptest::prelude::*;
use tb_authorizer::MemoryObjectSource;
use tb_authorizer::{
    identify, pem_fingerprint, CertError, CertVerifier, IdentifyError, MtlsConfig, VerifiedCert,
    MAX_CLIENT_CERT_PEM_BYTES,
};
use tb_devkit::pki::{self_signed_client, to_pem, KeyKind, TestCa};

fn now() -> SystemTime {
    SystemTime::now()
}

fn assert_refused(fx: &Fixture, pem: &str, want: CertError, class: Outcome) {
    let got = fx.verify(pem);
    assert_eq!(got.as_ref().err(), Some(&want), "verification result");
    assert_eq!(outcome_of(&got, &fx.policy), class, "status class for {want:?}");
}

// ---------------------------------------------------------------- validity

#[tokio::test]
async fn expired_certificate_is_unauthorized() {
    let fx = Fixture::new().await;
    let leaf =
        fx.root.issue_client().san_uri(ORDERS_URI).validity(now() - hours(240), now() - hours(24)).build().unwrap();
    assert_refused(&fx, &leaf.pem, CertError::Expired, Outcome::Unauthorized);
}

#[tokio::test]
async fn not_yet_valid_certificate_is_unauthorized() {
    let fx = Fixture::new().await;
    let leaf =
        fx.root.issue_client().san_uri(ORDERS_URI).validity(now() + hours(24), now() + hours(240)).build().unwrap();
    assert_refused(&fx, &leaf.pem, CertError::NotYetValid, Outcome::Unauthorized);
}

#[tokio::test]
async fn validity_is_judged_at_the_given_time() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert!(fx.verifier.verify_pem(&leaf.pem, now()).is_ok());
    // the fixture's CRLs are fresh for one hour and the leaf for a day; two days on, the leaf itself has expired
    assert_eq!(fx.verifier.verify_pem(&leaf.pem, now() + hours(48)).err(), Some(CertError::Expired));
}

// ---------------------------------------------------------------- issuer

#[tokio::test]
async fn lookalike_issuer_with_same_dn_is_unauthorized() {
    let fx = Fixture::new().await;
    let fake_root = fx.root.lookalike().unwrap();
    assert_eq!(fake_root.common_name(), ROOT_CN);
    let leaf = fake_root.issue_client().san_uri(ORDERS_URI).cn(LEGACY_CN).build().unwrap();
    assert_refused(&fx, &leaf.pem, CertError::UntrustedIssuer, Outcome::Unauthorized);
}

#[tokio::test]
async fn unrelated_issuer_is_unauthorized() {
    let fx = Fixture::new().await;
    let other = TestCa::root("Some Other CA").unwrap();
    let leaf = other.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_refused(&fx, &leaf.pem, CertError::UntrustedIssuer, Outcome::Unauthorized);
}

/// A certificate copying a registered caller's serial and subject (and SAN) but carrying another key: if self-made
/// (self-signed or from a lookalike CA) it fails chain validation; if the real CA were tricked into issuing it, it
/// still matches neither the certificate pin nor the key pin of the registered caller.
#[tokio::test]
async fn same_serial_and_subject_with_another_key_is_refused() {
    let fx = Fixture::new().await;
    let victim = &fx.pinned_key;
    let self_made = self_signed_client().cn("pinned-by-key").serial(victim.serial.clone()).build().unwrap();
    assert_refused(&fx, &self_made.pem, CertError::UntrustedIssuer, Outcome::Unauthorized);
    let via_lookalike =
        fx.root.lookalike().unwrap().issue_client().cn("pinned-by-key").serial(victim.serial.clone()).build().unwrap();
    assert_refused(&fx, &via_lookalike.pem, CertError::UntrustedIssuer, Outcome::Unauthorized);

    // issued by the real CA with the victim's serial and CN, but a different key: verifies, matches no pin
    for (victim, cn) in [(&fx.pinned_key, "pinned-by-key"), (&fx.pinned_cert, "pinned-by-cert")] {
        let twin = fx.root.issue_client().cn(cn).serial(victim.serial.clone()).build().unwrap();
        let v = fx.verify(&twin.pem).unwrap();
        assert_ne!(v.spki_sha256, victim.spki_sha256);
        assert_ne!(v.cert_sha256, victim.cert_sha256);
        assert_eq!(identify(&v, &fx.policy).err(), Some(IdentifyError::NoMatch));
        assert_eq!(fx.outcome(&twin.pem), Outcome::Deny);
    }
}

// ---------------------------------------------------------------- revocation

#[tokio::test]
async fn revoked_leaf_is_denied_403() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
    fx.set_crls(&[&fresh_crl(&fx.root, &[&leaf.serial]), &fresh_crl(&fx.inter, &[])]).await;
    let got = fx.verify(&leaf.pem);
    assert_eq!(got.as_ref().err(), Some(&CertError::Revoked));
    assert!(got.as_ref().err().is_some_and(CertError::is_revoked));
    assert_eq!(outcome_of(&got, &fx.policy), Outcome::Deny);
}

#[tokio::test]
async fn revocation_is_keyed_by_issuer_and_serial() {
    let fx = Fixture::new().await;
    let serial = tb_devkit::pki::random_serial();
    let from_root = fx.root.issue_client().san_uri(ORDERS_URI).serial(serial.clone()).build().unwrap();
    let from_inter = fx.inter.issue_client().san_uri(ORDERS_URI).serial(serial.clone()).build().unwrap();
    // the intermediate revokes this serial; the root's certificate with the same serial is unaffected
    fx.set_crls(&[&fresh_crl(&fx.root, &[]), &fresh_crl(&fx.inter, &[&serial])]).await;
    assert_eq!(fx.verify(&from_inter.pem).err(), Some(CertError::Revoked));
    assert_eq!(fx.outcome(&from_root.pem), Outcome::Allow("orders".into()));
}

#[tokio::test]
async fn revoked_intermediate_denies_its_leaves() {
    let fx = Fixture::new().await;
    let leaf = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
    let inter_serial = x509_serial(fx.inter.cert_der());
    fx.set_crls(&[&fresh_crl(&fx.root, &[&inter_serial]), &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
}

fn x509_serial(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    c.raw_serial().to_vec()
}

#[tokio::test]
async fn stale_crl_is_unauthorized() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let stale = fx.root.crl(&[], now() - hours(3), now() - hours(1)).unwrap();
    fx.set_crls(&[&stale, &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &leaf.pem, CertError::StaleCrl, Outcome::Unauthorized);
}

#[tokio::test]
async fn crl_going_stale_while_source_is_down_still_denies() {
    let fx = Fixture::with_config(MtlsConfig { refresh_interval: Duration::ZERO, ..MtlsConfig::default() }).await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    fx.crls.set_unavailable(true);
    fx.truststore.set_unavailable(true);
    // the failed refresh keeps the last good material and is not an error for the caller
    assert_eq!(fx.verifier.refresh_if_due(SystemTime::now()).await, Ok(false));
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
    // past the fixture CRLs' nextUpdate (one hour), the same material refuses
    let later = now() + hours(2);
    assert_eq!(fx.verifier.verify_pem(&leaf.pem, later).err(), Some(CertError::StaleCrl));
    assert!(fx.verifier.crls_fresh_until().is_some_and(|t| t < later));
}

#[tokio::test]
async fn crl_signed_by_wrong_key_is_unauthorized() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let forged = fx.root.crl_signed_with_wrong_key(&[], now() - hours(1), now() + hours(1)).unwrap();
    fx.set_crls(&[&forged, &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &leaf.pem, CertError::BadCrlSignature, Outcome::Unauthorized);
}

#[tokio::test]
async fn issuer_without_crl_fails_closed_when_crls_are_required() {
    let fx = Fixture::new().await;
    let leaf = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    // only the root publishes a CRL: the intermediate's leaf has unknown status
    fx.set_crls(&[&fresh_crl(&fx.root, &[])]).await;
    assert_refused(&fx, &leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);
    // an empty CRL bundle: nothing can be checked
    fx.crls.set("");
    fx.verifier.refresh().await.unwrap();
    let root_leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_refused(&fx, &root_leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);
}

#[tokio::test]
async fn issuer_without_crl_is_accepted_when_crls_are_optional() {
    let fx = Fixture::with_config(MtlsConfig { require_crl: false, ..MtlsConfig::default() }).await;
    let leaf = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    fx.set_crls(&[&fresh_crl(&fx.root, &[])]).await;
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
    // a CRL that is present is still enforced
    fx.set_crls(&[&fresh_crl(&fx.root, &[]), &fresh_crl(&fx.inter, &[&leaf.serial])]).await;
    assert_eq!(fx.verify(&leaf.pem).err(), Some(CertError::Revoked));
}

// ---------------------------------------------------------------- identity rules

#[tokio::test]
async fn san_uri_mismatch_is_denied() {
    let fx = Fixture::new().await;
    for uri in [
        "spiffe://example.internal/ns/orders/sa/order-processing-evil",
        "spiffe://example.internal/ns/orders/sa/Order-Processing",
        "spiffe://example.internal/ns/orders/sa/order-processing/",
        "spiffe://example.internal/ns/orders/sa/order-processin",
        "SPIFFE://example.internal/ns/orders/sa/order-processing",
    ] {
        let leaf = fx.root.issue_client().san_uri(uri).build().unwrap();
        assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::NoMatch), "{uri}");
        assert_eq!(fx.outcome(&leaf.pem), Outcome::Deny);
    }
}

#[tokio::test]
async fn identity_only_in_cn_where_rule_asks_for_san_is_denied() {
    let fx = Fixture::new().await;
    let uri_in_cn = fx.root.issue_client().cn(ORDERS_URI).build().unwrap();
    assert_eq!(fx.identify(&uri_in_cn.pem), Err(IdentifyError::NoMatch));
    let dns_in_cn = fx.root.issue_client().cn(REPORTING_DNS).build().unwrap();
    assert_eq!(fx.identify(&dns_in_cn.pem), Err(IdentifyError::NoMatch));
    assert_eq!(fx.outcome(&dns_in_cn.pem), Outcome::Deny);
}

#[tokio::test]
async fn two_uri_sans_are_denied() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).san_uri("spiffe://example.internal/other").build().unwrap();
    let v = fx.verify(&leaf.pem).unwrap();
    assert_eq!(v.san_uris.len(), 2);
    assert_eq!(identify(&v, &fx.policy).err(), Some(IdentifyError::MultipleUriSans));
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Deny);
    // order does not matter
    let leaf = fx.root.issue_client().san_uri("spiffe://example.internal/other").san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::MultipleUriSans));
}

#[tokio::test]
async fn rules_pointing_at_two_callers_are_ambiguous() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).san_dns(REPORTING_DNS).build().unwrap();
    assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::Ambiguous));
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Deny);
    let leaf = fx.root.issue_client().cn(LEGACY_CN).san_dns(REPORTING_DNS).build().unwrap();
    assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::Ambiguous));
}

#[tokio::test]
async fn san_uri_rule_matches() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().cn("anything").san_uri(ORDERS_URI).san_dns("orders.example").build().unwrap();
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
}

#[tokio::test]
async fn san_dns_rule_matches_case_insensitively() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_dns("Reporting.SVC.example.internal").build().unwrap();
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("reporting".into()));
    let other = fx.root.issue_client().san_dns("reporting.svc.example.internal.evil").build().unwrap();
    assert_eq!(fx.outcome(&other.pem), Outcome::Deny);
}

#[tokio::test]
async fn subject_cn_rule_needs_the_right_issuer() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().cn(LEGACY_CN).build().unwrap();
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("legacy".into()));
    // same CN from the intermediate (issuer CN differs): no match
    let leaf = fx.inter.issue_client().cn(LEGACY_CN).build().unwrap();
    assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::NoMatch));
}

#[tokio::test]
async fn cert_sha256_pin_matches_only_that_certificate() {
    let fx = Fixture::new().await;
    assert_eq!(fx.outcome(&fx.pinned_cert.pem), Outcome::Allow("pinned-cert".into()));
    assert_eq!(pem_fingerprint(&fx.pinned_cert.pem), Some(fx.pinned_cert.cert_sha256));
    // re-issued with the same key: a new certificate, so the certificate pin no longer matches
    let reissued = fx.root.issue_client().cn("pinned-by-cert").key_pem(fx.pinned_cert.key_pem.clone()).build().unwrap();
    assert_eq!(fx.identify(&reissued.pem), Err(IdentifyError::NoMatch));
}

#[tokio::test]
async fn spki_sha256_pin_survives_reissuance() {
    let fx = Fixture::new().await;
    assert_eq!(fx.outcome(&fx.pinned_key.pem), Outcome::Allow("pinned-key".into()));
    let reissued = fx.inter.issue_client().cn("renamed").key_pem(fx.pinned_key.key_pem.clone()).build().unwrap();
    assert_eq!(fx.outcome(&reissued.pem), Outcome::Allow("pinned-key".into()));
}

#[tokio::test]
async fn chain_through_intermediate_verifies() {
    let fx = Fixture::new().await;
    let leaf = fx.inter.issue_client().cn("svc").san_uri(ORDERS_URI).build().unwrap();
    let v = fx.verify(&leaf.pem).unwrap();
    assert_eq!(v.issuer_cn.as_deref(), Some(INTER_CN));
    assert_eq!(v.subject_cn.as_deref(), Some("svc"));
    assert_eq!(v.san_uris, vec![ORDERS_URI.to_owned()]);
    assert_eq!(v.cert_sha256, leaf.cert_sha256);
    assert_eq!(v.spki_sha256, leaf.spki_sha256);
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
}

#[tokio::test]
async fn other_key_types_verify() {
    let root = TestCa::root_with(ROOT_CN, KeyKind::Rsa2048).unwrap();
    let ts = MemoryObjectSource::new(root.cert_pem());
    let v = CertVerifier::new(Arc::new(ts), None, MtlsConfig::default());
    v.refresh().await.unwrap();
    for kind in [KeyKind::EcdsaP256, KeyKind::EcdsaP384, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let leaf = root.issue_client().key(kind).build().unwrap();
        assert!(v.verify_pem(&leaf.pem, now()).is_ok(), "{kind:?}");
    }
}

// ---------------------------------------------------------------- certificate shape

#[tokio::test]
async fn ca_certificate_as_leaf_is_unauthorized() {
    let fx = Fixture::new().await;
    let ca_leaf = fx.root.issue_client().san_uri(ORDERS_URI).is_ca(true).build().unwrap();
    assert_refused(&fx, &ca_leaf.pem, CertError::CaAsLeaf, Outcome::Unauthorized);
    // the trusted CAs themselves, presented as client certificates
    assert_refused(&fx, fx.root.cert_pem(), CertError::CaAsLeaf, Outcome::Unauthorized);
    assert_refused(&fx, fx.inter.cert_pem(), CertError::CaAsLeaf, Outcome::Unauthorized);
}

#[tokio::test]
async fn missing_client_auth_eku_is_unauthorized() {
    let fx = Fixture::new().await;
    let server_only = fx.root.issue_client().san_uri(ORDERS_URI).client_auth(false).build().unwrap();
    assert_refused(&fx, &server_only.pem, CertError::NoClientAuthEku, Outcome::Unauthorized);
    // no EKU extension at all: webpki alone would accept it, the verifier must not
    let no_eku = fx.root.issue_client().san_uri(ORDERS_URI).ekus(vec![]).build().unwrap();
    assert_refused(&fx, &no_eku.pem, CertError::NoClientAuthEku, Outcome::Unauthorized);
}

#[tokio::test]
async fn duplicate_extensions_are_unauthorized() {
    let fx = Fixture::new().await;
    // a second subjectAltName naming the registered workload
    let dup_san = fx
        .root
        .issue_client()
        .san_uri("spiffe://example.internal/harmless")
        .duplicate_san_uri(ORDERS_URI)
        .build()
        .unwrap();
    assert_refused(&fx, &dup_san.pem, CertError::DuplicateExtension, Outcome::Unauthorized);
    // what the libraries do on their own: x509-parser refuses to pick one SAN, webpki refuses the certificate
    {
        use x509_parser::prelude::FromDer;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(&dup_san.der).unwrap();
        assert!(c.subject_alternative_name().is_err());
        let der = rustls_pki_types::CertificateDer::from(dup_san.der.as_slice());
        assert!(webpki::EndEntityCert::try_from(&der).is_err());
    }
    // a private, non-critical extension twice: webpki ignores unknown extensions, the verifier does not
    let private_oid = [1, 3, 6, 1, 4, 1, 55555, 1];
    let dup_private = fx
        .root
        .issue_client()
        .san_uri(ORDERS_URI)
        .custom_extension(&private_oid, vec![0x05, 0x00], false)
        .custom_extension(&private_oid, vec![0x05, 0x00], false)
        .build()
        .unwrap();
    let der = rustls_pki_types::CertificateDer::from(dup_private.der.as_slice());
    assert!(webpki::EndEntityCert::try_from(&der).is_ok(), "webpki alone accepts duplicate unknown extensions");
    assert_refused(&fx, &dup_private.pem, CertError::DuplicateExtension, Outcome::Unauthorized);
}

#[tokio::test]
async fn malformed_truncated_and_non_certificate_pem_is_unauthorized() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let malformed = |e: &CertError| matches!(e, CertError::MalformedPem(_) | CertError::MalformedDer);
    let mut cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("hello".into(), "not PEM"),
        (leaf.pem[..leaf.pem.len() / 2].to_owned(), "cut in half"),
        (leaf.pem.replace("-----END CERTIFICATE-----", ""), "no END line"),
        (leaf.pem.replace("CERTIFICATE", "PRIVATE KEY"), "other label"),
        (leaf.key_pem.clone(), "a private key"),
        (fresh_crl(&fx.root, &[]).pem, "a CRL"),
        (to_pem("CERTIFICATE", &fresh_crl(&fx.root, &[]).der), "a CRL labelled CERTIFICATE"),
        (to_pem("CERTIFICATE", &[0x30, 0x03, 0x02, 0x01, 0x05]), "a DER SEQUENCE that is no certificate"),
        (to_pem("CERTIFICATE", &leaf.der[..leaf.der.len() - 10]), "truncated DER"),
        (leaf.pem.replacen('M', "*", 1), "bad base64 character"),
        (format!("{}{}", leaf.pem, leaf.pem), "two certificates"),
        (format!("{}{}", leaf.pem, fresh_crl(&fx.root, &[]).pem), "trailing junk PEM block"),
        (format!("{}trailing text", leaf.pem), "trailing text"),
        (format!("subject=CN=orders\n{}", leaf.pem), "leading text"),
    ];
    // the DER cut short by various amounts
    for cut in [1usize, 2, 4, 100, 200] {
        cases.push((to_pem("CERTIFICATE", &leaf.der[..leaf.der.len().saturating_sub(cut)]), "truncated DER"));
    }
    for (pem, what) in &cases {
        let got = fx.verify(pem);
        assert!(got.as_ref().is_err_and(malformed), "{what}: {got:?}");
        assert_eq!(outcome_of(&got, &fx.policy), Outcome::Unauthorized, "{what}");
        if pem_fingerprint(pem).is_some() {
            assert!(matches!(got, Err(CertError::MalformedDer)), "{what}: framing passed, parsing must fail");
        }
    }
    let huge =
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", "A".repeat(MAX_CLIENT_CERT_PEM_BYTES));
    assert_refused(&fx, &huge, CertError::TooLarge, Outcome::Unauthorized);
    assert_eq!(pem_fingerprint(&huge), None);
}

#[tokio::test]
async fn trailing_bytes_after_the_certificate_are_unauthorized() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    for junk in [&[0x00][..], &[0x30, 0x00], &leaf.der] {
        let mut der = leaf.der.clone();
        der.extend_from_slice(junk);
        let pem = to_pem("CERTIFICATE", &der);
        assert_refused(&fx, &pem, CertError::TrailingData, Outcome::Unauthorized);
        assert_eq!(pem_fingerprint(&pem), None);
    }
}

#[tokio::test]
async fn pem_formatting_variants_of_one_certificate_are_accepted() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    for pem in [leaf.pem.replace('\n', "\r\n"), format!("\n  {}  \n", leaf.pem), leaf.pem.trim_end().to_owned()] {
        assert_eq!(fx.outcome(&pem), Outcome::Allow("orders".into()));
        assert_eq!(pem_fingerprint(&pem), Some(leaf.cert_sha256));
    }
}

#[tokio::test]
async fn no_trust_material_is_unauthorized() {
    let ts = MemoryObjectSource::default(); // holds no object
    let cfg = MtlsConfig { refresh_interval: Duration::ZERO, ..MtlsConfig::default() };
    let v = CertVerifier::new(Arc::new(ts.clone()), None, cfg);
    assert!(v.refresh().await.is_err());
    assert!(v.refresh_if_due(SystemTime::now()).await.is_err(), "no truststore ever loaded is an error for the caller");
    let root = TestCa::root(ROOT_CN).unwrap();
    let leaf = root.issue_client().build().unwrap();
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::NoTrustMaterial));
    // a bundle of garbage or of leaf certificates is refused as a truststore
    ts.set("garbage");
    assert!(v.refresh().await.is_err());
    ts.set(leaf.pem.clone());
    assert!(v.refresh().await.is_err());
    assert!(!v.is_ready());
}

#[tokio::test]
async fn outputs_never_contain_certificate_material() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let body_line = leaf.pem.lines().nth(1).unwrap().to_owned();
    let v = fx.verify(&leaf.pem).unwrap();
    let texts = [
        format!("{v:?}"),
        format!("{:?}", fx.verifier),
        format!("{:?} {}", fx.verify(&format!("{}x", leaf.pem)), fx.verify(&format!("{}x", leaf.pem)).unwrap_err()),
        format!("{:?}", fx.verify(&leaf.pem.replacen('M', "*", 1))),
    ];
    for t in &texts {
        assert!(!t.contains(&body_line) && !t.contains("BEGIN"), "{t}");
    }
    assert!(format!("{v:?}").contains(&hex::encode(leaf.cert_sha256)));
}

/// A VerifiedCert built by hand: `identify` on hashes alone, as if an attacker's certificate had got through.
#[test]
fn identify_never_matches_on_serial_or_names_outside_rules() {
    let policy =
        tb_shared::policy::Policy::from_bytes("p.yaml", policy_yaml(&"a".repeat(64), &"b".repeat(64)).as_bytes())
            .unwrap();
    let base = VerifiedCert {
        cert_sha256: [0xaa; 32],
        spki_sha256: [0xbb; 32],
        san_uris: vec![],
        san_dns: vec![],
        subject_cn: None,
        issuer_cn: None,
        not_after: now(),
    };
    // both pins match, but for two different callers
    assert_eq!(identify(&base, &policy).err(), Some(IdentifyError::Ambiguous));
    let mut only_key = base.clone();
    only_key.cert_sha256 = [0; 32];
    assert_eq!(identify(&only_key, &policy).map(|c| c.id.to_string()), Ok("pinned-key".into()));
    let mut nothing = only_key.clone();
    nothing.spki_sha256 = [0; 32];
    nothing.subject_cn = Some(LEGACY_CN.into());
    assert_eq!(identify(&nothing, &policy).err(), Some(IdentifyError::NoMatch), "CN without issuer CN");
    nothing.issuer_cn = Some(ROOT_CN.into());
    assert_eq!(identify(&nothing, &policy).map(|c| c.id.to_string()), Ok("legacy".into()));
}

// ---------------------------------------------------------------- never panics

struct Sample {
    verifier: CertVerifier,
    pem: String,
    der: Vec<u8>,
}

/// One trusted leaf and a verifier that accepts it, shared by the property tests.
fn sample() -> &'static Sample {
    static S: std::sync::OnceLock<Sample> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let root = TestCa::root(ROOT_CN).unwrap();
        let leaf = root.issue_client().san_uri(ORDERS_URI).san_dns(REPORTING_DNS).build().unwrap();
        let verifier =
            CertVerifier::new(Arc::new(MemoryObjectSource::new(root.cert_pem())), None, MtlsConfig::default());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(verifier.refresh()).unwrap();
        assert!(verifier.verify_pem(&leaf.pem, now()).is_ok(), "the unmodified sample must verify");
        Sample { verifier, pem: leaf.pem, der: leaf.der }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,400}") {
        let r = sample().verifier.verify_pem(&s, now());
        prop_assert!(r.is_err());
        let _ = pem_fingerprint(&s);
    }

    #[test]
    fn random_pem_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let pem = to_pem("CERTIFICATE", &body);
        prop_assert!(sample().verifier.verify_pem(&pem, now()).is_err());
        let _ = pem_fingerprint(&pem);
    }

    #[test]
    fn mutated_certificates_never_panic(pos in 0usize..4096, byte in any::<u8>(), cut in 0usize..4096) {
        let Sample { verifier, pem, der } = sample();
        let mut d = der.clone();
        let i = pos % d.len();
        let changed = d[i] != byte;
        d[i] = byte;
        d.truncate(d.len() - cut % d.len());
        let r = verifier.verify_pem(&to_pem("CERTIFICATE", &d), now());
        if changed || cut % der.len() != 0 {
            prop_assert!(r.is_err(), "a modified certificate must not verify");
        } else {
            prop_assert!(r.is_ok(), "the unmodified certificate verifies");
        }
        let cut_text = &pem[..(cut % pem.len())];
        if cut_text.trim_end() != pem.trim_end() {
            prop_assert!(verifier.verify_pem(cut_text, now()).is_err(), "a PEM prefix lacks its END line");
        }
        let _ = pem_fingerprint(cut_text);
    }
}
