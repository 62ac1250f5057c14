//! Strict PEM handling. API Gateway hands the client certificate as PEM text in the event; the authorizer decodes it
//! itself instead of trusting any DN string next to it, and refuses anything that is not exactly one certificate.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Largest `clientCertPem` accepted. A client certificate is 1-3 KiB; anything near this is an attack or a mistake,
/// and the cap bounds the work done before any decoding.
pub const MAX_CLIENT_CERT_PEM_BYTES: usize = 16 * 1024;

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const CERT_END: &str = "-----END CERTIFICATE-----";

/// Why a PEM input was refused. Names no content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PemProblem {
    TooLarge,
    NotOneCertificateBlock,
    BadBase64,
    BadDerFraming,
    TrailingBytes,
}

impl PemProblem {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            PemProblem::TooLarge => "larger than the size cap",
            PemProblem::NotOneCertificateBlock => "not exactly one CERTIFICATE block",
            PemProblem::BadBase64 => "invalid base64",
            PemProblem::BadDerFraming => "DER is not one complete SEQUENCE",
            PemProblem::TrailingBytes => "bytes after the DER",
        }
    }
}

fn is_pem_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Decodes the base64 body of one PEM block: only the base64 alphabet, `=` and line whitespace are allowed, and
/// the encoding must be canonical (no stray bits), so two different texts cannot decode to one DER by accident.
/// Works on bytes: it runs twice per first-sight certificate (cache key, then verification).
fn decode_body(body: &str) -> Result<Vec<u8>, PemProblem> {
    let mut compact = Vec::with_capacity(body.len());
    for &b in body.as_bytes() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => compact.push(b),
            _ => return Err(PemProblem::BadBase64),
        }
    }
    if compact.is_empty() {
        return Err(PemProblem::BadBase64);
    }
    base64::engine::general_purpose::STANDARD.decode(&compact).map_err(|_| PemProblem::BadBase64)
}

