//! The few DER reads the verifier does itself: splitting a SubjectPublicKeyInfo into algorithm and key, and a CRL
//! into the signed bytes, the signature algorithm and the signature. Everything these pieces come from was already
//! accepted by x509-parser and webpki, so this reader only needs to be exact, not general: one-byte tags, definite
//! lengths of at most four octets, minimal length encoding.

/// One DER element: its tag, its content octets and the whole encoding (header included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OID: u8 = 0x06;

/// The first element of `input` and what follows it; `None` if the header is malformed or the content is cut short.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in what this reader is given
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let octets = rest.get(..n)?;
        if octets.first() == Some(&0) {
            return None; // not minimal
        }
        let len = octets.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None; // long form for a short length: not DER
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    let content = whole.get(header..)?;
    Some((Tlv { tag, content, whole }, input.get(end..)?))
}

/// The element of `input` if it is exactly one element with `tag`.
pub(crate) fn expect_only(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    match read_tlv(input)? {
        (t, []) if t.tag == tag => Some(t),
        _ => None,
    }
}

/// The next element if it has `tag`, and the rest.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let (t, rest) = read_tlv(input)?;
    (t.tag == tag).then_some((t, rest))
}

/// The bits of a BIT STRING's content that has no unused bits (keys and signatures always have none).
pub(crate) fn bit_string_bytes(content: &[u8]) -> Option<&[u8]> {
    match content.split_first()? {
        (0, bits) => Some(bits),
        _ => None,
    }
}

/// A SubjectPublicKeyInfo split as signature verifiers take it: the AlgorithmIdentifier's content (what
/// `SignatureVerificationAlgorithm::public_key_alg_id` is compared with) and the subjectPublicKey bits.
pub(crate) struct Spki<'a> {
    pub algorithm: &'a [u8],
    pub key: &'a [u8],
}

/// Splits a DER SubjectPublicKeyInfo.
pub(crate) fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let outer = expect_only(der, SEQUENCE)?;
    let (alg, rest) = expect(outer.content, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Spki { algorithm: alg.content, key: bit_string_bytes(bits.content)? })
}

/// An AlgorithmIdentifier's content split into its OID's content octets and the parameters that follow (the
/// encoding of the parameters element, empty when absent).
pub(crate) fn algorithm_oid(alg_content: &[u8]) -> Option<(&[u8], &[u8])> {
    let (oid, params) = expect(alg_content, OID)?;
    Some((oid.content, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_forms() {
        let (t, rest) = read_tlv(&[0x04, 0x02, 1, 2, 9]).unwrap();
        assert_eq!((t.tag, t.content, t.whole, rest), (0x04, &[1u8, 2][..], &[0x04, 0x02, 1, 2][..], &[9u8][..]));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (t, rest) = read_tlv(&long).unwrap();
        assert_eq!((t.content.len(), rest.len()), (0x80, 0));
        // four length octets, the most this reader takes: 16 MiB
        let mut four = vec![0x04, 0x84, 0x01, 0x00, 0x00, 0x00];
        four.resize(6 + (1 << 24), 7);
        let (t, rest) = read_tlv(&four).unwrap();
        assert_eq!((t.content.len(), rest.len()), (1 << 24, 0));
    }

    #[test]
    fn refuses_what_is_not_der() {
        assert!(read_tlv(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_none(), "long form for a short length");
        assert!(read_tlv(&[0x04, 0x82, 0x00, 0x80]).is_none(), "leading zero length octet");
        assert!(read_tlv(&[0x04, 0x80]).is_none(), "indefinite length");
        let mut indefinite = vec![0x04, 0x80];
        indefinite.extend([0u8; 0x80]);
        assert!(read_tlv(&indefinite).is_none(), "indefinite length, even with 128 octets after it");
        assert!(read_tlv(&[0x04, 0x03, 1]).is_none(), "cut short");
        // more than four length octets: refused, even where the value would wrap around to a plausible length
        let mut nine = vec![0x04, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x80];
        nine.extend([0u8; 0x80]);
        assert!(read_tlv(&nine).is_none(), "nine length octets");
        assert!(read_tlv(&[0x1f, 0x01, 0x00]).is_none(), "multi-byte tag");
        assert!(expect_only(&[0x30, 0x00, 0x00], SEQUENCE).is_none(), "trailing bytes");
        assert!(bit_string_bytes(&[0x01, 0xff]).is_none(), "unused bits");
    }
}
