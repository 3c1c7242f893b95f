//! `warden_import::kong_to_policy` on arbitrary text (the input as lossy
//! UTF-8): it never panics, an error's line is inside the file, and a policy
//! it returns compiles in the engine (with the `env:WARDEN_SIGNING_KEY` the
//! imported header asks for). A policy the importer writes that the engine
//! refuses is a bug of one or the other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_engine::{FixedServices, Policy};

const NOW: u64 = 1_700_000_000;

/// Lines as libyaml counts them (its marks are the error's line): CR LF,
/// CR, LF, NEL, LS and PS each end one.
fn yaml_lines(text: &str) -> usize {
    let mut breaks = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                breaks += 1;
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => breaks += 1,
            _ => {}
        }
    }
    breaks + 1
}

fuzz_target!(|data: &[u8]| {
    let yaml = String::from_utf8_lossy(data);
    match warden_import::kong_to_policy(&yaml, "fuzz.yml") {
        Err(e) => {
            let lines = yaml_lines(&yaml);
            assert!(
                (1..=lines + 1).contains(&e.line),
                "error line {} outside the file's {lines} lines: {e}",
                e.line
            );
        }
        Ok(policy) => {
            let mut services = FixedServices::at(NOW);
            services.secrets.push((
                "env:WARDEN_SIGNING_KEY".into(),
                b"0123456789abcdef0123456789abcdef-fuzz".to_vec(),
            ));
            if let Err(errors) = Policy::compile(&policy, &services) {
                let rendered: Vec<String> = errors
                    .iter()
                    .map(|d| d.render("imported.policy", &policy))
                    .collect();
                panic!(
                    "the importer wrote a policy the engine refuses\n--- YAML ---\n{yaml}\n--- policy ---\n{policy}\n--- errors ---\n{}",
                    rendered.join("\n")
                );
            }
        }
    }
});
