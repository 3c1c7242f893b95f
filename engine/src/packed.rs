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

use crate::request::{Forward, Reply, Request};
use crate::upstream::{HttpUpstream, Upstream};

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

    fn len(&mut self, n: usize) {
        // Over 4 GiB cannot come from a client (servers cap heads at
        // kilobytes and Warden bodies at megabytes): write a length the
        // buffer does not have, so that reading refuses it as truncated —
        // closed, never misread.
        let n = u32::try_from(n).ok().filter(|&n| n != ABSENT);
        self.buf
            .extend_from_slice(&n.unwrap_or(ABSENT - 1).to_le_bytes());
    }

    /// An item.
    pub fn item(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
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

    /// An item whose bytes `write` produces (formatting straight into the
    /// buffer, e.g. a socket address, without a string of its own).
    pub fn item_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self.buf);
        let n = self.buf.len() - at - 4;
        let n = u32::try_from(n).ok().filter(|&n| n != ABSENT);
        self.buf[at..at + 4].copy_from_slice(&n.unwrap_or(ABSENT - 1).to_le_bytes());
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

    /// A header block held in one item, as (name, value) pairs.
    pub fn header_item(&mut self) -> Result<Vec<(&'a str, &'a str)>, PackError> {
        let start = self.at + 4;
        let block = self.item()?;
        unpack_headers(block).map_err(|e| e.offset_by(start))
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

/// A length as a little-endian u32; one over 4 GiB as one the buffer cannot
/// hold, so that reading refuses it.
fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).ok().filter(|&n| n != ABSENT);
    out.extend_from_slice(&n.unwrap_or(ABSENT - 1).to_le_bytes());
}

/// Read a header block, borrowing every name and value. Anything else — a
/// length past the end, bytes left over, text that is not UTF-8 — is an
/// error, so that a request is never decided on headers it did not send.
pub fn unpack_headers(block: &[u8]) -> Result<Vec<(&str, &str)>, PackError> {
    let mut r = Unpacker::new(block);
    let lens = r.header_table()?;
    let text = utf8(r.rest(), lens.text_at)?;
    let headers = lens.split(text, lens.text_at)?;
    Ok(headers)
}

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

impl HeaderTable<'_> {
    /// The headers, sliced out of `text` (which must be exactly as long as
    /// the lengths say; `at`: its offset, for errors).
    fn split<'t>(&self, text: &'t str, at: usize) -> Result<Vec<(&'t str, &'t str)>, PackError> {
        if text.len() != self.text_len {
            let end = at + text.len().min(self.text_len);
            return Err(if text.len() < self.text_len {
                PackError::Truncated(end)
            } else {
                PackError::Trailing(end)
            });
        }
        let mut headers = Vec::with_capacity(self.pairs.len() / 8);
        let mut from = 0;
        let mut next = |n: &[u8; 4]| -> Result<&'t str, PackError> {
            let to = from + u32::from_le_bytes(*n) as usize;
            // A length that splits a character: not text this block sent.
            let piece = text.get(from..to).ok_or(PackError::NotUtf8(at + from))?;
            from = to;
            Ok(piece)
        };
        for pair in self.pairs.as_chunks::<8>().0 {
            let (name, value) = pair.split_at(4);
            let name = next(name.try_into().map_err(|_| PackError::Truncated(at))?)?;
            let value = next(value.try_into().map_err(|_| PackError::Truncated(at))?)?;
            headers.push((name, value));
        }
        Ok(headers)
    }
}

/// The number of text fields a head has before its headers.
const HEAD_FIELDS: usize = 9;

/// A request's head as `request.head` carries it: the lengths of its nine
/// text fields — method, scheme, authority, path, query, then the optional
/// route, service, peer and trusted user (`u32::MAX`: absent) — and its
/// headers' table (as a header block has it), all little-endian u32s; then
/// all the text back to back: the fields', then the headers'. The body, the
/// flags and the `fetch` answer cross beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub route: Option<&'a str>,
    pub service: Option<&'a str>,
    pub peer: Option<&'a str>,
    pub trusted_user: Option<&'a str>,
    /// The headers, in arrival order.
    pub headers: Vec<(&'a str, &'a str)>,
}

