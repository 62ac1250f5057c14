//! `brokerctl truststore check | diff`: what an operator must know about a CA bundle before API Gateway and the
//! authorizer trust it.
//!
//! API Gateway refuses or warns about a truststore whose certificates are not CAs, whose chains are deeper than four,
//! that use weak keys or signatures, or that have expired; the authorizer additionally names CRL issuers by subject
//! DN, so two CAs with one subject make revocation hard to follow, and binds `subject_cn` rules to the issuing CA,
//! so two CAs with one CN make a rule that names that CN without pinning the CA's key ambiguous (it then denies). A
//! bad bundle published to the custom domain locks every caller out at the TLS handshake, so these checks run before
//! `publish` and in CI, and their exit codes are made for scripts: [`Exit::Ok`], [`Exit::Findings`] (warnings
//! only), [`Exit::Error`].
//!
//! With the policy document ([`check_bundle_for_policy`], `truststore check --policy`), the findings follow what the
//! authorizer will do with that policy: a CA key below the policy's key floor is an error (the authorizer refuses
//! every chain through it), and so is a CN shared by two CAs that an unpinned `subject_cn` rule names.
//!
//! The bundle is first loaded with the authorizer's own loader ([`tb_authorizer::load_truststore`]): a bundle the
//! authorizer would refuse (e.g. PEM that a lenient parser reads but the authorizer's strict reader does not) is an
//! error, `refused_by_authorizer`, whatever the other checks find.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tb_shared::policy::{Identity, KeyFloor, Policy};
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

use crate::exit::Exit;

/// API Gateway's limit on a truststore chain (root included).
pub const MAX_CHAIN_DEPTH: usize = 4;
/// Smallest acceptable RSA modulus without a policy (the authorizer's floor, [`KeyFloor::DEFAULT`]).
pub const MIN_RSA_BITS: usize = KeyFloor::DEFAULT.min_rsa_bits as usize;
/// Smallest acceptable elliptic-curve size without a policy.
pub const MIN_EC_BITS: usize = KeyFloor::DEFAULT.min_ec_bits as usize;
/// Default horizon of the "expires soon" warning.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem with the bundle, or with one certificate of it (`cert` is its 1-based position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub cert: Option<usize>,
    /// Stable code for scripts and tests, e.g. `not_ca`, `expired`, `chain_too_deep`.
    pub code: &'static str,
    pub message: String,
}

/// What was learnt about one certificate.
#[derive(Debug, Clone)]
pub struct CertSummary {
    pub index: usize,
    pub subject: String,
    pub issuer: String,
    pub sha256: String,
    pub not_after: i64,
    pub is_ca: bool,
    pub key: String,
    pub signature: String,
    /// Certificates from this one up to its root, inclusive (None when the chain does not reach a root).
    pub depth: Option<usize>,
}

/// The result of a check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub certs: Vec<CertSummary>,
    pub findings: Vec<Finding>,
    /// The CRL check, when one ran ([`Report::add_crls`]).
    pub crls: Option<CrlCheck>,
}

impl Report {
    /// [`Exit::Error`] if any error (do not publish), [`Exit::Findings`] if only warnings (publishable, but someone
    /// should look), else [`Exit::Ok`].
    pub fn exit_code(&self) -> Exit {
        match self.findings.iter().map(|f| f.severity).max() {
            Some(Severity::Error) => Exit::Error,
            Some(Severity::Warning) => Exit::Findings,
            None => Exit::Ok,
        }
    }

