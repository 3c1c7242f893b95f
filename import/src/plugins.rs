//! Reading Kong plugins: their scope, and the oauth2 ones' configuration.
//!
//! Plugins come nested in a service or route, or top-level with an optional
//! `route` or `service` reference (name or id); no reference means global.
//! Only `oauth2` has a Warden equivalent: any other enabled plugin is an
//! error at its `name`. A plugin with `enabled: false` has no behaviour in
//! Kong (a disabled route plugin does not even shadow a global one), so it is
//! left out with a `# disabled in Kong: …` comment. Scopes Warden cannot
//! express are refused: consumer and consumer-group plugins, and plugins on
//! a route *and* a service at once. As in Kong, there is at most one oauth2
//! plugin per scope.

use serde_norway::Value;

use crate::model::{Consumer, Plugin, Route, Scope, Service, scope_label};
use crate::oauth2::OAuth2;
use crate::quote;
use crate::services::{Nested, reference_text};
use crate::yaml::{Map, Node, Res};

const PLUGIN_FIELDS: &[&str] = &[
    "id",
    "name",
    "instance_name",
    "config",
    "enabled",
    "protocols",
    "route",
    "service",
    "consumer",
    "consumer_group",
    "ordering",
    "tags",
    "created_at",
    "updated_at",
];

/// Enabled oauth2 plugins, and comments for the disabled ones.
pub(crate) struct Read {
    pub(crate) plugins: Vec<Plugin>,
    pub(crate) disabled: Vec<String>,
}

/// Reads the nested plugins (in file order), then the top-level ones.
pub(crate) fn read(
    nested: &[Nested<'_>],
    top: Option<Node<'_>>,
    services: &[Service],
    routes: &[Route],
    consumers: &[Consumer],
) -> Res<Read> {
    let mut out = Read {
        plugins: Vec::new(),
        disabled: Vec::new(),
    };
    let ctx = Ctx {
        services,
        routes,
        consumers,
    };
    for n in nested {
        ctx.plugin(&n.node, Some(n.owner), &mut out)?;
    }
    for node in top
        .map(|t| t.items("`plugins`"))
        .transpose()?
        .unwrap_or_default()
    {
        ctx.plugin(&node, None, &mut out)?;
    }
    Ok(out)
}

struct Ctx<'c> {
    services: &'c [Service],
    routes: &'c [Route],
    consumers: &'c [Consumer],
}

impl Ctx<'_> {
    fn label(&self, scope: Scope) -> String {
        scope_label(scope, self.services, self.routes)
    }

    /// The scope of a top-level plugin from its `route` / `service`.
    fn scope(&self, map: &Map<'_>) -> Res<Scope> {
        let route = map.get("route");
        let service = map.get("service");
        match (route, service) {
            (Some(_), Some(_)) => Err(map.key_fault(
                "service",
                "a plugin on a route and a service at once has no Warden equivalent",
            )),
            (Some(r), None) => {
                let wanted = reference_text(&r, "`route`")?;
                self.routes
                    .iter()
                    .position(|x| {
                        x.id.as_deref() == Some(&wanted) || (!x.generated_name && x.name == wanted)
                    })
                    .map(Scope::Route)
                    .ok_or_else(|| r.fault(format!("no route has the name or id `{wanted}`")))
            }
            (None, Some(s)) => {
                let wanted = reference_text(&s, "`service`")?;
                self.services
                    .iter()
                    .position(|x| {
                        x.id.as_deref() == Some(&wanted) || x.name.as_deref() == Some(&wanted)
                    })
                    .map(Scope::Service)
                    .ok_or_else(|| s.fault(format!("no service has the name or id `{wanted}`")))
            }
            (None, None) => Ok(Scope::Global),
        }
    }

    fn plugin(&self, node: &Node<'_>, owner: Option<Scope>, out: &mut Read) -> Res<()> {
        let map = node.map("a plugin")?;
        map.only("plugin", PLUGIN_FIELDS)?;
        let name_node = map
            .get("name")
            .ok_or_else(|| node.fault("a plugin needs a `name`"))?;
        let name = name_node.text("plugin `name`")?;
        let scope = match owner {
            Some(s) => s,
            None => self.scope(&map)?,
        };
        for key in ["consumer", "consumer_group"] {
            if map.get(key).is_some() {
                return Err(map.key_fault(
                    key,
                    format!(
                        "plugin `{name}`: a {} scope has no Warden equivalent",
                        key.replace('_', " ")
                    ),
                ));
            }
        }
        let id = map.text("id", "plugin")?;
        let instance_name = map.text("instance_name", "plugin")?;
        let label = format!(
            "plugin {} {}{}",
            quote::value(name),
            self.label(scope),
            id_note(&id)
        );
        if !map.boolean("enabled", "plugin")?.unwrap_or(true) {
            out.disabled.push(format!("disabled in Kong: {label}"));
            return Ok(());
        }
        if name != "oauth2" {
            return Err(name_node.fault(format!("plugin `{name}` has no Warden equivalent")));
        }
        if let Some(p) = map.get("protocols") {
            let list = p.texts("plugin `protocols`")?;
            if !(list.iter().any(|x| x == "http") && list.iter().any(|x| x == "https")) {
                return Err(p.fault(format!(
                    "{label}: `protocols` without both http and https has no Warden equivalent"
                )));
            }
        }
        if map
            .get("ordering")
            .is_some_and(|o| !matches!(o.value, Value::Mapping(m) if m.is_empty()))
        {
            return Err(map.key_fault(
                "ordering",
                format!("{label}: `ordering` has no Warden equivalent"),
            ));
        }
        let config = OAuth2::read(map.get("config").as_ref(), node, self.consumers)?;
        if out.plugins.iter().any(|p| p.scope == scope) {
            return Err(name_node.fault(format!(
                "a second oauth2 plugin {} (Kong allows one per scope)",
                self.label(scope)
            )));
        }
        out.plugins.push(Plugin {
            scope,
            id,
            instance_name,
            config,
            at: node.fault(String::new()),
        });
        Ok(())
    }
}

/// ` (id …)` when there is an id.
pub(crate) fn id_note(id: &Option<String>) -> String {
    match id {
        Some(i) => format!(" (id {})", quote::value(i)),
        None => String::new(),
    }
}
