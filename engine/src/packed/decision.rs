//! The packed forward and reply (`decision.forward`, `decision.reply`).

use super::{PackError, Packer, Unpacker};
use crate::request::{Forward, Reply};
use crate::upstream::{HttpUpstream, Upstream};

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