    /// Whether a finding with `code` exists.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// Adds a CRL check: its findings count towards the exit code, its per-CA lines are rendered.
    pub fn add_crls(&mut self, mut crls: CrlCheck) {
        self.findings.append(&mut crls.findings);
        self.findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.cert));
        self.crls = Some(crls);
    }

    /// Errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }

    /// Human-readable report, one certificate per line, then the findings, then a summary line.
    pub fn render(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{name}: {} certificate(s)", self.certs.len());
        for c in &self.certs {
            let depth = c.depth.map_or("no root".to_owned(), |d| format!("depth {d}"));
            let _ = writeln!(
                out,
                "  [{}] {}  sha256:{}  {}  {}  {}  expires {}  {}",
                c.index,
                c.subject,
                &c.sha256[..16],
                if c.is_ca { "CA" } else { "NOT-CA" },
                c.key,
                c.signature,
                date(c.not_after),
                depth
            );
        }
        if let Some(crls) = &self.crls {
            out.push_str(&crls.render("CRLs"));
        }
        for f in &self.findings {
            let level = match f.severity {
                Severity::Error => "ERROR  ",
                Severity::Warning => "WARNING",
            };
            match f.cert {
                Some(i) => {
                    let _ = writeln!(out, "{level} [{i}] {}: {}", f.code, f.message);
                }
                None => {
                    let _ = writeln!(out, "{level} {}: {}", f.code, f.message);
                }
            }
        }
        let errors = self.errors().count();
        let warnings = self.findings.len() - errors;
        let verdict = match self.exit_code() {
            Exit::Ok => "OK",
            Exit::Findings => "OK with warnings",
            _ => "NOT PUBLISHABLE",
        };
        let _ = writeln!(out, "result: {verdict} ({errors} error(s), {warnings} warning(s))");
        out
    }
}

/// Settings of a check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    pub now: SystemTime,
    /// Certificates expiring within this horizon get a warning.
    pub expiry_warning: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { now: SystemTime::now(), expiry_warning: DEFAULT_EXPIRY_WARNING }
    }
}

fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts).map(|d| d.date().to_string()).unwrap_or_else(|_| ts.to_string())
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The DER certificates of a PEM bundle, or a finding saying why the bundle is unusable.
pub fn read_pem_certs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Vec<Finding>> {
    let mut ders = Vec::new();
    let mut findings = Vec::new();
    for (i, item) in Pem::iter_from_buffer(bytes).enumerate() {
        match item {
            Ok(pem) if pem.label == "CERTIFICATE" => ders.push(pem.contents),
            Ok(pem) => findings.push(Finding {
                severity: Severity::Error,
                cert: None,
                code: "not_a_certificate",
                message: format!(
                    "PEM block {} is {:?}, not CERTIFICATE (a truststore holds certificates only)",
                    i + 1,
                    pem.label
                ),
            }),
            Err(e) => {
                findings.push(Finding {
                    severity: Severity::Error,
                    cert: None,
                    code: "malformed_pem",
                    message: format!("PEM block {} unreadable: {e}", i + 1),
                });
                break;
            }
        }
    }
    if ders.is_empty() && findings.is_empty() {
        findings.push(Finding {
            severity: Severity::Error,
            cert: None,
            code: "empty",
            message: "no CERTIFICATE block found".into(),
        });
    }
    if findings.is_empty() {
        Ok(ders)
    } else {
        Err(findings)
    }
}

/// SHA-256 of DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn sig_name(oid: &str) -> (&'static str, bool) {
    // (name, weak)
    match oid {
        "1.2.840.113549.1.1.11" => ("sha256WithRSA", false),
        "1.2.840.113549.1.1.12" => ("sha384WithRSA", false),
        "1.2.840.113549.1.1.13" => ("sha512WithRSA", false),
        "1.2.840.113549.1.1.10" => ("RSASSA-PSS", false),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", false),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", false),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", false),
        "1.3.101.112" => ("Ed25519", false),
        "1.2.840.113549.1.1.5" => ("sha1WithRSA", true),
        "1.2.840.113549.1.1.4" => ("md5WithRSA", true),
        "1.2.840.113549.1.1.2" => ("md2WithRSA", true),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", true),
        "1.2.840.10040.4.3" => ("dsa-with-SHA1", true),
        _ => ("unknown", false),
    }
}

/// Bits of a big-endian unsigned integer (leading zero bytes ignored).
fn int_bits(b: &[u8]) -> usize {
    let b = match b.iter().position(|&x| x != 0) {
        Some(i) => &b[i..],
        None => return 0,
    };
    8 * b.len() - b[0].leading_zeros() as usize
}

