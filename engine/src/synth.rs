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
