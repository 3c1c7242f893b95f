//! The packed forward and reply (`decision.forward`, `decision.reply`).

use super::{HeaderBlock, PackError, Packer, Unpacker};
use crate::request::{Forward, ForwardRef, Reply};
use crate::upstream::{HttpUpstreamRef, Upstream, UpstreamRef};

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
    pack(&Parts {
        consumer: f.consumer.as_deref(),
        route: f.route.as_deref(),
        path: f.path.as_deref(),
        query: f.query.as_deref(),
        body: f.body.as_deref(),
        upstream: f.upstream.as_ref().map(Upstream::borrowed),
        set: f.set_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        remove: f.remove_headers.iter().map(String::as_str),
    })
}

/// [`pack_forward`] of the evaluator's borrowing form: the same bytes.
pub fn pack_forward_ref(f: &ForwardRef<'_>) -> Vec<u8> {
    pack(&Parts {
        consumer: f.consumer.as_deref(),
        route: f.route,
        path: f.path.as_deref(),
        query: f.query.as_deref(),
        body: f.body.as_deref(),
        upstream: f.upstream,
        set: f.set_headers.iter().map(|(n, v)| (&**n, &**v)),
        remove: f.remove_headers.iter().map(|n| &**n),
    })
}

/// What a packed forward holds, from either form.
struct Parts<'a, S, R> {
    consumer: Option<&'a str>,
    route: Option<&'a str>,
    path: Option<&'a str>,
    query: Option<&'a str>,
    body: Option<&'a [u8]>,
    upstream: Option<UpstreamRef<'a>>,
    set: S,
    remove: R,
}

fn pack<'a, S, R>(f: &Parts<'a, S, R>) -> Vec<u8>
where
    S: ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
    R: ExactSizeIterator<Item = &'a str> + Clone,
{
    let mut p = Packer::new(Vec::with_capacity(forward_size(f)));
    for field in [f.consumer, f.route, f.path, f.query] {
        p.opt_text(field);
    }
    p.opt(f.body);
    match f.upstream {
        None => p.u8(NO_UPSTREAM),
        Some(UpstreamRef::Echo) => p.u8(ECHO),
        Some(UpstreamRef::Http(h)) | Some(UpstreamRef::H2c(h)) => {
            p.u8(if matches!(f.upstream, Some(UpstreamRef::Http(_))) {
                HTTP
            } else {
                H2C
            });
            p.item(h.authority.as_bytes());
            p.item(h.base_path.as_bytes());
        }
    }
    p.header_item(f.set.clone());
    p.u32(u32::try_from(f.remove.len()).unwrap_or(u32::MAX));
    for name in f.remove.clone() {
        p.item(name.as_bytes());
    }
    p.into_inner()
}

fn forward_size<'a, S, R>(f: &Parts<'a, S, R>) -> usize
where
    S: ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
    R: ExactSizeIterator<Item = &'a str> + Clone,
{
    let opt = |s: Option<usize>| 4 + s.unwrap_or(0);
    let upstream = match f.upstream {
        Some(UpstreamRef::Http(h)) | Some(UpstreamRef::H2c(h)) => {
            8 + h.authority.len() + h.base_path.len()
        }
        _ => 0,
    };
    [f.consumer, f.route, f.path, f.query]
        .iter()
        .map(|s| opt(s.map(str::len)))
        .sum::<usize>()
        + opt(f.body.map(<[u8]>::len))
        + 1
        + upstream
        + 12
        + f.set
            .clone()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>()
        + f.remove.clone().map(|n| 4 + n.len()).sum::<usize>()
}

/// A packed forward, read in place: every item checked, every text
/// borrowed from the buffer. A host applies it to the request it forwards
/// without copying it into owned strings ([`ForwardView::to_forward`] makes
/// the engine's [`Forward`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardView<'a> {
    pub consumer: Option<&'a str>,
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
    pub query: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    /// `None`: the policy does not route (the host's default).
    pub upstream: Option<UpstreamRef<'a>>,
    pub set_headers: HeaderBlock<'a>,
    pub remove_headers: TextItems<'a>,
}

