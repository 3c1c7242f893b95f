//! Every refusal of `warden import kong`, each at its exact YAML line and column.
//!
//! One table: a small decK file, the line:column the error must name, and a
//! part of the message. The files are written so that the offending entity
//! sits on a line of its own, away from the line of its parent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use warden_import::kong_to_policy;

/// A valid head: version, one consumer, one service with one route.
const HEAD: &str = "_format_version: \"3.0\"
consumers:
- username: bob
  id: 11111111-1111-1111-1111-111111111111
services:
- name: s1
  url: http://127.0.0.1:15555
  routes:
  - name: r1
    hosts: [a.test]
";

/// An oauth2 config that Kong accepts, for a plugin nested in r1…
const OK_CONFIG: &str = "      config:\n        enable_client_credentials: true\n";
/// …and for a top-level plugin.
const TOP_CONFIG: &str = "  config:\n    enable_client_credentials: true\n";

struct Case {
    name: &'static str,
    yaml: String,
    at: (usize, usize),
    message: &'static str,
}

fn case(
    name: &'static str,
    yaml: impl Into<String>,
    at: (usize, usize),
    message: &'static str,
) -> Case {
    Case {
        name,
        yaml: yaml.into(),
        at,
        message,
    }
}

/// HEAD plus text appended under route r1 (indented 4).
fn on_route(extra: &str) -> String {
    format!("{HEAD}{extra}")
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "format 1.1",
            "_format_version: \"1.1\"\nservices: []\n",
            (1, 18),
            "`_format_version` `1.1` is not supported",
        ),
        case(
            "format 2.1",
            "# decK\n_format_version: \"2.1\"\n",
            (2, 18),
            "only Kong's format 3.x",
        ),
        case(
            "format missing",
            "services: []\n",
            (1, 1),
            "no `_format_version`",
        ),
        case("not a mapping", "- a\n- b\n", (1, 1), "must be a mapping"),
        case(
            "bad yaml",
            "_format_version: \"3.0\"\nservices: [a,\n  b: c: d\n",
            (3, 7),
            "invalid YAML",
        ),
        case(
            "top-level upstreams",
            format!("{HEAD}upstreams:\n- name: u\n"),
            (11, 1),
            "field `upstreams` has no Warden equivalent",
        ),
        case(
            "other plugin on a route",
            on_route("    plugins:\n    - name: rate-limiting\n      config: {minute: 5}\n"),
            (12, 13),
            "plugin `rate-limiting` has no Warden equivalent",
        ),
        case(
            "other plugin, global",
            format!("{HEAD}plugins:\n- config: {{}}\n  name: key-auth\n"),
            (13, 9),
            "plugin `key-auth` has no Warden equivalent",
        ),
        case(
            "route methods",
            on_route("    methods:\n    - GET\n"),
            (11, 5),
            "`methods` has no Warden equivalent",
        ),
        case(
            "route headers",
            on_route("    headers:\n      x-version: [\"2\"]\n"),
            (11, 5),
            "`headers` has no Warden equivalent",
        ),
        case(
            "route snis",
            on_route("    snis: [a.test]\n"),
            (11, 5),
            "`snis` has no Warden equivalent",
        ),
        case(
            "regex_priority",
            on_route("    regex_priority: 5\n"),
            (11, 5),
            "`regex_priority: 5` has no Warden equivalent",
        ),
        case(
            "preserve_host",
            on_route("    preserve_host: true\n"),
            (11, 5),
            "`preserve_host: true` has no Warden equivalent",
        ),
        case(
            "regex path",
            on_route("    strip_path: false\n    paths:\n    - /ok\n    - ~/users/\\d+$\n"),
            (14, 7),
            "regex path `~/users/\\d+$`",
        ),
        case(
            "https upstream url",
            "_format_version: \"3.0\"\nservices:\n- name: s1\n  url: https://example.com\n",
            (4, 8),
            "https upstreams are not supported yet",
        ),
        case(
            "https upstream protocol",
            "_format_version: \"3.0\"\nservices:\n- name: s1\n  host: example.com\n  protocol: https\n",
            (5, 13),
            "https upstreams are not supported yet",
        ),
        case(
            "tcp route",
            on_route("    protocols:\n    - grpc\n    - tcp\n"),
            (13, 7),
            "protocol `tcp` has no Warden equivalent",
        ),
        case(
            "unknown anonymous",
            on_route(
                "    plugins:\n    - name: oauth2\n      config:\n        enable_client_credentials: true\n        anonymous: 8a2a4f4c-0000-4000-8000-000000000000\n",
            ),
            (15, 20),
            "`anonymous`: no consumer has the id or username",
        ),
        case(
            "unknown route field",
            on_route("    expression: http.path == \"/\"\n"),
            (11, 5),
            "field `expression` has no Warden equivalent",
        ),
        case(
            "unknown config field",
            on_route(&format!(
                "    plugins:\n    - name: oauth2\n{OK_CONFIG}        token_ttl: 5\n"
            )),
            (15, 9),
            "oauth2 config: field `token_ttl` has no Warden equivalent",
        ),
        case(
            "credential of unknown consumer",
            format!(
                "{HEAD}oauth2_credentials:\n- name: app\n  client_id: c1\n  client_secret: s1\n  consumer: alice\n"
            ),
            (15, 13),
            "no consumer has the username or id `alice`",
        ),
        case(
            "route plugin cannot unset the global realm",
            format!(
                "{HEAD}    plugins:\n    - name: oauth2\n{OK_CONFIG}plugins:\n- name: oauth2\n  config:\n    enable_client_credentials: true\n    realm: kong\n"
            ),
            (12, 7),
            "the global oauth2 plugin sets `realm`",
        ),
        case(
            "two oauth2 plugins on a route",
            format!(
                "{HEAD}    plugins:\n    - name: oauth2\n{OK_CONFIG}plugins:\n- route: r1\n  name: oauth2\n{TOP_CONFIG}"
            ),
            (17, 9),
            "a second oauth2 plugin on route r1",
        ),
        case(
            "plugin on route and service",
            format!("{HEAD}plugins:\n- name: oauth2\n  route: r1\n  service: s1\n"),
            (14, 3),
            "on a route and a service at once",
        ),
        case(
            "consumer-scoped plugin",
            format!("{HEAD}plugins:\n- name: oauth2\n  consumer: bob\n"),
            (13, 3),
            "consumer scope has no Warden equivalent",
        ),
        case(
            "plugin protocols",
            on_route(&format!(
                "    plugins:\n    - name: oauth2\n      protocols: [grpc, https]\n{OK_CONFIG}"
            )),
            (13, 18),
            "`protocols` without both http and https",
        ),
        case(
            "route without service",
            format!("{HEAD}routes:\n- name: r2\n  hosts: [b.test]\n"),
            (12, 3),
            "route has no `service`",
        ),
        case(
            "unknown service of a route",
            format!("{HEAD}routes:\n- name: r2\n  hosts: [b.test]\n  service: nope\n"),
            (14, 12),
            "no service has the name or id `nope`",
        ),
        case(
            "service retries",
            "_format_version: \"3.0\"\nservices:\n- name: s1\n  url: http://h\n  retries: 0\n",
            (5, 3),
            "`retries: 0` has no Warden equivalent",
        ),
        // Found by the kong_import fuzz target: imports the engine refused.
        case(
            "consumer id not a UUID",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  id: not-a-uuid\n",
            (4, 3),
            "consumer id `not-a-uuid` is not a UUID",
        ),
        case(
            "unreachable upstream host",
            "_format_version: \"3.0\"\nservices:\n- name: s\n  url: \"http://~x/\"\n  routes:\n  - paths: [/p]\n",
            (4, 8),
            "is not an upstream Warden can reach",
        ),
        case(
            "redirect URI that does not parse",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  oauth2_credentials:\n  - name: app\n    client_id: c1\n    client_secret: s\n    redirect_uris: [\"ht tp://x.com/\"]\n",
            (8, 21),
            "redirect URI: cannot parse 'ht tp://x.com/'",
        ),
        case(
            "malformed PHC hash",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  oauth2_credentials:\n  - name: app\n    client_id: c1\n    hash_secret: true\n    client_secret: $pbkdf2-sha512$i=10000,l=32$a~b$WdMZe1pz\n",
            (8, 5),
            "the hashed client_secret:",
        ),
        case(
            "bcrypt secret",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  oauth2_credentials:\n  - name: app\n    client_id: c1\n    hash_secret: true\n    client_secret: $2b$12$abcdefghijklmnopqrstuv\n",
            (8, 5),
            "bcrypt-hashed client_secret",
        ),
        case(
            "no client_secret",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  oauth2_credentials:\n  - name: app\n    client_id: c1\n",
            (5, 5),
            "needs a `client_secret`",
        ),
        case(
            "no grant",
            on_route("    plugins:\n    - name: oauth2\n      config:\n        scopes: [email]\n"),
            (14, 9),
            "enables no grant",
        ),
        case(
            "route matching nothing",
            on_route("  - name: r2\n    protocols: [http]\n"),
            (11, 5),
            "route r2 needs `hosts` or `paths`",
        ),
        case(
            "consumer plugin list",
            "_format_version: \"3.0\"\nconsumers:\n- username: bob\n  plugins:\n  - name: oauth2\n",
            (4, 3),
            "consumer-scoped plugins",
        ),
        case(
            "unknown route of a plugin",
            format!("{HEAD}plugins:\n- name: oauth2\n  route:\n    name: r9\n"),
            (14, 5),
            "no route has the name or id `r9`",
        ),
        case(
            "control character in a name",
            "_format_version: \"3.0\"\nconsumers:\n- username: \"bo\\rb\"\n",
            (3, 13),
            "U+000D",
        ),
        case(
            "duplicate client_id",
            "_format_version: \"3.0\"\nconsumers:\n- username: a\n  oauth2_credentials:\n  - {name: x, client_id: c1, client_secret: s}\n- username: b\n  oauth2_credentials:\n  - name: y\n    client_id: c1\n    client_secret: s\n",
            (9, 5),
            "two oauth2 credentials have the client_id `c1`",
        ),
        case(
            "grpcs upstream",
            "_format_version: \"3.0\"\nservices:\n- name: grpc\n  url: grpcs://localhost:15003\n",
            (4, 8),
            "grpcs upstreams are not supported yet",
        ),
        case(
            "plaintext hash_secret with _transform false",
            "_format_version: \"3.0\"\n_transform: false\nconsumers:\n- username: bob\n  oauth2_credentials:\n  - name: app\n    client_id: c1\n    hash_secret: true\n    client_secret: secret123\n",
            (9, 5),
            "needs an argon2 or PBKDF2 PHC hash",
        ),
        case(
            "aliased bad plugin points at the anchor",
            format!("{HEAD}    plugins:\n    - &p\n      name: acl\nplugins:\n- *p\n"),
            (13, 13),
            "plugin `acl` has no Warden equivalent",
        ),
        case(
            "error deep in a flow mapping",
            "_format_version: \"3.0\"\nservices: [{name: s, url: \"http://h\", routes: [{name: r, hosts: [h], methods: [GET]}]}]\n",
            (2, 70),
            "`methods` has no Warden equivalent",
        ),
    ]
}

#[test]
fn every_refusal_names_its_line_and_column() {
    let mut failures = Vec::new();
    for c in cases() {
        match kong_to_policy(&c.yaml, "t.yml") {
            Ok(p) => failures.push(format!("{}: converted instead of refusing:\n{p}", c.name)),
            Err(e) => {
                let got = (e.line, e.column.unwrap_or(0));
                if got != c.at || !e.message.contains(c.message) {
                    failures.push(format!(
                        "{}: want {:?} containing {:?}, got {}",
                        c.name, c.at, c.message, e
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_error_displays_as_file_line_column_message() {
    let e = kong_to_policy(&on_route("    methods: [GET]\n"), "kong.yml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "kong.yml:11:5: route r1: `methods` has no Warden equivalent (Warden routes match by host and path only)"
    );
}

#[test]
fn the_head_itself_converts_with_any_3x_version() {
    kong_to_policy(HEAD, "t.yml").unwrap();
    for v in ["\"3\"", "\"3.1\"", "3.0"] {
        kong_to_policy(&HEAD.replace("\"3.0\"", v), "t.yml").unwrap();
    }
}
