//! Attack suite for the mTLS half of the authorizer: each malicious or broken client certificate is refused with the
//! exact error kind and the status class docs/design.md gives (401 Unauthorized vs 403 Deny); each identity rule
//! maps a genuine certificate to the right caller. Every key and certificate is generated here, at test time.

#[path = "common/mtls_fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixture::*;
use proptest::prelude::*;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use sha2::{Digest, Sha256};
use tb_authorizer::MemoryObjectSource;
use tb_authorizer::{
    identify, pem_fingerprint, CertError, CertVerifier, IdentifyError, MtlsConfig, MtlsError, VerifiedCert,
    MAX_CLIENT_CERT_PEM_BYTES,
};
use tb_devkit::pki::{der_tlv, pem_bundle, self_signed_client, to_pem, CrlScope, KeyKind, TestCa, TestCrl};
use tb_shared::policy::Policy;

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

/// A CRL naming the root but signed by another key is refused when it is loaded: it can neither replace the root's
/// CRL in use (so it cannot un-revoke) nor stand in for a missing one (so the root's certificates stay unknown).
#[tokio::test]
async fn crl_signed_by_wrong_key_is_refused_at_load() {
    let fx = Fixture::new().await;
    let revoked = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let other = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    fx.set_crls(&[&fresh_crl(&fx.root, &[&revoked.serial]), &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &revoked.pem, CertError::Revoked, Outcome::Deny);
    let before = fx.verifier.crls_fresh_until();

    // newer by CRL number and listing nothing, but forged: refused, and the root's CRL in use stays
    let forged = fx.root.crl_builder().validity(now() - hours(1), now() + hours(1) / 2).signed_with_wrong_key();
    fx.set_crls(&[&forged.build().unwrap(), &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &revoked.pem, CertError::Revoked, Outcome::Deny);
    assert_eq!(fx.outcome(&other.pem), Outcome::Allow("orders".into()));
    assert_eq!(fx.verifier.crls_in_use(), 2);
    assert_eq!(fx.verifier.crls_fresh_until(), before, "a refused CRL's nextUpdate counts for nothing");

    // the same from a lookalike CA (same subject, its own key)
    let lookalike = fx.root.lookalike().unwrap();
    let fake = lookalike.crl_builder().build().unwrap();
    fx.set_crls(&[&fake, &fresh_crl(&fx.inter, &[])]).await;
    assert_refused(&fx, &revoked.pem, CertError::Revoked, Outcome::Deny);

    // a verifier that never had a good root CRL: the forged one does not count, the root's leaves are unknown
    let crls = MemoryObjectSource::new(pem_bundle(&[
        &fx.root.crl_builder().signed_with_wrong_key().build().unwrap().pem,
        &fresh_crl(&fx.inter, &[]).pem,
    ]));
    let v = CertVerifier::new(Arc::new(fx.truststore.clone()), Some(Arc::new(crls)), MtlsConfig::default());
    assert_eq!(v.refresh().await, Ok(true), "a refused CRL is logged, not an error of the bundle");
    assert_eq!(v.crls_in_use(), 1);
    assert_eq!(v.verify_pem(&other.pem, now()).err(), Some(CertError::RevocationUnknown));
    // the intermediate's CRL is fine, but the intermediate itself is the root's to revoke: unknown as well
    let inter_leaf = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(v.verify_pem(&inter_leaf.pem, now()).err(), Some(CertError::RevocationUnknown));
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
        issuer_spki_sha256: [0xcc; 32],
        issuer_cn_shared: false,
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
    // the same names, but the truststore has two CAs with that CN and the rule pins no key: ambiguous
    nothing.issuer_cn_shared = true;
    assert_eq!(identify(&nothing, &policy).err(), Some(IdentifyError::Ambiguous));
}

// ---------------------------------------------------------------- key strength

/// An RSA-1024 public key, generated once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024` (rcgen
/// on aws-lc-rs cannot make one). Only the public half is committed: the test CA certifies it at run time, so the
/// certificate is genuinely signed, never expires in the tree, and no private key is checked in.
const RSA1024_PUBLIC_KEY: &str = include_str!("fixtures/rsa1024-public-key.pem");

fn rsa1024_spki() -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(RSA1024_PUBLIC_KEY.as_bytes()).unwrap();
    assert_eq!(pem.label, "PUBLIC KEY");
    pem.contents
}

/// A policy of the fixture's callers with these `settings` lines.
fn policy_with_settings(settings: &str) -> Policy {
    let yaml = policy_yaml(&"0".repeat(64), &"1".repeat(64)).replacen(
        "version: 1\n",
        &format!("version: 1\nsettings:\n{settings}"),
        1,
    );
    Policy::from_bytes("policy.yaml", yaml.as_bytes()).unwrap()
}

/// A verifier of `truststore` without CRLs, holding `policy`'s key floor and subject_cn rules.
async fn verifier_for(truststore: &str, policy: &Policy) -> CertVerifier {
    let v = CertVerifier::new(Arc::new(MemoryObjectSource::new(truststore)), None, MtlsConfig::default())
        .with_policy(policy);
    v.refresh().await.unwrap();
    v
}

#[tokio::test]
async fn rsa1024_leaf_is_unauthorized_as_a_weak_key() {
    let fx = Fixture::new().await;
    let weak = fx.root.issue_client().san_uri(ORDERS_URI).public_key_der(rsa1024_spki()).build().unwrap();
    // everything else about it is fine: webpki never looks at the key a leaf certifies
    {
        let der = rustls_pki_types::CertificateDer::from(weak.der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let anchor = webpki::anchor_from_trusted_cert(&rustls_pki_types::CertificateDer::from(fx.root.cert_der()))
            .unwrap()
            .to_owned();
        let time = rustls_pki_types::UnixTime::now();
        let anchors = [anchor];
        let chain = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        );
        assert!(chain.is_ok(), "webpki alone accepts an RSA-1024 client certificate");
    }
    let want = CertError::WeakKey { key: "RSA-1024".into(), minimum: "RSA-2048".into() };
    assert_refused(&fx, &weak.pem, want.clone(), Outcome::Unauthorized);
    assert_eq!(want.code(), "cert_weak_key");
    assert_eq!(want.to_string(), "client certificate key too weak: RSA-1024 (minimum RSA-2048)");
    // the default floor holds without any policy: P-256, P-384, Ed25519 and RSA-2048 leaves pass it
    for kind in [KeyKind::EcdsaP256, KeyKind::EcdsaP384, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let leaf = fx.root.issue_client().san_uri(ORDERS_URI).key(kind).build().unwrap();
        assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()), "{kind:?}");
    }
}