/// Key description and whether it is too weak for `floor` (`from_policy`: the floor is the policy's, and the
/// message says so).
fn key_strength(cert: &X509Certificate<'_>, floor: &KeyFloor, from_policy: bool) -> (String, Option<String>) {
    let (min_rsa, min_ec) = (floor.min_rsa_bits as usize, floor.min_ec_bits as usize);
    let source = |setting: &str| {
        if from_policy {
            format!(", the policy's settings.{setting}: the authorizer refuses every chain through this CA")
        } else {
            String::new()
        }
    };
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = int_bits(rsa.modulus);
            let weak = (bits < min_rsa)
                .then(|| format!("RSA key of {bits} bits (minimum {min_rsa}{})", source("min_rsa_key_bits")));
            (format!("RSA-{bits}"), weak)
        }
        Ok(PublicKey::EC(point)) => {
            let data = point.data();
            let bits = if data.first() == Some(&4) {
                (data.len().saturating_sub(1)) / 2 * 8
            } else {
                (data.len().saturating_sub(1)) * 8
            };
            // P-521 points are 133 octets: 528 bits by this count, a 521-bit curve
            let bits = if bits == 528 { 521 } else { bits };
            let weak = (bits < min_ec)
                .then(|| format!("EC key of {bits} bits (minimum {min_ec}{})", source("min_ec_key_bits")));
            (format!("EC-{bits}"), weak)
        }
        Ok(PublicKey::DSA(_)) => ("DSA".into(), Some("DSA keys are not accepted".into())),
        Ok(_) if cert.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            // Ed25519 counts as a 256-bit curve
            let weak = (256 < min_ec)
                .then(|| format!("Ed25519 key, a 256-bit curve (minimum {min_ec}{})", source("min_ec_key_bits")));
            ("Ed25519".into(), weak)
        }
        Ok(_) => ("unknown key".into(), Some("unrecognised public key algorithm".into())),
        Err(_) => ("unparsable key".into(), Some("public key does not parse".into())),
    }
}

