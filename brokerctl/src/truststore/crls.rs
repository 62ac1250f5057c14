//! `brokerctl truststore check --crls`: whether a CRL bundle keeps every CA of a truststore usable.
//!
//! With a CRL source configured the authorizer fails closed: every CA of a caller's chain, roots included, needs a
//! CRL that names it as issuer, is signed by its key and is not past its nextUpdate, or the caller gets 401. A CRL
//! that does not verify, or that is older than the CRL in use for its CA, is dropped on its own. So before a CRL
//! bundle (or a truststore that adds a CA) is published, these checks follow the authorizer's rules
//! (`authorizer/src/mtls/revocation.rs`):
//!
//! - the bundle as a whole must load with the authorizer's own parser ([`tb_authorizer::load_crls`]);
//! - each CRL is matched to a CA by issuer name **and** signature (webpki's algorithms, the authorizer's set), and
//!   that CA's keyUsage must allow cRLSign;
//! - per CA and scope (issuingDistributionPoint) the newest CRL counts: by CRL number, numbered CRLs after
//!   unnumbered ones, thisUpdate between equals;
//! - that CRL must stay fresh for at least the given margin, because a CRL that lapses before the next publication
//!   refuses every caller under its CA;
//! - against the currently published bundle, no CRL may go back (by CRL number when both have one, else
//!   thisUpdate), because the authorizer would keep the newer one in use and a cold start would un-revoke.
//!
//! The report names CAs by CN and SPKI hash and CRLs by position and dates, never their content.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, FromDer as _};
use x509_parser::certificate::X509Certificate;
use x509_parser::num_bigint::BigUint;
use x509_parser::pem::Pem;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{read_pem_certs, unix, Finding, Severity};

/// Default freshness margin: a CRL must stay valid at least this long after the check.
pub const DEFAULT_MIN_CRL_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// A thisUpdate further ahead than this is a clock problem (the authorizer logs it too).
const FUTURE_SKEW: i64 = 300;
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";

/// Settings of a CRL check.
#[derive(Debug, Clone, Copy)]
pub struct CrlCheckOptions {
    pub now: SystemTime,
    /// Each CA's CRL must be valid for at least this long after `now`.
    pub min_validity: Duration,
}

impl Default for CrlCheckOptions {
    fn default() -> Self {
        CrlCheckOptions { now: SystemTime::now(), min_validity: DEFAULT_MIN_CRL_VALIDITY }
    }
}

/// The CRL in use for one CA and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// 1-based position in the CRL bundle.
    pub position: usize,
    pub this_update: i64,
    pub next_update: i64,
    /// CRL number, lowercase hex.
    pub number: Option<String>,
    /// The number (or thisUpdate) of the published CRL of the same CA and scope, when one was given.
    pub published: Option<String>,
    /// Scoped by an issuingDistributionPoint (covers part of the CA's certificates).
    pub scoped: bool,
    pub revoked: usize,
}

/// One CA and the CRLs that speak for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCrl {
    pub subject: String,
    /// SHA-256 of the CA's SubjectPublicKeyInfo, lowercase hex.
    pub spki_sha256: String,
    /// The newest CRL per scope; empty when the CA has none.
    pub crls: Vec<CrlInfo>,
}

/// The result of a CRL check: one entry per CA, and findings in [`Finding`]'s terms.
#[derive(Debug, Clone, Default)]
pub struct CrlCheck {
    pub cas: Vec<CaCrl>,
    /// CRLs in the bundle.
    pub crl_count: usize,
    pub findings: Vec<Finding>,
    now: i64,
}

impl CrlCheck {
    /// Whether a finding with `code` exists.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// One line per CA: subject, SPKI hash, whether it has a CRL, nextUpdate with time left, CRL number.
    pub fn render(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{name}: {} CRL(s) for {} CA(s)", self.crl_count, self.cas.len());
        for ca in &self.cas {
            let head = format!("  {}  spki:{}", ca.subject, ca.spki_sha256.get(..16).unwrap_or(&ca.spki_sha256));
            if ca.crls.is_empty() {
                let _ = writeln!(out, "{head}  CRL: NO");
            }
            for c in &ca.crls {
                let left = c.next_update - self.now;
                let left = if left > 0 {
                    format!("{} left", humantime::format_duration(Duration::from_secs(left.unsigned_abs())))
                } else {
                    "STALE".to_owned()
                };
                let number = c.number.as_deref().map_or("none".to_owned(), |n| format!("0x{n}"));
                let published = c.published.as_deref().map(|p| format!(" (published {p})")).unwrap_or_default();
                let scope = if c.scoped { " scoped" } else { "" };
                let _ = writeln!(
                    out,
                    "{head}  CRL: yes [{}]{scope}  nextUpdate {} ({left})  number {number}{published}  {} revoked",
                    c.position,
                    rfc3339(c.next_update),
                    c.revoked
                );
            }
        }
        out
    }
}

fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// A CA as the CRL check sees it.
struct Ca {
    subject_raw: Vec<u8>,
    subject: String,
    spki_der: Vec<u8>,
    crl_sign: bool,
}

/// A CRL as the CRL check sees it.
struct Crl {
    position: usize,
    issuer_raw: Vec<u8>,
    issuer: String,
    signed: Vec<u8>,
    signature_alg: Vec<u8>,
    signature: Vec<u8>,
    this_update: i64,
    next_update: i64,
    number: Option<BigUint>,
    scope: Vec<u8>,
    revoked: usize,
}

impl Crl {
    /// The bundle order of the authorizer: numbered after unnumbered, then by number, then by thisUpdate.
    fn total_cmp(&self, other: &Crl) -> std::cmp::Ordering {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => a.cmp(b).then(self.this_update.cmp(&other.this_update)),
            (None, None) => self.this_update.cmp(&other.this_update),
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
        }
    }

    /// The authorizer's rollback rule for one pair: by number when both have one, else by thisUpdate.
    fn older_than(&self, other: &Crl) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => a < b,
            _ => self.this_update < other.this_update,
        }
    }

    fn describe(&self) -> String {
        match &self.number {
            Some(n) => format!("number 0x{}", n.to_str_radix(16)),
            None => format!("thisUpdate {}", rfc3339(self.this_update)),
        }
    }
}

/// The content octets of the elements of a DER SEQUENCE (`None` when it is not one).
fn sequence_elements(der: &[u8]) -> Option<Vec<Any<'_>>> {
    let (rest, outer) = Any::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    let mut input = outer.data;
    while !input.is_empty() {
        let (rest, item) = Any::from_der(input).ok()?;
        items.push(item);
        input = rest;
    }
    Some(items)
}

/// A BIT STRING's bytes, when it has no unused bits (signatures and keys never do).
fn bit_string_bytes(any: &Any<'_>) -> Option<Vec<u8>> {
    match any.data.split_first() {
        Some((0, bytes)) => Some(bytes.to_vec()),
        _ => None,
    }
}

/// Whether `spki_der` verifies the CRL's signature with an algorithm webpki accepts for certificates: the
/// authorizer's rule, so a CRL this check accepts is one the authorizer uses.
fn signature_verifies(crl: &Crl, spki_der: &[u8]) -> bool {
    let Some(parts) = sequence_elements(spki_der) else { return false };
    let (Some(alg), Some(key)) = (parts.first(), parts.get(1).and_then(bit_string_bytes)) else { return false };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == crl.signature_alg.as_slice())
        .filter(|a| a.public_key_alg_id().as_ref() == alg.data)
        .any(|a| a.verify_signature(&key, &crl.signed, &crl.signature).is_ok())
}

fn parse_crl(position: usize, der: &[u8]) -> Result<Crl, String> {
    let (rest, c) = CertificateRevocationList::from_der(der).map_err(|e| format!("CRL {position}: not a CRL: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("CRL {position}: trailing bytes"));
    }
    let parts = sequence_elements(der).ok_or_else(|| format!("CRL {position}: malformed DER"))?;
    let (Some(alg), Some(signature)) = (parts.get(1), parts.get(2).and_then(bit_string_bytes)) else {
        return Err(format!("CRL {position}: malformed signature"));
    };
    let next_update = c.next_update().ok_or_else(|| format!("CRL {position}: no nextUpdate"))?.timestamp();
    let scope = c
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_ISSUING_DISTRIBUTION_POINT)
        .map(|e| e.value.to_vec())
        .unwrap_or_default();
    Ok(Crl {
        position,
        issuer_raw: c.issuer().as_raw().to_vec(),
        issuer: c.issuer().to_string(),
        signed: c.tbs_cert_list.as_ref().to_vec(),
        signature_alg: alg.data.to_vec(),
        signature,
        this_update: c.last_update().timestamp(),
        next_update,
        number: c.crl_number().cloned(),
        scope,
        revoked: c.iter_revoked_certificates().count(),
    })
}