impl<'a> RequestHead<'a> {
    /// Read a packed head: one UTF-8 check over all of its text, then
    /// slices of it.
    pub fn unpack(buf: &'a [u8]) -> Result<Self, PackError> {
        let mut r = Unpacker::new(buf);
        let mut lens = [None; HEAD_FIELDS];
        for len in &mut lens {
            *len = match r.raw_u32()? {
                ABSENT => None,
                n => Some(n as usize),
            };
        }
        let table = r.header_table()?;
        let fields: usize = lens.iter().flatten().sum();
        let text_at = r.offset();
        let text = utf8(r.rest(), text_at)?;
        let (field_text, header_text) = text
            .split_at_checked(fields.min(text.len()))
            .ok_or(PackError::NotUtf8(text_at))?;
        if field_text.len() < fields {
            return Err(PackError::Truncated(buf.len()));
        }
        let mut from = 0;
        let mut field = |len: Option<usize>| -> Result<Option<&'a str>, PackError> {
            let Some(len) = len else { return Ok(None) };
            let piece = field_text
                .get(from..from + len)
                .ok_or(PackError::NotUtf8(text_at + from))?;
            from += len;
            Ok(Some(piece))
        };
        let required = |f: Option<&'a str>, k: usize| f.ok_or(PackError::Absent(4 * k));
        let [m, sc, au, pa, qu, ro, se, pe, tu] = lens;
        Ok(RequestHead {
            method: required(field(m)?, 0)?,
            scheme: required(field(sc)?, 1)?,
            authority: required(field(au)?, 2)?,
            path: required(field(pa)?, 3)?,
            query: required(field(qu)?, 4)?,
            route: field(ro)?,
            service: field(se)?,
            peer: field(pe)?,
            trusted_user: field(tu)?,
            headers: table.split(header_text, text_at + fields)?,
        })
    }

    /// This head, packed.
    pub fn pack(&self) -> Vec<u8> {
        let mut b = HeadBuilder::new(self.headers.len(), 0);
        for field in [
            self.method,
            self.scheme,
            self.authority,
            self.path,
            self.query,
        ] {
            b.field(Some(field.as_bytes()));
        }
        for field in [self.route, self.service, self.peer, self.trusted_user] {
            b.field(field.map(str::as_bytes));
        }
        for (name, value) in &self.headers {
            b.header(name, value);
        }
        b.finish()
    }

    /// The engine's request: these fields and headers, and what crosses
    /// beside the head.
    pub fn request(&'a self, beside: Beside<'a>) -> Request<'a> {
        Request {
            method: self.method,
            scheme: self.scheme,
            proxy_terminated: beside.proxy_terminated,
            authority: self.authority,
            path: self.path,
            query: self.query,
            headers: &self.headers,
            body: beside.body,
            route: self.route,
            service: self.service,
            peer: self.peer,
            trusted_user: self.trusted_user,
            keys_refreshed: beside.keys_refreshed,
            fetched: beside.fetched,
        }
    }
}

/// One of a head's nine text fields, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadField {
    Method,
    Scheme,
    Authority,
    Path,
    Query,
    Route,
    Service,
    Peer,
    TrustedUser,
}

