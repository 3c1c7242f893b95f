//! The packed request head (`request.head`): a table of lengths, then all
//! the text, read with one UTF-8 check.

use super::{ABSENT, PackError, Unpacker, len_u32, utf8};
use crate::request::Request;

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
        // Checked: on wasm32 nine lengths can overflow a usize. Each field's
        // end below is a partial sum of this one, so none overflows.
        let fields = lens
            .iter()
            .flatten()
            .try_fold(0usize, |sum, &n| sum.checked_add(n))
            .ok_or(PackError::Truncated(0))?;
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
            headers: table.block(header_text, text_at + fields)?.iter().collect(),
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
        Self::in_buffer(Vec::new(), headers, text)
    }

    /// [`Self::new`], written into `buf` (emptied first): a host that keeps
    /// its buffers packs one head after another without allocating.
    pub fn in_buffer(mut buf: Vec<u8>, headers: usize, text: usize) -> Self {
        let text_at = 4 * HEAD_FIELDS + 4 + 8 * headers;
        buf.clear();
        buf.reserve(text_at + text);
        buf.resize(text_at, 0);
        let count = len_u32(headers);
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
        // A slot past the table (more headers than announced) is not
        // written: `finish` then makes the head one that does not read.
        if at + 4 <= self.text_at {
            self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
        self.slot += 1;
    }

    fn text(&mut self, bytes: &[u8]) {
        self.len_slot(len_u32(bytes.len()));
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
        self.len_slot(len_u32(self.buf.len() - at));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
