//! Client secrets stored as argon2/PBKDF2 PHC hashes: the token endpoint
//! accepts the right secret and nothing else, tokens are signed with the
//! scope's `signing_key` (an independent HMAC check proves which key), and
//! every misconfiguration is a compile error at the right place.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use warden_engine::fixtures::{access_token, pairs, token_target};
use warden_engine::hash_argon2id;
use warden_engine::{Decision, FixedServices, Policy};

const NOW: u64 = 1_700_000_000;
const SIGNING_KEY: &str = "0123456789abcdef0123456789abcdef-signing";
const SECRET: &str = "correct horse battery staple";

fn pbkdf2_phc(secret: &str) -> String {
    use password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&[3; 16]).unwrap();
    let params = pbkdf2::Params {
        rounds: 10_000,
        output_length: 32,
    };
    pbkdf2::Pbkdf2
        .hash_password_customized(secret.as_bytes(), None, None, params, &salt)
        .unwrap()
        .to_string()
}

fn policy_with(phc: &str, signing: Option<&str>) -> String {
    let signing = signing.map_or(String::new(), |k| format!("signing_key \"{k}\"\n"));
    format!(
        "global_auth true\n{signing}consumer hashed {{\n  client_id h1\n  client_secret hash \"{phc}\"\n}}\n\
         consumer plain {{ client_id p1; client_secret \"plain-secret\" }}\n"
    )
}

/// GET `target` on the argon2 policy with a signing key.
fn get(target: &str, token: Option<&str>) -> Decision {
    let policy = POLICY.get_or_init(|| {
        let phc = hash_argon2id(SECRET.as_bytes(), &[5; 16]).unwrap();
        let src = policy_with(&phc, Some(SIGNING_KEY));
        Policy::compile(&src, &FixedServices::at(NOW)).expect("compiles")
    });
    get_on(policy, target, token)
}

/// GET `target` (path and query) on `policy`, with a bearer `token`.
fn get_on(policy: &Policy, target: &str, token: Option<&str>) -> Decision {
    let auth = token.map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))]);
    let headers = auth.unwrap_or_default();
    let headers = pairs(&headers);
    let req = warden_engine::fixtures::get("gw", target, &headers);
    policy.decide(&req, &FixedServices::at(NOW))
}

static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();

/// Whether `token`'s HS256 signature is made with `key` (checked with the
/// `hmac` crate directly, not with Warden's code).
fn signed_with(token: &str, key: &str) -> bool {
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&B64.decode(signature).unwrap()).is_ok()
}

#[test]
fn argon2_hashed_secret_gets_a_token_signed_with_the_signing_key() {
    let token = access_token(&get(&token_target("/oauth2/token", ("h1", SECRET)), None)).unwrap();
    assert!(signed_with(&token, SIGNING_KEY), "signed with signing_key");
    let d = get("/api", Some(&token));
    assert_eq!(
        d.forward()
            .expect("the token is accepted")
            .consumer
            .as_deref(),
        Some("hashed")
    );

    // The plain-secret consumer of the same scope signs with the key too.
    let plain = access_token(&get(
        &token_target("/oauth2/token", ("p1", "plain-secret")),
        None,
    ))
    .unwrap();
    assert!(signed_with(&plain, SIGNING_KEY));
    assert!(!signed_with(&plain, "plain-secret"));
    assert!(get("/api", Some(&plain)).forward().is_some());
}

#[test]
fn with_a_signing_key_tokens_signed_with_a_client_secret_are_refused() {
    // The same consumer, its token issued by a policy without a signing key
    // (signed with the client secret, as Higress does)...
    let src = "global_auth true\nconsumer plain { client_id p1; client_secret \"plain-secret\" }\n";
    let without = Policy::compile(src, &FixedServices::at(NOW)).unwrap();
    let target = token_target("/oauth2/token", ("p1", "plain-secret"));
    let token = access_token(&get_on(&without, &target, None)).unwrap();
    assert!(signed_with(&token, "plain-secret"));
    // ...is refused where the scope signs with its key.
    let d = get("/api", Some(&token));
    assert_eq!(d.reply().map(|r| r.status), Some(401), "{d:?}");
}

#[test]
fn a_signing_key_equal_to_a_client_secret_is_refused() {
    let src = format!(
        "signing_key \"{SIGNING_KEY}\"\nconsumer c {{ client_id i; client_secret \"{SIGNING_KEY}\" }}\n"
    );
    let (message, _, line) = error(&src);
    assert!(
        message.contains("client_secret is the scope's signing_key"),
        "{message}"
    );
    assert_eq!(line, 2);
}