/// One field of a packed head, read without reading the rest (no
/// allocation: for a host's logs and routing). `None` when absent, or when
/// `head` does not read there.
pub fn head_field(head: &[u8], field: HeadField) -> Option<&str> {
    let len = |i: usize| -> Option<u32> {
        let b = head.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = len(HEAD_FIELDS)? as usize;
    let mut at = (4 * HEAD_FIELDS + 4).checked_add(count.checked_mul(8)?)?;
    for i in 0..field as usize {
        at = at.checked_add(len(i).filter(|&n| n != ABSENT).unwrap_or(0) as usize)?;
    }
    let n = len(field as usize).filter(|&n| n != ABSENT)? as usize;
    std::str::from_utf8(head.get(at..at.checked_add(n)?)?).ok()
}

/// Writes a packed head in one buffer, table first: the nine fields in
/// order, then exactly the number of headers announced.
#[derive(Debug)]
pub struct HeadBuilder {
    buf: Vec<u8>,
    /// The next length slot to fill.
    slot: usize,
    /// Where the table ends and the text starts.
    text_at: usize,
}

impl HeadBuilder {
    /// A head of `headers` headers and about `text` bytes of text.
    pub fn new(headers: usize, text: usize) -> Self {
        let text_at = 4 * HEAD_FIELDS + 4 + 8 * headers;
        let mut buf = Vec::with_capacity(text_at + text);
        buf.resize(text_at, 0);
        let count = u32::try_from(headers).unwrap_or(ABSENT - 1);
        buf[4 * HEAD_FIELDS..4 * HEAD_FIELDS + 4].copy_from_slice(&count.to_le_bytes());
        HeadBuilder {
            buf,
            slot: 0,
            text_at,
        }
    }

    fn len_slot(&mut self, n: u32) {
        let at = if self.slot < HEAD_FIELDS {
            4 * self.slot
        } else {
            4 * self.slot + 4
        };
        if let Some(slot) = self
            .buf
            .get_mut(at..at + 4)
            .filter(|_| at + 4 <= self.text_at)
        {
            slot.copy_from_slice(&n.to_le_bytes());
        }
        self.slot += 1;
    }

    fn text(&mut self, bytes: &[u8]) {
        let n = u32::try_from(bytes.len()).ok().filter(|&n| n != ABSENT);
        self.len_slot(n.unwrap_or(ABSENT - 1));
        self.buf.extend_from_slice(bytes);
    }

    /// The next of the nine fields (`None`: absent).
    pub fn field(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => self.text(b),
            None => self.len_slot(ABSENT),
        }
    }

    /// The next field, formatted straight into the buffer (a socket
    /// address, say, without a string of its own).
    pub fn field_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        write(&mut self.buf);
        let n = u32::try_from(self.buf.len() - at)
            .ok()
            .filter(|&n| n != ABSENT);
        self.len_slot(n.unwrap_or(ABSENT - 1));
    }

    /// The next header (after the nine fields).
    pub fn header(&mut self, name: &str, value: &str) {
        self.text(name.as_bytes());
        self.text(value.as_bytes());
    }

    /// The packed head. Fields or headers fewer or more than announced make
    /// a head that does not read (closed, never misread).
    pub fn finish(mut self) -> Vec<u8> {
        let slots = (self.text_at - 4) / 4;
        if self.slot != slots {
            self.buf.truncate(self.text_at.saturating_sub(1));
        }
        self.buf
    }
}

/// What crosses beside a packed head (WIT `request`'s other fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct Beside<'a> {
    pub body: Option<&'a [u8]>,
    pub proxy_terminated: bool,
    pub keys_refreshed: bool,
    pub fetched: Option<crate::request::Fetched<'a>>,
}

/// Upstream tags in a packed forward.
const NO_UPSTREAM: u8 = 0;
const ECHO: u8 = 1;
const HTTP: u8 = 2;
const H2C: u8 = 3;

