//! Checking `route NAME { … }` blocks: the standalone gateway's routes —
//! by segment path prefix (`path_prefix`, Higress), or as Kong routes do by
//! `hosts`, `paths` (plain string prefixes) and `protocols` — and where each
//! sends traffic (`upstream`).

use std::borrow::Cow;

use super::*;

impl<'s> Checker<'s> {
    /// `route NAME { path_prefix "/a"; upstream echo }`: the route, with its
    /// name and path prefix as the route table's keys.
    pub(super) fn route(
        &mut self,
        item: &Item,
        routes: &RouteTable<'s>,
    ) -> Option<(Route, Keys<'s>)> {
        let (name, name_span) = match item.args.as_slice() {
            [v] => match self.r.nonempty("route", v) {
                Ok(n) => (self.r.in_source(n), v.span),
                Err(d) => return self.fail(d),
            },
            _ => {
                return self.fail(self.r.err(
                    item.key_span,
                    "`route` needs one name: `route NAME { path_prefix \"/a\" }`",
                ));
            }
        };
        if let Some(&first) = routes.by_name.get(&name) {
            let line = self.r.lines.line(routes.list[first].span.start);
            let d = self
                .r
                .err(name_span, format!("duplicate route name `{name}`"))
                .with_help(format!("the first is on line {line}"));
            return self.fail(d);
        }
        let mut route = Route {
            name: (*name).into(),
            path_prefix: None,
            options: None,
            span: item.span,
        };
        let mut prefix = None;
        let mut seen = Seen::default();
        for inner in item.block.iter().flat_map(|b| &b.items) {
            if !ROUTE_KEYS.contains(&inner.key) {
                self.unknown_key(inner, "in a route", &[ROUTE_KEYS]);
                continue;
            }
            if !self.once(&mut seen, inner) {
                continue;
            }
            let r = match inner.key {
                "hosts" | "paths" | "protocols" => self.kong_route_setting(&mut route, inner),
                "strip_path" => self
                    .r
                    .one(inner)
                    .and_then(|v| self.r.boolean("strip_path", v))
                    .map(|b| options(&mut route).strip_path = b),
                "service" => self
                    .r
                    .one(inner)
                    .and_then(|v| self.r.nonempty("service", v))
                    .map(|t| options(&mut route).service = Some(t.into())),
                _ => self.route_setting(&mut route, &mut prefix, inner, routes),
            };
            self.report(r);
        }
        if route.path_prefix.is_some() && !route.options().paths.is_empty() {
            let d = self
                .r
                .err(item.key_span, "a route has `path_prefix` or `paths`, not both")
                .with_help("`path_prefix` matches at segment boundaries (`/a` is not a prefix of `/ab`); Kong's `paths` are plain string prefixes");
            return self.fail(d);
        }
        Some((route, (name, prefix)))
    }

    fn route_setting(
        &self,
        route: &mut Route,
        prefix: &mut Option<Cow<'s, str>>,
        item: &Item,
        routes: &RouteTable<'s>,
    ) -> Result<(), Diagnostic> {
        let v = self.r.one(item)?;
        let t = self.r.nonempty(item.key, v)?;
        if item.key == "path_prefix" {
            if !t.starts_with('/') || t.contains(['?', '#']) {
                return Err(self.r.err(
                    v.span,
                    format!("`path_prefix` must be a path starting with `/`, found `{t}`"),
                ));
            }
            let p = if t.len() > 1 {
                t.trim_end_matches('/')
            } else {
                t
            };
            if let Some(&other) = routes.by_prefix.get(p) {
                let other = &routes.list[other].name;
                return Err(self.r.err(
                    v.span,
                    format!("path prefix `{p}` is already routed to `{other}`"),
                ));
            }
            route.path_prefix = Some(p.into());
            *prefix = Some(self.r.in_source(p));
        } else {
            let upstream = t.parse::<crate::Upstream>().map_err(|why| {
                self.r
                    .err(v.span, format!("invalid upstream `{t}`: {why}"))
                    .with_help("`upstream` is `echo` or `http://host[:port][/base]`")
            })?;
            options(route).upstream = Some(upstream);
        }
        Ok(())
    }

    /// Kong's route fields: `hosts` (exact, `*.suffix` or `prefix.*`),
    /// `paths` (plain prefixes) and `protocols` (`http`, `https`).
    fn kong_route_setting(&self, route: &mut Route, item: &Item) -> Result<(), Diagnostic> {
        let key = item.key;
        let v = self.r.one(item)?;
        let list = self.r.texts(key, v)?;
        if list.is_empty() {
            return Err(self
                .r
                .err(v.span, format!("`{key}` needs at least one value")));
        }
        match key {
            "hosts" => {
                for (h, span) in list {
                    let pattern = self.r.domain(h, span)?;
                    if let DomainPattern::Prefix(p) = &pattern
                        && !p.ends_with('.')
                    {
                        return Err(self.r.err(span, format!("invalid wildcard: `{h}`: a route host's `*` is a whole label (`*.example.com` or `example.*`)")));
                    }
                    options(route).hosts.push(pattern);
                }
            }
            "paths" => {
                for (p, span) in list {
                    if p.starts_with('~') {
                        return Err(self
                            .r
                            .err(span, "regex paths are not supported: write plain prefixes"));
                    }
                    if !p.starts_with('/')
                        || p.contains(['?', '#'])
                        || !crate::graph::normal_path(p)
                    {
                        return Err(self.r.err(span, format!("should start with: / (fixed path) and be a normalized path, found `{p}`")));
                    }
                    options(route).paths.push(p.into());
                }
            }
            _ => {
                let (mut http, mut https) = (false, false);
                for (p, span) in list {
                    match p {
                        "http" => http = true,
                        "https" => https = true,
                        other => {
                            return Err(self.r.err(
                                span,
                                format!("protocol `{other}` is not supported: `http` or `https`"),
                            ));
                        }
                    }
                }
                options(route).https_only = https && !http;
            }
        }
        Ok(())
    }
}

/// A route's options, to set one.
fn options(route: &mut Route) -> &mut RouteOptions {
    route.options.get_or_insert_default()
}

/// A route's name and path prefix, as keys of the [`RouteTable`].
pub(super) type Keys<'s> = (Cow<'s, str>, Option<Cow<'s, str>>);

/// Declared routes, with lookups by name and path prefix.
#[derive(Default)]
pub(super) struct RouteTable<'s> {
    pub(super) list: Vec<Route>,
    pub(super) by_name: Names<'s, usize>,
    by_prefix: Names<'s, usize>,
}

impl<'s> RouteTable<'s> {
    pub(super) fn with_capacity(n: usize) -> Self {
        let mut t = RouteTable::default();
        t.list.reserve_exact(n);
        t.by_name.reserve(n);
        t.by_prefix.reserve(n);
        t
    }

    pub(super) fn add(&mut self, route: Route, (name, prefix): Keys<'s>) {
        let i = self.list.len();
        self.by_name.insert(name, i);
        if let Some(p) = prefix {
            self.by_prefix.insert(p, i);
        }
        self.list.push(route);
    }

    /// Every route is declared: path prefixes are no longer looked up.
    pub(super) fn routes_declared(&mut self) {
        self.by_prefix = Names::default();
    }
}
