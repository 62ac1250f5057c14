//! The mTLS half of the authorizer: who is calling, from the client certificate API Gateway saw.
//!
//! API Gateway already terminated mutual TLS against its own truststore; this module is the second line behind it,
//! and the only place that turns a certificate into a caller:
//!
//! 1. [`pem_fingerprint`] hashes the DER of `clientCertPem` without parsing it: the handler's decision-cache key.
//! 2. [`CertVerifier::verify_pem`] decodes the PEM strictly (exactly one `CERTIFICATE` block, size cap, canonical
//!    base64, no trailing bytes), parses the certificate itself (never the DN strings of the event), refuses
//!    duplicate extensions (and more than 32), a CA certificate as leaf, a leaf without the clientAuth EKU and a
//!    leaf key below the policy's key floor, then validates the chain with rustls-webpki against the truststore
//!    (validity, signatures, name and path-length constraints, EKU of the intermediates), refuses a chain through a
//!    CA whose key is below the floor, and looks revocation up for the leaf and every intermediate, each by the CA
//!    above it in that chain, in CRLs verified when they were loaded (see [`revocation`]).
//! 3. [`identify`] maps the verified certificate to one caller of the policy document. `subject_cn` rules are bound
//!    to the CA certificate that issued the leaf in the chain webpki built, not to names the leaf carries.
//!
//! Trust material comes from an [`ObjectSource`](crate::sources::ObjectSource) (S3 in production, a file
//! locally, memory in tests), is re-fetched by ETag every [`MtlsConfig::refresh_interval`], parsed and (CRLs)
//! verified once per change, and swapped atomically, so a request pays for one signature check per certificate of
//! the chain it presents (the leaf's, in the usual one-CA chain).
//!
//! ## Status classes
//! | error | class |
//! |---|---|
//! | every [`CertError`] except [`CertError::Revoked`] (malformed, untrusted, expired, not yet valid, no clientAuth, CA as leaf, key below the floor, stale or missing CRL, no trust material) | 401 `Unauthorized` |
//! | [`CertError::Revoked`] ([`CertError::is_revoked`]) | 403 explicit Deny |
//! | every [`IdentifyError`] (verified certificate, no single caller) | 403 explicit Deny |
//!
//! ## Key floor
//! The leaf's key must be at least RSA-2048 or a 256-bit curve (P-256; Ed25519 counts as 256), or what the policy
//! raises that to (`settings.min_rsa_key_bits`, `settings.min_ec_key_bits`, taken by
//! [`CertVerifier::with_policy`]); DSA, unnamed curves and other key types are refused. Below it the certificate
//! is an unusable credential ([`CertError::WeakKey`], code `cert_weak_key`, 401), like an expired one. Every CA of
//! the chain webpki built is held to the same floor ([`CertError::WeakCaKey`], `cert_chain_weak_key`): a chain is
//! as strong as its weakest key. CAs below the floor are logged when the truststore loads, and
//! `brokerctl truststore check` reports them.
//!
//! ## Revocation policy
//! When a CRL source is configured and [`MtlsConfig::require_crl`] is set (the default), revocation is checked for
//! the leaf **and every intermediate**: every CA that issued a certificate in the chain, roots included, must have
//! a verified CRL covering it, and a certificate whose issuer has none fails closed
//! ([`CertError::RevocationUnknown`], 401). A CRL past its nextUpdate refuses ([`CertError::StaleCrl`], 401) even
//! while a failed refresh keeps the last good material in use. Without a CRL source, revocation is not checked
//! (logged as a warning at construction).
//!
//! CRLs are verified once, when the CRL bundle or the truststore changes: a CRL counts only for the CA whose
//! subject it names **and** whose key verifies its signature, and never replaces a newer CRL of that CA (CRL
//! number, else thisUpdate), so neither a forged CRL nor re-uploading an older one can un-revoke a certificate; such
//! a CRL is refused and logged, and the CRL in use stays. Details in [`revocation`].

mod der;
mod health;
mod identify;
mod keys;
mod material;
mod pem;
mod revocation;
mod verifier;

pub use identify::{identify, IdentifyError};
pub use material::{load_crls, load_truststore, CrlSummary, TruststoreSummary};
pub use pem::{pem_fingerprint, MAX_CLIENT_CERT_PEM_BYTES};
pub use verifier::{CertVerifier, VerifiedCert};

use std::time::Duration;

use crate::sources::SourceError;

/// Settings of the certificate verifier.
#[derive(Debug, Clone)]
pub struct MtlsConfig {
    /// How often [`CertVerifier::refresh_if_due`] asks the sources whether the truststore or CRLs changed. A
    /// conditional fetch is cheap (S3 answers 304), so the default of 60 s bounds how long a rotation or revocation
    /// takes to bite without costing much.
    pub refresh_interval: Duration,
    /// With a CRL source configured: every issuer in the chain must have a fresh CRL, else the certificate is
    /// refused (fail closed). Set to `false` only for PKIs that publish CRLs for some CAs and not others; then an
    /// issuer without a usable CRL (none published, or one refused when loaded: bad signature, no cRLSign, a
    /// rollback) is treated as "not revoked", which turns revocation off for that CA. The Lambda never sets it to
    /// `false`. Has no effect without a CRL source.
    pub require_crl: bool,
}

