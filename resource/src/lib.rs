//! What a resource server checks in an access token the broker obtained, beyond the token's signature and standard
//! claims: the certificate binding of RFC 8705 §3 ("Mutual-TLS Client Certificate-Bound Access Tokens").
//!
//! A caller whose policy sets `bind_token_to_certificate` gets tokens whose `cnf` claim holds the `x5t#S256`
//! thumbprint of the client certificate it authenticated with. Such a token is only worth anything together with
//! that certificate's private key: a resource server that serves it over mutual TLS, and checks here that the
//! certificate of the connection is the one in the token, turns a stolen token into a useless one. The TLS handshake
//! is what proves possession of the key; this crate only compares the certificate the handshake saw with the token.
//!
//! The crate is deliberately tiny (SHA-256, base64url, a constant-time comparison and `serde_json`'s map type) so
//! resource servers can link it whatever JWT library and TLS stack they use: they verify the token first, then hand
//! its claims and the connection's leaf certificate (DER) to [`check_certificate_binding`]. `docs/resource-servers.md`
//! has the whole list of checks and a recipe.
//!
//! Fail closed: a `cnf` claim this crate cannot fully check is [`BindingError::Malformed`], never ignored, because a
//! confirmation method nobody enforces would make a bound token a bearer token again.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// The JWT confirmation claim (RFC 7800 §3.1).
pub const CONFIRMATION_CLAIM: &str = "cnf";
/// The X.509 certificate SHA-256 thumbprint confirmation method (RFC 8705 §3.1).
pub const X5T_S256: &str = "x5t#S256";
/// Length of an `x5t#S256` value: 32 bytes in base64url without padding.
pub const THUMBPRINT_LEN: usize = 43;
/// The RFC 6750 error code of every binding failure: the token is not usable on this connection (RFC 8705 §3).
pub const ERROR_CODE: &str = "invalid_token";

const DIGEST_LEN: usize = 32;

/// The RFC 8705 `x5t#S256` thumbprint of a certificate: base64url, without padding, of the SHA-256 of its DER
/// encoding (43 characters). The input is hashed as given: pass the DER of the leaf certificate, not PEM.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// A token that passed the binding check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The token has no `cnf` claim: a plain bearer token. Whether such tokens are accepted (on this endpoint, for
    /// this caller) is the resource server's decision; the library does not know which callers must be bound.
    Unbound,
    /// The token is bound to a certificate, and it is the certificate presented on this connection.
    Bound,
}

/// Why a token must be refused on this connection. Each is answered with HTTP 401 and `invalid_token` (RFC 8705 §3,
/// RFC 6750 §3.1). Neither the messages nor `Debug` name a thumbprint or any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingError {
    /// The token is bound to a certificate and the connection presented none (or the plain listener was used).
    NoCertificate,
    /// The token is bound to a different certificate than the one presented.
    Mismatch,
    /// The `cnf` claim is not an object holding exactly a well-formed `x5t#S256` string: a confirmation method this
    /// library does not understand, a second one beside it, or a thumbprint of the wrong form.
    Malformed,
}

impl BindingError {
    /// The `error_description` for RFC 6750's `WWW-Authenticate` header and error body. Only characters RFC 6750
    /// §3 allows there (printable ASCII without `"` and `\`), so it can be quoted as is.
    pub fn error_description(&self) -> &'static str {
        match self {
            BindingError::NoCertificate => {
                "the access token is bound to a client certificate and none was presented on this connection"
            }
            BindingError::Mismatch => "the access token is bound to a different client certificate",
            BindingError::Malformed => "the access token's confirmation (cnf) claim is malformed or unsupported",
        }
    }

    /// The RFC 6750 `WWW-Authenticate` value for this error, without a realm:
    /// `Bearer error="invalid_token", error_description="..."`.
    pub fn www_authenticate(&self) -> String {
        format!("Bearer error=\"{ERROR_CODE}\", error_description=\"{}\"", self.error_description())
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error_description())
    }
}

impl std::error::Error for BindingError {}

/// The digest a token is bound to: `None` without a `cnf` claim, an error for any `cnf` this library cannot enforce.
///
/// RFC 7800 §3.1 lets a `cnf` claim represent one proof-of-possession key only, so a member beside `x5t#S256` is
/// refused rather than ignored. RFC 8705 §3.1 forbids padding, line breaks and other characters in the value; the
/// decoder also refuses non-canonical trailing bits, so exactly one string encodes each digest.
fn bound_digest(claims: &Map<String, Value>) -> Result<Option<[u8; DIGEST_LEN]>, BindingError> {
    let Some(cnf) = claims.get(CONFIRMATION_CLAIM) else { return Ok(None) };
    let Value::Object(cnf) = cnf else { return Err(BindingError::Malformed) };
    if cnf.len() != 1 {
        return Err(BindingError::Malformed);
    }
    let Some(Value::String(thumbprint)) = cnf.get(X5T_S256) else { return Err(BindingError::Malformed) };
    if thumbprint.len() != THUMBPRINT_LEN {
        return Err(BindingError::Malformed);
    }
    let digest = URL_SAFE_NO_PAD.decode(thumbprint.as_bytes()).map_err(|_| BindingError::Malformed)?;
    <[u8; DIGEST_LEN]>::try_from(digest).map(Some).map_err(|_| BindingError::Malformed)
}

/// Checks a verified token's claims against the client certificate presented on the request's own TLS connection
/// (the leaf, DER-encoded; `None` when the client sent none). Call it after the signature, issuer, expiry and scope
/// checks, with the certificate the TLS layer verified, never one taken from a request header a client can set.
///
/// - no `cnf` claim: [`Binding::Unbound`], whatever certificate was presented;
/// - a well-formed `cnf.x5t#S256` and that certificate: [`Binding::Bound`];
/// - a well-formed `cnf.x5t#S256` and no certificate (an empty one counts as none): [`BindingError::NoCertificate`];
/// - a well-formed `cnf.x5t#S256` and another certificate: [`BindingError::Mismatch`];
/// - any other `cnf`: [`BindingError::Malformed`], whatever certificate was presented.
///
/// The digests are compared in constant time.
pub fn check_certificate_binding(
    claims: &Map<String, Value>,
    presented_certificate_der: Option<&[u8]>,
) -> Result<Binding, BindingError> {
    let Some(expected) = bound_digest(claims)? else { return Ok(Binding::Unbound) };
    let Some(der) = presented_certificate_der.filter(|d| !d.is_empty()) else {
        return Err(BindingError::NoCertificate);
    };
    let presented = Sha256::digest(der);
    if bool::from(presented.as_slice().ct_eq(&expected)) {
        Ok(Binding::Bound)
    } else {
        Err(BindingError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