#[tokio::test]
async fn a_raised_ec_floor_refuses_p256_and_accepts_p384() {
    let policy = policy_with_settings("  min_ec_key_bits: 384\n");
    assert_eq!(policy.key_floor.min_ec_bits, 384);
    let root = TestCa::root_with(ROOT_CN, KeyKind::EcdsaP384).unwrap();
    let v = verifier_for(root.cert_pem(), &policy).await;
    assert_eq!(v.key_floor(), policy.key_floor);

    let p384 = root.issue_client().san_uri(ORDERS_URI).key(KeyKind::EcdsaP384).build().unwrap();
    assert_eq!(outcome_of(&v.verify_pem(&p384.pem, now()), &policy), Outcome::Allow("orders".into()));
    let p256 = root.issue_client().san_uri(ORDERS_URI).key(KeyKind::EcdsaP256).build().unwrap();
    let got = v.verify_pem(&p256.pem, now());
    assert_eq!(got, Err(CertError::WeakKey { key: "P-256".into(), minimum: "384-bit curve".into() }));
    assert_eq!(outcome_of(&got, &policy), Outcome::Unauthorized);
    let ed25519 = root.issue_client().san_uri(ORDERS_URI).key(KeyKind::Ed25519).build().unwrap();
    assert!(matches!(v.verify_pem(&ed25519.pem, now()), Err(CertError::WeakKey { .. })), "Ed25519 counts as 256");
    // the RSA floor is separate: RSA-2048 still meets the default 2048
    let rsa = root.issue_client().san_uri(ORDERS_URI).key(KeyKind::Rsa2048).build().unwrap();
    assert!(v.verify_pem(&rsa.pem, now()).is_ok());

    // a P-384 leaf under a P-256 CA: the chain is only as strong as the CA's key
    let weak_root = TestCa::root_with("Weak Root", KeyKind::EcdsaP256).unwrap();
    let v = verifier_for(weak_root.cert_pem(), &policy).await;
    let leaf = weak_root.issue_client().key(KeyKind::EcdsaP384).build().unwrap();
    let got = v.verify_pem(&leaf.pem, now());
    assert_eq!(got, Err(CertError::WeakCaKey { key: "P-256".into(), minimum: "384-bit curve".into() }));
    assert_eq!(got.unwrap_err().code(), "cert_chain_weak_key");
}