/// The CRLs of a bundle (PEM `X509 CRL` blocks or one DER CRL) after the authorizer's own loader accepted it.
fn parse_crls(bytes: &[u8], name: &str) -> Result<Vec<Crl>, String> {
    tb_authorizer::load_crls(bytes).map_err(|e| format!("the authorizer would not load {name}: {e}"))?;
    let ders: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        Pem::iter_from_buffer(bytes)
            .map(|p| p.map(|p| p.contents).map_err(|e| format!("{name}: PEM unreadable: {e}")))
            .collect::<Result<_, _>>()?
    };
    ders.iter().enumerate().map(|(i, d)| parse_crl(i + 1, d)).collect()
}

/// The CAs of the given bundles, each distinct CA (subject and key) once, in order.
fn cas_of(bundles: &[(&str, &[u8])], findings: &mut Vec<Finding>) -> Vec<Ca> {
    let mut cas: Vec<Ca> = Vec::new();
    for (name, bytes) in bundles {
        let Ok(ders) = read_pem_certs(bytes) else {
            findings.push(error(None, "crl_truststore_unreadable", format!("{name}: no readable certificates")));
            continue;
        };
        for der in ders {
            let Ok((_, c)) = x509_parser::parse_x509_certificate(&der) else { continue };
            let ca = ca_of(&c);
            if !cas.iter().any(|o| o.subject_raw == ca.subject_raw && o.spki_der == ca.spki_der) {
                cas.push(ca);
            }
        }
    }
    cas
}

fn ca_of(c: &X509Certificate<'_>) -> Ca {
    Ca {
        subject_raw: c.subject().as_raw().to_vec(),
        subject: c.subject().to_string(),
        spki_der: c.public_key().raw.to_vec(),
        // The authorizer's rule: keyUsage absent, or present with cRLSign (an unreadable one refuses the bundle).
        crl_sign: match c.key_usage() {
            Ok(Some(ku)) => ku.value.crl_sign(),
            Ok(None) => true,
            Err(_) => false,
        },
    }
}

fn error(cert: Option<usize>, code: &'static str, message: String) -> Finding {
    Finding { severity: Severity::Error, cert, code, message }
}

fn warning(cert: Option<usize>, code: &'static str, message: String) -> Finding {
    Finding { severity: Severity::Warning, cert, code, message }
}

/// For each CRL, the index of the CA it speaks for, or the finding saying why none.
fn match_crls(cas: &[Ca], crls: &[Crl]) -> (Vec<Option<usize>>, Vec<Finding>) {
    let mut owners = Vec::with_capacity(crls.len());
    let mut refusals = Vec::new();
    for crl in crls {
        let named: Vec<usize> = (0..cas.len()).filter(|&i| cas[i].subject_raw == crl.issuer_raw).collect();
        let owner = named.iter().copied().find(|&i| signature_verifies(crl, &cas[i].spki_der));
        match owner {
            None if named.is_empty() => refusals.push(error(
                None,
                "crl_unknown_issuer",
                format!("CRL {} names issuer {}, which no CA of the truststore has", crl.position, crl.issuer),
            )),
            None => refusals.push(error(
                None,
                "crl_bad_signature",
                format!(
                    "CRL {} ({}): signature does not verify with the key of {} CA(s) of that name",
                    crl.position,
                    crl.issuer,
                    named.len()
                ),
            )),
            Some(i) if !cas[i].crl_sign => refusals.push(error(
                None,
                "crl_no_crl_sign",
                format!("CRL {} ({}): its CA's keyUsage does not allow cRLSign", crl.position, crl.issuer),
            )),
            Some(_) => {}
        }
        owners.push(owner.filter(|&i| cas[i].crl_sign));
    }
    (owners, refusals)
}

/// The newest CRL per (CA, scope), with the others of that CA and scope.
fn newest<'a>(crls: &'a [Crl], owners: &[Option<usize>]) -> BTreeMap<(usize, Vec<u8>), Vec<&'a Crl>> {
    let mut groups: BTreeMap<(usize, Vec<u8>), Vec<&Crl>> = BTreeMap::new();
    for (crl, owner) in crls.iter().zip(owners) {
        if let Some(ca) = owner {
            groups.entry((*ca, crl.scope.clone())).or_default().push(crl);
        }
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| b.total_cmp(a));
    }
    groups
}

