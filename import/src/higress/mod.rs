//! `warden import higress`: a Higress/MSE oauth plugin configuration →
//! Warden policy (default dialect).
//!
//! Two forms are read:
//!
//! - a Higress `WasmPlugin` resource (`apiVersion:
//!   extensions.higress.io/v1alpha1`, `kind: WasmPlugin`): `spec.defaultConfig`
//!   is the instance configuration, each `spec.matchRules` entry a rule
//!   (`ingress`, `domain`, `service`, its `config`); or `spec.pluginConfig`,
//!   which Higress then passes on as it is (a bare configuration);
//! - a bare plugin configuration, as MSE's console (and the plugin itself)
//!   takes it: its fields are the instance's, and each `_rules_` entry is a
//!   rule (`_match_route_`, `_match_route_prefix_`, `_match_domain_`,
//!   `_match_service_`, `_disable_`, beside the rule's own fields).
//!
//! The semantics followed are those of Higress's shipped C++ plugin
//! (`plugins/wasm-cpp/extensions/oauth` and its `RouteRuleMatcher`), except
//! where the README's "Compatibility: Higress quirks Warden does not copy"
//! says Warden differs.
//!
//! | Higress | Warden |
//! |---|---|
//! | `consumers[]`: `name`, `client_id`, `client_secret` | `consumer NAME { client_id …; client_secret "…" }` (top level, or inside the rule for a rule's own) |
//! | `issuer`, `auth_path`, `global_credentials`, `auth_header_name` (or `auth_header`, the name the C++ plugin reads), `token_ttl`, `clock_skew_seconds`, `keep_token` | the settings of the same names (`auth_header` becomes `auth_header_name`; an `auth_path` without a leading `/` gets one, as Higress does) |
//! | `global_auth` (instance only) | `global_auth` (unset stays unset: global only when there are no rules) |
//! | `matchRules[].ingress`, `_match_route_` | `match route […]`: Higress's ingress names *are* its route names (`name`, or `namespace/name` outside Higress's own namespace), which an embedding host passes as the request's route |
//! | `matchRules[].service`, `_match_service_` | `match service […]`: the names as written (`fqdn` or `fqdn:port`), compared exactly with the service name the host passes (Higress also lets `fqdn` match any port of that service) |
//! | `ingress` with `service` | `match route` and `match service`: both must match |
//! | `matchRules[].domain`, `_match_domain_` | `match domain […]`: exact, `*suffix`, `prefix*` |
//! | `_match_route_prefix_` | `match route_prefix […]` |
//! | `allow` (rules only) | `allow […]`, naming instance consumers |
//! | a rule's settings and `consumers` | the rule's own settings and consumers; Higress's default is written for each setting the instance changes, since a Higress rule does not inherit them |
//! | a rule with neither (`config: {}` or none) | `allow []`: Higress admits nobody there (with no instance configuration it checks nothing: `disable`) |
//! | `_disable_: true` | `disable` |
//! | `matchRules[].configDisable: true` | no rule (a comment): Higress leaves the entry out |
//! | `spec.defaultConfigDisable: true`, or no instance fields | no instance: `global_auth false` |
//! | `url`, `sha256`, `phase`, `priority`, `imagePullPolicy`, …, `metadata`, `status` | left out (how the module is loaded), named in the header comment |
//!
//! Where the C++ plugin is buggy, Warden does the evident thing (besides
//! the README's list): a rule matching `ingress` and `service` counts, for
//! that plugin, its second match field as a setting of its own, so it
//! ignores the rule's `allow` and authenticates nobody (401); here the
//! `allow` applies (and such a rule without a config is `allow []`: 403,
//! not 401, for a valid token).
//!
//! Each rule is preceded by a comment naming its source entry
//! (`# from matchRules[1] (domain: *.example.com, test.com)`); rules keep the
//! file's order, and the first that matches wins in both. `global_credentials`
//! defaults to `true` in Higress's field table and plugin, and so here (the
//! pages' first example claims route-scoped tokens without setting it; they
//! need `global_credentials: false`).
//!
//! Refused, each at its YAML line and column: unknown fields (with a
//! did-you-mean) and wrong types (Higress's lenient `"true"`/`"7200"`
//! strings included); another `apiVersion` or `kind`; `allow` at the
//! instance and `global_auth` in a rule; `allow` beside `consumers` or
//! settings in one rule (the pages: they cannot coexist; Higress would
//! ignore `allow`); a rule that matches nothing; a rule matching `ingress`
//! and `domain`, or any pair other than ingress and service (Higress would
//! silently ignore one); `allow` naming an unknown consumer, or with no
//! instance consumers to name; consumers with a repeated name or client_id,
//! or missing a field; a rule with settings but no consumers (Higress would
//! answer 401 to everything there); `_disable_: true` beside anything it
//! switches off; an empty `auth_path`, `token_ttl: 0`, more than 100 years,
//! a header name Warden cannot read the token from, a domain with a port or
//! an inner `*`; `failStrategy: FAIL_OPEN` (Warden fails closed);
//! `routeType` other than HTTP; `pluginConfig` beside `defaultConfig` or
//! `matchRules`, and `defaultConfig._rules_` beside `matchRules` (Higress
//! would ignore one); a file with nothing to import.
//!
//! Modules: [`resource`] reads the top level and the rules, [`config`] the
//! plugin's fields; [`model`] is what they produce; [`emit`] writes it with
//! the Kong importer's `Writer` and `quote`. YAML paths, faults and lines
//! are the shared `yaml` and `locate` modules'.

mod config;
mod emit;
mod model;
mod resource;

use serde_norway::Value;

use crate::yaml::Res;

/// The policy text for the Higress document `root`, read from `source_name`.
pub(crate) fn policy(root: &Value, source_name: &str) -> Res<String> {
    let config = resource::read(root)?;
    Ok(emit::policy(&config, source_name))
}
