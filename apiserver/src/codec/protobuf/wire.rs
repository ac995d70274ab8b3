//! The protobuf wire format: varints, field keys and length-delimited values. Every read is
//! bounds-checked, so a truncated or garbage body is an error, never a panic.

use super::CodecError;

/// Wire type 0: varint.
pub(crate) const VARINT: u8 = 0;
/// Wire type 1: 8 bytes.
pub(crate) const FIXED64: u8 = 1;
/// Wire type 2: length-delimited.
pub(crate) const LEN: u8 = 2;
/// Wire type 5: 4 bytes.
const FIXED32: u8 = 5;

/// One field read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width value (Kubernetes messages have none; skipped).
    Fixed,
}

/// Reads the fields of one message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over a message's bytes.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next `(number, value)`, or `None` at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, CodecError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| CodecError::Malformed("field number"))?;
        if number == 0 {
            return Err(CodecError::Malformed("field number 0"));
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| CodecError::Malformed("length"))?;
                if len > self.buf.len() {
                    return Err(CodecError::Truncated);
                }
                let (bytes, rest) = self.buf.split_at(len);
                self.buf = rest;
                Value::Bytes(bytes)
            }
            FIXED64 => {
                self.skip(8)?;
                Value::Fixed
            }
            FIXED32 => {
                self.skip(4)?;
                Value::Fixed
            }
            _ => return Err(CodecError::Malformed("wire type")),
        };
        Ok(Some((number, value)))
    }

    fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.buf.len() {
            return Err(CodecError::Truncated);
        }
        self.buf = self.buf.get(n..).unwrap_or_default();
        Ok(())
    }

    /// A varint (at most 10 bytes).
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let (&byte, rest) = self.buf.split_first().ok_or(CodecError::Truncated)?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Malformed("varint"))
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Appends a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field key.
pub(crate) fn put_key(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

/// Appends a length-delimited field.
pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a `double` field (8 bytes, little-endian).
pub(crate) fn put_double_field(out: &mut Vec<u8>, number: u32, value: f64) {
    put_key(out, number, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a varint field.
pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_key(out, number, VARINT);
    put_varint(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX,
            (-1i64) as u64,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            Reader::new(&[0x80]).varint(),
            Err(CodecError::Truncated)
        ));
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        // Field 1, length 5, only 2 bytes.
        assert!(Reader::new(&[0x0a, 5, 1, 2]).next_field().is_err());
        // Field number 0.
        assert!(Reader::new(&[0x00, 1]).next_field().is_err());
        // Wire type 7.
        assert!(Reader::new(&[0x0f]).next_field().is_err());
        let mut r = Reader::new(&[0x08, 0x96, 0x01, 0x12, 0x01, b'x']);
        assert_eq!(r.next_field().unwrap(), Some((1, Value::Varint(150))));
        assert_eq!(r.next_field().unwrap(), Some((2, Value::Bytes(b"x"))));
        assert_eq!(r.next_field().unwrap(), None);
    }
}