#[tokio::test]
async fn a_raised_rsa_floor_refuses_rsa2048() {
    let policy = policy_with_settings("  min_rsa_key_bits: 3072\n");
    let fx = Fixture::new().await;
    let v = verifier_for(&fx.inter.chain_bundle_pem(), &policy).await;
    let rsa = fx.root.issue_client().san_uri(ORDERS_URI).key(KeyKind::Rsa2048).build().unwrap();
    let got = v.verify_pem(&rsa.pem, now());
    assert_eq!(got, Err(CertError::WeakKey { key: "RSA-2048".into(), minimum: "RSA-3072".into() }));
    assert_eq!(outcome_of(&got, &policy), Outcome::Unauthorized);
    let weak = fx.root.issue_client().public_key_der(rsa1024_spki()).build().unwrap();
    assert!(matches!(v.verify_pem(&weak.pem, now()), Err(CertError::WeakKey { .. })));
    // EC keys are held to the EC floor, still 256
    let p256 = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(outcome_of(&v.verify_pem(&p256.pem, now()), &policy), Outcome::Allow("orders".into()));
}

// ---------------------------------------------------------------- issuer binding of subject_cn

fn spki_sha256(ca: &TestCa) -> [u8; 32] {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(ca.cert_der()).unwrap();
    Sha256::digest(c.public_key().raw).into()
}

/// Two roots carry the CN a `subject_cn` rule names. Unpinned, the rule cannot tell them apart and denies for both;
/// pinned to one root's key, it matches that root's certificate and not the other's.
#[tokio::test]
async fn subject_cn_is_bound_to_the_issuing_ca_not_its_cn() {
    let real = TestCa::root(ROOT_CN).unwrap();
    // the same CN under another organisation, and the very same subject DN with another key
    let other_org = TestCa::root_for("Somebody Else", ROOT_CN, None).unwrap();
    let same_dn = TestCa::root(ROOT_CN).unwrap();
    for other in [&other_org, &same_dn] {
        let truststore = pem_bundle(&[real.cert_pem(), other.cert_pem()]);
        let from_real = real.issue_client().cn(LEGACY_CN).build().unwrap();
        let from_other = other.issue_client().cn(LEGACY_CN).build().unwrap();

        let unpinned = policy_with_settings("  hash_caller_ids: false\n");
        let v = verifier_for(&truststore, &unpinned).await;
        let got = v.verify_pem(&from_other.pem, now()).unwrap();
        assert_eq!(got.issuer_cn.as_deref(), Some(ROOT_CN));
        assert_eq!(got.issuer_spki_sha256, spki_sha256(other), "the issuer is the CA of the built chain");
        assert!(got.issuer_cn_shared);
        assert_eq!(identify(&got, &unpinned).err(), Some(IdentifyError::Ambiguous));
        assert_eq!(outcome_of(&Ok(got), &unpinned), Outcome::Deny);
        let got = v.verify_pem(&from_real.pem, now()).unwrap();
        assert_eq!(got.issuer_spki_sha256, spki_sha256(&real));
        assert_eq!(identify(&got, &unpinned).err(), Some(IdentifyError::Ambiguous));

        let pin = hex::encode(spki_sha256(&real));
        let pinned_yaml = policy_yaml(&"0".repeat(64), &"1".repeat(64)).replace(
            &format!("issuer_cn: \"{ROOT_CN}\""),
            &format!("issuer_cn: \"{ROOT_CN}\", issuer_spki_sha256: \"{pin}\""),
        );
        let pinned = Policy::from_bytes("policy.yaml", pinned_yaml.as_bytes()).unwrap();
        let v = verifier_for(&truststore, &pinned).await;
        assert_eq!(outcome_of(&v.verify_pem(&from_real.pem, now()), &pinned), Outcome::Allow("legacy".into()));
        let got = v.verify_pem(&from_other.pem, now()).unwrap();
        assert_eq!(identify(&got, &pinned).err(), Some(IdentifyError::NoMatch));
    }

    // with one CA of that CN the unpinned rule matches as before, and a pin to another key does not
    let v = verifier_for(real.cert_pem(), &policy_with_settings("  hash_caller_ids: false\n")).await;
    let leaf = real.issue_client().cn(LEGACY_CN).build().unwrap();
    let got = v.verify_pem(&leaf.pem, now()).unwrap();
    assert!(!got.issuer_cn_shared);
    assert_eq!(
        outcome_of(&Ok(got), &policy_with_settings("  hash_caller_ids: false\n")),
        Outcome::Allow("legacy".into())
    );
}