/// `decision.forward`: the optional items consumer, route, path, query and
/// body; the upstream as a tag byte (0 none, 1 echo, 2 http, 3 h2c) and,
/// for http and h2c, the items authority and base path; the headers to set
/// as a header block in one item; the number of headers to remove as a
/// little-endian u32, then their names, one item each. Nothing follows.
pub fn pack_forward(f: &Forward) -> Vec<u8> {
    let mut p = Packer::new(Vec::with_capacity(forward_size(f)));
    for field in [&f.consumer, &f.route, &f.path, &f.query] {
        p.opt_text(field.as_deref());
    }
    p.opt(f.body.as_deref());
    match &f.upstream {
        None => p.u8(NO_UPSTREAM),
        Some(Upstream::Echo) => p.u8(ECHO),
        Some(Upstream::Http(h)) | Some(Upstream::H2c(h)) => {
            p.u8(if matches!(f.upstream, Some(Upstream::Http(_))) {
                HTTP
            } else {
                H2C
            });
            p.item(h.authority.as_bytes());
            p.item(h.base_path.as_bytes());
        }
    }
    p.header_item(f.set_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    p.u32(u32::try_from(f.remove_headers.len()).unwrap_or(u32::MAX));
    for name in &f.remove_headers {
        p.item(name.as_bytes());
    }
    p.into_inner()
}

fn forward_size(f: &Forward) -> usize {
    let opt = |s: Option<usize>| 4 + s.unwrap_or(0);
    let upstream = match &f.upstream {
        Some(Upstream::Http(h)) | Some(Upstream::H2c(h)) => {
            8 + h.authority.len() + h.base_path.len()
        }
        _ => 0,
    };
    [&f.consumer, &f.route, &f.path, &f.query]
        .iter()
        .map(|s| opt(s.as_ref().map(String::len)))
        .sum::<usize>()
        + opt(f.body.as_ref().map(Vec::len))
        + 1
        + upstream
        + 12
        + f.set_headers
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>()
        + f.remove_headers.iter().map(|n| 4 + n.len()).sum::<usize>()
}

/// Read a [`pack_forward`] buffer.
pub fn unpack_forward(buf: &[u8]) -> Result<Forward, PackError> {
    let mut r = Unpacker::new(buf);
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let consumer = owned(r.opt_text()?);
    let route = owned(r.opt_text()?);
    let path = owned(r.opt_text()?);
    let query = owned(r.opt_text()?);
    let body = r.opt()?.map(<[u8]>::to_vec);
    let tag_at = r.offset();
    let upstream = match r.u8()? {
        NO_UPSTREAM => None,
        ECHO => Some(Upstream::Echo),
        tag @ (HTTP | H2C) => {
            let h = HttpUpstream {
                authority: r.text()?.to_owned(),
                base_path: r.text()?.to_owned(),
            };
            Some(if tag == HTTP {
                Upstream::Http(h)
            } else {
                Upstream::H2c(h)
            })
        }
        _ => return Err(PackError::BadTag(tag_at)),
    };
    let set_headers = owned_pairs(r.header_item()?);
    let count = r.u32()?;
    // Each name takes at least four bytes: a count the buffer cannot hold
    // is refused before anything is reserved for it.
    if count as usize > buf.len() / 4 {
        return Err(PackError::Truncated(r.offset() - 4));
    }
    let mut remove_headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        remove_headers.push(r.text()?.to_owned());
    }
    r.finish()?;
    Ok(Forward {
        set_headers,
        remove_headers,
        consumer,
        route,
        upstream,
        path,
        query,
        body,
    })
}

