//! What the importer keeps of a Kong configuration, checked and resolved.
//!
//! The readers (`consumers`, `services`, `plugins`) build these from the
//! YAML; `emit` writes them out. Everything here is already known to have a
//! Warden equivalent: whatever had none was refused on the way in.

use crate::oauth2::OAuth2;
use crate::yaml::Fault;

/// A Kong consumer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Consumer {
    /// The Warden name: Kong's username, else custom_id, else id.
    pub(crate) name: String,
    pub(crate) username: Option<String>,
    pub(crate) custom_id: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) credentials: Vec<Credential>,
    /// Comments about what was left out (other plugins' credentials).
    pub(crate) notes: Vec<String>,
}

/// An oauth2 credential (Kong `oauth2_credentials`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Credential {
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) secret: Secret,
    pub(crate) redirect_uris: Option<Vec<String>>,
    pub(crate) public: bool,
    /// Comments: where it came from, what was done to its secret.
    pub(crate) notes: Vec<String>,
}

/// A credential's client secret as the policy will hold it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Secret {
    /// The secret itself.
    Plain(String),
    /// A PHC hash string (Kong `hash_secret: true`).
    Hash(String),
    /// A public client: no secret.
    None,
}

/// A Kong service: where its routes forward to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Service {
    pub(crate) name: Option<String>,
    pub(crate) id: Option<String>,
    /// For comments: the name, else the id, else `#n` (its place in the file).
    pub(crate) label: String,
    /// `http://host:port/path`.
    pub(crate) upstream: String,
}

/// A Kong route.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Route {
    /// The Warden name: Kong's name, or `route-<n>` when it has none.
    pub(crate) name: String,
    pub(crate) generated_name: bool,
    pub(crate) id: Option<String>,
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) paths: Option<Vec<String>>,
    pub(crate) protocols: Option<Vec<String>>,
    /// Kong's `strip_path` (its default, true), where it changes the path.
    pub(crate) strip_path: bool,
    /// Index into [`Config::services`].
    pub(crate) service: usize,
}

/// What a plugin applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Global,
    /// Index into [`Config::services`].
    Service(usize),
    /// Index into [`Config::routes`].
    Route(usize),
}

/// An enabled oauth2 plugin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plugin {
    pub(crate) scope: Scope,
    pub(crate) id: Option<String>,
    pub(crate) instance_name: Option<String>,
    pub(crate) config: OAuth2,
    /// Where to point an error found while writing it (an unsettable field).
    pub(crate) at: Fault,
}

/// The whole configuration, in the file's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Config {
    pub(crate) consumers: Vec<Consumer>,
    pub(crate) services: Vec<Service>,
    pub(crate) routes: Vec<Route>,
    pub(crate) plugins: Vec<Plugin>,
    /// `# disabled in Kong: …` lines for plugins with `enabled: false`.
    pub(crate) disabled: Vec<String>,
    /// Comments for the header: top-level collections left out.
    pub(crate) notes: Vec<String>,
}

/// `on route r1`, `on service s1` or `global`, for comments and messages.
pub(crate) fn scope_label(scope: Scope, services: &[Service], routes: &[Route]) -> String {
    match scope {
        Scope::Global => "global".to_owned(),
        Scope::Service(s) => match services.get(s) {
            Some(s) => format!("on service {}", s.label),
            None => "on a service".to_owned(),
        },
        Scope::Route(r) => match routes.get(r) {
            Some(r) => format!("on route {}", crate::quote::value(&r.name)),
            None => "on a route".to_owned(),
        },
    }
}
