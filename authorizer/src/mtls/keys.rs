//! How strong a certificate's public key is, against the policy's [`KeyFloor`].
//!
//! webpki checks the keys it verifies signatures with (a CA's), and only with algorithms it supports; it never looks
//! at the key a client certificate certifies, because that key signs the TLS handshake API Gateway already
//! terminated. A client certificate with an RSA-1024 or P-192 key would therefore verify. The verifier reads that key
//! here and refuses it below the floor, like an expired certificate: the credential is unusable (401).

use tb_shared::policy::KeyFloor;

use super::der;

// Content octets of the OIDs this module recognises.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// Named curves: OID content octets, name, size in bits.
const CURVES: &[(&[u8], &str, u32)] = &[
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], "P-256", 256),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], "P-384", 384),
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], "P-521", 521),
    (&[0x2b, 0x81, 0x04, 0x00, 0x21], "P-224", 224),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01], "P-192", 192),
    (&[0x2b, 0x81, 0x04, 0x00, 0x0a], "secp256k1", 256),
    (&[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07], "brainpoolP256r1", 256),
    (&[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0b], "brainpoolP384r1", 384),
    (&[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0d], "brainpoolP512r1", 512),
];

/// A public key's family and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyStrength {
    /// RSA (PKCS#1 or PSS), modulus size in bits.
    Rsa(u32),
    /// An elliptic curve (ECDSA or EdDSA): its name and size in bits (Ed25519 counts as 256, as the policy says).
    Ec(&'static str, u32),
    /// A key that is not RSA or a known curve (DSA, GOST, an unnamed curve, an unparsable key): never accepted.
    Unsupported,
}

impl KeyStrength {
    /// Reads a DER SubjectPublicKeyInfo.
    pub(crate) fn of_spki(spki_der: &[u8]) -> KeyStrength {
        let Some(spki) = der::spki(spki_der) else { return KeyStrength::Unsupported };
        let Some((oid, params)) = der::algorithm_oid(spki.algorithm) else { return KeyStrength::Unsupported };
        match oid {
            RSA_ENCRYPTION | RSASSA_PSS => {
                rsa_modulus_bits(spki.key).map_or(KeyStrength::Unsupported, KeyStrength::Rsa)
            }
            EC_PUBLIC_KEY => match der::expect_only(params, der::OID) {
                Some(curve) => CURVES
                    .iter()
                    .find(|(c, _, _)| *c == curve.content)
                    .map_or(KeyStrength::Unsupported, |&(_, name, bits)| KeyStrength::Ec(name, bits)),
                None => KeyStrength::Unsupported, // explicit curve parameters: refused, as RFC 5480 says
            },
            ED25519 => KeyStrength::Ec("Ed25519", 256),
            ED448 => KeyStrength::Ec("Ed448", 448),
            _ => KeyStrength::Unsupported,
        }
    }

    /// Whether the key is at least as strong as the floor asks.
    pub(crate) fn meets(self, floor: &KeyFloor) -> bool {
        match self {
            KeyStrength::Rsa(bits) => bits >= floor.min_rsa_bits,
            KeyStrength::Ec(_, bits) => bits >= floor.min_ec_bits,
            KeyStrength::Unsupported => false,
        }
    }

    /// What the floor asks of a key of this family, for refusal messages.
    pub(crate) fn minimum(self, floor: &KeyFloor) -> String {
        match self {
            KeyStrength::Rsa(_) => format!("RSA-{}", floor.min_rsa_bits),
            KeyStrength::Ec(..) => format!("{}-bit curve", floor.min_ec_bits),
            KeyStrength::Unsupported => {
                format!("RSA-{} or a {}-bit named curve", floor.min_rsa_bits, floor.min_ec_bits)
            }
        }
    }
}

impl std::fmt::Display for KeyStrength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStrength::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyStrength::Ec(name, _) => f.write_str(name),
            KeyStrength::Unsupported => f.write_str("unsupported key type"),
        }
    }
}

