//! Varints (LEB128) and a bounds-checked reader over them, shared by the packed text state
//! (`rga/pack.rs`) and the compact history (`document/log_codec.rs`).

/// The error of a read past the end of the data.
pub(crate) const ENDS_EARLY: &str = "data ends early";

pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub at: usize,
}

impl Reader<'_> {
    pub fn varint(&mut self) -> Result<u64, &'static str> {
        if let Some(&b) = self.buf.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(b as u64);
            }
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or(ENDS_EARLY)?;
            self.at += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    pub fn u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.varint()?).map_err(|_| "number out of range")
    }

    pub fn usize(&mut self) -> Result<usize, &'static str> {
        usize::try_from(self.varint()?).map_err(|_| "number out of range")
    }

    /// A count of things still to read: never more than the bytes left, so a lying count
    /// cannot make us reserve memory.
    pub fn count(&mut self) -> Result<usize, &'static str> {
        let n = self.varint()?;
        if n > (self.buf.len() - self.at) as u64 {
            return Err("count larger than the data");
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self, len: usize) -> Result<&[u8], &'static str> {
        let end = self.at.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or(ENDS_EARLY)?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    /// True once every byte has been read.
    pub fn at_end(&self) -> bool {
        self.at == self.buf.len()
    }
}

/// Zigzag: small signed numbers as small unsigned ones (0, -1, 1, -2 → 0, 1, 2, 3).
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
