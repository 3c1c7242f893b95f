//! What the Higress importer keeps of a plugin configuration, checked.
//!
//! The readers (`resource`, `config`) build these from the YAML; `emit`
//! writes them out. Everything here already has a Warden equivalent:
//! whatever had none was refused on the way in.

/// The settings of a scope, in the order of the Higress page's field table,
/// with Higress's defaults (the C++ plugin's `OAuthConfigRule`) as the
/// policy writes them. Warden's defaults are the same.
pub(crate) const DEFAULTS: [(&str, &str); 7] = [
    ("issuer", "Higress-Gateway"),
    ("auth_path", "/oauth2/token"),
    ("global_credentials", "true"),
    ("auth_header_name", "Authorization"),
    ("token_ttl", "7200"),
    ("clock_skew_seconds", "60"),
    ("keep_token", "true"),
];

/// Index of `global_credentials` in [`DEFAULTS`].
pub(crate) const GLOBAL_CREDENTIALS: usize = 2;
/// Index of `auth_header_name` in [`DEFAULTS`].
pub(crate) const AUTH_HEADER_NAME: usize = 3;

/// The settings a configuration sets, indexed like [`DEFAULTS`], each as
/// the policy value it becomes (already quoted where needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings(pub(crate) [Option<String>; 7]);

impl Settings {
    /// The value in force: the one set, else Higress's default.
    pub(crate) fn effective(&self, i: usize) -> &str {
        match &self.0[i] {
            Some(v) => v,
            None => DEFAULTS[i].1,
        }
    }
}

/// Two effective values of setting `i` mean the same (header names compare
/// without case).
pub(crate) fn same_value(i: usize, a: &str, b: &str) -> bool {
    if i == AUTH_HEADER_NAME {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// One entry of `consumers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Consumer {
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

/// A configuration that authenticates: its settings and its consumers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) settings: Settings,
    pub(crate) consumers: Vec<Consumer>,
    /// Comments about how a value was read (an `auth_path` given a `/`).
    pub(crate) notes: Vec<String>,
}

/// One `match KIND [names]` line of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    /// Warden's kind: `route`, `route_prefix`, `service` or `domain`.
    pub(crate) kind: &'static str,
    /// The Higress field it comes from (`ingress`, `_match_domain_`, …).
    pub(crate) field: &'static str,
    pub(crate) names: Vec<String>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `allow`: authenticate with the instance's consumers, admit these.
    Allow(Vec<String>),
    /// The rule's own consumers and settings.
    Own(Scope),
    /// `_disable_: true`: no authentication.
    Disable,
    /// `configDisable: true`: Higress leaves the rule out; only a comment.
    LeftOut,
}

/// A `matchRules` or `_rules_` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Where it comes from: `matchRules[0]`, `_rules_[2]`, …
    pub(crate) source: String,
    pub(crate) matches: Vec<Match>,
    pub(crate) action: Action,
    /// Comments for the rule's block.
    pub(crate) notes: Vec<String>,
}

/// The whole configuration, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Header comments: what the file is, what was left out.
    pub(crate) header: Vec<String>,
    /// Where the instance configuration comes from (`spec.defaultConfig`).
    pub(crate) instance_source: String,
    /// `None`: no instance configuration (none given, or disabled).
    pub(crate) instance: Option<Scope>,
    /// Comments for the instance section.
    pub(crate) instance_notes: Vec<String>,
    pub(crate) global_auth: Option<bool>,
    pub(crate) rules: Vec<Rule>,
}
