use tb_shared::policy::{Caller, Identity, IdentityKey, Policy};

use super::VerifiedCert;

/// Why a verified certificate maps to no single caller. Every variant is an explicit Deny (403): the credential
/// is genuine, it is just not registered (or not unambiguously).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    /// No identity rule of the policy matches the certificate.
    #[error("certificate matches no registered caller")]
    NoMatch,
    /// Rules of two different callers match the certificate (e.g. its SAN URI names one and its key pin another),
    /// or a `subject_cn` rule matches whose `issuer_cn` two CAs of the truststore carry and which pins no issuer
    /// key (`issuer_spki_sha256`): the CN cannot say which of them the rule means.
    #[error("certificate matches more than one caller, or a subject_cn rule whose issuer CN two CAs share")]
    Ambiguous,
    /// The certificate carries several URI SANs and one of them is registered: a `san_uri` rule requires exactly
    /// one, so a certificate cannot claim a registered workload identity next to another.
    #[error("certificate carries several URI SANs")]
    MultipleUriSans,
}

/// Maps a verified certificate to the one caller whose identity rules match it: the exact URI SAN (only when the
/// certificate has exactly one), any DNS SAN (case-insensitive), subject CN together with the CN of the CA that
/// issued it in the verified chain (and that CA's key, when the rule pins it), or a SHA-256 pin of the certificate
/// or its public key. Never the serial. Every rule of every kind is evaluated, and if they
/// point at two different callers the answer is [`IdentifyError::Ambiguous`] rather than whichever came first.
/// Whether the caller is enabled is the handler's decision (it needs the caller to say "disabled").
pub fn identify<'p>(cert: &VerifiedCert, policy: &'p Policy) -> Result<&'p Caller, IdentifyError> {
    let mut found: Option<&'p Caller> = None;
    let mut consider = |key: IdentityKey| -> Result<(), IdentifyError> {
        if let Some(c) = policy.caller_for(&key) {
            match found {
                Some(prev) if prev.id != c.id => return Err(IdentifyError::Ambiguous),
                _ => found = Some(c),
            }
        }
        Ok(())
    };

    match cert.san_uris.as_slice() {
        [] => {}
        [one] => consider(IdentityKey::SanUri(one.clone()))?,
        many => {
            if many.iter().any(|u| policy.caller_for(&IdentityKey::SanUri(u.clone())).is_some()) {
                return Err(IdentifyError::MultipleUriSans);
            }
        }
    }
    for dns in &cert.san_dns {
        consider(IdentityKey::SanDns(dns.to_ascii_lowercase()))?;
    }
    if let (Some(cn), Some(issuer_cn)) = (&cert.subject_cn, &cert.issuer_cn) {
        let key = IdentityKey::SubjectCn { cn: cn.clone(), issuer_cn: issuer_cn.clone() };
        if let Some(caller) = policy.caller_for(&key) {
            let pin = caller.identities.iter().find_map(|i| match i {
                Identity::SubjectCn { cn: c, issuer_cn: i, issuer_spki_sha256 } if c == cn && i == issuer_cn => {
                    Some(issuer_spki_sha256.as_deref())
                }
                _ => None,
            });
            match pin {
                // bound to the issuing CA's key: another CA with the same CN issued it, so the rule does not match
                Some(Some(want)) if !want.eq_ignore_ascii_case(&hex::encode(cert.issuer_spki_sha256)) => {}
                Some(Some(_)) => consider(key)?,
                // bound by CN only, and the CN names two CAs: which one the rule meant is unknowable
                Some(None) if cert.issuer_cn_shared => return Err(IdentifyError::Ambiguous),
                Some(None) => consider(key)?,
                None => {}
            }
        }
    }
    consider(IdentityKey::CertSha256(hex::encode(cert.cert_sha256)))?;
    consider(IdentityKey::SpkiSha256(hex::encode(cert.spki_sha256)))?;

    found.ok_or(IdentifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(san_uri: &str, cn: &str, issuer_cn: &str) -> VerifiedCert {
        VerifiedCert {
            cert_sha256: [1; 32],
            spki_sha256: [2; 32],
            san_uris: vec![san_uri.to_owned()],
            san_dns: Vec::new(),
            subject_cn: Some(cn.to_owned()),
            issuer_cn: Some(issuer_cn.to_owned()),
            issuer_spki_sha256: [3; 32],
            issuer_cn_shared: false,
            not_after: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    fn policy(identities: &str) -> Policy {
        let doc = format!(
            "version: 1\ncallers:\n  - id: svc\n    identities: {identities}\n    cognito_client: svc\n    allowed_scopes: [a/b]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n"
        );
        Policy::from_bytes("policy.yaml", doc.as_bytes()).unwrap()
    }

    /// Two rules of one caller that both match are one answer, not an ambiguity.
    #[test]
    fn several_rules_of_the_same_caller_match_it() {
        let pin = hex::encode([1u8; 32]);
        let p =
            policy(&format!("[{{ type: san_uri, value: \"spiffe://x/svc\" }}, {{ type: cert_sha256, value: {pin} }}]"));
        assert_eq!(identify(&cert("spiffe://x/svc", "svc", "Issuing CA"), &p).map(|c| c.id.as_str()), Ok("svc"));
    }

    /// A caller with `subject_cn` rules for two issuers: the rule of the issuer that issued the certificate decides,
    /// not the first `subject_cn` rule of the caller (whose pin names another CA's key).
    #[test]
    fn the_subject_cn_rule_of_the_issuing_ca_decides() {
        let other_pin = hex::encode([9u8; 32]);
        let p = policy(&format!(
            "[{{ type: subject_cn, cn: svc, issuer_cn: Other CA, issuer_spki_sha256: {other_pin} }}, {{ type: subject_cn, cn: svc, issuer_cn: Issuing CA }}]"
        ));
        let c = cert("spiffe://x/unregistered", "svc", "Issuing CA");
        assert_eq!(identify(&c, &p).map(|c| c.id.as_str()), Ok("svc"));
        let pinned_elsewhere = cert("spiffe://x/unregistered", "svc", "Other CA");
        assert_eq!(identify(&pinned_elsewhere, &p).map(|c| c.id.as_str()), Err(IdentifyError::NoMatch));
    }
}
