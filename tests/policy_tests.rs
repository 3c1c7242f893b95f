//! `warden test` through the real binary: every scenario policy under
//! `policies/` has its `.test` file and they all pass; a broken expectation
//! fails (exit 1) with a readable difference; a test file with a mistake is
//! reported at its line and column.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::path::PathBuf;
use std::process::Output;

fn policies() -> PathBuf {
    PathBuf::from(support::policy(""))
}

fn warden_test(args: &[&str]) -> Output {
    support::warden()
        .arg("test")
        .args(args)
        .env(
            "WARDEN_SIGNING_KEY",
            "a-signing-key-for-the-policy-tests-0123456789",
        )
        .env("PROVISION_KEY", "a-provision-key-0123")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_scenario_policy_has_tests_and_they_pass() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(policies()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "policy") && !path.with_extension("test").exists()
        {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "policies without a .test file: {missing:?}"
    );
    let dir = policies();
    let out = warden_test(&[dir.to_str().unwrap()]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    let summary = report.lines().last().unwrap();
    let count: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(count >= 30, "{summary}");
}

#[test]
fn a_broken_expectation_fails_with_a_readable_difference() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ptests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.test");
    let demo = policies().join("demo.policy");
    std::fs::write(
        &file,
        format!(
            r#"policy "{}"
now 1700000000
test "right" {{
  request GET "http://gw.test/a/x" {{ token consumer1 }}
  expect forward {{ consumer consumer1 }}
}}
test "wrong" {{
  request GET "http://gw.test/a/x" {{ token consumer2 }}
  expect forward {{ consumer consumer2; header X-Mse-Consumer consumer2 }}
}}
"#,
            demo.display()
        ),
    )
    .unwrap();
    let out = warden_test(&[file.to_str().unwrap()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("  ok    right"), "{report}");
    assert!(report.contains("FAIL  wrong ("), "{report}");
    assert!(
        report.contains("broken.test:7)"),
        "the test's line: {report}"
    );
    assert!(
        report.contains(
            "outcome: expected forward, got reply 403 (consumer not allowed by the matching rule)"
        ),
        "{report}"
    );
    assert!(report.contains("2 tests, 1 passed, 1 failed"), "{report}");

    std::fs::write(
        &file,
        "now 1700000000\ntest \"x\" {\n  request GET / { tokn a }\n  expect 200\n}\n",
    )
    .unwrap();
    let out = warden_test(&[file.to_str().unwrap()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("unknown item `tokn` in a request"),
        "{report}"
    );
    assert!(
        report.contains("broken.test:3:19"),
        "line and column: {report}"
    );
}
