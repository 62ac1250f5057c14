//! Revocation from CRLs that are verified once, when they are loaded, and then only looked up.
//!
//! webpki's revocation check verifies the CRL's signature on every certificate it checks: with a P-256 CA that
//! doubles the cost of a decision, for a result that only changes when the CRL object does. Here every CRL is
//! verified when the bundle (or the truststore) changes:
//!
//! - **issuer**: its issuer name is the subject of a CA of the truststore *and* its signature verifies with that
//!   CA's key (a CRL is bound to the key, so a lookalike CA with the same name cannot speak for the real one), with
//!   the algorithms webpki accepts for certificates; a CA whose keyUsage lacks cRLSign cannot issue one;
//! - **freshness**: nextUpdate is required and is compared with the decision's time on every lookup (a comparison,
//!   no signature), so a CRL that goes stale while the source is down still refuses;
//! - **no rollback**: per CA and scope, a CRL whose CRL number (thisUpdate when either CRL has no number) is lower
//!   than that of the CRL in use is refused and the one in use stays, so re-uploading an older, still-fresh CRL
//!   cannot un-revoke a certificate. The floor lives as long as the process (a cold start has none).
//!
//! A CRL refused for its signature, its issuer's keyUsage or rollback is dropped on its own (logged); the CRL in
//! use for that CA and scope stays. A CA with no CRL in the new bundle loses its CRL (the bundle says which CAs
//! publish), and its certificates then have unknown status. A bundle that does not parse, or holds a delta CRL, an
//! indirect CRL or a CRL partitioned by revocation reason (which webpki's CRL parser refuses), is refused as a
//! whole and the last good one stays: ignoring such a CRL would silently drop the revocations it carries. CRLs
//! scoped by an issuingDistributionPoint (a distribution point, user or CA certificates only) apply to the
//! certificates they cover, by webpki's rule; a certificate no CRL of its issuer covers has unknown status.
//!
//! A lookup is a hash-map access by the issuing CA (taken from the chain webpki built, never from names in the
//! certificate) and a hash-set access by serial.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::der;
use super::material::{asn1_to_system_time, first_cn, CaId, CaInfo};
use super::pem::read_bundle;

/// Most CRLs a CRL bundle may hold.
pub(crate) const MAX_CRLS: usize = 200;

const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
const OID_ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x55, 0x1d, 0x1c];

/// Which of its issuer's certificates a CRL speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Scope {
    /// DER of the issuingDistributionPoint extension's value; empty for a CRL without one, which covers every
    /// certificate of its issuer. CRLs of one CA with equal keys replace each other.
    key: Vec<u8>,
    user_only: bool,
    ca_only: bool,
    /// The URIs of the distribution point's full name.
    uris: Vec<String>,
}

/// Whether the certificate being checked is the client certificate or a CA of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Leaf,
    Ca,
}

impl Scope {
    /// webpki's rule: a CRL without issuingDistributionPoint covers everything; one with it covers the role it
    /// names, and of those the certificates without CRL distribution points or with one of its URIs.
    fn covers(&self, role: Role, cert_dps: Option<&[String]>) -> bool {
        if self.key.is_empty() {
            return true;
        }
        if (self.ca_only && role != Role::Ca) || (self.user_only && role != Role::Leaf) {
            return false;
        }
        match cert_dps {
            None => true,
            Some(dps) => dps.iter().any(|u| self.uris.contains(u)),
        }
    }
}

/// A CRL from the bundle, parsed but not yet verified.
pub(crate) struct ParsedCrl {
    /// 1-based position in the bundle, for logs.
    position: usize,
    issuer: Vec<u8>,
    issuer_label: String,
    /// The DER of tbsCertList (what the signature covers), the signature algorithm's content and the signature.
    signed: Vec<u8>,
    signature_alg: Vec<u8>,
    signature: Vec<u8>,
    this_update: SystemTime,
    next_update: SystemTime,
    /// The CRL number, big-endian without leading zero octets.
    number: Option<Vec<u8>>,
    scope: Scope,
    revoked: HashSet<Vec<u8>>,
}

