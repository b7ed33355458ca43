//! Protobuf wire format reading: varints, keys, length-delimited fields.
//! Everything is bounds-checked; malformed input is an error, never a panic.

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const START_GROUP: u8 = 3;
pub const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

/// A field value as read off the wire.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
    /// A (deprecated, skipped) group.
    Group,
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| "truncated field".to_string())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field key: (field number, wire type).
    pub fn key(&mut self) -> Result<(u32, u8), String> {
        let k = self.varint()?;
        let tag = k >> 3;
        if tag == 0 || tag > 0x1fff_ffff {
            return Err(format!("invalid field number {tag}"));
        }
        Ok((tag as u32, (k & 7) as u8))
    }

    /// The value of a field of wire type `wt` (groups are skipped).
    pub fn value(&mut self, tag: u32, wt: u8) -> Result<Raw<'a>, String> {
        match wt {
            VARINT => Ok(Raw::Varint(self.varint()?)),
            FIXED64 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(Raw::Fixed64(u64::from_le_bytes(a)))
            }
            FIXED32 => {
                // no Kubernetes field is fixed32: only skipped
                self.take(4)?;
                Ok(Raw::Fixed32)
            }
            LEN => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| "truncated field".to_string())?;
                Ok(Raw::Bytes(self.take(n)?))
            }
            START_GROUP => {
                self.skip_group(tag)?;
                Ok(Raw::Group)
            }
            END_GROUP => Err("unexpected end group".into()),
            _ => Err(format!("invalid wire type {wt}")),
        }
    }

    /// Skips a (deprecated) group up to its matching end-group key.
    fn skip_group(&mut self, tag: u32) -> Result<(), String> {
        // Nested groups are tracked by a stack of tags, not recursion.
        let mut open = vec![tag];
        while let Some(&top) = open.last() {
            if self.at_end() {
                return Err("truncated group".into());
            }
            let (t, wt) = self.key()?;
            match wt {
                START_GROUP => {
                    if open.len() >= 64 {
                        return Err("groups nested too deeply".into());
                    }
                    open.push(t);
                }
                END_GROUP => {
                    if t != top {
                        return Err("mismatched end group".into());
                    }
                    open.pop();
                }
                _ => {
                    self.value(t, wt)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0]).varint().unwrap(), 0);
        assert_eq!(Reader::new(&[0x96, 0x01]).varint().unwrap(), 150);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint().unwrap(), u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
    }

    #[test]
    fn lengths_are_bounds_checked() {
        // field 1, LEN, length 5 but only 2 bytes follow
        let mut r = Reader::new(&[0x0a, 0x05, b'a', b'b']);
        let (t, wt) = r.key().unwrap();
        assert!(r.value(t, wt).is_err());
        // a huge length must not overflow
        let mut r = Reader::new(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        let (t, wt) = r.key().unwrap();
        assert!(r.value(t, wt).is_err());
    }

    #[test]
    fn groups_are_skipped() {
        // field 2 start group, field 1 varint 5, field 2 end group, field 3 varint 7
        let buf = [0x13, 0x08, 0x05, 0x14, 0x18, 0x07];
        let mut r = Reader::new(&buf);
        let (t, wt) = r.key().unwrap();
        assert!(matches!(r.value(t, wt).unwrap(), Raw::Group));
        let (t, wt) = r.key().unwrap();
        assert_eq!(t, 3);
        assert!(matches!(r.value(t, wt).unwrap(), Raw::Varint(7)));
        assert!(r.at_end());
        // unterminated group
        let mut r = Reader::new(&[0x13, 0x08, 0x05]);
        let (t, wt) = r.key().unwrap();
        assert!(r.value(t, wt).is_err());
    }
}