/// Bits of the modulus of a DER RSAPublicKey (leading zero octets and bits not counted).
fn rsa_modulus_bits(key: &[u8]) -> Option<u32> {
    let seq = der::expect_only(key, der::SEQUENCE)?;
    let (modulus, rest) = der::expect(seq.content, der::INTEGER)?;
    let (_exponent, rest) = der::expect(rest, der::INTEGER)?;
    if !rest.is_empty() {
        return None;
    }
    let start = modulus.content.iter().position(|&b| b != 0)?;
    let significant = modulus.content.get(start..)?;
    let first = *significant.first()?;
    let bits = 8 * significant.len() - first.leading_zeros() as usize;
    u32::try_from(bits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        match c.len() {
            n if n < 0x80 => v.push(n as u8),
            n if n < 0x100 => v.extend([0x81, n as u8]),
            n => v.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        v.extend_from_slice(c);
        v
    }

    fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        let mut body = tlv(0x30, alg);
        body.extend(tlv(0x03, &bits));
        tlv(0x30, &body)
    }

    fn rsa_key(modulus_bytes: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0xc3];
        m.extend(std::iter::repeat_n(0x11, modulus_bytes - 1));
        let mut seq = tlv(0x02, &m);
        seq.extend(tlv(0x02, &[0x01, 0x00, 0x01]));
        tlv(0x30, &seq)
    }

    #[test]
    fn sizes_and_floor() {
        let rsa_alg = [&[0x06, 0x09][..], RSA_ENCRYPTION, &[0x05, 0x00]].concat();
        let rsa1024 = KeyStrength::of_spki(&spki(&rsa_alg, &rsa_key(128)));
        assert_eq!(rsa1024, KeyStrength::Rsa(1024));
        assert!(!rsa1024.meets(&KeyFloor::DEFAULT));
        let rsa2048 = KeyStrength::of_spki(&spki(&rsa_alg, &rsa_key(256)));
        assert_eq!(rsa2048, KeyStrength::Rsa(2048));
        assert!(rsa2048.meets(&KeyFloor::DEFAULT));
        assert!(!rsa2048.meets(&KeyFloor { min_rsa_bits: 3072, ..KeyFloor::DEFAULT }));
        // a modulus whose first octet has its high bit clear carries no sign octet, and odd sizes count exactly
        let bits_of = |modulus: &[u8]| {
            let mut seq = tlv(0x02, modulus);
            seq.extend(tlv(0x02, &[0x01, 0x00, 0x01]));
            KeyStrength::of_spki(&spki(&rsa_alg, &tlv(0x30, &seq)))
        };
        assert_eq!(bits_of(&[&[0x40u8][..], &[0x11; 255]].concat()), KeyStrength::Rsa(2047));
        assert_eq!(bits_of(&[&[0x00u8, 0x01][..], &[0x11; 256]].concat()), KeyStrength::Rsa(2049));

        let ec = |curve: &[u8]| {
            let alg = [&[0x06, 0x07][..], EC_PUBLIC_KEY, &[0x06, curve.len() as u8], curve].concat();
            KeyStrength::of_spki(&spki(&alg, &[4; 65]))
        };
        assert_eq!(ec(CURVES[0].0), KeyStrength::Ec("P-256", 256));
        assert_eq!(ec(CURVES[4].0), KeyStrength::Ec("P-192", 192));
        assert!(!ec(CURVES[4].0).meets(&KeyFloor::DEFAULT));
        assert!(!ec(CURVES[0].0).meets(&KeyFloor { min_ec_bits: 384, ..KeyFloor::DEFAULT }));
        assert!(ec(CURVES[1].0).meets(&KeyFloor { min_ec_bits: 384, ..KeyFloor::DEFAULT }));
        assert_eq!(ec(&[0x2b, 0x81, 0x04, 0x00, 0x01]), KeyStrength::Unsupported);

        let ed = KeyStrength::of_spki(&spki(&[&[0x06, 0x03][..], ED25519].concat(), &[1; 32]));
        assert_eq!(ed, KeyStrength::Ec("Ed25519", 256));
        assert!(!ed.meets(&KeyFloor { min_ec_bits: 384, ..KeyFloor::DEFAULT }));
        let ed448 = KeyStrength::of_spki(&spki(&[&[0x06, 0x03][..], ED448].concat(), &[1; 57]));
        assert_eq!(ed448, KeyStrength::Ec("Ed448", 448));
        assert!(ed448.meets(&KeyFloor { min_ec_bits: 384, ..KeyFloor::DEFAULT }));
        assert_eq!(KeyStrength::of_spki(b"junk"), KeyStrength::Unsupported);
        assert!(!KeyStrength::Unsupported.meets(&KeyFloor::DEFAULT));
    }
}