#[test]
fn wrong_secrets_and_the_hash_itself_are_refused() {
    let phc = hash_argon2id(SECRET.as_bytes(), &[5; 16]).unwrap();
    for wrong in [
        "",
        "correct horse battery stapl",
        "Correct horse battery staple",
        &phc,
    ] {
        let target = token_target("/oauth2/token", ("h1", wrong));
        let d = get(&target, None);
        let reply = d.reply().expect("refused");
        assert!(
            reply.status == 400 || reply.status == 401,
            "{wrong:?}: {}",
            reply.status
        );
        assert!(
            String::from_utf8_lossy(&reply.body).contains("invalid_client") || wrong.is_empty()
        );
    }
}

#[test]
fn pbkdf2_hashes_work_too() {
    let src = policy_with(&pbkdf2_phc("pb-secret"), Some(SIGNING_KEY));
    let policy = Policy::compile(&src, &FixedServices::at(NOW)).expect("compiles");
    let target = token_target("/oauth2/token", ("h1", "pb-secret"));
    let token = access_token(&get_on(&policy, &target, None)).unwrap();
    assert!(signed_with(&token, SIGNING_KEY));
}

/// (message, text under the caret, line) of the only error.
fn error(src: &str) -> (String, String, u32) {
    let errors = Policy::compile(src, &FixedServices::at(NOW)).expect_err("does not compile");
    let errors: Vec<_> = errors.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let d = errors[0];
    (d.message.clone(), src[d.span.clone()].to_string(), d.line)
}

#[test]
fn misconfigurations_are_compile_errors_at_the_line() {
    let phc = pbkdf2_phc("x");
    let (message, under, line) = error(&policy_with(&phc, None));
    assert!(
        message.contains("consumer `hashed` stores its client_secret as a pbkdf2-sha256 hash"),
        "{message}"
    );
    assert!(under.starts_with("client_secret hash"), "{under}");
    assert_eq!(line, 4);

    // A short key is refused (and the hashed consumer then has no key).
    let src = policy_with(&phc, Some("too-short"));
    let errors = Policy::compile(&src, &FixedServices::at(NOW)).unwrap_err();
    let d = &errors[0];
    assert!(d.message.contains("shorter than 32 bytes"), "{}", d.message);
    assert!(src[d.span.clone()].starts_with("signing_key"));
    assert_eq!(d.line, 2);

    let (message, under, _) = error(&policy_with("$md5$abc", Some(SIGNING_KEY)));
    assert!(message.contains("`client_secret hash`"), "{message}");
    assert_eq!(under, "\"$md5$abc\"");

    let (message, ..) = error(&policy_with(
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        Some(SIGNING_KEY),
    ));
    assert!(message.contains("above the limits"), "{message}");

    let (message, ..) = error(&format!(
        "signing_key hash \"{phc}\"\nconsumer c {{ client_id i; client_secret s }}\n"
    ));
    assert!(message.contains("not a hash"), "{message}");
}

#[test]
fn diagnostics_never_show_the_hash_or_the_key() {
    let phc = pbkdf2_phc("x");
    let src = policy_with(&phc, Some("too-short"));
    let errors = Policy::compile(&src, &FixedServices::at(NOW)).unwrap_err();
    assert!(errors.len() >= 2, "{errors:#?}");
    let salt_and_hash = phc.rsplit('$').next().unwrap();
    for d in &errors {
        let shown = d.render("p.policy", &src);
        assert!(!shown.contains(salt_and_hash), "{shown}");
        assert!(!shown.contains("too-short"), "{shown}");
        assert!(
            shown.contains("signing_key \"*********\"")
                || shown.contains("client_secret hash \"***"),
            "{shown}"
        );
    }
    // One-line consumers, plain secrets, and references (not secret) shown.
    let src = "consumer c { client_id i; client_secret plain-s3cret; bogus 1 }\nconsumer d { client_id j; client_secret env SECRET_NAME }\n";
    let errors = Policy::compile(src, &FixedServices::at(NOW)).unwrap_err();
    let shown: String = errors.iter().map(|d| d.render("p.policy", src)).collect();
    assert!(!shown.contains("plain-s3cret"), "{shown}");
    assert!(
        shown.contains("client_secret ************; bogus 1"),
        "{shown}"
    );
    assert!(shown.contains("client_secret env SECRET_NAME"), "{shown}");
}

#[test]
fn mask_keeps_the_caret_in_place() {
    use warden_engine::internal::diagnostic::mask_secrets;
    let line = r#"  client_secret "ab\"c" ; signing_key k3y # note"#;
    let masked = mask_secrets(line);
    assert_eq!(
        masked,
        r#"  client_secret "*****" ; signing_key *** # note"#
    );
    assert_eq!(masked.chars().count(), line.chars().count());
    assert_eq!(
        mask_secrets("client_secret file /run/s"),
        "client_secret file /run/s"
    );
    assert_eq!(mask_secrets("my_client_secret x"), "my_client_secret x");
}
