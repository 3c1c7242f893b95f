//! Synthetic policies of any size, for benchmarks and scale tests.
//!
//! `policy(n)` declares `n` consumers `c0…`, `n` routes `r0…` (path prefix
//! `/rK`) and `2n` rules: rule `K` lets consumer `cK` reach route `rK`, and
//! another lets `cK` reach the hosts under `*.dK.example.com`. The last
//! consumer's credentials are `id-{n-1}` / `secret-{n-1}`.

use std::fmt::Write as _;

/// A policy with `n` consumers, `n` routes, `n` route rules and `n` domain rules.
pub fn policy(n: usize) -> String {
    let mut s = String::with_capacity(n * 200);
    s.push_str("global_auth false\n");
    for k in 0..n {
        let _ = writeln!(
            s,
            "consumer c{k} {{ client_id id-{k}; client_secret secret-{k} }}"
        );
    }
    for k in 0..n {
        let _ = writeln!(s, "route r{k} {{ path_prefix /r{k} }}");
    }
    for k in 0..n {
        let _ = writeln!(s, "rule {{ match route [r{k}]; allow [c{k}] }}");
        let _ = writeln!(
            s,
            "rule {{ match domain [\"*.d{k}.example.com\"]; allow [c{k}] }}"
        );
    }
    s
}

/// What the benchmarks ask of `policy(n)`: the last consumer, route and
/// domain — the worst case for any scan — with the headers of a realistic
/// request ([`crate::fixtures::realistic_headers`], no token).
#[derive(Debug, Clone)]
pub struct LastRule {
    pub consumer: String,
    pub route: String,
    pub path: String,
    pub domain: String,
    pub headers: Vec<(String, String)>,
}

impl LastRule {
    pub fn of(n: usize) -> Self {
        let last = n.saturating_sub(1);
        LastRule {
            consumer: format!("c{last}"),
            route: format!("r{last}"),
            path: format!("/r{last}/items"),
            domain: format!("api.d{last}.example.com"),
            headers: crate::fixtures::realistic_headers(None),
        }
    }

    /// `GET` of the last route's path (at `gw.example.org`) and of `/items`
    /// at a host under the last domain, with `headers` (see
    /// [`crate::fixtures::pairs`] of [`Self::headers`]).
    pub fn requests<'a>(
        &'a self,
        headers: &'a [(&'a str, &'a str)],
    ) -> (crate::Request<'a>, crate::Request<'a>) {
        let get = |authority, path| crate::Request {
            method: "GET",
            authority,
            path,
            headers,
            ..Default::default()
        };
        (
            get("gw.example.org", &self.path),
            get(&self.domain, "/items"),
        )
    }
}