/// Length of the single DER TLV at the start of `der`, if its header is well formed (definite length, at most
/// four length octets, minimal encoding not required here: webpki and x509-parser check DER strictly later).
fn der_tlv_len(der: &[u8]) -> Option<usize> {
    let (&_tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return 2usize.checked_add(usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let octets = rest.get(..n)?;
    let mut len: usize = 0;
    for &b in octets {
        len = len.checked_mul(256)?.checked_add(usize::from(b))?;
    }
    len.checked_add(2 + n)
}

/// The DER inside `pem` if `pem` is exactly one CERTIFICATE block (surrounding whitespace allowed, nothing else),
/// within the size cap, canonical base64, holding exactly one DER SEQUENCE with no trailing bytes.
pub(crate) fn single_certificate_der(pem: &str) -> Result<Vec<u8>, PemProblem> {
    if pem.len() > MAX_CLIENT_CERT_PEM_BYTES {
        return Err(PemProblem::TooLarge);
    }
    let text = pem.trim_matches(is_pem_ws);
    let body = text
        .strip_prefix(CERT_BEGIN)
        .and_then(|t| t.strip_suffix(CERT_END))
        .ok_or(PemProblem::NotOneCertificateBlock)?;
    if body.contains('-') {
        // a second BEGIN/END line: more than one block, or a block inside a block
        return Err(PemProblem::NotOneCertificateBlock);
    }
    let der = decode_body(body)?;
    if der.first() != Some(&0x30) {
        return Err(PemProblem::BadDerFraming);
    }
    match der_tlv_len(&der) {
        Some(n) if n == der.len() => Ok(der),
        Some(n) if n < der.len() => Err(PemProblem::TrailingBytes),
        _ => Err(PemProblem::BadDerFraming),
    }
}

/// SHA-256 of the DER inside a single-certificate PEM, computed without parsing the certificate. It is the key of
/// the handler's decision cache, looked up *before* verification so a warm decision costs one hash; `None` when the
/// input is not exactly one well-formed CERTIFICATE block (such input is refused anyway, and never cached).
pub fn pem_fingerprint(pem: &str) -> Option<[u8; 32]> {
    let der = single_certificate_der(pem).ok()?;
    Some(Sha256::digest(&der).into())
}

/// One block of a PEM bundle.
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Reads every PEM block of a bundle (truststore or CRL file). Text between blocks is ignored, because tools such
/// as `openssl x509 -text` write descriptions there; a block that is cut off or badly encoded fails the whole
/// bundle, so a damaged upload never yields a partial truststore.
pub(crate) fn read_bundle(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = rest.get(start + "-----BEGIN ".len()..).unwrap_or_default();
        let Some(label_end) = after.find("-----") else {
            return Err(format!("block {}: unterminated BEGIN line", out.len() + 1));
        };
        let label = after.get(..label_end).unwrap_or_default().to_owned();
        if label.is_empty()
            || label.len() > 64
            || !label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
        {
            return Err(format!("block {}: bad label", out.len() + 1));
        }
        let body_and_more = after.get(label_end + 5..).unwrap_or_default();
        let end_line = format!("-----END {label}-----");
        let Some(end) = body_and_more.find(&end_line) else {
            return Err(format!("block {} ({label}): no END line", out.len() + 1));
        };
        let body = body_and_more.get(..end).unwrap_or_default();
        if body.contains('-') {
            return Err(format!("block {} ({label}): nested or unterminated block", out.len() + 1));
        }
        let der = decode_body(body).map_err(|p| format!("block {} ({label}): {}", out.len() + 1, p.describe()))?;
        if der_tlv_len(&der) != Some(der.len()) {
            return Err(format!("block {} ({label}): trailing bytes after the DER", out.len() + 1));
        }
        out.push(PemBlock { label, der });
        rest = body_and_more.get(end + end_line.len()..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_of(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("{CERT_BEGIN}\n{b64}\n{CERT_END}\n")
    }

    #[test]
    fn accepts_one_block_with_whitespace() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x01];
        assert_eq!(single_certificate_der(&pem_of(&der)).unwrap(), der);
        assert_eq!(single_certificate_der(&format!("  \r\n{}\r\n", pem_of(&der))).unwrap(), der);
    }

    #[test]
    fn refuses_trailing_bytes_and_blocks() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x01, 0x00];
        assert_eq!(single_certificate_der(&pem_of(&der)), Err(PemProblem::TrailingBytes));
        assert_eq!(single_certificate_der(&pem_of(&[0x30, 0x05, 0x02])), Err(PemProblem::BadDerFraming));
        assert_eq!(single_certificate_der(&pem_of(&[0x04, 0x00])), Err(PemProblem::BadDerFraming));
        let ok = pem_of(&[0x30, 0x00]);
        assert_eq!(single_certificate_der(&format!("{ok}{ok}")), Err(PemProblem::NotOneCertificateBlock));
        assert_eq!(single_certificate_der(&format!("{ok}junk")), Err(PemProblem::NotOneCertificateBlock));
        assert_eq!(single_certificate_der(&format!("junk{ok}")), Err(PemProblem::NotOneCertificateBlock));
        assert!(single_certificate_der(&ok.replace("CERTIFICATE", "PRIVATE KEY")).is_err());
        assert_eq!(single_certificate_der(&"A".repeat(MAX_CLIENT_CERT_PEM_BYTES + 1)), Err(PemProblem::TooLarge));
    }

    #[test]
    fn refuses_non_canonical_base64() {
        // "MAA=" is the canonical encoding of 30 00; "MAB=" carries non-zero trailing bits for the same bytes
        assert_eq!(single_certificate_der(&format!("{CERT_BEGIN}\nMAA=\n{CERT_END}")).unwrap(), [0x30, 0x00]);
        assert_eq!(single_certificate_der(&format!("{CERT_BEGIN}\nMAB=\n{CERT_END}")), Err(PemProblem::BadBase64));
        assert_eq!(single_certificate_der(&format!("{CERT_BEGIN}\nMAA\n{CERT_END}")), Err(PemProblem::BadBase64));
        assert_eq!(single_certificate_der(&format!("{CERT_BEGIN}\nMA*A\n{CERT_END}")), Err(PemProblem::BadBase64));
    }

    #[test]
    fn der_length_header_is_bounded() {
        assert_eq!(der_tlv_len(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(der_tlv_len(&[0x30, 0x80]), None);
        assert_eq!(der_tlv_len(&[0x30, 0x82, 0x01]), None);
        assert_eq!(der_tlv_len(&[0x30, 0x82, 0x01, 0x00]), Some(260));
    }

    #[test]
    fn bundle_reader_ignores_text_between_blocks() {
        let a = pem_of(&[0x30, 0x00]);
        let crl = pem_of(&[0x30, 0x00]).replace("CERTIFICATE", "X509 CRL");
        let blocks = read_bundle(&format!("subject=CN=x\n{a}\ncomment\n{crl}")).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].label, "X509 CRL");
        assert!(read_bundle(&format!("{a}-----BEGIN CERTIFICATE-----\nMAA=")).is_err());
    }
}
