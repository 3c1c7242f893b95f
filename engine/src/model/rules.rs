//! Checking `rule { … }` blocks: what a rule matches (`match`), and what it
//! does — authorize instance consumers (`allow`), authenticate with its own
//! consumers and settings, or `disable` the plugin — never two of those.

use super::*;

/// One `match KIND [values]` clause: the kind, its values with spans, and
/// the clause's span.
type Clause<'a> = (&'a str, Vec<(String, Span)>, Span);

impl Checker<'_> {
    pub(super) fn rule(
        &mut self,
        item: &Item,
        instance_settings: &Settings,
        instance: &ScopeRoster,
        routes: &RouteTable,
        scopes: &mut Vec<Scope>,
    ) -> Option<Rule> {
        let errors_before = self.errors.len();
        let name = match item.args.as_slice() {
            [] => None,
            [v] => match self.r.nonempty("rule", v) {
                Ok(n) => Some(n.into()),
                Err(d) => return self.fail(d),
            },
            [_, extra, ..] => {
                return self.fail(
                    self.r
                        .err(extra.span, "`rule` takes at most one name before its `{`"),
                );
            }
        };
        let Some(block) = &item.block else {
            return self.fail(self.r.err(item.span, "`rule` needs a `{ … }` block"));
        };

        let mut seen = Seen::default();
        // Cloned only by a rule that changes a setting.
        let mut settings: Option<Settings> = None;
        let mut first_setting: Option<Span> = None;
        let mut own = ScopeRoster::default();
        let mut first_consumer: Option<Span> = None;
        let mut allow: Option<(Vec<ConsumerId>, Span)> = None;
        let mut disable: Option<Span> = None;
        let mut matches: smallvec::SmallVec<[Clause<'_>; 2]> = smallvec::SmallVec::new();

        for inner in &block.items {
            match inner.key {
                "match" => {
                    if let Some(m) = self.match_clause(inner) {
                        matches.push(m);
                    }
                }
                "allow" => {
                    if self.once(&mut seen, inner) && self.no_block(inner) {
                        allow = self.allow(inner, instance).map(|ids| (ids, inner.key_span));
                    }
                }
                "disable" => {
                    if self.once(&mut seen, inner) {
                        let on = match inner.args.as_slice() {
                            [] => Ok(true),
                            [v] => self.r.boolean("disable", v),
                            [_, extra, ..] => {
                                Err(self.r.err(extra.span, "`disable` takes at most one value"))
                            }
                        };
                        match on {
                            Ok(true) => disable = Some(inner.key_span),
                            Ok(false) => {}
                            Err(d) => self.errors.push(d),
                        }
                    }
                }
                "consumer" if self.dialect == Dialect::Kong => {
                    let d = self
                        .r
                        .err(inner.key_span, "in the Kong dialect consumers are global")
                        .with_help("declare the consumer at the top level: every plugin (rule) authenticates every consumer, as in Kong");
                    self.errors.push(d);
                }
                "consumer" => {
                    first_consumer.get_or_insert(inner.key_span);
                    if let Some(id) = self.consumer(inner, &mut own) {
                        own.ids.push(id);
                    }
                }
                key if self.scope_settings().contains(&key) => {
                    first_setting.get_or_insert(inner.key_span);
                    if self.once(&mut seen, inner) {
                        let own = settings.get_or_insert_with(|| instance_settings.clone());
                        let r = self.setting(own, inner);
                        self.report(r);
                    }
                }
                _ => {
                    let valid = self.scope_settings();
                    self.unknown_key(inner, "in a rule", &[RULE_ONLY, valid, &["consumer"]])
                }
            }
        }

        let authn = first_consumer.or(first_setting);
        let action = match (&allow, authn, disable) {
            (Some((_, at)), Some(_), _) => {
                let d = self
                    .r
                    .err(*at, "a rule cannot both authenticate and authorize")
                    .with_help("`allow` lists instance consumers; a rule with its own `consumer`s or settings authenticates them itself. Split it into two rules");
                return self.fail(d);
            }
            (Some(_), None, Some(at)) | (None, Some(_), Some(at)) => {
                return self.fail(self.r.err(at, "a disabled rule neither authenticates nor authorizes: remove `disable` or the rest"));
            }
            (Some((ids, _)), None, None) => Action::Allow(ids[..].into()),
            (None, Some(_), None) if self.dialect == Dialect::Kong => {
                // A Kong plugin of its own: the global consumers, its settings.
                scopes.push(Scope {
                    settings: settings.unwrap_or_else(|| instance_settings.clone()),
                    consumers: instance.ids.clone(),
                    span: item.span,
                });
                Action::Authenticate((scopes.len() - 1) as ScopeId)
            }
            (None, Some(at), None) => {
                // A rule may authenticate only external issuers' tokens.
                let external_only = settings
                    .as_ref()
                    .is_some_and(|s| !s.issuers.is_empty() || s.introspect.is_some());
                if own.ids.is_empty() && !external_only {
                    if first_consumer.is_none() {
                        let d = self
                            .r
                            .err(at, "this rule changes settings but declares no `consumer`")
                            .with_help("add the consumers who may authenticate here (or `issuers [...]` whose tokens it accepts), or move the setting to the top level");
                        return self.fail(d);
                    }
                    return None; // its consumers were malformed and already reported
                }
                scopes.push(Scope {
                    settings: settings.unwrap_or_else(|| instance_settings.clone()),
                    consumers: own.ids.clone(),
                    span: item.span,
                });
                Action::Authenticate((scopes.len() - 1) as ScopeId)
            }
            (None, None, Some(_)) => Action::Disable,
            (None, None, None) => {
                if self.errors.len() > errors_before {
                    return None;
                }
                let d = self
                    .r
                    .err(item.key_span, "this rule does nothing")
                    .with_help(
                        "give it `allow [consumer, …]`, its own `consumer` blocks, or `disable`",
                    );
                return self.fail(d);
            }
        };

        if self.errors.len() > errors_before {
            return None; // a malformed `match` was reported; "matches nothing" would be noise
        }
        let matcher = self.matcher(matches, item, routes)?;
        let (line, column) = self.r.lines.line_col(self.r.src, item.span.start);
        Some(Rule {
            name,
            start: item.span.start,
            line,
            column,
            matcher,
            action,
        })
    }

    /// `match KIND NAMES`
    fn match_clause<'i>(&mut self, item: &'i Item) -> Option<Clause<'i>> {
        if !self.no_block(item) {
            return None;
        }
        let [kind, names] = item.args.as_slice() else {
            let d = self
                .r
                .err(item.span, "`match` takes a kind and names")
                .with_help(
                    "e.g. `match route [route-a, route-b]` or `match domain [\"*.example.com\"]`",
                );
            return self.fail(d);
        };
        let k = kind.text().unwrap_or_default();
        let Some(&k) = MATCH_KINDS.iter().find(|&&m| m == k) else {
            let mut d = self.r.err(kind.span, format!("unknown match kind `{k}`"));
            d = d.with_help(match closest(k, MATCH_KINDS.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "match by `route`, `route_prefix`, `service` or `domain`".into(),
            });
            return self.fail(d);
        };
        match self.r.texts("match", names) {
            Ok(list) if list.is_empty() => {
                self.fail(self.r.err(names.span, "`match` needs at least one name"))
            }
            Ok(list) => {
                // (Sized up front: a collect from this iterator keeps room for four.)
                let mut names = Vec::with_capacity(list.len());
                names.extend(list.into_iter().map(|(t, s)| (t.to_string(), s)));
                Some((k, names, kind.span))
            }
            Err(d) => self.fail(d),
        }
    }

    /// Combine a rule's `match` clauses into one matcher.
    fn matcher(
        &mut self,
        clauses: smallvec::SmallVec<[Clause<'_>; 2]>,
        rule: &Item,
        routes: &RouteTable,
    ) -> Option<Matcher> {
        let mut by_kind: Vec<(&str, Vec<(String, Span)>)> = Vec::new();
        for (kind, names, _) in clauses {
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, all)) => all.extend(names),
                None => by_kind.push((kind, names)),
            }
        }
        by_kind.sort_by_key(|(k, _)| MATCH_KINDS.iter().position(|m| m == k));
        // A service written as an upstream URL matches a route's upstream as
        // the compiler parsed it: both in canonical form (host lower case,
        // no trailing `/`), so `http://Backend:8080/` matches the route
        // whose upstream is `http://backend:8080`.
        for (kind, names) in &mut by_kind {
            if *kind == "service" {
                for (n, _) in names.iter_mut() {
                    if let Ok(upstream) = n.parse::<crate::Upstream>() {
                        *n = upstream.to_string();
                    }
                }
            }
        }
        for (kind, names) in &by_kind {
            if *kind == "route" && !routes.list.is_empty() {
                for (n, span) in names {
                    if !routes.by_name.contains(n) {
                        let mut d = Diagnostic::indexed(
                            crate::Severity::Warning,
                            self.r.src,
                            &self.r.lines,
                            span.range(),
                            format!("route `{n}` is not declared in this policy"),
                        );
                        d = d.with_help(match closest(n, routes.list.iter().map(|r| &*r.name)) {
                            Some(best) => format!("did you mean `{best}`? (only a host that names its own routes can match `{n}`)"),
                            None => "only a host that names its own routes can match it".into(),
                        });
                        self.warnings.push(d);
                    }
                }
            }
        }
        let boxed = |names: Vec<(String, Span)>| -> Few<Box<str>> {
            names.into_iter().map(|(n, _)| n.into()).collect()
        };
        let mut it = by_kind.into_iter();
        let matcher = match (it.next(), it.next(), it.next()) {
            (None, ..) => {
                let d = self
                    .r
                    .err(rule.key_span, "this rule matches nothing")
                    .with_help("add `match route [NAME, …]`, `match domain [HOST, …]`, `match route_prefix […]` or `match service […]`");
                return self.fail(d);
            }
            (Some(("route", r)), Some(("service", s)), None) => {
                Matcher::RouteAndService(Box::new((boxed(r), boxed(s))))
            }
            (Some((kind, names)), None, None) => match kind {
                "route" => Matcher::Route(boxed(names)),
                "route_prefix" => Matcher::RoutePrefix(boxed(names)),
                "service" => Matcher::Service(boxed(names)),
                _ => {
                    let mut domains = Vec::with_capacity(names.len());
                    for (n, s) in &names {
                        match self.r.domain(n, *s) {
                            Ok(p) => domains.push(p),
                            Err(d) => return self.fail(d),
                        }
                    }
                    Matcher::Domain(domains.into())
                }
            },
            (Some((a, _)), Some((b, _)), _) | (Some((a, _)), None, Some((b, _))) => {
                let d = self
                    .r
                    .err(rule.key_span, format!("a rule cannot match by both `{a}` and `{b}`"))
                    .with_help("only `route` and `service` combine (both must match); split the rule in two");
                return self.fail(d);
            }
        };
        Some(matcher)
    }

    /// `allow [consumer, …]`: names of instance consumers.
    fn allow(&mut self, item: &Item, instance: &ScopeRoster) -> Option<Vec<ConsumerId>> {
        let v = match self.r.one(item) {
            Ok(v) => v,
            Err(d) => return self.fail(d),
        };
        let names = match self.r.texts("allow", v) {
            Ok(n) => n,
            Err(d) => return self.fail(d),
        };
        let mut ids = Vec::with_capacity(names.len());
        let mut ok = true;
        for (name, span) in names {
            match instance.names.get(name) {
                Some(&id) => ids.push(id),
                None => {
                    ok = false;
                    let mut d = self
                        .r
                        .err(span, format!("unknown consumer `{name}` in `allow`"));
                    let known = instance
                        .ids
                        .iter()
                        .map(|&id| &*self.consumers[id as usize].name);
                    d = d.with_help(match closest(name, known) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None if instance.ids.is_empty() => "declare it at the top level: `consumer NAME { client_id …; client_secret … }`".into(),
                        None => "`allow` names consumers declared at the top level of the file".into(),
                    });
                    self.errors.push(d);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ok.then_some(ids)
    }
}
