//! Reading Kong services and routes.
//!
//! Routes come nested (`services[].routes`) or top-level with a `service`
//! reference (name or id); they keep file order, nested ones first. Fields
//! that change how Kong routes or forwards a request and that Warden has no
//! equivalent for are refused unless they hold Kong's default: route
//! `methods`, `headers`, `snis`, `sources`, `destinations`, `preserve_host`,
//! `regex_priority`, `https_redirect_status_code`, `path_handling`, regex
//! paths (`~…`), the expressions router; service retries and timeouts, TLS
//! settings and any upstream but `http`. `strip_path` — Kong's default is
//! *true* — becomes the route's `strip_path true` where it changes anything
//! (a path other than `/`).

use serde_norway::Value;

use crate::model::{Route, Service};
use crate::quote;
use crate::yaml::{Map, Node, Res};

const SERVICE_FIELDS: &[&str] = &[
    "id",
    "name",
    "url",
    "protocol",
    "host",
    "port",
    "path",
    "retries",
    "connect_timeout",
    "write_timeout",
    "read_timeout",
    "enabled",
    "tags",
    "created_at",
    "updated_at",
    "tls_verify",
    "tls_verify_depth",
    "ca_certificates",
    "client_certificate",
    "routes",
    "plugins",
];

const ROUTE_FIELDS: &[&str] = &[
    "id",
    "name",
    "hosts",
    "paths",
    "protocols",
    "methods",
    "headers",
    "snis",
    "sources",
    "destinations",
    "strip_path",
    "preserve_host",
    "regex_priority",
    "https_redirect_status_code",
    "path_handling",
    "request_buffering",
    "response_buffering",
    "tags",
    "created_at",
    "updated_at",
    "plugins",
];

/// A plugin found nested in a service or route, with its owner.
#[derive(Debug, Clone)]
pub(crate) struct Nested<'a> {
    pub(crate) node: Node<'a>,
    pub(crate) owner: crate::model::Scope,
}

/// Services, routes, and the plugins nested in them, in file order.
#[derive(Debug, Default)]
pub(crate) struct Read<'a> {
    pub(crate) services: Vec<Service>,
    pub(crate) routes: Vec<Route>,
    pub(crate) plugins: Vec<Nested<'a>>,
}

/// Reads `services` (with nested routes and plugins) and top-level `routes`.
pub(crate) fn read<'a>(services: Option<Node<'a>>, routes: Option<Node<'a>>) -> Res<Read<'a>> {
    let mut out = Read::default();
    let mut kong_names: Vec<Option<String>> = Vec::new();
    let mut route_ids: Vec<String> = Vec::new();
    let list = services
        .map(|n| n.items("`services`"))
        .transpose()?
        .unwrap_or_default();
    for (n, node) in list.into_iter().enumerate() {
        let map = node.map("a service")?;
        let service = service(&map, n + 1, &out.services)?;
        let index = out.services.len();
        let label = format!("service {}", service.label);
        out.services.push(service);
        for p in plugin_list(&map, &label)? {
            out.plugins.push(Nested {
                node: p,
                owner: crate::model::Scope::Service(index),
            });
        }
        for r in map
            .get("routes")
            .map(|r| r.items("`routes`"))
            .transpose()?
            .unwrap_or_default()
        {
            let rmap = r.map("a route")?;
            if rmap.get("service").is_some() {
                return Err(rmap.key_fault(
                    "service",
                    "a route nested in a service belongs to it: remove `service`",
                ));
            }
            add_route(&mut out, &rmap, index, &mut kong_names, &mut route_ids)?;
        }
    }
    for r in routes
        .map(|r| r.items("`routes`"))
        .transpose()?
        .unwrap_or_default()
    {
        let rmap = r.map("a route")?;
        let Some(reference) = rmap.get("service") else {
            return Err(r.fault("route has no `service`: a Warden route needs an upstream"));
        };
        let wanted = reference_text(&reference, "`service`")?;
        let index = out
            .services
            .iter()
            .position(|s| s.name.as_deref() == Some(&wanted) || s.id.as_deref() == Some(&wanted))
            .ok_or_else(|| reference.fault(format!("no service has the name or id `{wanted}`")))?;
        add_route(&mut out, &rmap, index, &mut kong_names, &mut route_ids)?;
    }
    name_routes(&mut out.routes, &kong_names);
    Ok(out)
}

