//! DER and PEM encoding helpers for building certificates, extensions and bundles by hand in tests.

/// DER of `GeneralNames ::= SEQUENCE { uniformResourceIdentifier [6] IA5String }`.
pub(super) fn general_names_uri(uri: &str) -> Vec<u8> {
    let inner = der_tlv(0x86, uri.as_bytes());
    der_tlv(0x30, &inner)
}

/// One DER TLV with definite length.
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Concatenates PEM blocks into one bundle, one block after another, each ending in a newline.
pub fn pem_bundle(pems: &[&str]) -> String {
    let mut out = String::new();
    for p in pems {
        out.push_str(p.trim_end());
        out.push('\n');
    }
    out
}

/// Wraps DER in a PEM block with the given label (e.g. to make a `PRIVATE KEY` or `X509 CRL` block by hand).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