/// `decision.reply`: the status as a little-endian u16, the items reason
/// and body, and the headers as a header block in one item. Nothing
/// follows.
pub fn pack_reply(reply: &Reply) -> Vec<u8> {
    let size = 2
        + 16
        + reply.reason.len()
        + reply.body.len()
        + reply
            .headers
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>();
    let mut p = Packer::new(Vec::with_capacity(size));
    p.u16(reply.status);
    p.item(reply.reason.as_bytes());
    p.item(&reply.body);
    p.header_item(reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    p.into_inner()
}

/// Read a [`pack_reply`] buffer.
pub fn unpack_reply(buf: &[u8]) -> Result<Reply, PackError> {
    let mut r = Unpacker::new(buf);
    let status = r.u16()?;
    let reason = r.text()?.to_owned();
    let body = r.item()?.to_vec();
    let headers = r.header_item()?;
    r.finish()?;
    Ok(Reply {
        status,
        headers: owned_pairs(headers),
        body,
        reason,
    })
}

fn owned_pairs(pairs: Vec<(&str, &str)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
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

    fn head() -> RequestHead<'static> {
        RequestHead {
            method: "GET",
            scheme: "https",
            authority: "api.example.com:8443",
            path: "/a/ü",
            query: "",
            route: None,
            service: Some("svc"),
            peer: Some("127.0.0.1:5"),
            trusted_user: Some(""),
            headers: vec![("authorization", "Bearer x"), ("x", ""), ("é", "ü")],
        }
    }

    #[test]
    fn request_heads_round_trip_and_every_cut_is_refused() {
        let head = head();
        let packed = head.pack();
        assert_eq!(RequestHead::unpack(&packed), Ok(head.clone()));
        for cut in 0..packed.len() {
            assert!(RequestHead::unpack(&packed[..cut]).is_err(), "{cut}");
        }
        let mut longer = packed.clone();
        longer.push(b'x');
        assert!(matches!(
            RequestHead::unpack(&longer),
            Err(PackError::Trailing(_))
        ));
        // A required field absent, or text not UTF-8.
        let mut absent = packed.clone();
        absent[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RequestHead::unpack(&absent).is_err());
        let mut bad = packed.clone();
        let n = bad.len() - 1;
        bad[n] = 0xff;
        assert!(matches!(
            RequestHead::unpack(&bad),
            Err(PackError::NotUtf8(_))
        ));
        // The builder: a field formatted in place; the wrong number of
        // headers makes a head that does not read.
        for (field, want) in [
            (HeadField::Method, Some("GET")),
            (HeadField::Path, Some("/a/ü")),
            (HeadField::Route, None),
            (HeadField::Service, Some("svc")),
            (HeadField::TrustedUser, Some("")),
        ] {
            assert_eq!(head_field(&packed, field), want, "{field:?}");
        }
        assert_eq!(head_field(&packed[..20], HeadField::Method), None);
        let mut b = HeadBuilder::new(1, 0);
        for f in ["GET", "http", "h", "/", ""] {
            b.field(Some(f.as_bytes()));
        }
        b.field(None);
        b.field(None);
        b.field_with(|buf| buf.extend_from_slice(b"1.2.3.4:5"));
        b.field(None);
        b.header("a", "b");
        let built = b.finish();
        let built = RequestHead::unpack(&built).unwrap();
        assert_eq!(
            (built.peer, &built.headers[..]),
            (Some("1.2.3.4:5"), &[("a", "b")][..])
        );
        for announced in [0, 2] {
            let mut b = HeadBuilder::new(announced, 0);
            for _ in 0..9 {
                b.field(Some(b"x"));
            }
            b.header("a", "b");
            assert!(RequestHead::unpack(&b.finish()).is_err(), "{announced}");
        }
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

    fn forwards() -> Vec<Forward> {
        let http = HttpUpstream {
            authority: "up:80".into(),
            base_path: "/base".into(),
        };
        vec![
            Forward::default(),
            Forward {
                set_headers: vec![("x-mse-consumer".into(), "consumer1".into())],
                remove_headers: vec!["authorization".into(), "".into()],
                consumer: Some("consumer1".into()),
                route: Some("a".into()),
                upstream: Some(Upstream::Http(http.clone())),
                path: Some("/".into()),
                query: Some("".into()),
                body: Some(b"x=1".to_vec()),
            },
            Forward {
                upstream: Some(Upstream::H2c(http)),
                ..Forward::default()
            },
            Forward {
                upstream: Some(Upstream::Echo),
                body: Some(Vec::new()),
                ..Forward::default()
            },
        ]
    }

    #[test]
    fn forwards_round_trip_and_every_cut_or_extra_byte_is_refused() {
        for f in forwards() {
            let packed = pack_forward(&f);
            assert_eq!(packed.len(), forward_size(&f), "{f:?}");
            assert_eq!(unpack_forward(&packed), Ok(f.clone()));
            for cut in 0..packed.len() {
                assert!(unpack_forward(&packed[..cut]).is_err(), "{cut} {f:?}");
            }
            let mut longer = packed.clone();
            longer.push(0);
            assert_eq!(
                unpack_forward(&longer),
                Err(PackError::Trailing(packed.len()))
            );
        }
        let mut many = pack_forward(&Forward::default());
        let n = many.len();
        many[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(unpack_forward(&many), Err(PackError::Truncated(n - 4)));
        let mut bad_tag = pack_forward(&Forward::default());
        bad_tag[20] = 9;
        assert_eq!(unpack_forward(&bad_tag), Err(PackError::BadTag(20)));
    }

    #[test]
    fn replies_round_trip_and_every_cut_or_extra_byte_is_refused() {
        let reply = Reply {
            status: 401,
            headers: vec![
                ("www-authenticate".into(), "Bearer".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"error":"invalid_token"}"#.to_vec(),
            reason: "token expired".into(),
        };
        let packed = pack_reply(&reply);
        assert_eq!(unpack_reply(&packed), Ok(reply.clone()));
        for cut in 0..packed.len() {
            assert!(unpack_reply(&packed[..cut]).is_err(), "{cut}");
        }
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(
            unpack_reply(&longer),
            Err(PackError::Trailing(packed.len()))
        );
    }
}