/// The CN of a subject with exactly one CN (the authorizer's rule for what `issuer_cn` names).
fn single_cn(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    let mut it = name.iter_common_name();
    let first = it.next()?.as_str().ok()?.to_owned();
    it.next().is_none().then_some(first)
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo, lowercase hex: what `issuer_spki_sha256` pins.
pub fn spki_sha256(cert: &X509Certificate<'_>) -> String {
    hex::encode(Sha256::digest(cert.public_key().raw))
}

/// CAs sharing a CN with different keys, and what a policy's `subject_cn` rules make of them.
fn shared_cn_findings(parsed: &[(usize, X509Certificate<'_>)], policy: Option<&Policy>, report: &mut Report) {
    // CN -> (bundle index, SPKI hash) of each CA with a distinct key carrying it, in bundle order
    let mut by_cn: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (idx, c) in parsed {
        if let Some(cn) = single_cn(c.subject()) {
            let keys = by_cn.entry(cn).or_default();
            let key = spki_sha256(c);
            if !keys.iter().any(|(_, k)| *k == key) {
                keys.push((*idx, key));
            }
        }
    }
    let rules: Vec<(&str, &str, &str, Option<&str>)> = policy
        .map(|p| {
            p.callers()
                .iter()
                .flat_map(|c| c.identities.iter().map(move |i| (c, i)))
                .filter_map(|(c, i)| match i {
                    Identity::SubjectCn { cn, issuer_cn, issuer_spki_sha256 } => {
                        Some((c.id.as_str(), cn.as_str(), issuer_cn.as_str(), issuer_spki_sha256.as_deref()))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    for (cn, cas) in &by_cn {
        if cas.len() < 2 {
            continue;
        }
        let listed: Vec<String> = cas.iter().map(|(i, k)| format!("[{i}] {k}")).collect();
        let unpinned: Vec<&str> = rules.iter().filter(|r| r.2 == cn && r.3.is_none()).map(|r| r.0).collect::<Vec<_>>();
        let first_other = cas.get(1).map(|(i, _)| *i);
        if unpinned.is_empty() {
            report.findings.push(Finding {
                severity: Severity::Warning,
                cert: first_other,
                code: "shared_cn",
                message: format!(
                    "CN {cn:?} is carried by {} CAs with different keys ({}): a subject_cn rule naming it as \
                     issuer_cn must pin issuer_spki_sha256, or the authorizer denies it as ambiguous",
                    cas.len(),
                    listed.join(", ")
                ),
            });
        } else {
            report.findings.push(Finding {
                severity: Severity::Error,
                cert: first_other,
                code: "shared_cn",
                message: format!(
                    "CN {cn:?} is carried by {} CAs with different keys ({}), and subject_cn rules of caller(s) \
                     {} name it without issuer_spki_sha256: the authorizer denies them as ambiguous; pin the \
                     issuing CA's key",
                    cas.len(),
                    listed.join(", "),
                    unpinned.join(", ")
                ),
            });
        }
    }
    for (caller, cn, issuer_cn, pin) in &rules {
        let Some(pin) = pin else { continue };
        let carried = by_cn.get(*issuer_cn).is_some_and(|cas| cas.iter().any(|(_, k)| k.eq_ignore_ascii_case(pin)));
        if !carried {
            report.findings.push(Finding {
                severity: Severity::Warning,
                cert: None,
                code: "issuer_pin_unmatched",
                message: format!(
                    "caller {caller}: the subject_cn rule for {cn:?} pins issuer_spki_sha256 {pin}, which no CA \
                     with CN {issuer_cn:?} in this bundle has: the rule matches nothing"
                ),
            });
        }
    }
}

/// The finding when the authorizer's own loader refuses the bundle: the authorizer would keep its last good
/// truststore (or, at a cold start, refuse every certificate), so the bundle must not be published.
fn authorizer_finding(bytes: &[u8]) -> Option<Finding> {
    let reason = tb_authorizer::load_truststore(bytes).err()?;
    Some(Finding {
        severity: Severity::Error,
        cert: None,
        code: "refused_by_authorizer",
        message: format!("the authorizer would not load this bundle: {reason}"),
    })
}

/// Checks a PEM bundle: first with the authorizer's own loader, then certificate by certificate.
pub fn check_bundle(bytes: &[u8], opts: &CheckOptions) -> Report {
    check(bytes, opts, None)
}

/// Checks a PEM bundle for a deployment with this policy: [`check_bundle`]'s checks with the policy's key floor
/// instead of the default one, and the policy's `subject_cn` rules against the CAs' CNs (an unpinned rule naming a
/// CN two CAs carry is an error; a pin no CA of the bundle has is a warning).
pub fn check_bundle_for_policy(bytes: &[u8], opts: &CheckOptions, policy: &Policy) -> Report {
    check(bytes, opts, Some(policy))
}

fn check(bytes: &[u8], opts: &CheckOptions, policy: Option<&Policy>) -> Report {
    let floor = policy.map_or(KeyFloor::DEFAULT, |p| p.key_floor);
    let refused = authorizer_finding(bytes);
    let ders = match read_pem_certs(bytes) {
        Ok(d) => d,
        Err(findings) => {
            return Report { certs: Vec::new(), findings: refused.into_iter().chain(findings).collect(), crls: None }
        }
    };
    let mut report = Report { certs: Vec::new(), findings: refused.into_iter().collect(), crls: None };
    let mut parsed: Vec<(usize, X509Certificate<'_>)> = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der) {
            Ok((&[], c)) => parsed.push((i + 1, c)),
            _ => report.findings.push(Finding {
                severity: Severity::Error,
                cert: Some(i + 1),
                code: "malformed_certificate",
                message: "DER does not parse as one X.509 certificate".into(),
            }),
        }
    }
    let now = unix(opts.now);
    let soon = now + opts.expiry_warning.as_secs() as i64;
    let err = |report: &mut Report, sev: Severity, cert: usize, code: &'static str, message: String| {
        report.findings.push(Finding { severity: sev, cert: Some(cert), code, message });
    };

    // Duplicates: the same certificate twice is harmless but sloppy; two CAs with one subject are ambiguous for
    // chain building and for CRL matching (the authorizer matches CRLs to CAs by subject DN).
    let mut by_fp: HashMap<String, usize> = HashMap::new();
    let mut by_subject: HashMap<&[u8], usize> = HashMap::new();
    for (idx, c) in &parsed {
        let fp = fingerprint(c.as_ref());
        if let Some(first) = by_fp.get(&fp) {
            err(
                &mut report,
                Severity::Warning,
                *idx,
                "duplicate_certificate",
                format!("same certificate as [{first}]"),
            );
            continue;
        }
        by_fp.insert(fp, *idx);
        let subj = c.subject().as_raw();
        if let Some(first) = by_subject.get(subj) {
            err(
                &mut report,
                Severity::Error,
                *idx,
                "duplicate_subject",
                format!("subject {} is also the subject of [{first}], a different certificate", c.subject()),
            );
        } else {
            by_subject.insert(subj, *idx);
        }
    }

    for (idx, c) in &parsed {
        let idx = *idx;
        let nb = c.validity().not_before.timestamp();
        let na = c.validity().not_after.timestamp();
        if na < now {
            err(&mut report, Severity::Error, idx, "expired", format!("expired on {}", date(na)));
        } else if na < soon {
            err(&mut report, Severity::Warning, idx, "expires_soon", format!("expires on {}", date(na)));
        }
        if nb > now {
            err(&mut report, Severity::Warning, idx, "not_yet_valid", format!("valid only from {}", date(nb)));
        }
        if !c.is_ca() {
            err(
                &mut report,
                Severity::Error,
                idx,
                "not_ca",
                "not a CA certificate (basicConstraints CA flag missing): a truststore holds CAs only".into(),
            );
        } else if let Ok(Some(ku)) = c.key_usage() {
            if !ku.value.key_cert_sign() {
                err(&mut report, Severity::Error, idx, "no_cert_sign", "keyUsage lacks keyCertSign".into());
            }
        }
        let (_, weak_key) = key_strength(c, &floor, policy.is_some());
        if let Some(w) = weak_key {
            err(&mut report, Severity::Error, idx, "weak_key", w);
        }
        let sig_oid = c.signature_algorithm.algorithm.to_id_string();
        let (sig, weak_sig) = sig_name(&sig_oid);
        if weak_sig {
            // A root's self-signature is never verified by relying parties, so a SHA-1 root is a warning; on any
            // other certificate the signature is what trust rests on.
            let self_signed = c.subject().as_raw() == c.issuer().as_raw();
            let sev = if self_signed { Severity::Warning } else { Severity::Error };
            err(&mut report, sev, idx, "weak_signature", format!("signed with {sig}"));
        }
    }

    shared_cn_findings(&parsed, policy, &mut report);

    // Chains: follow issuers inside the bundle up to a self-signed root, verifying each signature.
    let subjects: HashMap<&[u8], usize> =
        parsed.iter().enumerate().map(|(pos, (_, c))| (c.subject().as_raw(), pos)).collect();
    let mut depths: BTreeMap<usize, Option<usize>> = BTreeMap::new();
    for (pos, (idx, _)) in parsed.iter().enumerate() {
        let mut cur = pos;
        let mut depth = 1usize;
        let result = loop {
            let c = &parsed[cur].1;
            if c.subject().as_raw() == c.issuer().as_raw() {
                if c.verify_signature(None).is_err() {
                    break Err(("bad_signature", "self-signed certificate whose signature does not verify".to_owned()));
                }
                break Ok(depth);
            }
            let Some(&up) = subjects.get(c.issuer().as_raw()) else {
                break Err((
                    "issuer_missing",
                    format!(
                        "issuer {} is not in the bundle (the truststore must hold every chain up to its root)",
                        c.issuer()
                    ),
                ));
            };
            if c.verify_signature(Some(parsed[up].1.public_key())).is_err() {
                break Err(("bad_signature", format!("signature does not verify with issuer [{}]", parsed[up].0)));
            }
            depth += 1;
            if depth > parsed.len() + 1 {
                break Err(("issuer_loop", "issuer chain loops".to_owned()));
            }
            cur = up;
        };
        match result {
            Ok(d) => {
                depths.insert(*idx, Some(d));
                if d > MAX_CHAIN_DEPTH {
                    err(
                        &mut report,
                        Severity::Error,
                        *idx,
                        "chain_too_deep",
                        format!("chain depth {d} exceeds API Gateway's maximum of {MAX_CHAIN_DEPTH}"),
                    );
                }
            }
            Err((code, msg)) => {
                depths.insert(*idx, None);
                // Report a broken link once, on the certificate that has it.
                if cur == pos {
                    err(&mut report, Severity::Error, *idx, code, msg);
                }
            }
        }
    }

    for (idx, c) in &parsed {
        let (key, _) = key_strength(c, &floor, policy.is_some());
        let (sig, _) = sig_name(&c.signature_algorithm.algorithm.to_id_string());
        report.certs.push(CertSummary {
            index: *idx,
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            sha256: fingerprint(c.as_ref()),
            not_after: c.validity().not_after.timestamp(),
            is_ca: c.is_ca(),
            key,
            signature: sig.to_owned(),
            depth: depths.get(idx).copied().flatten(),
        });
    }
    report.findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.cert));
    report
}

mod crls;
mod diff;

pub use crls::{check_crls, CaCrl, CrlCheck, CrlCheckOptions, CrlInfo, DEFAULT_MIN_CRL_VALIDITY};
pub use diff::{diff_bundles, Diff, DiffEntry};