/// What refuses rules or CRLs because of how the trust material is made is said when it loads, once per load.
#[tokio::test]
async fn a_shared_cn_and_a_refused_crl_are_logged_at_load() {
    let logs = tb_shared::telemetry::CaptureWriter::default();
    let _guard = tb_shared::telemetry::capture_default(logs.clone());
    let real = TestCa::root(ROOT_CN).unwrap();
    let other = TestCa::root_for("Somebody Else", ROOT_CN, None).unwrap();
    let truststore = MemoryObjectSource::new(pem_bundle(&[real.cert_pem(), other.cert_pem()]));
    let forged = real.crl_builder().signed_with_wrong_key().build().unwrap();
    let crls = MemoryObjectSource::new(pem_bundle(&[&forged.pem, &fresh_crl(&other, &[]).pem]));
    let cfg = MtlsConfig { refresh_interval: Duration::ZERO, ..MtlsConfig::default() };
    let v = CertVerifier::new(Arc::new(truststore), Some(Arc::new(crls)), cfg)
        .with_policy(&policy_with_settings("  hash_caller_ids: false\n"));
    v.refresh().await.unwrap();
    assert_eq!(v.refresh_if_due(now()).await, Ok(false), "unchanged objects: nothing reloaded, nothing logged");
    let text = logs.contents();
    let shared: Vec<&str> = text.lines().filter(|l| l.contains("share a CN")).collect();
    assert_eq!(shared.len(), 1, "{text}");
    assert!(shared[0].contains(ROOT_CN) && shared[0].contains("without issuer_spki_sha256"), "{}", shared[0]);
    let refused: Vec<&str> = text.lines().filter(|l| l.contains("CRL refused")).collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert!(refused[0].contains("signature does not verify"), "{}", refused[0]);
    assert!(!text.contains("BEGIN"), "no PEM in logs");
}

// ---------------------------------------------------------------- CRLs verified once, at load

