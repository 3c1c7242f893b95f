//! The packed forms in which requests and decisions cross the component
//! boundary (`wit/warden.wit`, `request.head`, `decision.forward`,
//! `decision.reply`).
//!
//! A WIT record of strings costs one guest allocation (a call into the
//! guest's `cabi_realloc`) per string on the way in and one host allocation
//! plus one guest free per string on the way out. These forms carry the same
//! fields in one buffer each way, so that a request crosses in one copy and a
//! decision comes back in one (proxy-wasm passes header maps the same way,
//! for the same reason). Every host packs and unpacks them with the functions
//! here (the wasmtime host) or their line-for-line twin (`hosts/node`).
//!
//! The layout is built from two pieces:
//! - an **item**: a little-endian u32 length, then that many bytes; an absent
//!   optional item is the length `u32::MAX` alone;
//! - a **header block**: the number of headers, then each header's name and
//!   value lengths, all little-endian u32s, then every name's and value's
//!   bytes back to back (proxy-wasm's map layout, without its NULs).
//!
//! A request head is a table of lengths followed by all its text, so that the
//! guest checks the UTF-8 of the whole request in one pass (word at a time
//! over ASCII) and then only slices it: checking each short field on its own
//! was a fifth of a guest call. Text is UTF-8. Anything that does not read
//! this way is an error, never a guess: the guest answers such a request 400,
//! the host fails such a decision closed.

mod decision;
mod head;

pub use decision::{
    ForwardView, TextItems, pack_forward, pack_forward_ref, pack_reply, read_forward,
    unpack_forward, unpack_reply,
};
pub use head::{Beside, HeadBuilder, HeadField, RequestHead, head_field};

/// A buffer that is not in the packed form it was read as. The offset is
/// where the offending piece starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("text at byte {0} is not UTF-8")]
    NotUtf8(usize),
    #[error("unknown tag at byte {0}")]
    BadTag(usize),
    #[error("absent at byte {0}, where a value is required")]
    Absent(usize),
    #[error("extra bytes from byte {0}")]
    Trailing(usize),
}

/// The length that marks an absent optional item.
const ABSENT: u32 = u32::MAX;

/// Writes items and header blocks into one buffer.
#[derive(Debug, Default)]
pub struct Packer {
    buf: Vec<u8>,
}

impl Packer {
    /// A packer writing into `buf`, after what it holds.
    pub fn new(buf: Vec<u8>) -> Self {
        Packer { buf }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// An item.
    pub fn item(&mut self, bytes: &[u8]) {
        put_len(&mut self.buf, bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// An optional item.
    pub fn opt(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => self.item(b),
            None => self.buf.extend_from_slice(&ABSENT.to_le_bytes()),
        }
    }

    pub fn opt_text(&mut self, text: Option<&str>) {
        self.opt(text.map(str::as_bytes));
    }

    /// An item whose bytes `write` produces straight into the buffer.
    pub fn item_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self.buf);
        let n = len_u32(self.buf.len() - at - 4);
        self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }

    pub fn u8(&mut self, n: u8) {
        self.buf.push(n);
    }

    pub fn u16(&mut self, n: u16) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    pub fn u32(&mut self, n: u32) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// A header block as one item (its length, then the block).
    pub fn header_item<'h>(
        &mut self,
        headers: impl ExactSizeIterator<Item = (&'h str, &'h str)> + Clone,
    ) {
        self.item_with(|buf| write_headers(buf, headers));
    }
}

