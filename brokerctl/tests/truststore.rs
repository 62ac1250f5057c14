//! `truststore check` and `diff` on bundles generated here with rcgen (nothing committed that could expire), through
//! the library and through the binary's exit codes.

use std::process::Command;
use std::time::{Duration, SystemTime};

use brokerctl::truststore::{check_bundle, check_bundle_for_policy, diff_bundles, CheckOptions};
use brokerctl::Exit;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SignatureAlgorithm,
};
use sha2::Digest;
use time::OffsetDateTime;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn params(cn: &str, ca: bool, valid_days: (i64, i64)) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "brokerctl test");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
    }
    let now = OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(valid_days.0);
    p.not_after = now + time::Duration::days(valid_days.1);
    p
}

fn root(cn: &str) -> Ca {
    root_valid(cn, (-1, 3650))
}

fn root_valid(cn: &str, days: (i64, i64)) -> Ca {
    let params = params(cn, true, days);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

fn child(parent: &Ca, cn: &str, ca: bool) -> Ca {
    let params = params(cn, ca, (-1, 3650));
    let key = KeyPair::generate().unwrap();
    let pem = params.signed_by(&key, &Issuer::from_params(&parent.params, &parent.key)).unwrap().pem();
    Ca { params, key, pem }
}

fn bundle(cas: &[&Ca]) -> Vec<u8> {
    cas.iter().map(|c| c.pem.clone()).collect::<String>().into_bytes()
}

fn opts() -> CheckOptions {
    CheckOptions::default()
}

#[test]
fn a_clean_two_level_bundle_passes() {
    let r = root("Root A");
    let i = child(&r, "Issuing A", true);
    let report = check_bundle(&bundle(&[&r, &i]), &opts());
    assert_eq!(report.findings, vec![], "{}", report.render("b"));
    assert_eq!(report.exit_code(), Exit::Ok);
    assert_eq!(report.certs.len(), 2);
    assert_eq!(report.certs[1].depth, Some(2));
}

#[test]
fn expired_ca_is_an_error() {
    let r = root_valid("Old Root", (-400, -2));
    let report = check_bundle(&bundle(&[&r]), &opts());
    assert!(report.has("expired"), "{}", report.render("b"));
    assert_eq!(report.exit_code(), Exit::Error);
}

#[test]
fn expiring_soon_is_only_a_warning() {
    let r = root_valid("Short Root", (-1, 10));
    let report = check_bundle(&bundle(&[&r]), &opts());
    assert!(report.has("expires_soon"), "{}", report.render("b"));
    assert_eq!(report.exit_code(), Exit::Findings);
    let far = CheckOptions { expiry_warning: Duration::from_secs(86_400), now: SystemTime::now() };
    assert_eq!(check_bundle(&bundle(&[&r]), &far).exit_code(), Exit::Ok);
}

#[test]
fn a_leaf_in_the_truststore_is_an_error() {
    let r = root("Root B");
    let leaf = child(&r, "some-service", false);
    let report = check_bundle(&bundle(&[&r, &leaf]), &opts());
    assert!(report.has("not_ca"), "{}", report.render("b"));
    assert_eq!(report.findings.iter().find(|f| f.code == "not_ca").and_then(|f| f.cert), Some(2));
    assert_eq!(report.exit_code(), Exit::Error);
}

#[test]
fn a_chain_deeper_than_four_is_an_error() {
    let r = root("Root C");
    let i1 = child(&r, "Int 1", true);
    let i2 = child(&i1, "Int 2", true);
    let i3 = child(&i2, "Int 3", true);
    let four = check_bundle(&bundle(&[&r, &i1, &i2, &i3]), &opts());
    assert!(!four.has("chain_too_deep"), "depth 4 is allowed: {}", four.render("b"));
    let i4 = child(&i3, "Int 4", true);
    let five = check_bundle(&bundle(&[&r, &i1, &i2, &i3, &i4]), &opts());
    assert!(five.has("chain_too_deep"), "{}", five.render("b"));
    assert_eq!(five.certs[4].depth, Some(5));
    assert_eq!(five.exit_code(), Exit::Error);
}

#[test]
fn two_cas_with_one_subject_is_an_error_and_a_repeated_certificate_a_warning() {
    let a = root("Same Name");
    let b = root("Same Name");
    let report = check_bundle(&bundle(&[&a, &b]), &opts());
    assert!(report.has("duplicate_subject"), "{}", report.render("b"));
    assert_eq!(report.exit_code(), Exit::Error);

    let again = check_bundle(&bundle(&[&a, &a]), &opts());
    assert!(again.has("duplicate_certificate") && !again.has("duplicate_subject"), "{}", again.render("b"));
    assert_eq!(again.exit_code(), Exit::Findings);
}

/// An RSA-1024 public key. rcgen (on aws-lc-rs) cannot generate RSA keys under 2048 bits, so the weak key is a
/// hand-built RSAPublicKey (a 1024-bit modulus, exponent 65537) certified by a real CA: the signature on the
/// certificate is genuine, only the certified key is weak, which is exactly what the check must catch.
struct WeakRsa(Vec<u8>);

impl WeakRsa {
    fn new() -> Self {
        let mut modulus = vec![0u8];
        modulus.extend(std::iter::repeat_n(0xC3u8, 128));
        let mut seq = tb_devkit::pki::der_tlv(0x02, &modulus);
        seq.extend(tb_devkit::pki::der_tlv(0x02, &[0x01, 0x00, 0x01]));
        WeakRsa(tb_devkit::pki::der_tlv(0x30, &seq))
    }
}

impl PublicKeyData for WeakRsa {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

#[test]
fn a_weak_rsa_key_is_an_error() {
    let r = root("Root D");
    let p = params("Weak Issuing CA", true, (-1, 3650));
    let weak = p.signed_by(&WeakRsa::new(), &Issuer::from_params(&r.params, &r.key)).unwrap();
    let pem = weak.pem();
    let report = check_bundle(format!("{}{}", r.pem, pem).as_bytes(), &opts());
    let f = report.findings.iter().find(|f| f.code == "weak_key").unwrap_or_else(|| panic!("{}", report.render("b")));
    assert_eq!(f.cert, Some(2));
    assert!(f.message.contains("1024"), "{}", f.message);
    assert_eq!(report.certs[1].key, "RSA-1024");
    assert_eq!(report.exit_code(), Exit::Error);
}

#[test]
fn missing_issuer_and_garbage_are_errors() {
    let r = root("Root E");
    let i = child(&r, "Orphan", true);
    let report = check_bundle(&bundle(&[&i]), &opts());
    assert!(report.has("issuer_missing"), "{}", report.render("b"));
    assert_eq!(check_bundle(b"not a bundle", &opts()).exit_code(), Exit::Error);
    assert!(check_bundle(r.key.serialize_pem().as_bytes(), &opts()).has("not_a_certificate"));
}

#[test]
fn diff_lists_added_and_removed_by_fingerprint() {
    let a = root("Keep");
    let b = root("Retire");
    let c = root("Introduce");
    let d = diff_bundles(&bundle(&[&a, &b]), &bundle(&[&a, &c])).unwrap();
    assert_eq!(d.unchanged, 1);
    assert_eq!(d.removed.len(), 1);
    assert_eq!(d.added.len(), 1);
    assert!(d.removed[0].subject.contains("Retire"));
    assert!(d.added[0].subject.contains("Introduce"));
    let fp_c =
        brokerctl::truststore::fingerprint(&x509_parser::pem::parse_x509_pem(c.pem.as_bytes()).unwrap().1.contents);
    assert_eq!(d.added[0].sha256, fp_c);
    let text = d.render();
    assert!(text.contains(&format!("+ {fp_c}")), "{text}");
    assert_eq!(d.exit_code(), Exit::Findings);
    assert_eq!(diff_bundles(&bundle(&[&a]), &bundle(&[&a])).unwrap().exit_code(), Exit::Ok);
}

/// `pem` with its END line replaced: x509-parser's PEM reader takes any END line as the end of a block, the
/// authorizer's reader requires the block's own label.
fn with_end_label(pem: &str, label: &str) -> String {
    pem.replace("-----END CERTIFICATE-----", &format!("-----END {label}-----"))
}

#[test]
fn a_bundle_the_authorizer_refuses_is_an_error() {
    let r = root("Root F");
    let i = child(&r, "Issuing F", true);
    let clean = bundle(&[&r, &i]);
    assert_eq!(check_bundle(&clean, &opts()).exit_code(), Exit::Ok);

    // The second block ends with another label: every certificate still parses for x509-parser, but the authorizer
    // finds no END line for the block and would keep its old truststore.
    let damaged = format!("{}{}", r.pem, with_end_label(&i.pem, "X509 CERTIFICATE"));
    assert!(x509_parser::pem::Pem::iter_from_buffer(damaged.as_bytes()).all(|b| b.is_ok()));
    let report = check_bundle(damaged.as_bytes(), &opts());
    let f = report
        .findings
        .iter()
        .find(|f| f.code == "refused_by_authorizer")
        .unwrap_or_else(|| panic!("{}", report.render("b")));
    assert!(f.message.contains("no END line"), "{}", f.message);
    assert_eq!(report.exit_code(), Exit::Error);
    assert!(report.render("b").contains("NOT PUBLISHABLE"));

    // More certificates than the authorizer loads.
    let many: Vec<Ca> = (0..=AUTHORIZER_MAX_CERTS).map(|n| root(&format!("Root {n}"))).collect();
    let refs: Vec<&Ca> = many.iter().collect();
    let report = check_bundle(&bundle(&refs), &opts());
    assert!(report.has("refused_by_authorizer"), "{}", report.render("b"));
    assert_eq!(report.exit_code(), Exit::Error);
}

/// The most certificates the authorizer loads from a truststore.
const AUTHORIZER_MAX_CERTS: usize = 200;

fn brokerctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_binary_exits_0_1_2_and_64() {
    let dir = tempdir("ts-bin");
    let good = root("Good Root");
    let soon = root_valid("Soon Root", (-1, 5));
    let bad = root_valid("Expired Root", (-30, -1));
    let write = |name: &str, ca: &Ca| {
        let p = dir.path().join(name);
        std::fs::write(&p, &ca.pem).unwrap();
        p.display().to_string()
    };
    let (g, s, b) = (write("good.pem", &good), write("soon.pem", &soon), write("bad.pem", &bad));
    assert_eq!(brokerctl(&["truststore", "check", &g]).0, 0);
    assert_eq!(brokerctl(&["truststore", "check", &s]).0, 1);
    let (code, text) = brokerctl(&["truststore", "check", &b]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("expired") && text.contains("NOT PUBLISHABLE"), "{text}");
    assert_eq!(brokerctl(&["truststore", "check"]).0, 64);
    let damaged = dir.path().join("damaged.pem");
    std::fs::write(&damaged, with_end_label(&good.pem, "X509 CERTIFICATE")).unwrap();
    let (code, text) = brokerctl(&["truststore", "check", &damaged.display().to_string()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("refused_by_authorizer") && text.contains("NOT PUBLISHABLE"), "{text}");
    assert_eq!(brokerctl(&["truststore", "check", &dir.path().join("missing.pem").display().to_string()]).0, 2);
    let (code, text) = brokerctl(&["truststore", "diff", &g, &s]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("1 added, 1 removed"), "{text}");
}

/// A root CA whose subject has its own organisation, with a key of the given algorithm.
fn root_of(org: &str, cn: &str, key: KeyPair) -> Ca {
    let mut params = params(cn, true, (-1, 3650));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

fn spki_hex(ca: &Ca) -> String {
    hex::encode(sha2::Sha256::digest(ca.key.subject_public_key_info()))
}

/// A policy with one subject_cn caller naming `issuer_cn`, pinned when `pin` is given, and these settings lines.
fn policy(issuer_cn: &str, pin: Option<&str>, settings: &str) -> tb_shared::policy::Policy {
    let pin = pin.map(|p| format!(", issuer_spki_sha256: \"{p}\"")).unwrap_or_default();
    let yaml = format!(
        "version: 1\nsettings:\n  hash_caller_ids: false\n{settings}callers:\n  - id: legacy\n    identities: [{{ type: \
         subject_cn, cn: legacy-batch, issuer_cn: \"{issuer_cn}\"{pin} }}]\n    cognito_client: legacy\n    \
         allowed_scopes: [api/read]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n"
    );
    tb_shared::policy::Policy::from_bytes("policy.yaml", yaml.as_bytes()).unwrap()
}

/// Two roots whose subjects differ (organisation) but whose CN is the same: the authorizer cannot tell them apart
/// by CN, so a subject_cn rule naming it must pin the CA's key.
#[test]
fn two_cas_sharing_a_cn_are_reported() {
    let a = root_of("Org A", "Shared Issuing CA", KeyPair::generate().unwrap());
    let b = root_of("Org B", "Shared Issuing CA", KeyPair::generate().unwrap());
    let both = bundle(&[&a, &b]);

    let report = check_bundle(&both, &opts());
    let f = report.findings.iter().find(|f| f.code == "shared_cn").unwrap_or_else(|| panic!("{}", report.render("b")));
    assert_eq!(f.severity, brokerctl::truststore::Severity::Warning);
    assert_eq!(f.cert, Some(2));
    assert!(f.message.contains(&spki_hex(&a)) && f.message.contains(&spki_hex(&b)), "{}", f.message);
    assert!(!report.has("duplicate_subject"));
    assert_eq!(report.exit_code(), Exit::Findings);

    // the policy names the shared CN without a pin: the authorizer would deny that caller, so it is an error
    let unpinned = check_bundle_for_policy(&both, &opts(), &policy("Shared Issuing CA", None, ""));
    let f = unpinned.findings.iter().find(|f| f.code == "shared_cn").unwrap();
    assert_eq!(f.severity, brokerctl::truststore::Severity::Error);
    assert!(f.message.contains("legacy"), "{}", f.message);
    assert_eq!(unpinned.exit_code(), Exit::Error);
    assert!(unpinned.render("b").contains("NOT PUBLISHABLE"));

    // pinned to one of them: no error, the sharing stays a warning
    let pinned = check_bundle_for_policy(&both, &opts(), &policy("Shared Issuing CA", Some(&spki_hex(&a)), ""));
    assert_eq!(pinned.exit_code(), Exit::Findings, "{}", pinned.render("b"));
    assert!(pinned.has("shared_cn") && !pinned.has("issuer_pin_unmatched"));
    // a pin no CA of the bundle has
    let stray =
        check_bundle_for_policy(&bundle(&[&a]), &opts(), &policy("Shared Issuing CA", Some(&"ab".repeat(32)), ""));
    assert!(stray.has("issuer_pin_unmatched"), "{}", stray.render("b"));
    assert!(!stray.has("shared_cn"));
    // a policy naming another CN, or one CA alone: nothing about sharing
    assert!(!check_bundle_for_policy(&bundle(&[&a]), &opts(), &policy("Shared Issuing CA", None, "")).has("shared_cn"));
    let other = check_bundle_for_policy(&both, &opts(), &policy("Another CA", None, ""));
    assert_eq!(
        other.findings.iter().find(|f| f.code == "shared_cn").map(|f| f.severity),
        Some(brokerctl::truststore::Severity::Warning)
    );

    // one subject twice (same DN, different keys): a duplicate subject and a shared CN
    let twin = root_of("Org A", "Shared Issuing CA", KeyPair::generate().unwrap());
    let dup = check_bundle(&bundle(&[&a, &twin]), &opts());
    assert!(dup.has("duplicate_subject") && dup.has("shared_cn"), "{}", dup.render("b"));
}

/// With the policy, CA keys are held to its key floor: the authorizer refuses every chain through a weaker CA.
#[test]
fn ca_keys_below_the_policy_floor_are_errors() {
    let rsa = root_of(
        "Org",
        "RSA Root",
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap(),
    );
    let p256 = root_of("Org", "P-256 Root", KeyPair::generate().unwrap());
    let p384 = root_of("Org", "P-384 Root", KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap());
    let all = bundle(&[&rsa, &p256, &p384]);
    assert_eq!(check_bundle(&all, &opts()).exit_code(), Exit::Ok, "the default floor: RSA-2048, P-256");

    let raised_rsa = check_bundle_for_policy(&all, &opts(), &policy("X", None, "  min_rsa_key_bits: 3072\n"));
    let weak: Vec<_> = raised_rsa.findings.iter().filter(|f| f.code == "weak_key").collect();
    assert_eq!(weak.len(), 1, "{}", raised_rsa.render("b"));
    assert_eq!(weak[0].cert, Some(1));
    assert!(
        weak[0].message.contains("minimum 3072") && weak[0].message.contains("min_rsa_key_bits"),
        "{}",
        weak[0].message
    );
    assert_eq!(raised_rsa.exit_code(), Exit::Error);

    let raised_ec = check_bundle_for_policy(&all, &opts(), &policy("X", None, "  min_ec_key_bits: 384\n"));
    let weak: Vec<_> = raised_ec.findings.iter().filter(|f| f.code == "weak_key").map(|f| f.cert).collect();
    assert_eq!(weak, vec![Some(2)], "{}", raised_ec.render("b"));
}

#[test]
fn the_binary_checks_against_a_policy() {
    let dir = tempdir("ts-policy");
    let a = root_of("Org A", "Shared Issuing CA", KeyPair::generate().unwrap());
    let b = root_of("Org B", "Shared Issuing CA", KeyPair::generate().unwrap());
    let bundle_path = dir.path().join("bundle.pem");
    std::fs::write(&bundle_path, bundle(&[&a, &b])).unwrap();
    let bundle_path = bundle_path.display().to_string();
    let write_policy = |name: &str, pin: Option<&str>| {
        let pin = pin.map(|p| format!(", issuer_spki_sha256: \"{p}\"")).unwrap_or_default();
        let yaml = format!(
            "version: 1\ncallers:\n  - id: legacy\n    identities: [{{ type: subject_cn, cn: legacy-batch, \
             issuer_cn: \"Shared Issuing CA\"{pin} }}]\n    cognito_client: legacy\n    allowed_scopes: [api/read]\n    \
             max_token_lifetime_seconds: 3600\n    quotas: unlimited\n"
        );
        let p = dir.path().join(name);
        std::fs::write(&p, yaml).unwrap();
        p.display().to_string()
    };
    let (code, text) = brokerctl(&["truststore", "check", &bundle_path]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("shared_cn"), "{text}");
    let (code, text) = brokerctl(&["truststore", "check", &bundle_path, "--policy", &write_policy("u.yaml", None)]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("shared_cn") && text.contains("NOT PUBLISHABLE"), "{text}");
    let pinned = write_policy("p.yaml", Some(&spki_hex(&a)));
    assert_eq!(brokerctl(&["truststore", "check", &bundle_path, "--policy", &pinned]).0, 1);
    let (code, text) = brokerctl(&[
        "truststore",
        "check",
        &bundle_path,
        "--policy",
        &dir.path().join("none.yaml").display().to_string(),
    ]);
    assert_eq!(code, 2, "{text}");
}

/// A directory removed when the returned guard drops.
fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("brokerctl-{tag}-")).tempdir().unwrap()
}

mod crls {
    //! `truststore check --crls`: every CA needs a CRL signed by its key, fresh for the margin, not older than the
    //! published one; bundles and CRLs made here with the test PKI.

    use std::time::{Duration, SystemTime};

    use brokerctl::truststore::{check_bundle, check_crls, CrlCheckOptions};
    use brokerctl::Exit;
    use tb_devkit::pki::TestCa;

    const HOUR: Duration = Duration::from_secs(3600);

    fn crl(ca: &TestCa, number: u64, valid_for: Duration) -> String {
        let now = SystemTime::now();
        ca.crl_builder().validity(now - HOUR, now + valid_for).number(number).build().unwrap().pem
    }

    fn pki() -> (TestCa, TestCa, Vec<u8>) {
        let root = TestCa::root("CRL Root").unwrap();
        let issuing = root.intermediate("CRL Issuing").unwrap();
        let bundle = issuing.chain_bundle_pem().into_bytes();
        (root, issuing, bundle)
    }

    fn check(bundle: &[u8], crls: &str, published: Option<&str>) -> brokerctl::truststore::CrlCheck {
        check_crls(&[("bundle", bundle)], crls.as_bytes(), published.map(str::as_bytes), &CrlCheckOptions::default())
    }

    #[test]
    fn every_ca_with_a_fresh_crl_passes_and_is_reported() {
        let (root, issuing, bundle) = pki();
        let crls = format!("{}{}", crl(&root, 3, 48 * HOUR), crl(&issuing, 7, 72 * HOUR));
        let c = check(&bundle, &crls, None);
        assert_eq!(c.findings, vec![], "{}", c.render("crls"));
        assert_eq!(c.crl_count, 2);
        assert_eq!(c.cas.len(), 2);
        assert!(c.cas.iter().all(|ca| ca.crls.len() == 1 && ca.spki_sha256.len() == 64));
        let issuing_crl = &c.cas.iter().find(|ca| ca.subject.contains("CRL Issuing")).unwrap().crls[0];
        assert_eq!(issuing_crl.number.as_deref(), Some("7"));
        let text = c.render("crls");
        assert!(text.contains("CRL: yes") && !text.contains("CRL: NO") && text.contains("number 0x7"), "{text}");
        assert!(text.contains("left"), "{text}");
        let mut report = check_bundle(&bundle, &brokerctl::truststore::CheckOptions::default());
        report.add_crls(c);
        assert_eq!(report.exit_code(), Exit::Ok, "{}", report.render("b"));
    }

    #[test]
    fn a_ca_without_a_crl_is_an_error() {
        let (root, _issuing, bundle) = pki();
        let c = check(&bundle, &crl(&root, 1, 48 * HOUR), None);
        assert!(c.has("crl_missing"), "{}", c.render("crls"));
        assert!(c.render("crls").contains("CRL: NO"));
        let mut report = check_bundle(&bundle, &brokerctl::truststore::CheckOptions::default());
        report.add_crls(c);
        assert_eq!(report.exit_code(), Exit::Error);
    }

    #[test]
    fn a_crl_must_stay_fresh_for_the_margin() {
        let (root, issuing, bundle) = pki();
        let crls = format!("{}{}", crl(&root, 1, 48 * HOUR), crl(&issuing, 1, 2 * HOUR));
        let c = check(&bundle, &crls, None);
        assert!(c.has("crl_expiring") && !c.has("crl_stale"), "{}", c.render("crls"));
        let short = CrlCheckOptions { now: SystemTime::now(), min_validity: HOUR };
        let c = check_crls(&[("b", &bundle)], crls.as_bytes(), None, &short);
        assert!(c.findings.is_empty(), "{:?}", c.findings);
        let later = CrlCheckOptions { now: SystemTime::now() + 3 * HOUR, min_validity: HOUR };
        let c = check_crls(&[("b", &bundle)], crls.as_bytes(), None, &later);
        assert!(c.has("crl_stale"), "{:?}", c.findings);
        assert!(c.render("crls").contains("STALE"));
    }

    #[test]
    fn a_crl_no_ca_signed_is_an_error() {
        let (root, issuing, bundle) = pki();
        let now = SystemTime::now();
        let forged = issuing.crl_builder().validity(now - HOUR, now + 48 * HOUR).signed_with_wrong_key().build();
        let crls = format!("{}{}", crl(&root, 1, 48 * HOUR), forged.unwrap().pem);
        let c = check(&bundle, &crls, None);
        assert!(c.has("crl_bad_signature") && c.has("crl_missing"), "{}", c.render("crls"));

        let stranger = TestCa::root("Stranger CA").unwrap();
        let crls =
            format!("{}{}{}", crl(&root, 1, 48 * HOUR), crl(&issuing, 1, 48 * HOUR), crl(&stranger, 1, 48 * HOUR));
        let c = check(&bundle, &crls, None);
        assert!(c.has("crl_unknown_issuer") && !c.has("crl_missing"), "{}", c.render("crls"));

        // A lookalike CA (same name, another key) cannot speak for the real one.
        let lookalike = issuing.lookalike().unwrap();
        let crls = format!("{}{}", crl(&root, 1, 48 * HOUR), crl(&lookalike, 1, 48 * HOUR));
        let c = check(&bundle, &crls, None);
        assert!(c.has("crl_bad_signature") && c.has("crl_missing"), "{}", c.render("crls"));
    }

    #[test]
    fn a_crl_older_than_the_published_one_is_an_error() {
        let (root, issuing, bundle) = pki();
        let published = format!("{}{}", crl(&root, 5, 48 * HOUR), crl(&issuing, 5, 48 * HOUR));
        let older = format!("{}{}", crl(&root, 5, 48 * HOUR), crl(&issuing, 4, 96 * HOUR));
        let c = check(&bundle, &older, Some(&published));
        assert!(c.has("crl_rollback"), "{}", c.render("crls"));
        assert_eq!(c.findings.iter().filter(|f| f.code == "crl_rollback").count(), 1);
        let newer = format!("{}{}", crl(&root, 5, 48 * HOUR), crl(&issuing, 6, 48 * HOUR));
        let c = check(&bundle, &newer, Some(&published));
        assert!(c.findings.is_empty(), "{}", c.render("crls"));
        assert!(c.render("crls").contains("(published number 0x5)"));
    }

    #[test]
    fn an_older_crl_of_the_same_ca_in_the_bundle_is_a_warning() {
        let (root, issuing, bundle) = pki();
        let crls =
            format!("{}{}{}", crl(&root, 1, 48 * HOUR), crl(&issuing, 2, 48 * HOUR), crl(&issuing, 3, 48 * HOUR));
        let c = check(&bundle, &crls, None);
        assert!(c.has("crl_superseded") && !c.has("crl_missing"), "{}", c.render("crls"));
        let issuing_crl = &c.cas.iter().find(|ca| ca.subject.contains("CRL Issuing")).unwrap().crls[0];
        assert_eq!(issuing_crl.number.as_deref(), Some("3"), "the newest counts");
    }

    #[test]
    fn unusable_input_is_a_finding_never_a_panic() {
        let (root, _issuing, bundle) = pki();
        let good = crl(&root, 1, 48 * HOUR);
        let cert_block = root.cert_pem().to_owned();
        let truncated = good[..good.len() / 2].to_owned();
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"not a crl".to_vec(),
            vec![0x30],
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            truncated.into_bytes(),
            cert_block.into_bytes(),
            (0..=255u8).cycle().take(4096).collect(),
        ];
        for input in &inputs {
            let c = check_crls(&[("b", &bundle)], input, Some(input), &CrlCheckOptions::default());
            assert!(c.has("crl_bundle_refused") || c.has("crl_missing"), "{:?}", c.findings);
            let _ = c.render("x");
            if input.as_slice() != root.cert_pem().as_bytes() {
                let c = check_crls(&[("b", input)], good.as_bytes(), None, &CrlCheckOptions::default());
                assert!(!c.findings.is_empty(), "garbage truststore: {:?}", c.findings);
            }
        }
    }

    #[test]
    fn the_binary_checks_crls_with_exit_codes_0_2_and_64() {
        let (root, issuing, bundle) = pki();
        let dir = super::tempdir("ts-crls");
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.display().to_string()
        };
        let b = write("bundle.pem", &bundle);
        let good = write("good.pem", format!("{}{}", crl(&root, 9, 48 * HOUR), crl(&issuing, 9, 48 * HOUR)).as_bytes());
        let partial = write("partial.pem", crl(&root, 9, 48 * HOUR).as_bytes());
        let older =
            write("older.pem", format!("{}{}", crl(&root, 8, 48 * HOUR), crl(&issuing, 9, 48 * HOUR)).as_bytes());

        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--crls", &good]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("CRL Issuing") && text.contains("CRL: yes") && text.contains("spki:"), "{text}");
        for margin in ["90m", "36h", "1d"] {
            let (code, text) =
                super::brokerctl(&["truststore", "check", &b, "--crls", &good, "--min-validity", margin]);
            assert_eq!(code, 0, "{margin}: {text}");
        }
        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--crls", &good, "--min-validity", "3d"]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("crl_expiring"), "{text}");
        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--crls", &partial]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("crl_missing") && text.contains("CRL: NO"), "{text}");
        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--crls", &older, "--published", &good]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("crl_rollback"), "{text}");
        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--crls", &good, "--min-validity", "soon"]);
        assert_eq!(code, 64, "{text}");
        let (code, text) = super::brokerctl(&["truststore", "check", &b, "--min-validity", "1h"]);
        assert_eq!(code, 64, "--min-validity needs --crls: {text}");
        let (code, text) =
            super::brokerctl(&["truststore", "check", &b, "--crls", &good, "--published", "s3://bucket-only"]);
        assert_eq!(code, 64, "{text}");
    }
}