/// Publishing a newer CRL that revokes a certificate, then the older CRL again (an operator's slip or an attacker
/// with write access to the CRL object), must not un-revoke it: the older CRL is refused and the newer stays.
#[tokio::test]
async fn an_older_crl_cannot_unrevoke() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let older = fresh_crl(&fx.root, &[]);
    let newer = fresh_crl(&fx.root, &[&leaf.serial]);
    let inter = fresh_crl(&fx.inter, &[]);
    fx.set_crls(&[&newer, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);

    fx.set_crls(&[&older, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
    assert_eq!(fx.verifier.crls_in_use(), 2);
    // the same CRL again is not older
    fx.set_crls(&[&newer, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
    // a CA that lifts a revocation does so with a newer CRL
    fx.set_crls(&[&fresh_crl(&fx.root, &[]), &inter]).await;
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
    // dropping the root's CRL from the bundle, then bringing the old one back, does not get round the floor
    fx.set_crls(&[&inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);
    fx.set_crls(&[&older, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);
}

/// Without CRL numbers, thisUpdate orders CRLs.
#[tokio::test]
async fn crls_without_numbers_are_ordered_by_this_update() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let older = fx.root.crl_builder().no_number().validity(now() - hours(2), now() + hours(1)).build().unwrap();
    let newer = fx
        .root
        .crl_builder()
        .no_number()
        .revoke(&leaf.serial)
        .validity(now() - hours(1), now() + hours(1))
        .build()
        .unwrap();
    let inter = fresh_crl(&fx.inter, &[]);
    fx.set_crls(&[&newer, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
    fx.set_crls(&[&older, &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
}

/// webpki takes the first CRL of an issuer it finds; here the newest verified CRL of each CA wins, wherever it sits
/// in the bundle.
#[tokio::test]
async fn crl_order_in_the_bundle_does_not_matter() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let older = fresh_crl(&fx.root, &[]);
    let newer = fresh_crl(&fx.root, &[&leaf.serial]);
    let inter = fresh_crl(&fx.inter, &[]);
    for bundle in [[&older, &newer, &inter], [&newer, &older, &inter], [&inter, &older, &newer]] {
        let v = CertVerifier::new(
            Arc::new(fx.truststore.clone()),
            Some(Arc::new(MemoryObjectSource::new(pem_bundle(&bundle.map(|c| c.pem.as_str()))))),
            MtlsConfig::default(),
        );
        v.refresh().await.unwrap();
        assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::Revoked));
        assert_eq!(v.crls_in_use(), 2);
    }
}

/// A CA with two certificates, one from each of two roots (a cross-certificate): when the root that issued the
/// first revokes it, the other path still holds, as it did with webpki's own revocation check.
#[tokio::test]
async fn a_revoked_path_gives_way_to_another_path() {
    let root_a = TestCa::root("Cross Root A").unwrap();
    let root_b = TestCa::root("Cross Root B").unwrap();
    let issuing = root_a.sub_ca("Cross Issuing CA").build().unwrap();
    let via_b = issuing.cross_certificate(&root_b).unwrap();
    let leaf = issuing.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let truststore = pem_bundle(&[root_a.cert_pem(), root_b.cert_pem(), issuing.cert_pem(), &via_b.pem]);
    let via_a_serial = x509_serial(issuing.cert_der());
    let crls = MemoryObjectSource::new(pem_bundle(&[
        &fresh_crl(&root_a, &[&via_a_serial]).pem,
        &fresh_crl(&root_b, &[]).pem,
        &fresh_crl(&issuing, &[]).pem,
    ]));
    let v = CertVerifier::new(
        Arc::new(MemoryObjectSource::new(truststore)),
        Some(Arc::new(crls.clone())),
        MtlsConfig::default(),
    );
    v.refresh().await.unwrap();
    assert_eq!(v.crls_in_use(), 3);
    let got = v.verify_pem(&leaf.pem, now()).unwrap();
    assert_eq!(got.issuer_cn.as_deref(), Some("Cross Issuing CA"));
    // both paths revoked: revoked
    crls.set(pem_bundle(&[
        &fresh_crl(&root_a, &[&via_a_serial]).pem,
        &fresh_crl(&root_b, &[&via_b.serial]).pem,
        &fresh_crl(&issuing, &[]).pem,
    ]));
    v.refresh().await.unwrap();
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::Revoked));
    // one path revoked, the other's root without a CRL: revoked is what is said
    crls.set(pem_bundle(&[&fresh_crl(&root_a, &[&via_a_serial]).pem, &fresh_crl(&issuing, &[]).pem]));
    v.refresh().await.unwrap();
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::Revoked));
}

#[tokio::test]
async fn crl_of_a_ca_that_may_not_sign_crls_is_refused() {
    let root = TestCa::root(ROOT_CN).unwrap();
    let no_crl_sign = root
        .sub_ca("No cRLSign CA")
        .key_usages(vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature])
        .build()
        .unwrap();
    let leaf = no_crl_sign.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let crls = pem_bundle(&[&fresh_crl(&root, &[]).pem, &no_crl_sign.crl_builder().build().unwrap().pem]);
    let v = CertVerifier::new(
        Arc::new(MemoryObjectSource::new(no_crl_sign.chain_bundle_pem())),
        Some(Arc::new(MemoryObjectSource::new(crls))),
        MtlsConfig::default(),
    );
    v.refresh().await.unwrap();
    assert_eq!(v.crls_in_use(), 1);
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::RevocationUnknown));
}

/// Delta CRLs (and indirect or reason-partitioned ones) are refused with the whole bundle, which keeps the last
/// good bundle in use: ignoring just that CRL would silently drop the revocations it lists.
#[tokio::test]
async fn a_delta_crl_refuses_the_bundle() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let delta = fx.root.crl_builder().delta_of(1).revoke(&leaf.serial).build().unwrap();
    fx.crls.set(pem_bundle(&[&fresh_crl(&fx.root, &[]).pem, &delta.pem, &fresh_crl(&fx.inter, &[]).pem]));
    let err = fx.verifier.refresh().await.unwrap_err();
    assert!(matches!(&err, MtlsError::CrlInvalid(r) if r.contains("CRL 2")), "{err}");
    assert!(tb_authorizer::load_crls(delta.pem.as_bytes()).is_err());
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()), "last good bundle still in use");
}

