//! Kong's own oauth2 spec fixtures (kong-spec.yml) → kong-spec.policy.
//!
//! The golden file is compared byte for byte; a structural check then reads
//! it with the test grammar reader and checks what the fixtures say: the
//! consumers and their credentials, one rule per route, resolved anonymous
//! consumers. Regenerate the golden file with `WARDEN_BLESS=1` (then review
//! the diff).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grammar;

use grammar::{Item, Val, parse};

const YAML: &str = include_str!("kong-spec.yml");
const GOLDEN: &str = include_str!("kong-spec.policy");

fn policy() -> String {
    warden_import::kong_to_policy(YAML, "kong-spec.yml").unwrap()
}

#[test]
fn kong_spec_fixtures_convert_to_the_golden_policy() {
    let got = policy();
    if std::env::var_os("WARDEN_BLESS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kong-spec.policy"),
            &got,
        )
        .unwrap();
    }
    assert_eq!(got, GOLDEN);
}

fn arg(item: &Item, key: &str) -> Option<Vec<Val>> {
    item.all(key).next().map(|i| i.args.clone())
}

fn text(item: &Item, key: &str) -> Option<String> {
    arg(item, key).and_then(|a| a.first().and_then(|v| v.text().map(str::to_owned)))
}

fn name(item: &Item) -> String {
    item.args[0].text().unwrap().to_owned()
}

#[test]
fn the_golden_policy_has_the_fixtures_structure() {
    let items = parse(GOLDEN).unwrap();
    assert_eq!(items[0].key, "dialect");
    assert_eq!(items[0].args, vec![Val::Word("kong".into())]);
    assert_eq!(items[1].key, "signing_key");
    assert_eq!(
        items[1].args,
        vec![
            Val::Word("env".into()),
            Val::Word("WARDEN_SIGNING_KEY".into())
        ]
    );
    assert_eq!(items[2].key, "global_auth");
    assert_eq!(items[2].args, vec![Val::Word("false".into())]);

    let consumers: Vec<&Item> = items.iter().filter(|i| i.key == "consumer").collect();
    let names: Vec<String> = consumers.iter().map(|c| name(c)).collect();
    assert_eq!(names, ["bob", "no-body", "bobo", "4232"]);
    let bob = consumers[0];
    let creds: Vec<&Item> = bob.all("credential").collect();
    assert_eq!(creds.len(), 7);
    let ids: Vec<String> = creds
        .iter()
        .map(|c| text(c, "client_id").unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "clientid123",
            "clientid789",
            "clientid333",
            "clientid456",
            "clientid1011",
            "clientid10112",
            "clientid11211"
        ]
    );
    for (cred, hashed) in creds
        .iter()
        .zip([true, false, true, false, true, false, false])
    {
        let secret = arg(cred, "client_secret");
        if text(cred, "client_type").as_deref() == Some("public") {
            assert_eq!(secret, None, "a public client has no secret");
            continue;
        }
        let secret = secret.unwrap();
        assert_eq!(secret[0].text() == Some("hash"), hashed);
        assert_eq!(text(cred, "hash_secret").as_deref() == Some("true"), hashed);
        if hashed {
            assert!(
                secret[1]
                    .text()
                    .unwrap()
                    .starts_with("$pbkdf2-sha512$i=10000,l=32$")
            );
        }
    }
    assert_eq!(
        arg(creds[3], "redirect_uris").unwrap()[0].texts(),
        ["http://one.test/one/", "http://two.test/two"]
    );
    assert_eq!(arg(creds[5], "redirect_uris"), None);
    assert_eq!(text(creds[6], "client_type").as_deref(), Some("public"));
    assert_eq!(consumers[2].all("credential").count(), 1);
    assert_eq!(consumers[3].all("credential").count(), 1);

    let routes: Vec<String> = items
        .iter()
        .filter(|i| i.key == "route")
        .map(name)
        .collect();
    assert_eq!(routes.len(), 26);
    for r in items.iter().filter(|i| i.key == "route") {
        assert_eq!(
            text(r, "upstream").as_deref(),
            Some("http://127.0.0.1:15555")
        );
        assert_eq!(arg(r, "protocols").unwrap()[0].texts(), ["http", "https"]);
    }
    let rules: Vec<&Item> = items.iter().filter(|i| i.key == "rule").collect();
    let mut matched: Vec<String> = Vec::new();
    for rule in &rules {
        let m = arg(rule, "match").unwrap();
        assert_eq!(m[0].text(), Some("route"));
        matched.extend(m[1].texts());
        if let Some(a) = text(rule, "anonymous") {
            assert!(names.contains(&a), "anonymous {a} is a consumer");
        }
    }
    assert_eq!(matched, routes, "one rule per route, in route order");
    let rule = |r: &str| {
        *rules
            .iter()
            .find(|x| name(x) == format!("oauth2-{r}"))
            .unwrap()
    };
    // By id (route7) and by username (route_c), both to the same consumer.
    assert_eq!(
        text(rule("route7"), "anonymous").as_deref(),
        Some("no-body")
    );
    assert_eq!(
        text(rule("route_c"), "anonymous").as_deref(),
        Some("no-body")
    );
    assert_eq!(
        text(rule("route11"), "token_expiration").as_deref(),
        Some("7")
    );
    assert_eq!(
        text(rule("route11"), "auth_header_name").as_deref(),
        Some("custom_header_name")
    );
    assert_eq!(text(rule("route15"), "pkce").as_deref(), Some("strict"));
    assert_eq!(text(rule("route16"), "pkce"), None, "lax is the default");
    assert_eq!(
        text(rule("route5"), "realm").as_deref(),
        Some("test-oauth2")
    );
    assert_eq!(
        arg(rule("route18"), "scopes").unwrap()[0].texts(),
        ["scope18", "profile"]
    );
    assert_eq!(
        text(rule("ttl_route12"), "refresh_token_ttl").as_deref(),
        Some("0")
    );
}

/// The engine compiles what the importer wrote, the golden policy and the
/// goldens of the other tests alike (with the signing key the header asks for).
#[test]
fn the_engine_compiles_the_imported_policy() {
    let mut services = warden_engine::FixedServices::at(1_700_000_000);
    services.secrets.push((
        "env:WARDEN_SIGNING_KEY".into(),
        b"0123456789abcdef0123456789abcdef-import".to_vec(),
    ));
    let compiled = warden_engine::Policy::compile(&policy(), &services);
    assert!(compiled.is_ok(), "{:?}", compiled.err());
}