impl Default for MtlsConfig {
    fn default() -> Self {
        MtlsConfig { refresh_interval: Duration::from_secs(60), require_crl: true }
    }
}

/// Why a client certificate was refused. The text names no PEM or DER content, so it can go to logs as is.
/// Everything but [`CertError::Revoked`] means "no valid credential" (401); `Revoked` is a valid but withdrawn
/// credential (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum CertError {
    /// `clientCertPem` exceeded [`MAX_CLIENT_CERT_PEM_BYTES`].
    #[error("client certificate PEM larger than {MAX_CLIENT_CERT_PEM_BYTES} bytes")]
    TooLarge,
    /// Not exactly one well-formed `CERTIFICATE` PEM block (bad framing, bad base64, extra blocks or text).
    #[error("client certificate PEM malformed: {0}")]
    MalformedPem(&'static str),
    /// The DER does not parse as an X.509 certificate.
    #[error("client certificate DER malformed")]
    MalformedDer,
    /// Bytes follow the certificate's DER inside the PEM block.
    #[error("trailing bytes after the client certificate")]
    TrailingData,
    /// An extension OID occurs twice (RFC 5280 §4.2 forbids it; two SAN extensions could be read differently by
    /// different parsers).
    #[error("client certificate has duplicate extensions")]
    DuplicateExtension,
    /// More extensions than any client certificate needs (32): bounds the work an extension-packed certificate
    /// can cause before its signature is checked.
    #[error("client certificate has too many extensions")]
    TooManyExtensions,
    #[error("client certificate expired")]
    Expired,
    #[error("client certificate not yet valid")]
    NotYetValid,
    /// No path to a trust anchor (unknown issuer, bad signature, lookalike CA, constraint violation).
    #[error("client certificate not issued by a trusted CA")]
    UntrustedIssuer,
    /// The leaf has no EKU extension, or one without clientAuth.
    #[error("client certificate lacks the clientAuth extended key usage")]
    NoClientAuthEku,
    /// basicConstraints CA=true on the presented certificate.
    #[error("a CA certificate was presented as client certificate")]
    CaAsLeaf,
    /// The key the client certificate certifies is below the key floor (e.g. RSA-1024, P-192, DSA).
    #[error("client certificate key too weak: {key} (minimum {minimum})")]
    WeakKey { key: String, minimum: String },
    /// A CA of the certificate's chain has a key below the key floor.
    #[error("a CA key in the client certificate's chain is too weak: {key} (minimum {minimum})")]
    WeakCaKey { key: String, minimum: String },
    /// The leaf or an intermediate is on its issuer's CRL.
    #[error("client certificate revoked")]
    Revoked,
    /// A CRL needed for the chain is past its nextUpdate.
    #[error("CRL for the client certificate's issuer is stale")]
    StaleCrl,
    /// `require_crl` is set and an issuer in the chain has no verified CRL covering the certificate (a CRL that
    /// failed verification at load counts as none).
    #[error("no CRL for an issuer in the client certificate's chain")]
    RevocationUnknown,
    /// No truststore has been loaded yet (cold-start refresh failed).
    #[error("no trust material loaded")]
    NoTrustMaterial,
    /// Any other refusal by the path validator (reason is webpki's error name, no certificate content).
    #[error("client certificate refused: {0}")]
    Invalid(String),
}

impl CertError {
    /// True for a revoked certificate: the handler answers an explicit Deny (403) instead of `Unauthorized`.
    pub fn is_revoked(&self) -> bool {
        matches!(self, CertError::Revoked)
    }

    /// Stable code for logs, metrics and dashboards: unlike the text, it never changes with the wording.
    pub fn code(&self) -> &'static str {
        match self {
            CertError::TooLarge => "cert_too_large",
            CertError::MalformedPem(_) => "cert_malformed_pem",
            CertError::MalformedDer => "cert_malformed",
            CertError::TrailingData => "cert_trailing_data",
            CertError::DuplicateExtension => "cert_duplicate_extension",
            CertError::TooManyExtensions => "cert_too_many_extensions",
            CertError::Expired => "cert_expired",
            CertError::NotYetValid => "cert_not_yet_valid",
            CertError::UntrustedIssuer => "cert_untrusted_issuer",
            CertError::NoClientAuthEku => "cert_no_client_auth",
            CertError::CaAsLeaf => "cert_ca_as_leaf",
            CertError::WeakKey { .. } => "cert_weak_key",
            CertError::WeakCaKey { .. } => "cert_chain_weak_key",
            CertError::Revoked => "cert_revoked",
            CertError::StaleCrl => "crl_stale",
            CertError::RevocationUnknown => "revocation_unknown",
            CertError::NoTrustMaterial => "no_trust_material",
            CertError::Invalid(_) => "cert_invalid",
        }
    }
}

/// Why loading trust material failed. The verifier keeps serving the last good material after such a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum MtlsError {
    #[error("truststore unavailable: {0}")]
    TruststoreUnavailable(SourceError),
    /// The object was fetched but holds no usable CA (reason names the block, never its content).
    #[error("truststore unusable: {0}")]
    TruststoreInvalid(String),
    #[error("CRL bundle unavailable: {0}")]
    CrlUnavailable(SourceError),
    #[error("CRL bundle unusable: {0}")]
    CrlInvalid(String),
}