/// CRLs scoped by an issuingDistributionPoint apply to what they cover (webpki's rule); a certificate no CRL of
/// its issuer covers has unknown status, which fails closed.
#[tokio::test]
async fn partitioned_crls_cover_only_their_partition() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let inter_leaf = fx.inter.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let inter = fresh_crl(&fx.inter, &[]);

    // the root publishes a CA-certificates-only CRL: it covers the intermediate, not the root's own leaves
    let ca_only = fx.root.crl_builder().scope(CrlScope::CaCertsOnly).distribution_point("http://crl.example/ca.crl");
    fx.set_crls(&[&ca_only.build().unwrap(), &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);
    assert_eq!(fx.outcome(&inter_leaf.pem), Outcome::Allow("orders".into()));

    // a user-certificates-only CRL covers the leaves, not the intermediate
    let users = fx.root.crl_builder().scope(CrlScope::UserCertsOnly).distribution_point("http://crl.example/u.crl");
    fx.set_crls(&[&users.revoke(&leaf.serial).build().unwrap(), &inter]).await;
    assert_refused(&fx, &leaf.pem, CertError::Revoked, Outcome::Deny);
    assert_refused(&fx, &inter_leaf.pem, CertError::RevocationUnknown, Outcome::Unauthorized);

    // by distribution point: a certificate naming another distribution point is not covered
    let dp = |uri: &str| fx.root.crl_builder().distribution_point(uri).build().unwrap();
    fx.set_crls(&[&dp("http://crl.example/a.crl"), &inter]).await;
    let in_a = fx.root.issue_client().san_uri(ORDERS_URI).crl_distribution_point("http://crl.example/a.crl");
    let in_b = fx.root.issue_client().san_uri(ORDERS_URI).crl_distribution_point("http://crl.example/b.crl");
    assert_eq!(fx.outcome(&in_a.build().unwrap().pem), Outcome::Allow("orders".into()));
    assert_refused(&fx, &in_b.build().unwrap().pem, CertError::RevocationUnknown, Outcome::Unauthorized);
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()), "no distribution point: covered");
    // both partitions published: each certificate is looked up in its own
    let b_revoking = |serial: &[u8]| {
        fx.root.crl_builder().distribution_point("http://crl.example/b.crl").revoke(serial).build().unwrap()
    };
    let b_leaf = fx.root.issue_client().crl_distribution_point("http://crl.example/b.crl").build().unwrap();
    fx.set_crls(&[&dp("http://crl.example/a.crl"), &b_revoking(&b_leaf.serial), &inter]).await;
    assert_refused(&fx, &b_leaf.pem, CertError::Revoked, Outcome::Deny);
    assert_eq!(fx.verifier.crls_in_use(), 3);
}

#[tokio::test]
async fn a_crl_for_a_ca_added_later_is_verified_when_the_truststore_changes() {
    let fx = Fixture::new().await;
    let newcomer = TestCa::root("Newcomer Root CA").unwrap();
    let leaf = newcomer.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let crls: [&TestCrl; 3] = [&fresh_crl(&fx.root, &[]), &fresh_crl(&fx.inter, &[]), &fresh_crl(&newcomer, &[])];
    fx.set_crls(&crls).await;
    assert_eq!(fx.verifier.crls_in_use(), 2, "the newcomer's CRL names no CA of the truststore yet");
    fx.truststore.set(pem_bundle(&[&fx.inter.chain_bundle_pem(), newcomer.cert_pem()]));
    fx.verifier.refresh().await.unwrap();
    assert_eq!(fx.verifier.crls_in_use(), 3);
    assert_eq!(fx.outcome(&leaf.pem), Outcome::Allow("orders".into()));
}

// ---------------------------------------------------------------- chain shape

/// A verifier of `truststore` without CRLs (chain-shape cases).
async fn chain_verifier(truststore: &str) -> CertVerifier {
    let v = CertVerifier::new(Arc::new(MemoryObjectSource::new(truststore)), None, MtlsConfig::default());
    v.refresh().await.unwrap();
    v
}

#[tokio::test]
async fn name_constraints_of_a_ca_are_enforced() {
    let root = TestCa::root(ROOT_CN).unwrap();
    let constrained = root.sub_ca("Constrained CA").permitted_dns("allowed.example").build().unwrap();
    let v = chain_verifier(&constrained.chain_bundle_pem()).await;
    let inside = constrained.issue_client().san_dns("svc.allowed.example").build().unwrap();
    assert!(v.verify_pem(&inside.pem, now()).is_ok());
    let outside = constrained.issue_client().san_dns(REPORTING_DNS).build().unwrap();
    assert_eq!(v.verify_pem(&outside.pem, now()).err(), Some(CertError::UntrustedIssuer));
    let lookalike = constrained.issue_client().san_dns("allowed.example.evil").build().unwrap();
    assert_eq!(v.verify_pem(&lookalike.pem, now()).err(), Some(CertError::UntrustedIssuer));
}