/// Items of text, one after another, each checked when they were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextItems<'a> {
    count: usize,
    /// Exactly the `count` items.
    items: &'a [u8],
}

impl<'a> TextItems<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The texts, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + use<'a> {
        let mut r = Unpacker::new(self.items);
        // Each item was read as text before: `text` cannot fail here.
        (0..self.count).map(move |_| r.text().unwrap_or_default())
    }
}

/// Read a [`pack_forward`] buffer in place.
pub fn read_forward(buf: &[u8]) -> Result<ForwardView<'_>, PackError> {
    let mut r = Unpacker::new(buf);
    let consumer = r.opt_text()?;
    let route = r.opt_text()?;
    let path = r.opt_text()?;
    let query = r.opt_text()?;
    let body = r.opt()?;
    let tag_at = r.offset();
    let upstream = match r.u8()? {
        NO_UPSTREAM => None,
        ECHO => Some(UpstreamRef::Echo),
        tag @ (HTTP | H2C) => {
            let h = HttpUpstreamRef {
                authority: r.text()?,
                base_path: r.text()?,
            };
            Some(if tag == HTTP {
                UpstreamRef::Http(h)
            } else {
                UpstreamRef::H2c(h)
            })
        }
        _ => return Err(PackError::BadTag(tag_at)),
    };
    let set_headers = r.header_item()?;
    let count = r.u32()? as usize;
    let items_at = r.offset();
    // Each name takes at least four bytes: a count the buffer cannot hold
    // is refused where it stands.
    if count > buf.len() / 4 {
        return Err(PackError::Truncated(items_at - 4));
    }
    for _ in 0..count {
        r.text()?;
    }
    r.finish()?;
    Ok(ForwardView {
        consumer,
        route,
        path,
        query,
        body,
        upstream,
        set_headers,
        remove_headers: TextItems {
            count,
            items: &buf[items_at..],
        },
    })
}

impl ForwardView<'_> {
    /// The engine's owned [`Forward`].
    pub fn to_forward(&self) -> Forward {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Forward {
            set_headers: owned_pairs(self.set_headers),
            remove_headers: self.remove_headers.iter().map(str::to_owned).collect(),
            consumer: owned(self.consumer),
            route: owned(self.route),
            upstream: self.upstream.map(UpstreamRef::to_upstream),
            path: owned(self.path),
            query: owned(self.query),
            body: self.body.map(<[u8]>::to_vec),
        }
    }
}

/// Read a [`pack_forward`] buffer into an owned [`Forward`].
pub fn unpack_forward(buf: &[u8]) -> Result<Forward, PackError> {
    read_forward(buf).map(|view| view.to_forward())
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

fn owned_pairs(headers: HeaderBlock<'_>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::HttpUpstream;

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

    fn borrowing(f: &Forward) -> ForwardRef<'_> {
        ForwardRef {
            set_headers: f
                .set_headers
                .iter()
                .map(|(n, v)| (n.as_str().into(), v.as_str().into()))
                .collect(),
            remove_headers: f.remove_headers.iter().map(|n| n.as_str().into()).collect(),
            consumer: f.consumer.as_deref().map(Into::into),
            route: f.route.as_deref(),
            upstream: f.upstream.as_ref().map(Upstream::borrowed),
            path: f.path.as_deref().map(Into::into),
            query: f.query.as_deref().map(Into::into),
            body: f.body.as_deref().map(Into::into),
        }
    }

    #[test]
    fn forwards_round_trip_and_every_cut_or_extra_byte_is_refused() {
        for f in forwards() {
            let packed = pack_forward(&f);
            assert_eq!(packed.capacity(), packed.len(), "{f:?}");
            assert_eq!(unpack_forward(&packed), Ok(f.clone()));
            // The evaluator's borrowing form packs to the same bytes.
            assert_eq!(pack_forward_ref(&borrowing(&f)), packed, "{f:?}");
            assert_eq!(borrowing(&f).to_forward(), f);
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
