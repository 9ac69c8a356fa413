//! 32-byte identifiers: blob ids (keyed BLAKE3 of plaintext) and file ids
//! (BLAKE3 of the stored bytes), shown as lowercase hex.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A 32-byte identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Length of the hex form.
    pub const HEX_LEN: usize = 64;

    /// BLAKE3 of `data`, unkeyed: the name of a stored file (pack, index, snapshot).
    pub fn of_file(data: &[u8]) -> Self {
        Id(*blake3::hash(data).as_bytes())
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_string()
    }

    /// Parse a full 64-digit hex id.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != Self::HEX_LEN {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            *byte = hex_pair(pair)?;
        }
        Some(Id(out))
    }

    /// The 64 lowercase hex digits, without allocating (trees name every
    /// content blob, so this runs once per chunk of every stored file).
    fn hex_digits(&self) -> [u8; Self::HEX_LEN] {
        let mut out = [0u8; Self::HEX_LEN];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX_DIGITS[usize::from(b >> 4)];
            pair[1] = HEX_DIGITS[usize::from(b & 0xf)];
        }
        out
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    Some(hex_nibble(pair[0])? << 4 | hex_nibble(pair[1])?)
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.hex_digits();
        f.write_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Id::from_hex(s).ok_or_else(|| format!("not a 64-digit hex id: {s:?}"))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let digits = self.hex_digits();
        s.serialize_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::from_hex(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid id {s:?}")))
    }
}

/// Lowercase hex of arbitrary bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Parse lowercase or uppercase hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 == 1 {
        return None;
    }
    s.as_bytes().chunks_exact(2).map(hex_pair).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let id = Id::of_file(b"hello");
        assert_eq!(Id::from_hex(&id.to_string()), Some(id));
        assert_eq!(id.short().len(), 8);
        assert_eq!(Id::from_hex("zz"), None);
        assert_eq!(from_hex(&to_hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
    }

    #[test]
    fn hex_is_lowercase_and_parses_either_case() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let id = Id(bytes);
        let hex = id.to_string();
        assert_eq!(hex, format!("ab{}0f", "00".repeat(30)));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
        assert_eq!(Id::from_hex(&hex.to_uppercase()), Some(id));
        assert_eq!(to_hex(&[0xde, 0xad, 0x01]), "dead01");
        assert_eq!(from_hex("DeAd01"), Some(vec![0xde, 0xad, 1]));
        assert_eq!(from_hex("+1"), None);
        assert_eq!(from_hex("abc"), None);
    }
}
