//! Compact strings for the values every cached mirror holds one of.
//!
//! [`ShortStr`]: a string kept inline when it is short. Every cached mirror and every entry of the write ledger
//! holds a resourceVersion: on a real API server a decimal etcd revision (ten digits after some
//! billion writes), which as an `Arc<str>` costs a heap block of 32 bytes besides its pointer. Up
//! to [`INLINE`] bytes live in the value itself (16 bytes, the size of an `Arc<str>`); anything
//! longer (the version is opaque to clients, so it may be) falls back to a heap copy behind one
//! pointer. Compares, hashes and prints as its text.
//!
//! [`Uid`]: an object's uid, which the API server generates as a lowercase RFC 4122 UUID: 16
//! bytes instead of 36 characters behind a pointer; any other form is kept as it came.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::Str;

/// Bytes stored inline: with the length and the variant's tag, the size of the heap variant's
/// pointer-aligned word pair.
pub const INLINE: usize = 14;

#[derive(Clone)]
pub enum ShortStr {
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    /// Boxed so the variant is one pointer wide (a fat `Str` would make every value 24 bytes).
    Heap(Box<Str>),
}

impl ShortStr {
    pub fn as_str(&self) -> &str {
        match self {
            // Built from a `&str` cut at its own length, so always UTF-8; stay total anyway.
            ShortStr::Inline { len, buf } => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default(),
            ShortStr::Heap(s) => s,
        }
    }
}

impl Default for ShortStr {
    fn default() -> Self {
        ShortStr::Inline { len: 0, buf: [0; INLINE] }
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            ShortStr::Inline { len: s.len() as u8, buf }
        } else {
            ShortStr::Heap(Box::new(s.into()))
        }
    }
}

impl From<&Str> for ShortStr {
    fn from(s: &Str) -> Self {
        if s.len() <= INLINE { ShortStr::from(&**s) } else { ShortStr::Heap(Box::new(s.clone())) }
    }
}

impl From<&ShortStr> for Str {
    fn from(s: &ShortStr) -> Self {
        match s {
            ShortStr::Heap(s) => (**s).clone(),
            inline => Str::from(inline.as_str()),
        }
    }
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortStr {}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for ShortStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flag a shared record can learn after it was stored (one byte, set in place: no copy of the
/// record). Clones and compares by its current value.
#[derive(Default)]
pub struct Flag(AtomicBool);

impl Flag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Release)
    }
}

impl From<bool> for Flag {
    fn from(b: bool) -> Self {
        Flag(AtomicBool::new(b))
    }
}

impl Clone for Flag {
    fn clone(&self) -> Self {
        Flag::from(self.get())
    }
}

impl PartialEq for Flag {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Flag {}

impl fmt::Debug for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// An object's uid (see the module docs). Prints exactly as the API server sent it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid([u8; 16]),
    Other(Str),
}

/// Dash positions of the canonical text form.
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl Uid {
    fn parse_uuid(s: &str) -> Option<[u8; 16]> {
        let b = s.as_bytes();
        if b.len() != 36 || DASHES.iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let mut out = [0u8; 16];
        let mut digits = b.iter().enumerate().filter(|(i, _)| !DASHES.contains(i)).map(|(_, c)| c);
        for byte in &mut out {
            let hi = lower_hex(*digits.next()?)?;
            let lo = lower_hex(*digits.next()?)?;
            *byte = hi << 4 | lo;
        }
        Some(out)
    }
}

/// Only lowercase hex round-trips through the 16-byte form.
fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl From<&str> for Uid {
    fn from(s: &str) -> Self {
        match Uid::parse_uuid(s) {
            Some(b) => Uid::Uuid(b),
            None => Uid::Other(s.into()),
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if [4, 6, 8, 10].contains(&i) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Uid::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl From<&Uid> for Str {
    fn from(u: &Uid) -> Self {
        match u {
            Uid::Other(s) => s.clone(),
            uuid => Str::from(uuid.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inline_long_shared_same_text() {
        assert_eq!(std::mem::size_of::<ShortStr>(), 16);
        let rv = ShortStr::from("12345678901234");
        assert!(matches!(rv, ShortStr::Inline { .. }));
        assert_eq!(&*rv, "12345678901234");
        let big = ShortStr::from("18446744073709551615");
        assert!(matches!(big, ShortStr::Heap(_)));
        assert_eq!(&*big, "18446744073709551615");
        let long = "an-opaque-version-longer-than-inline";
        let heap = ShortStr::from(long);
        assert!(matches!(heap, ShortStr::Heap(_)));
        assert_eq!(heap.as_str(), long);
        assert_eq!(ShortStr::from(&Str::from(long)), heap);
        assert_eq!(ShortStr::default().as_str(), "");
        // Multi-byte text cut exactly at the inline size stays whole.
        let wide = "ééééééé"; // 14 bytes
        assert_eq!(ShortStr::from(wide).as_str(), wide);
        assert_eq!(format!("{:?} {}", rv, rv), "\"12345678901234\" 12345678901234");
        assert_eq!(Str::from(&rv), Str::from("12345678901234"));
        assert_eq!(Str::from(&big), Str::from("18446744073709551615"));
    }

    #[test]
    fn uids_round_trip_exactly() {
        assert!(std::mem::size_of::<Uid>() <= 24);
        let canonical = "3f2b8c1e-9a4d-4e7b-8c2f-0123456789ab";
        let u = Uid::from(canonical);
        assert!(matches!(u, Uid::Uuid(_)));
        assert_eq!(u.to_string(), canonical);
        assert_eq!(format!("{u:?}"), format!("\"{canonical}\""));
        assert_eq!(Str::from(&u), Str::from(canonical));
        // Anything else is kept as it came, case included.
        for other in ["3F2B8C1E-9A4D-4E7B-8C2F-0123456789AB", "uid-1", "", "3f2b8c1e_9a4d-4e7b-8c2f-0123456789ab"] {
            let u = Uid::from(other);
            assert!(matches!(u, Uid::Other(_)), "{other}");
            assert_eq!(u.to_string(), other);
        }
        assert_ne!(Uid::from(canonical), Uid::from("3f2b8c1e-9a4d-4e7b-8c2f-0123456789ac"));
    }
}