/// `service: s1`, or `service: {name: …}` / `{id: …}` (likewise `route`).
pub(crate) fn reference_text(node: &Node<'_>, what: &str) -> Res<String> {
    if let Value::Mapping(_) = node.value {
        let map = node.map(what)?;
        map.only(what, &["id", "name"])?;
        return match (map.text("id", what)?, map.text("name", what)?) {
            (Some(id), None) => Ok(id),
            (None, Some(name)) => Ok(name),
            _ => Err(node.fault(format!("{what} must give one of `id` or `name`"))),
        };
    }
    node.text(what).map(str::to_owned)
}

/// The `plugins` list of a service or route.
fn plugin_list<'a>(map: &Map<'a>, owner: &str) -> Res<Vec<Node<'a>>> {
    let list = map
        .get("plugins")
        .map(|p| p.items("`plugins`"))
        .transpose()?
        .unwrap_or_default();
    for p in &list {
        let pmap = p.map("a plugin")?;
        for key in ["route", "service"] {
            if pmap.get(key).is_some() {
                return Err(pmap.key_fault(
                    key,
                    format!("a plugin nested in {owner} applies to it: remove `{key}`"),
                ));
            }
        }
    }
    Ok(list)
}

fn service(map: &Map<'_>, place: usize, earlier: &[Service]) -> Res<Service> {
    map.only("service", SERVICE_FIELDS)?;
    let name = map.text("name", "service")?;
    let id = map.text("id", "service")?;
    for (key, value) in [("name", &name), ("id", &id)] {
        let taken = earlier.iter().any(|s| match key {
            "name" => s.name.is_some() && s.name == *value,
            _ => s.id.is_some() && s.id == *value,
        });
        if taken {
            return Err(map.key_fault(
                key,
                format!(
                    "two services have the {key} `{}`",
                    value.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let label = match (&name, &id) {
        (Some(n), _) => quote::value(n),
        (None, Some(i)) => quote::value(i),
        (None, None) => format!("#{place}"),
    };
    let what = format!("service {label}");
    let why = "Warden has no per-service setting for it";
    map.only_default("retries", Value::from(5), &what, why)?;
    for key in ["connect_timeout", "write_timeout", "read_timeout"] {
        map.only_default(key, Value::from(60000), &what, why)?;
    }
    map.only_default(
        "enabled",
        Value::Bool(true),
        &what,
        "Warden cannot switch a service off",
    )?;
    for key in ["tls_verify", "tls_verify_depth", "client_certificate"] {
        if map.get(key).is_some() {
            return Err(map.key_fault(
                key,
                format!("{what}: `{key}` has no Warden equivalent (upstream TLS)"),
            ));
        }
    }
    map.only_empty("ca_certificates", &what, "upstream TLS")?;
    let upstream = crate::upstream::upstream(map, &what)?;
    Ok(Service {
        name,
        id,
        label,
        upstream,
    })
}

fn add_route<'a>(
    out: &mut Read<'a>,
    map: &Map<'a>,
    service: usize,
    kong_names: &mut Vec<Option<String>>,
    ids: &mut Vec<String>,
) -> Res<()> {
    let name = map.text("name", "route")?;
    let id = map.text("id", "route")?;
    if let Some(n) = &name
        && kong_names.iter().any(|k| k.as_ref() == Some(n))
    {
        return Err(map.key_fault("name", format!("two routes have the name `{n}`")));
    }
    if let Some(i) = &id {
        if ids.contains(i) {
            return Err(map.key_fault("id", format!("two routes have the id `{i}`")));
        }
        ids.push(i.clone());
    }
    let place = out.routes.len() + 1;
    let label = match &name {
        Some(n) => format!("route {}", quote::value(n)),
        None => format!("route #{place}"),
    };
    let mut known = ROUTE_FIELDS.to_vec();
    known.push("service");
    map.only(&label, &known)?;
    check_route(map, &label)?;
    let hosts = map.texts("hosts", &label)?;
    let paths = map.texts("paths", &label)?;
    if let (Some(ps), Some(node)) = (&paths, map.get("paths")) {
        for (p, item) in ps.iter().zip(node.items("`paths`")?) {
            if p.starts_with('~') {
                return Err(item.fault(format!(
                    "{label}: regex path `{p}` has no Warden equivalent (prefix paths only)"
                )));
            }
            if !p.starts_with('/') {
                return Err(item.fault(format!("{label}: path `{p}` must start with `/`")));
            }
        }
    }
    let strip_path = map.boolean("strip_path", &label)?.unwrap_or(true)
        && paths.iter().flatten().any(|p| p != "/");
    // Kong's `grpc`/`grpcs` routes are Warden's `http`/`https` (a route
    // takes HTTP/1.1 and h2 alike; the upstream decides how it is spoken to).
    let mut protocols = map.texts("protocols", &label)?;
    if let (Some(ps), Some(node)) = (&mut protocols, map.get("protocols")) {
        if ps.is_empty() {
            return Err(node.fault(format!("{label}: `protocols` must not be empty")));
        }
        for (p, item) in ps.iter_mut().zip(node.items("`protocols`")?) {
            match p.as_str() {
                "http" | "https" => {}
                "grpc" => *p = "http".into(),
                "grpcs" => *p = "https".into(),
                _ => {
                    return Err(
                        item.fault(format!("{label}: protocol `{p}` has no Warden equivalent"))
                    );
                }
            }
        }
        let mut seen = Vec::new();
        ps.retain(|p| {
            !seen.contains(p) && {
                seen.push(p.clone());
                true
            }
        });
    }
    if hosts.as_ref().is_none_or(Vec::is_empty) && paths.as_ref().is_none_or(Vec::is_empty) {
        return Err(map.node.fault(format!(
            "{label} needs `hosts` or `paths` (Kong requires a way to match it)"
        )));
    }
    for p in plugin_list(map, &label)? {
        out.plugins.push(Nested {
            node: p,
            owner: crate::model::Scope::Route(out.routes.len()),
        });
    }
    kong_names.push(name.clone());
    out.routes.push(Route {
        name: name.unwrap_or_default(),
        generated_name: false,
        id,
        hosts,
        paths,
        protocols,
        strip_path,
        service,
    });
    Ok(())
}

/// The route fields Warden can only take at Kong's default.
fn check_route(map: &Map<'_>, label: &str) -> Res<()> {
    for key in ["methods", "headers", "snis", "sources", "destinations"] {
        map.only_empty(key, label, "Warden routes match by host and path only")?;
    }
    map.only_default(
        "preserve_host",
        Value::Bool(false),
        label,
        "Warden has no such setting",
    )?;
    map.only_default(
        "regex_priority",
        Value::from(0),
        label,
        "Warden has no regex paths",
    )?;
    let none = "Warden has no such setting";
    map.only_default("https_redirect_status_code", Value::from(426), label, none)?;
    map.only_default("path_handling", Value::from("v0"), label, none)?;
    map.only_default("request_buffering", Value::Bool(true), label, none)?;
    map.only_default("response_buffering", Value::Bool(true), label, none)?;
    Ok(())
}

/// Unnamed routes become `route-<n>` (`n` = place in the file), made unique
/// against the Kong names.
fn name_routes(routes: &mut [Route], kong_names: &[Option<String>]) {
    let taken = |s: &str| kong_names.iter().flatten().any(|k| k == s);
    let mut made: Vec<String> = Vec::new();
    for (i, route) in routes.iter_mut().enumerate() {
        if kong_names.get(i).is_some_and(Option::is_some) {
            continue;
        }
        let base = format!("route-{}", i + 1);
        let mut name = base.clone();
        let mut k = 2;
        while taken(&name) || made.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        made.push(name.clone());
        route.name = name;
        route.generated_name = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_avoid_kong_names() {
        let r = |name: &str| Route {
            name: name.into(),
            generated_name: false,
            id: None,
            hosts: None,
            paths: None,
            protocols: None,
            strip_path: false,
            service: 0,
        };
        let mut routes = vec![r("route-2"), r(""), r("")];
        let kong = vec![Some("route-2".to_owned()), None, None];
        name_routes(&mut routes, &kong);
        let names: Vec<_> = routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["route-2", "route-2-2", "route-3"]);
    }
}
