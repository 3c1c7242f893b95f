//! Benchmarks of Warden beside peer engines; see `benches/`. This library is
//! empty: the crate exists so that the peers (Cedar) are dev-dependencies of
//! benchmarks only and never slow down `cargo test`.
#![forbid(unsafe_code)]
