//! Policy text → `Policy::compile`; every diagnostic (error or warning) is
//! rendered, which must not panic either. The outline the compiler checks
//! items from agrees with the whole parse: the same error, or the same
//! top-level items, each rebuilt alone exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_engine::internal::syntax;
use warden_engine::{FixedServices, Policy};

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    match (syntax::parse(&source), syntax::outline(&source)) {
        (Ok(file), Ok(outline)) => {
            assert_eq!(file.items.len(), outline.len());
            for (item, entry) in file.items.iter().zip(&outline) {
                assert_eq!(syntax::item_at(&source, entry.start).as_ref(), Ok(item));
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("parse {a:?} but outline {b:?}"),
    }
    let mut host = FixedServices::at(1_700_000_000);
    // A couple of resolvable secret references, so `env:`/`file:` paths that
    // succeed get exercised as well as the ones that fail.
    host.secrets.push(("env:A_SECRET".into(), b"s3cr3t".to_vec()));
    host.secrets.push(("file:/run/secret".into(), b"0123456789abcdef".to_vec()));
    match Policy::compile(&source, &host) {
        Ok(policy) => {
            for d in policy.warnings() {
                let _ = d.render("fuzz.policy", &source);
            }
            let _ = policy.routes();
        }
        Err(diags) => {
            for d in &diags {
                let _ = d.render("fuzz.policy", &source);
            }
        }
    }
});