/// Reads items and header blocks, borrowing from the buffer.
#[derive(Debug, Clone)]
pub struct Unpacker<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Unpacker<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Unpacker { buf, at: 0 }
    }

    fn take(&mut self, n: usize, start: usize) -> Result<&'a [u8], PackError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(PackError::Truncated(start))?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn raw_u32(&mut self) -> Result<u32, PackError> {
        let b = self.take(4, self.at)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An optional item.
    pub fn opt(&mut self) -> Result<Option<&'a [u8]>, PackError> {
        let start = self.at;
        match self.raw_u32()? {
            ABSENT => Ok(None),
            n => self.take(n as usize, start).map(Some),
        }
    }

    /// An item that must be present.
    pub fn item(&mut self) -> Result<&'a [u8], PackError> {
        let start = self.at;
        self.opt()?.ok_or(PackError::Absent(start))
    }

    pub fn opt_text(&mut self) -> Result<Option<&'a str>, PackError> {
        let start = self.at;
        self.opt()?.map(|b| utf8(b, start)).transpose()
    }

    pub fn text(&mut self) -> Result<&'a str, PackError> {
        let start = self.at;
        utf8(self.item()?, start)
    }

    pub fn u8(&mut self) -> Result<u8, PackError> {
        Ok(self.take(1, self.at)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, PackError> {
        let b = self.take(2, self.at)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, PackError> {
        self.raw_u32()
    }

    /// A header block held in one item.
    pub fn header_item(&mut self) -> Result<HeaderBlock<'a>, PackError> {
        let start = self.at + 4;
        let block = self.item()?;
        HeaderBlock::read(block).map_err(|e| e.offset_by(start))
    }

    /// The bytes not read yet; the unpacker is then done.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.at..];
        self.at = self.buf.len();
        rest
    }

    /// Where the unpacker stands.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Every byte was read.
    pub fn finish(&self) -> Result<(), PackError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(PackError::Trailing(self.at))
        }
    }
}

fn utf8(bytes: &[u8], start: usize) -> Result<&str, PackError> {
    std::str::from_utf8(bytes).map_err(|_| PackError::NotUtf8(start))
}

impl PackError {
    fn offset_by(self, n: usize) -> PackError {
        match self {
            PackError::Truncated(at) => PackError::Truncated(at + n),
            PackError::NotUtf8(at) => PackError::NotUtf8(at + n),
            PackError::BadTag(at) => PackError::BadTag(at + n),
            PackError::Absent(at) => PackError::Absent(at + n),
            PackError::Trailing(at) => PackError::Trailing(at + n),
        }
    }
}

/// Pack headers as a header block.
pub fn pack_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h str), IntoIter: ExactSizeIterator + Clone>,
) -> Vec<u8> {
    let mut out = Vec::new();
    write_headers(&mut out, headers.into_iter());
    out
}

/// Append a header block: the count and the table of lengths, then the text.
fn write_headers<'h>(
    out: &mut Vec<u8>,
    headers: impl ExactSizeIterator<Item = (&'h str, &'h str)> + Clone,
) {
    let text: usize = headers.clone().map(|(n, v)| n.len() + v.len()).sum();
    out.reserve(4 + 8 * headers.len() + text);
    put_len(out, headers.len());
    for (name, value) in headers.clone() {
        put_len(out, name.len());
        put_len(out, value.len());
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
}

/// A length as written: over 4 GiB (which cannot come from a client:
/// servers cap heads at kilobytes, Warden bodies at megabytes) it is one the
/// buffer cannot hold, so that reading refuses it as truncated — closed,
/// never misread.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n)
        .ok()
        .filter(|&n| n != ABSENT)
        .unwrap_or(ABSENT - 1)
}

/// A length as a little-endian u32 ([`len_u32`]).
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&len_u32(n).to_le_bytes());
}

/// Read a header block, borrowing every name and value. Anything else — a
/// length past the end, bytes left over, text that is not UTF-8 — is an
/// error, so that a request is never decided on headers it did not send.
pub fn unpack_headers(block: &[u8]) -> Result<Vec<(&str, &str)>, PackError> {
    HeaderBlock::read(block).map(|headers| headers.iter().collect())
}

/// A header block that reads: every name and value checked, borrowed from
/// the buffer, so that going through them allocates nothing and cannot
/// fail (a host applies a forward's headers straight from the buffer the
/// guest returned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderBlock<'a> {
    /// The (name, value) length pairs, eight bytes each.
    pairs: &'a [u8],
    /// The names' and values' text, back to back, exactly as long as the
    /// lengths add up to; every length ends on a char boundary.
    text: &'a str,
}

impl<'a> HeaderBlock<'a> {
    /// Read a whole buffer as a header block ([`unpack_headers`]'s errors).
    pub fn read(block: &'a [u8]) -> Result<Self, PackError> {
        let mut r = Unpacker::new(block);
        let table = r.header_table()?;
        let text = utf8(r.rest(), table.text_at)?;
        table.block(text, table.text_at)
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.pairs.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The (name, value) pairs, in order.
    pub fn iter(&self) -> HeaderPairs<'a> {
        HeaderPairs {
            pairs: self.pairs.as_chunks::<8>().0.iter(),
            text: self.text,
        }
    }
}

/// The pairs of a [`HeaderBlock`].
#[derive(Debug, Clone)]
pub struct HeaderPairs<'a> {
    pairs: std::slice::Iter<'a, [u8; 8]>,
    /// The text not given out yet.
    text: &'a str,
}