/// The parsed CRL bundle. Verification needs the truststore, so it happens in [`RevocationIndex::build`], again
/// whenever either object changes.
pub(crate) struct CrlBundle {
    crls: Vec<ParsedCrl>,
}

impl CrlBundle {
    /// CRLs in the bundle.
    pub(crate) fn len(&self) -> usize {
        self.crls.len()
    }

    /// Earliest nextUpdate over the bundle's CRLs, verified or not (what `load_crls` reports).
    pub(crate) fn earliest_next_update(&self) -> Option<SystemTime> {
        self.crls.iter().map(|c| c.next_update).min()
    }
}

/// A serial as compared: the INTEGER's content octets without leading zero octets, so a certificate and a CRL that
/// encode one positive serial differently (with or without the sign octet) still agree.
fn serial_key(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    raw.get(start..).unwrap_or_default()
}

/// Parses a CRL bundle: PEM `X509 CRL` blocks, or a single DER CRL. Every CRL must carry nextUpdate (RFC 5280
/// §5.1.2.5 requires it, and without it staleness could not be enforced) and be accepted by webpki's CRL parser
/// (version 2, no delta CRL, no indirect or reason-partitioned CRL, no unknown critical extension, well-formed
/// entries). An empty bundle is allowed: with `require_crl` it makes every certificate fail closed, which is the
/// operator's explicit choice.
pub(crate) fn parse_bundle(body: &[u8]) -> Result<CrlBundle, String> {
    let ders: Vec<Vec<u8>> = if body.first() == Some(&0x30) {
        vec![body.to_vec()]
    } else {
        let text = std::str::from_utf8(body).map_err(|_| "neither DER nor PEM text".to_owned())?;
        let blocks = read_bundle(text)?;
        let mut v = Vec::with_capacity(blocks.len());
        for (i, b) in blocks.into_iter().enumerate() {
            if b.label != "X509 CRL" {
                return Err(format!("block {}: unexpected {} block in a CRL bundle", i + 1, b.label));
            }
            v.push(b.der);
        }
        v
    };
    if ders.len() > MAX_CRLS {
        return Err(format!("more than {MAX_CRLS} CRLs"));
    }
    let crls = ders.iter().enumerate().map(|(i, der)| parse_one(i + 1, der)).collect::<Result<Vec<_>, _>>()?;
    Ok(CrlBundle { crls })
}