/// Checks the CRL bundle `crls` against the CAs of `truststores` (each `(name, PEM bundle)`; a CA in several counts
/// once) and, when given, against the currently `published` CRL bundle. Never panics on any input.
pub fn check_crls(
    truststores: &[(&str, &[u8])],
    crls: &[u8],
    published: Option<&[u8]>,
    opts: &CrlCheckOptions,
) -> CrlCheck {
    let now = unix(opts.now);
    let mut findings = Vec::new();
    let cas = cas_of(truststores, &mut findings);
    let mut out = CrlCheck { now, ..CrlCheck::default() };
    let parsed = match parse_crls(crls, "the CRL bundle") {
        Ok(p) => p,
        Err(e) => {
            findings.push(error(None, "crl_bundle_refused", e));
            Vec::new()
        }
    };
    out.crl_count = parsed.len();
    let (owners, refusals) = match_crls(&cas, &parsed);
    findings.extend(refusals);
    let groups = newest(&parsed, &owners);

    // The published bundle: its newest CRL per CA and scope, matched to the same CAs.
    let published_parsed = match published.map(|p| parse_crls(p, "the published CRL bundle")) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            findings.push(warning(None, "published_crls_unreadable", format!("{e}: the rollback check is skipped")));
            Vec::new()
        }
        None => Vec::new(),
    };
    let (published_owners, _) = match_crls(&cas, &published_parsed);
    let published_groups = newest(&published_parsed, &published_owners);

    let min_left = i64::try_from(opts.min_validity.as_secs()).unwrap_or(i64::MAX);
    let mut by_ca: HashMap<usize, Vec<CrlInfo>> = HashMap::new();
    for ((ca, scope), list) in &groups {
        let Some(best) = list.first() else { continue };
        let name = &cas[*ca].subject;
        for older in list.iter().skip(1) {
            findings.push(warning(
                None,
                "crl_superseded",
                format!(
                    "CRL {} ({name}) is superseded by CRL {} of the same CA and scope; the authorizer uses the newest",
                    older.position, best.position
                ),
            ));
        }
        let left = best.next_update - now;
        if left <= 0 {
            findings.push(error(
                None,
                "crl_stale",
                format!("CRL {} ({name}) is past its nextUpdate {}", best.position, rfc3339(best.next_update)),
            ));
        } else if left < min_left {
            findings.push(error(
                None,
                "crl_expiring",
                format!(
                    "CRL {} ({name}) is valid only until {} ({} left, minimum {})",
                    best.position,
                    rfc3339(best.next_update),
                    humantime::format_duration(Duration::from_secs(left.unsigned_abs())),
                    humantime::format_duration(opts.min_validity)
                ),
            ));
        }
        if best.this_update > now + FUTURE_SKEW {
            findings.push(warning(
                None,
                "crl_future",
                format!("CRL {} ({name}) has a thisUpdate in the future: a clock problem", best.position),
            ));
        }
        let prior = published_groups.get(&(*ca, scope.clone())).and_then(|l| l.first());
        if let Some(prior) = prior {
            if best.older_than(prior) {
                findings.push(error(
                    None,
                    "crl_rollback",
                    format!(
                        "CRL {} ({name}) is older than the published one ({} < {}): the authorizer keeps the newer \
                         one while it runs and a cold start would un-revoke",
                        best.position,
                        best.describe(),
                        prior.describe()
                    ),
                ));
            }
        }
        by_ca.entry(*ca).or_default().push(CrlInfo {
            position: best.position,
            this_update: best.this_update,
            next_update: best.next_update,
            number: best.number.as_ref().map(|n| n.to_str_radix(16)),
            published: prior.map(|p| p.describe()),
            scoped: !scope.is_empty(),
            revoked: best.revoked,
        });
    }
    for (i, ca) in cas.iter().enumerate() {
        let crls = by_ca.remove(&i).unwrap_or_default();
        if crls.is_empty() {
            findings.push(error(
                None,
                "crl_missing",
                format!(
                    "CA {} has no CRL signed by its key: with CRLs required the authorizer answers 401 to every \
                     certificate under it",
                    ca.subject
                ),
            ));
        }
        out.cas.push(CaCrl {
            subject: ca.subject.clone(),
            spki_sha256: hex::encode(Sha256::digest(&ca.spki_der)),
            crls,
        });
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out.findings = findings;
    out
}