impl<'a> Iterator for HeaderPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let pair = self.pairs.next()?;
        let [n0, n1, n2, n3, v0, v1, v2, v3] = *pair;
        let name_len = u32::from_le_bytes([n0, n1, n2, n3]) as usize;
        let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
        // Checked when the block was read: these splits always succeed.
        let (name, rest) = self.text.split_at_checked(name_len)?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        self.text = rest;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl ExactSizeIterator for HeaderPairs<'_> {}

/// A header block's table: where its lengths are, and where its text starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderTable<'a> {
    /// The (name, value) length pairs, eight bytes each.
    pairs: &'a [u8],
    /// The total of the lengths.
    text_len: usize,
    /// Offset of the text in the buffer read (for errors).
    text_at: usize,
}

impl<'a> Unpacker<'a> {
    /// A header block's count and lengths; its text must follow, exactly
    /// (checked when it is split).
    fn header_table(&mut self) -> Result<HeaderTable<'a>, PackError> {
        let start = self.at;
        let count = self.raw_u32()? as usize;
        let pairs = self.take(
            count.checked_mul(8).ok_or(PackError::Truncated(start))?,
            start,
        )?;
        let text_len = pairs
            .as_chunks::<4>()
            .0
            .iter()
            .try_fold(0usize, |sum, n| {
                sum.checked_add(u32::from_le_bytes(*n) as usize)
            })
            .ok_or(PackError::Truncated(start))?;
        Ok(HeaderTable {
            pairs,
            text_len,
            text_at: self.at,
        })
    }
}

impl<'a> HeaderTable<'a> {
    /// The block whose text is `text` (which must be exactly as long as the
    /// lengths say, each of them ending on a char boundary; `at`: its
    /// offset, for errors).
    fn block(self, text: &'a str, at: usize) -> Result<HeaderBlock<'a>, PackError> {
        if text.len() != self.text_len {
            let end = at + text.len().min(self.text_len);
            return Err(if text.len() < self.text_len {
                PackError::Truncated(end)
            } else {
                PackError::Trailing(end)
            });
        }
        let mut from = 0;
        for n in self.pairs.as_chunks::<4>().0 {
            let to = from + u32::from_le_bytes(*n) as usize;
            // A length that splits a character: not text this block sent.
            if !text.is_char_boundary(to) {
                return Err(PackError::NotUtf8(at + from));
            }
            from = to;
        }
        Ok(HeaderBlock {
            pairs: self.pairs,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_and_refuse_anything_else() {
        let headers = [("Host", "a"), ("x-empty", ""), ("", "no name"), ("é", "ü")];
        let block = pack_headers(headers);
        assert_eq!(unpack_headers(&block).unwrap(), headers);
        assert_eq!(unpack_headers(&pack_headers([])).unwrap(), []);
        assert_eq!(unpack_headers(&[]), Err(PackError::Truncated(0)));
        // Cut anywhere, or a byte more: an error.
        for cut in 0..block.len() {
            assert!(unpack_headers(&block[..cut]).is_err(), "{cut}");
        }
        let mut longer = block.clone();
        longer.push(b'x');
        assert_eq!(
            unpack_headers(&longer),
            Err(PackError::Trailing(block.len()))
        );
        let mut huge = pack_headers([("a", "b")]);
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(unpack_headers(&huge), Err(PackError::Truncated(0)));
        let mut bad = pack_headers([("ok", "v"), ("n", "v")]);
        let n = bad.len() - 2;
        bad[n] = 0xff;
        assert_eq!(unpack_headers(&bad), Err(PackError::NotUtf8(20)));
        // Lengths that split a character: refused, not misread.
        let mut split = pack_headers([("é", "")]);
        split[4..8].copy_from_slice(&1u32.to_le_bytes());
        split[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(unpack_headers(&split), Err(PackError::NotUtf8(12)));
    }

    #[test]
    fn item_with_writes_its_own_length() {
        let mut p = Packer::default();
        p.item_with(|buf| buf.extend_from_slice(b"127.0.0.1:80"));
        p.item(b"");
        let buf = p.into_inner();
        let mut r = Unpacker::new(&buf);
        assert_eq!(r.text(), Ok("127.0.0.1:80"));
        assert_eq!(r.item(), Ok(&b""[..]));
        assert_eq!(r.finish(), Ok(()));
    }
}