fn parse_one(n: usize, der: &[u8]) -> Result<ParsedCrl, String> {
    let (rest, parsed) = CertificateRevocationList::from_der(der).map_err(|e| format!("CRL {n}: not a CRL: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("CRL {n}: trailing bytes"));
    }
    let label = first_cn(parsed.issuer());
    webpki::OwnedCertRevocationList::from_der(der).map_err(|e| format!("CRL {n} ({label}): refused: {e:?}"))?;
    let Some(next) = parsed.next_update() else {
        return Err(format!("CRL {n} ({label}): no nextUpdate"));
    };
    if parsed.tbs_cert_list.signature != parsed.signature_algorithm {
        return Err(format!("CRL {n} ({label}): inner and outer signature algorithms differ"));
    }
    let this_update = asn1_to_system_time(parsed.last_update());
    let next_update = asn1_to_system_time(next);
    if next_update <= this_update {
        return Err(format!("CRL {n} ({label}): nextUpdate is not after thisUpdate"));
    }

    let bad = || format!("CRL {n} ({label}): malformed DER");
    let outer = der::expect_only(der, der::SEQUENCE).ok_or_else(bad)?;
    let (tbs, rest) = der::expect(outer.content, der::SEQUENCE).ok_or_else(bad)?;
    let (alg, rest) = der::expect(rest, der::SEQUENCE).ok_or_else(bad)?;
    let (sig, rest) = der::expect(rest, der::BIT_STRING).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let signature = der::bit_string_bytes(sig.content).ok_or_else(bad)?;

    let mut number = None;
    let mut scope = Scope::default();
    for ext in parsed.extensions() {
        match ext.oid.as_bytes() {
            OID_CRL_NUMBER => {
                let int = der::expect_only(ext.value, der::INTEGER).ok_or_else(bad)?;
                number = Some(serial_key(int.content).to_vec());
            }
            OID_ISSUING_DISTRIBUTION_POINT => {
                let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() else {
                    return Err(format!("CRL {n} ({label}): unreadable issuingDistributionPoint"));
                };
                let uris = match &idp.distribution_point {
                    Some(DistributionPointName::FullName(names)) => names
                        .iter()
                        .filter_map(|g| match g {
                            GeneralName::URI(u) => Some((*u).to_owned()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                scope = Scope {
                    key: ext.value.to_vec(),
                    user_only: idp.only_contains_user_certs,
                    ca_only: idp.only_contains_ca_certs,
                    uris,
                };
            }
            _ => {}
        }
    }
    let revoked = parsed.iter_revoked_certificates().map(|r| serial_key(r.raw_serial()).to_vec()).collect();
    Ok(ParsedCrl {
        position: n,
        issuer: parsed.issuer().as_raw().to_vec(),
        issuer_label: label,
        signed: tbs.whole.to_vec(),
        signature_alg: alg.content.to_vec(),
        signature: signature.to_vec(),
        this_update,
        next_update,
        number,
        scope,
        revoked,
    })
}

/// Whether `key` (a DER SubjectPublicKeyInfo) verifies the CRL's signature, with an algorithm webpki also accepts
/// for certificates (so, e.g., RSA keys of at least 2048 bits and no SHA-1).
fn signature_verifies(crl: &ParsedCrl, spki_der: &[u8]) -> bool {
    let Some(spki) = der::spki(spki_der) else { return false };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == crl.signature_alg.as_slice())
        .filter(|a| a.public_key_alg_id().as_ref() == spki.algorithm)
        .any(|a| a.verify_signature(spki.key, &crl.signed, &crl.signature).is_ok())
}

/// How new a CRL is: by CRL number when both CRLs compared have one, else by thisUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Order {
    number: Option<Vec<u8>>,
    this_update: SystemTime,
}

impl Order {
    fn of(crl: &ParsedCrl) -> Order {
        Order { number: crl.number.clone(), this_update: crl.this_update }
    }

    /// Whether `self` is newer than `other`, as the rollback check asks it of one pair: by CRL number when both
    /// have one, else by thisUpdate.
    fn cmp(&self, other: &Order) -> std::cmp::Ordering {
        match (&self.number, &other.number) {
            // big-endian without leading zeros: the longer is larger, equal lengths compare bytewise
            (Some(a), Some(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            _ => self.this_update.cmp(&other.this_update),
        }
    }

    /// The order a bundle's CRLs of one CA are sorted in, newest last. Sorting needs a total order (the standard
    /// sort may panic on an inconsistent one), and [`Order::cmp`] is not one when numbered and unnumbered CRLs mix
    /// (number 1 at t30 > none at t20 > number 2 at t10 > number 1): here numbered CRLs come after unnumbered ones
    /// (RFC 5280 requires the number, so a CA that starts numbering moves forward), each kind in its own order.
    fn total_cmp(&self, other: &Order) -> std::cmp::Ordering {
        match (&self.number, &other.number) {
            (Some(_), Some(_)) => self.cmp(other).then_with(|| self.this_update.cmp(&other.this_update)),
            (None, None) => self.this_update.cmp(&other.this_update),
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
        }
    }

    fn describe(&self) -> String {
        match &self.number {
            Some(n) => format!("CRL number 0x{}", if n.is_empty() { "0".to_owned() } else { hex::encode(n) }),
            None => format!("thisUpdate {}s after the epoch", unix_secs(self.this_update)),
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A CRL in use: verified against its CA's key, newest for its CA and scope.
#[derive(Debug)]
struct VerifiedCrl {
    scope: Scope,
    next_update: SystemTime,
    revoked: HashSet<Vec<u8>>,
    /// Hash of the signed bytes: the same CRL re-verified after a truststore change is recognised.
    tbs_sha256: [u8; 32],
}

/// Why a CRL of the bundle is not in use. The text names the CRL by position and issuer CN, never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub position: usize,
    pub issuer: String,
    pub reason: String,
}

/// The revocation status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Every CRL of its issuer that covers it is current and does not list it.
    Good,
    /// A CRL of its issuer lists it.
    Revoked,
    /// A CRL of its issuer that covers it is past its nextUpdate (and none lists it).
    Stale,
    /// No CRL of its issuer covers it.
    Unknown,
}

/// The verified CRLs by issuing CA, and the rollback floors.
#[derive(Debug, Default)]
pub(crate) struct RevocationIndex {
    by_issuer: HashMap<CaId, Vec<Arc<VerifiedCrl>>>,
    floors: HashMap<(CaId, Vec<u8>), Order>,
    /// Earliest nextUpdate of the CRLs in use.
    pub fresh_until: Option<SystemTime>,
}

/// What [`RevocationIndex::build`] made of a bundle.
pub(crate) struct Built {
    pub index: RevocationIndex,
    /// CRLs not in use and why (signature, issuer, keyUsage, rollback).
    pub refused: Vec<Refusal>,
    /// CRLs in use that were kept from the previous index because their replacement was refused.
    pub kept: usize,
}

impl RevocationIndex {
    /// CRLs in use.
    pub(crate) fn len(&self) -> usize {
        self.by_issuer.values().map(Vec::len).sum()
    }

    /// Whether a CRL in use for this CA is scoped by an issuingDistributionPoint (then a lookup needs the
    /// certificate's CRL distribution points).
    pub(crate) fn scoped(&self, issuer: &CaId) -> bool {
        self.by_issuer.get(issuer).is_some_and(|v| v.iter().any(|c| !c.scope.key.is_empty()))
    }

    /// The status of the certificate with `serial` issued by the CA `issuer`, at `now`. A listed serial is revoked
    /// even by a stale CRL: revocation is final, and a stale CRL only fails to prove the absence of one.
    pub(crate) fn status(
        &self,
        issuer: &CaId,
        serial: &[u8],
        role: Role,
        cert_dps: Option<&[String]>,
        now: SystemTime,
    ) -> Status {
        let Some(crls) = self.by_issuer.get(issuer) else { return Status::Unknown };
        let serial = serial_key(serial);
        let (mut covered, mut stale) = (false, false);
        for crl in crls.iter().filter(|c| c.scope.covers(role, cert_dps)) {
            if crl.revoked.contains(serial) {
                return Status::Revoked;
            }
            covered = true;
            stale |= now >= crl.next_update;
        }
        match (covered, stale) {
            (false, _) => Status::Unknown,
            (true, true) => Status::Stale,
            (true, false) => Status::Good,
        }
    }

    /// Verifies `bundle` against the CAs of the truststore and builds the index, honouring `previous`'s rollback
    /// floors and keeping its CRLs where a replacement is refused. The outcome does not depend on the order of the
    /// CRLs in the bundle: for each CA and scope the newest verified CRL wins.
    pub(crate) fn build(cas: &[CaInfo], bundle: &CrlBundle, previous: Option<&RevocationIndex>) -> Built {
        let mut refused = Vec::new();
        // For each CA and scope: the verified candidates, and whether some CRL for it was refused.
        let mut candidates: HashMap<(CaId, Vec<u8>), Vec<&ParsedCrl>> = HashMap::new();
        let mut contested: HashSet<(CaId, Vec<u8>)> = HashSet::new();

        for crl in &bundle.crls {
            let mut seen = HashSet::new();
            let named: Vec<&CaInfo> = cas.iter().filter(|ca| ca.subject == crl.issuer && seen.insert(ca.id)).collect();
            let refuse = |reason: String| Refusal { position: crl.position, issuer: crl.issuer_label.clone(), reason };
            if named.is_empty() {
                refused.push(refuse("no CA of the truststore has its issuer name".into()));
                continue;
            }
            let Some(ca) = named.iter().find(|ca| signature_verifies(crl, &ca.spki_der)) else {
                refused.push(refuse(format!(
                    "signature does not verify with the key of {} CA(s) of that name",
                    named.len()
                )));
                contested.extend(named.iter().map(|ca| (ca.id, crl.scope.key.clone())));
                continue;
            };
            if !ca.crl_sign {
                refused.push(refuse("its CA's keyUsage does not allow cRLSign".into()));
                contested.insert((ca.id, crl.scope.key.clone()));
                continue;
            }
            candidates.entry((ca.id, crl.scope.key.clone())).or_default().push(crl);
        }

        let in_truststore: HashSet<CaId> = cas.iter().map(|c| c.id).collect();
        let mut floors: HashMap<(CaId, Vec<u8>), Order> = previous
            .map(|p| p.floors.iter().filter(|((id, _), _)| in_truststore.contains(id)))
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let previous_crl = |id: &CaId, key: &[u8]| -> Option<Arc<VerifiedCrl>> {
            previous?.by_issuer.get(id)?.iter().find(|c| c.scope.key == key).cloned()
        };

        let mut by_issuer: HashMap<CaId, Vec<Arc<VerifiedCrl>>> = HashMap::new();
        let mut kept = 0;
        for ((id, key), mut list) in candidates {
            // newest first; among equals the one listing more serials, then a fixed order of the signed bytes
            list.sort_by(|a, b| {
                Order::of(b)
                    .total_cmp(&Order::of(a))
                    .then_with(|| b.revoked.len().cmp(&a.revoked.len()))
                    .then_with(|| b.signed.cmp(&a.signed))
            });
            let Some(best) = list.first() else { continue };
            let order = Order::of(best);
            if let Some(floor) = floors.get(&(id, key.clone())) {
                if order.cmp(floor).is_lt() {
                    refused.push(Refusal {
                        position: best.position,
                        issuer: best.issuer_label.clone(),
                        reason: format!(
                            "older than the CRL in use for its CA ({} < {}): a rollback would un-revoke",
                            order.describe(),
                            floor.describe()
                        ),
                    });
                    contested.insert((id, key));
                    continue;
                }
            }
            let tbs_sha256: [u8; 32] = Sha256::digest(&best.signed).into();
            let crl = match previous_crl(&id, &key) {
                Some(p) if p.tbs_sha256 == tbs_sha256 => p,
                _ => Arc::new(VerifiedCrl {
                    scope: best.scope.clone(),
                    next_update: best.next_update,
                    revoked: best.revoked.clone(),
                    tbs_sha256,
                }),
            };
            floors.insert((id, key), order);
            by_issuer.entry(id).or_default().push(crl);
        }
        for (id, key) in contested {
            let installed = by_issuer.get(&id).is_some_and(|v| v.iter().any(|c| c.scope.key == key));
            if installed {
                continue;
            }
            if let Some(p) = previous_crl(&id, &key).filter(|_| in_truststore.contains(&id)) {
                by_issuer.entry(id).or_default().push(p);
                kept += 1;
            }
        }
        let fresh_until = by_issuer.values().flatten().map(|c| c.next_update).min();
        refused.sort_by_key(|r| r.position);
        Built { index: RevocationIndex { by_issuer, floors, fresh_until }, refused, kept }
    }
}

/// Notes about CRLs in use that an operator should hear about at load: already stale, or issued in the future
/// (a clock problem at the CA or here).
pub(crate) fn load_notes(bundle: &CrlBundle, now: SystemTime) -> Vec<String> {
    let mut notes = Vec::new();
    for c in &bundle.crls {
        if c.next_update <= now {
            notes.push(format!("CRL {} ({}) is already past its nextUpdate", c.position, c.issuer_label));
        }
        if c.this_update > now + std::time::Duration::from_secs(300) {
            notes.push(format!("CRL {} ({}) has a thisUpdate in the future", c.position, c.issuer_label));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the load log and `brokerctl truststore check` report of a bundle: how many CRLs, and the earliest
    /// nextUpdate of them all; and the cap on how many one bundle may hold.
    #[test]
    fn a_bundle_counts_its_crls_and_their_earliest_next_update() {
        let ca = tb_devkit::pki::TestCa::root("Bundle CA").unwrap();
        let now = SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        let early = ca.crl(&[], now - hour, now + hour).unwrap().pem;
        let late = ca.crl(&[], now - hour, now + 3 * hour).unwrap().pem;
        let bundle = parse_bundle(format!("{late}{early}").as_bytes()).unwrap();
        assert_eq!(bundle.len(), 2);
        let earliest = bundle.earliest_next_update().unwrap();
        let want = now + hour;
        assert!(earliest <= want && want.duration_since(earliest).unwrap() < std::time::Duration::from_secs(2));
        assert!(parse_bundle(early.repeat(MAX_CRLS).as_bytes()).is_ok());
        assert!(matches!(parse_bundle(early.repeat(MAX_CRLS + 1).as_bytes()), Err(e) if e.contains("more than")));
    }

    #[test]
    fn serials_compare_without_sign_octets() {
        assert_eq!(serial_key(&[0x00, 0x80, 0x01]), &[0x80, 0x01]);
        assert_eq!(serial_key(&[0x7f]), &[0x7f]);
        assert_eq!(serial_key(&[0x00]), &[] as &[u8]);
    }

    #[test]
    fn order_by_number_then_time() {
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(10);
        let n = |v: &[u8], t| Order { number: Some(v.to_vec()), this_update: t };
        assert!(n(&[0x02], t0).cmp(&n(&[0x01], t1)).is_gt(), "number wins over time");
        assert!(n(&[0x01, 0x00], t0).cmp(&n(&[0xff], t0)).is_gt(), "longer is larger");
        let none = |t| Order { number: None, this_update: t };
        assert!(none(t0).cmp(&n(&[0x09], t1)).is_lt(), "time when one has no number");
        assert!(none(t1).total_cmp(&n(&[0x09], t0)).is_lt(), "sorted: a numbered CRL after an unnumbered one");
        assert!(none(t1).total_cmp(&none(t0)).is_gt(), "sorted by time when neither has a number");
        assert!(n(&[0x01], t1).total_cmp(&n(&[0x01], t0)).is_gt(), "sorted by time between equal numbers");
    }

    /// Sorting needs a total order (the standard sort may panic on an inconsistent one): these three are a cycle
    /// under the pairwise rule, not under the sort order.
    #[test]
    fn the_order_is_total_across_numbered_and_unnumbered_crls() {
        let t = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let a = Order { number: Some(vec![1]), this_update: t(30) };
        let b = Order { number: None, this_update: t(20) };
        let c = Order { number: Some(vec![2]), this_update: t(10) };
        let all = [&a, &b, &c];
        for x in all {
            for y in all {
                assert_eq!(x.total_cmp(y), y.total_cmp(x).reverse(), "antisymmetric");
                for z in all {
                    if x.total_cmp(y).is_gt() && y.total_cmp(z).is_gt() {
                        assert!(x.total_cmp(z).is_gt(), "transitive");
                    }
                }
            }
        }
        let mut many: Vec<Order> = (0..40u64)
            .map(|i| Order { number: (i % 3 != 0).then(|| vec![(i % 7) as u8]), this_update: t(i * 37 % 50) })
            .collect();
        many.sort_by(|x, y| x.total_cmp(y));
        assert!(many.windows(2).all(|w| !w[0].total_cmp(&w[1]).is_gt()));
    }

    #[test]
    fn scope_follows_webpki_rule() {
        let all = Scope::default();
        assert!(all.covers(Role::Leaf, Some(&["x".into()])));
        let users =
            Scope { key: vec![1], user_only: true, ca_only: false, uris: vec!["http://crl.example/a.crl".into()] };
        assert!(users.covers(Role::Leaf, None));
        assert!(!users.covers(Role::Ca, None));
        assert!(users.covers(Role::Leaf, Some(&["http://crl.example/a.crl".into()])));
        assert!(!users.covers(Role::Leaf, Some(&["http://crl.example/b.crl".into()])));
        assert!(!users.covers(Role::Leaf, Some(&[])));
    }
}
