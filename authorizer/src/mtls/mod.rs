//! The mTLS half of the authorizer: who is calling, from the client certificate API Gateway saw.
//!
//! API Gateway already terminated mutual TLS against its own truststore; this module is the second line behind it,
//! and the only place that turns a certificate into a caller:
//!
//! 1. [`pem_fingerprint`] hashes the DER of `clientCertPem` without parsing it: the handler's decision-cache key.
//! 2. [`CertVerifier::verify_pem`] decodes the PEM strictly (exactly one `CERTIFICATE` block, size cap, canonical
//!    base64, no trailing bytes), parses the certificate itself (never the DN strings of the event), refuses
//!    duplicate extensions, a CA certificate as leaf and a leaf without the clientAuth EKU, then validates the chain
//!    with rustls-webpki against the truststore (validity, signatures, path constraints) and checks revocation
//!    against the CRLs (issuer + serial, CRL signature by the issuing CA, CRL freshness).
//! 3. [`identify`] maps the verified certificate to one caller of the policy document.
//!
//! Trust material comes from an [`ObjectSource`](crate::sources::ObjectSource) (S3 in production, a file
//! locally, memory in tests), is re-fetched by ETag every [`MtlsConfig::refresh_interval`], parsed once per change
//! and swapped atomically, so a request only pays for signature checks.
//!
//! ## Status classes
//! | error | class |
//! |---|---|
//! | every [`CertError`] except [`CertError::Revoked`] (malformed, untrusted, expired, not yet valid, no clientAuth, CA as leaf, stale/missing/forged CRL, no trust material) | 401 `Unauthorized` |
//! | [`CertError::Revoked`] ([`CertError::is_revoked`]) | 403 explicit Deny |
//! | every [`IdentifyError`] (verified certificate, no single caller) | 403 explicit Deny |
//!
//! ## Revocation policy
//! When a CRL source is configured and [`MtlsConfig::require_crl`] is set (the default), revocation is checked for
//! the leaf **and every intermediate** (`RevocationCheckDepth::Chain`) with `UnknownStatusPolicy::Deny`: every CA
//! that issued a certificate in the chain, roots included, must have a CRL in the bundle, and an issuer without
//! one fails closed ([`CertError::RevocationUnknown`], 401). `ExpirationPolicy::Enforce` makes a CRL past its
//! nextUpdate deny ([`CertError::StaleCrl`]) even while a failed refresh keeps the last good material in use.
//! Without a CRL source, revocation is not checked (logged as a warning at construction).
//!
//! CRLs are matched to issuers by subject DN (webpki's rule), so the CAs of one truststore must have distinct
//! subject DNs; a CRL naming a CA but signed by another key is refused ([`CertError::BadCrlSignature`]).

mod identify;
mod material;
mod pem;
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
    /// issuer without a CRL is treated as "not revoked". Has no effect without a CRL source.
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
    /// The leaf or an intermediate is on its issuer's CRL.
    #[error("client certificate revoked")]
    Revoked,
    /// A CRL needed for the chain is past its nextUpdate.
    #[error("CRL for the client certificate's issuer is stale")]
    StaleCrl,
    /// The CRL naming the issuer is not signed by the issuer's key (or uses an unsupported algorithm), or the
    /// issuer may not sign CRLs.
    #[error("CRL signature invalid")]
    BadCrlSignature,
    /// `require_crl` is set and an issuer in the chain has no CRL.
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