#[tokio::test]
async fn path_length_constraint_is_enforced() {
    let root = TestCa::root(ROOT_CN).unwrap();
    let issuing = root.sub_ca("Leaf-only CA").path_len(Some(0)).build().unwrap();
    let below = issuing.sub_ca("Below a pathLen 0 CA").build().unwrap();
    let v = chain_verifier(&below.chain_bundle_pem()).await;
    assert!(v.verify_pem(&issuing.issue_client().build().unwrap().pem, now()).is_ok());
    let leaf = below.issue_client().build().unwrap();
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::UntrustedIssuer));
}

#[tokio::test]
async fn a_certificate_that_is_no_ca_cannot_issue() {
    let root = TestCa::root(ROOT_CN).unwrap();
    let not_ca = root.sub_ca("Not A CA").not_ca().build().unwrap();
    let leaf = not_ca.issue_client().san_uri(ORDERS_URI).build().unwrap();
    // it can never be part of a truststore, so its leaves have no path
    let v = chain_verifier(root.cert_pem()).await;
    assert_eq!(v.verify_pem(&leaf.pem, now()).err(), Some(CertError::UntrustedIssuer));
    let refused = tb_authorizer::load_truststore(not_ca.chain_bundle_pem().as_bytes()).unwrap_err();
    assert!(refused.to_string().contains("not a CA certificate"), "{refused}");
}

#[tokio::test]
async fn an_intermediate_eku_constrains_its_leaves() {
    let root = TestCa::root(ROOT_CN).unwrap();
    let servers = root.sub_ca("Server CA").ekus(vec![ExtendedKeyUsagePurpose::ServerAuth]).build().unwrap();
    let clients = root.sub_ca("Client CA").ekus(vec![ExtendedKeyUsagePurpose::ClientAuth]).build().unwrap();
    let v = chain_verifier(&pem_bundle(&[root.cert_pem(), servers.cert_pem(), clients.cert_pem()])).await;
    let via_servers = servers.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert_eq!(v.verify_pem(&via_servers.pem, now()).err(), Some(CertError::NoClientAuthEku));
    let via_clients = clients.issue_client().san_uri(ORDERS_URI).build().unwrap();
    assert!(v.verify_pem(&via_clients.pem, now()).is_ok());
}

/// Re-encodes `der` (a certificate) with `alg` (a full AlgorithmIdentifier) as its signature algorithm, inside and
/// outside the TBSCertificate, keeping the old signature bytes.
fn with_signature_algorithm(der: &[u8], old_alg: &[u8], alg: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    let tbs = cert.tbs_certificate.as_ref();
    let at = tbs.windows(old_alg.len()).position(|w| w == old_alg).unwrap();
    let mut new_tbs_content = Vec::new();
    // the TBS header is 4 bytes long (30 82 xx xx) for these certificates
    new_tbs_content.extend_from_slice(&tbs[4..at]);
    new_tbs_content.extend_from_slice(alg);
    new_tbs_content.extend_from_slice(&tbs[at + old_alg.len()..]);
    let mut body = der_tlv(0x30, &new_tbs_content);
    body.extend_from_slice(alg);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&cert.signature_value.data);
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// A certificate signed with ecdsa-with-SHA1 is refused for its algorithm before any signature is checked (rcgen
/// cannot sign with SHA-1, so the signature bytes are the SHA-256 ones; webpki's error shows it never got that far).
#[tokio::test]
async fn a_sha1_signature_is_refused_for_its_algorithm() {
    let fx = Fixture::new().await;
    let leaf = fx.root.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let ecdsa_sha256 = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let ecdsa_sha1 = [0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    let sha1 = with_signature_algorithm(&leaf.der, &ecdsa_sha256, &ecdsa_sha1);
    {
        let der = rustls_pki_types::CertificateDer::from(sha1.as_slice());
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let anchor = webpki::anchor_from_trusted_cert(&rustls_pki_types::CertificateDer::from(fx.root.cert_der()))
            .unwrap()
            .to_owned();
        let err = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &[],
                rustls_pki_types::UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .err()
            .unwrap();
        assert!(format!("{err:?}").contains("UnsupportedSignatureAlgorithm"), "{err:?}");
    }
    assert_refused(&fx, &to_pem("CERTIFICATE", &sha1), CertError::UntrustedIssuer, Outcome::Unauthorized);
}

// ---------------------------------------------------------------- names as the rules compare them

#[tokio::test]
async fn dns_san_variants_do_not_match() {
    let fx = Fixture::new().await;
    for dns in [
        "reporting.svc.example.internal.", // the absolute form: a different string
        "*.svc.example.internal",          // a wildcard never matches a rule
        "reporting.svc.example.internal.evil",
        "xn--reprting-e3a.svc.example.internal", // an IDN that looks alike once decoded
    ] {
        let leaf = fx.root.issue_client().san_dns(dns).build().unwrap();
        assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::NoMatch), "{dns}");
        assert_eq!(fx.outcome(&leaf.pem), Outcome::Deny, "{dns}");
    }
    // bytes an IA5String name cannot hold (non-ASCII, a NUL that C code would stop at, a space): refused outright
    for (tag, name) in [
        (0x82, "reporting.svc.example.İnternal"),
        (0x82, "reporting.svc.example.internal\0.evil.example"),
        (0x86, "spiffe://example.internal/ns/orders/sa/order-processing\0x"),
        (0x86, "spiffe://example.internal/ns/orders/sa/order processing"),
    ] {
        let names = der_tlv(0x30, &der_tlv(tag, name.as_bytes()));
        let leaf = fx.root.issue_client().custom_extension(&[2, 5, 29, 17], names, false).build().unwrap();
        assert_refused(&fx, &leaf.pem, CertError::MalformedDer, Outcome::Unauthorized);
    }
}

