//! The binary encoding of everything `tandem-cl` stores or sends.
//!
//! Big-endian integers, fixed-size hashes and signatures written raw, variable-length byte
//! strings and lists prefixed with a `u32` length, options with a `0`/`1` tag. Decoding is
//! strict: a short input, an unknown tag, a length over its limit or trailing bytes is an error,
//! so one value has exactly one encoding. Every type that is stored or sent has a golden test
//! (`types::golden_tests`) so a change to its encoding is deliberate.

use alloy_primitives::B256;
use thiserror::Error;

/// Longest byte string accepted when decoding (an execution payload body).
pub const MAX_BYTES_LEN: usize = 16 * 1024 * 1024;
/// Most elements accepted in a decoded list (signatures in a certificate, blocks in a response).
pub const MAX_LIST_LEN: usize = 4096;

/// Why bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input while reading {what}")]
    UnexpectedEnd {
        /// What was being read.
        what: &'static str,
    },
    /// A tag byte named no known variant.
    #[error("invalid tag {tag} for {what}")]
    InvalidTag {
        /// What was being read.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A length prefix exceeded its limit.
    #[error("length {len} of {what} exceeds the limit {limit}")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes were left after the value.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A message or record of another format (a peer or data dir of another release).
    #[error("{what} is in format {found}; this build reads format {expected} (another release)")]
    UnsupportedFormat {
        /// What was being read.
        what: &'static str,
        /// The format found.
        found: u8,
        /// The format this build reads.
        expected: u8,
    },
    /// The encoding version is not one this build reads.
    #[error("unsupported encoding version {version} of {what}")]
    UnsupportedVersion {
        /// What was being read.
        what: &'static str,
        /// The version found.
        version: u8,
    },
}

/// Format of consensus messages and sync messages on the wire (first byte, high bit set).
/// Format 1 had no format byte (its first byte was a tag below 0x80) and carried payloads as
/// JSON; format 2 carries them in binary.
pub const WIRE_FORMAT: u8 = 2;
const FORMAT_MARK: u8 = 0x80;

/// Writes the wire format byte.
pub fn write_wire_format(w: &mut Writer) {
    w.u8(FORMAT_MARK | WIRE_FORMAT);
}

/// Reads the wire format byte, refusing other formats by name.
pub fn read_wire_format(r: &mut Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    let b = r.u8(what)?;
    let found = if b & FORMAT_MARK == 0 { 1 } else { b & !FORMAT_MARK };
    if found != WIRE_FORMAT {
        return Err(DecodeError::UnsupportedFormat { what, found, expected: WIRE_FORMAT });
    }
    Ok(())
}

/// Appends encoded values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Writes a big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Writes a 32-byte hash.
    pub fn b256(&mut self, v: &B256) {
        self.buf.extend_from_slice(v.as_slice());
    }
    /// Writes raw fixed-size bytes (no length prefix).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Writes a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }
    /// Writes a `u32` length prefix.
    pub fn len(&mut self, len: usize) {
        // Lengths above u32::MAX never pass the decoder's limits; saturate rather than wrap.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
    }
    /// Writes an option: a `0` tag, or a `1` tag followed by the value.
    pub fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
}

/// Reads encoded values from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::UnexpectedEnd { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2, what)?);
        Ok(u16::from_be_bytes(a))
    }
    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    /// Reads a 32-byte hash.
    pub fn b256(&mut self, what: &'static str) -> Result<B256, DecodeError> {
        Ok(B256::from_slice(self.take(32, what)?))
    }
    /// Reads `N` raw bytes.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    /// Reads a `u32` length prefix and checks it against `limit`.
    pub fn len(&mut self, limit: usize, what: &'static str) -> Result<usize, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, what)?);
        let len = u32::from_be_bytes(a) as usize;
        if len > limit {
            return Err(DecodeError::TooLong { what, len, limit });
        }
        Ok(len)
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.len(MAX_BYTES_LEN, what)?;
        Ok(self.take(len, what)?.to_vec())
    }
    /// Reads an option tag and, if `1`, the value.
    pub fn option<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(f(self)?)),
            tag => Err(DecodeError::InvalidTag { what, tag }),
        }
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { what, count: self.buf.len() })
        }
    }
}

/// A value with one canonical binary encoding.
pub trait Codec: Sized {
    /// Name used in decode errors.
    const NAME: &'static str;
    /// Appends the encoding of `self`.
    fn write(&self, w: &mut Writer);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// The encoding of `self`.
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }
    /// The length of [`Codec::encode`]'s output.
    fn encoded_len(&self) -> usize {
        self.encode().len()
    }
    /// Decodes exactly one value from `bytes` (no trailing bytes).
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish(Self::NAME)?;
        Ok(v)
    }
}

/// Writes a list of values with a `u32` count prefix.
pub fn write_list<T: Codec>(w: &mut Writer, items: &[T]) {
    w.len(items.len());
    for item in items {
        item.write(w);
    }
}

/// Reads a list written by [`write_list`].
pub fn read_list<T: Codec>(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
    let len = r.len(MAX_LIST_LEN, T::NAME)?;
    let mut out = Vec::with_capacity(len.min(64));
    for _ in 0..len {
        out.push(T::read(r)?);
    }
    Ok(out)
}