#[tokio::test]
async fn uri_san_is_compared_exactly() {
    let fx = Fixture::new().await;
    for uri in [
        "spiffe://EXAMPLE.internal/ns/orders/sa/order-processing", // host case
        "spiffe://example.internal/ns/orders/sa/order%2Dprocessing", // percent-encoding of an unreserved character
        "spiffe://example.internal/ns/orders/sa/order-processing?",
        "spiffe://example.internal/ns/orders/sa/order-processing#x",
        "spiffe://example.internal/ns/orders/sa/./order-processing",
        "spiffe://example.internal:443/ns/orders/sa/order-processing",
    ] {
        let leaf = fx.root.issue_client().san_uri(uri).build().unwrap();
        assert_eq!(fx.identify(&leaf.pem), Err(IdentifyError::NoMatch), "{uri}");
    }
}

// ---------------------------------------------------------------- size and extensions

#[tokio::test]
async fn an_extension_packed_certificate_is_refused_cheaply() {
    let fx = Fixture::new().await;
    let packed = |n: u64, size: usize| {
        let mut b = fx.root.issue_client().san_uri(ORDERS_URI);
        for i in 0..n {
            b = b.custom_extension(&[1, 3, 6, 1, 4, 1, 55555, 2, i], der_tlv(0x04, &vec![0x41; size]), false);
        }
        b.build().unwrap()
    };
    // one more than the cap, each tiny
    let many = packed(33, 1);
    assert_refused(&fx, &many.pem, CertError::TooManyExtensions, Outcome::Unauthorized);
    // as many as fit under the PEM cap: refused before any signature, within a small budget
    let most = packed(400, 8);
    assert!(most.pem.len() < MAX_CLIENT_CERT_PEM_BYTES, "{}", most.pem.len());
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(fx.verify(&most.pem).err(), Some(CertError::TooManyExtensions));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?} for 100", started.elapsed());
    // over the PEM cap: refused before decoding
    let huge = packed(40, 400);
    assert!(huge.pem.len() > MAX_CLIENT_CERT_PEM_BYTES);
    assert_refused(&fx, &huge.pem, CertError::TooLarge, Outcome::Unauthorized);
    // a few large non-critical extensions within the caps are a valid certificate
    let large = packed(3, 3000);
    assert!(large.pem.len() < MAX_CLIENT_CERT_PEM_BYTES);
    assert_eq!(fx.outcome(&large.pem), Outcome::Allow("orders".into()));
    // an unknown critical extension is refused
    let critical = fx
        .root
        .issue_client()
        .san_uri(ORDERS_URI)
        .custom_extension(&[1, 3, 6, 1, 4, 1, 55555, 3], vec![0x05, 0x00], true)
        .build()
        .unwrap();
    assert_refused(&fx, &critical.pem, CertError::MalformedDer, Outcome::Unauthorized);
}

#[test]
fn refusal_codes_are_stable() {
    let codes = [
        (CertError::Expired, "cert_expired"),
        (CertError::Revoked, "cert_revoked"),
        (CertError::StaleCrl, "crl_stale"),
        (CertError::RevocationUnknown, "revocation_unknown"),
        (CertError::WeakKey { key: String::new(), minimum: String::new() }, "cert_weak_key"),
        (CertError::TooManyExtensions, "cert_too_many_extensions"),
        (CertError::UntrustedIssuer, "cert_untrusted_issuer"),
    ];
    for (e, code) in codes {
        assert_eq!(e.code(), code);
    }
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
