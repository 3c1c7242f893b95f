//! Evaluating a request against the [`DecisionGraph`].
//!
//! One walk: normalise the host, resolve the route (host-supplied name, else
//! the path router), find the first matching rule through the indexes, then
//! follow that rule's node chain to an outcome. Everything else is a mode of
//! that walk: `explain` is a [`Trace`] of it (the no-op trace used by
//! `decide` compiles away), and the rule layer alone ([`Verdict`]) is the
//! same walk identifying the client by a known consumer instead of a token.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;

use smallvec::SmallVec;

use super::{
    CompiledScope, DecisionGraph, Granted, Node, NodeId, VerifiedTokens, index::MatchKeys,
    index::RulePos,
};
use crate::external::Principal;
use crate::kong::{self, Endpoint};
use crate::model::{ConsumerId, Dialect, INSTANCE, IssuerId, ScopeId};
use crate::oauth;
use crate::request::SetHeaders;
use crate::token::{self, Claims, Expect, TokenError};
use crate::{Decision, ForwardRef, Notes, Request, Services, TokenCheck, Upstream};

use super::http::{
    bearer, forbidden, insufficient_scope, normal_path, normalize_host, spoofable, unauthorized,
};

/// The rule layer's answer for an already-authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No authentication required here.
    Pass,
    /// Authenticated and authorized.
    Allowed,
    /// A token of this rule's scope is required (401).
    Unauthenticated,
    /// Authenticated but not in the `allow` list (403).
    Denied,
}

/// Collects the steps of an evaluation (or not).
pub(super) trait Trace {
    fn step(&mut self, f: impl FnOnce() -> String);
    /// The walk reached node `id`.
    #[inline(always)]
    fn visit(&mut self, _id: NodeId) {}
    /// Dispatch chose the entry of rule `pos` (`None`: no rule matched).
    #[inline(always)]
    fn entered(&mut self, _rule: Option<RulePos>) {}
    /// The request's token was checked so.
    #[inline(always)]
    fn token(&mut self, _check: TokenCheck) {}
}

/// The trace that serves requests: the [`Notes`] of a decision (two
/// stores per request), nothing else.
impl Trace for Notes {
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> String) {}
    #[inline(always)]
    fn entered(&mut self, rule: Option<RulePos>) {
        self.rule = rule;
    }
    #[inline(always)]
    fn token(&mut self, check: TokenCheck) {
        self.token = check;
    }
}

/// The path one request took: the rule it entered and the nodes it
/// visited (`warden explain --graph`).
#[derive(Debug, Default)]
pub(super) struct PathTrace {
    pub(super) dispatched: bool,
    pub(super) rule: Option<RulePos>,
    pub(super) nodes: Vec<NodeId>,
}

impl Trace for PathTrace {
    fn step(&mut self, _: impl FnOnce() -> String) {}
    fn visit(&mut self, id: NodeId) {
        self.nodes.push(id);
    }
    fn entered(&mut self, rule: Option<RulePos>) {
        self.dispatched = true;
        self.rule = rule;
    }
}

struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<String> {
    fn step(&mut self, f: impl FnOnce() -> String) {
        self.push(f());
    }
}

/// What is known about a request while walking the graph.
pub(crate) struct Ctx<'r> {
    pub(crate) req: &'r Request<'r>,
    hostname: Cow<'r, str>,
    route: Option<&'r str>,
    upstream: Option<&'r Upstream>,
    consumer: Option<(ConsumerId, ScopeId)>,
    /// Kong dialect: what the consumer's token granted (`None` with
    /// `consumer` set: the anonymous consumer).
    granted: Option<Granted>,
    /// Kong's `hide_credentials`: where the credential was, to remove.
    pub(crate) edits: Edits,
    /// The route is Kong's `protocols [https]`.
    https_only: bool,
    /// With `strip_path`: the length of the path prefix the route matched.
    strip: Option<usize>,
    /// The host's service name, else the route's `service`.
    service: Option<&'r str>,
    /// Who an external issuer's token names (`jwt_issuer`), in which scope.
    external: Option<(Principal, ScopeId)>,
}

/// Who a token proved to be.
pub(crate) enum Authenticated {
    /// A consumer of the scope, by its own token.
    Consumer(ConsumerId),
    /// Someone an external issuer's token names.
    External(IssuerId, Principal),
    /// Someone an introspection server vouched for.
    Introspected(u32, Principal),
    /// Not decided by a token check alone: the reply (an introspection
    /// error), or the fetch the decision needs first.
    Stop(Decision<Infallible>),
}

/// Edits of the forwarded request beyond its headers.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    pub(crate) remove_header: Option<String>,
    pub(crate) query: Option<String>,
    pub(crate) body: Option<Vec<u8>>,
}

/// A token verified for a scope: its consumer, whether its audience is
/// `default` (global) or this request's scope key, and (Kong dialect) its grant.
pub(crate) struct Verified {
    pub(crate) consumer: ConsumerId,
    pub(crate) global: bool,
    pub(crate) here: bool,
    pub(crate) granted: Option<Granted>,
}

/// The path forwarded by a `strip_path` route that matched `len` bytes of
/// `path` (before the upstream's base path): the rest, starting with `/`;
/// `/` when nothing is left (Kong forwards the base path without it).
fn stripped(path: &str, len: usize) -> Cow<'_, str> {
    match path.get(len..).unwrap_or("") {
        "" => Cow::Borrowed("/"),
        rest if rest.starts_with('/') => Cow::Borrowed(rest),
        rest => Cow::Owned(format!("/{rest}")),
    }
}

impl Ctx<'_> {
    /// The audience of route-scoped tokens: the route name, else the hostname.
    pub(crate) fn scope_key(&self) -> &str {
        self.route.unwrap_or(&self.hostname)
    }

    /// Kong binds a token of a plugin without `global_credentials` to the
    /// service: the host's or the route's service name, else as
    /// [`Self::scope_key`].
    pub(crate) fn service_key(&self) -> &str {
        self.service.unwrap_or_else(|| self.scope_key())
    }
}

/// How a walk learns who the client is.
enum Identify<'a> {
    /// From the request's bearer token, verified (or found in the memo):
    /// how requests are served. The token endpoint answers on its path.
    Token {
        services: &'a dyn Services,
        memo: Option<&'a mut VerifiedTokens>,
    },
    /// Already known (or known to be nobody): the rule layer alone. No
    /// token is parsed and the token endpoint is not considered.
    Known(Option<ConsumerId>),
}

/// Where a walk ends.
enum Outcome {
    /// The path is the scope's token endpoint.
    TokenEndpoint(ScopeId),
    /// The path is the scope's revocation or introspection endpoint.
    Revocation(ScopeId, crate::revocation::Endpoint),
    /// The path is one of Kong's endpoints of a Kong-dialect scope.
    KongEndpoint(ScopeId, Endpoint),
    /// A Kong-dialect scope decided already (its 401, or a need for the body).
    Decided(Decision<Infallible>),
    /// The scope's token is required and was not shown (401).
    Unauthenticated { presented: bool, why: TokenError },
    /// The consumer is not in the rule's `allow` set (403).
    Denied,
    /// Let the request through.
    Forward,
}

impl DecisionGraph {
    /// The walk that serves requests (see [`crate::Policy::decide`]), with
    /// `memo` when the caller keeps one, traced when `explain` asks.
    pub(crate) fn decision<'r>(
        &'r self,
        req: &'r Request<'r>,
        services: &dyn Services,
        mut memo: Option<&mut VerifiedTokens>,
    ) -> (Decision<ForwardRef<'r>>, Notes) {
        let hits = memo.as_deref_mut().map(|m| {
            m.bind(self.id);
            m.hits()
        });
        let mut notes = Notes::default();
        let decision = self.evaluate(req, services, memo.as_deref_mut(), &mut notes);
        // The walk sees a verified consumer token; the memo knows whether
        // its signature was checked now or remembered.
        if notes.token == TokenCheck::Verified
            && let (Some(before), Some(m)) = (hits, memo)
            && m.hits() > before
        {
            notes.token = TokenCheck::Remembered;
        }
        (decision, notes)
    }

    /// The walk's steps for humans, ending with its decision.
    pub(crate) fn explanation(&self, req: &Request<'_>, services: &dyn Services) -> String {
        let mut steps = Vec::new();
        let decision = self.evaluate(req, services, None, &mut steps);
        let outcome = match &decision {
            Decision::Forward(f) => format!(
                "forward to {} (consumer: {}; set {:?}; remove {:?})",
                f.upstream
                    .map_or("the default upstream".into(), |u| format!("`{u}`")),
                f.consumer.as_deref().unwrap_or("none"),
                f.set_headers,
                f.remove_headers
            ),
            Decision::Reply(r) => format!("reply {} ({})", r.status, r.reason),
            Decision::NeedBody { max_bytes } => {
                format!("read the request body (at most {max_bytes} bytes), then decide again")
            }
            Decision::RefreshKeys { url } => {
                format!("fetch the JWK Set at `{url}` again, then decide again")
            }
            Decision::Fetch(f) => format!(
                "{} {} (introspection), then decide again",
                f.method,
                f.url.split('?').next().unwrap_or_default()
            ),
        };
        steps.push(format!("decision: {outcome}"));
        let mut text = String::new();
        for (i, step) in steps.iter().enumerate() {
            let _ = writeln!(text, "{}. {step}", i + 1);
        }
        text
    }

    /// The rule layer alone: what the policy says about `req` for a consumer
    /// whose token is already verified (or for no consumer). The same walk
    /// as [`Self::decide`], identifying the client by `consumer` instead of
    /// a token; the token endpoint is not considered.
    pub fn rule_verdict(&self, req: &Request<'_>, consumer: Option<ConsumerId>) -> Verdict {
        let (mut ctx, entry) = self.dispatch(req, &mut NoTrace);
        match self.walk(&mut ctx, entry, Identify::Known(consumer), &mut NoTrace) {
            Outcome::Forward if ctx.consumer.is_some() => Verdict::Allowed,
            Outcome::Forward
            | Outcome::TokenEndpoint(_)
            | Outcome::Revocation(..)
            | Outcome::KongEndpoint(..) => Verdict::Pass,
            Outcome::Unauthenticated { .. } | Outcome::Decided(_) => Verdict::Unauthenticated,
            Outcome::Denied => Verdict::Denied,
        }
    }

    /// The walk that serves requests: path check, dispatch, the rule's
    /// node chain, and the reply or forward its outcome calls for.
    pub(super) fn evaluate<'r>(
        &'r self,
        req: &'r Request<'r>,
        services: &dyn Services,
        memo: Option<&mut VerifiedTokens>,
        trace: &mut impl Trace,
    ) -> Decision<ForwardRef<'r>> {
        if !normal_path(req.path) {
            trace.step(|| "the path is not in normal form: refused".into());
            return Decision::bad_request(
                "path not in normal form (`//`, `.`, `..` or an encoded unreserved character)"
                    .into(),
            );
        }
        if let Some(reply) = self.published.answer(req, services) {
            trace.step(|| format!("`{}`: a document the policy publishes", req.path));
            return Decision::Reply(reply);
        }
        let (mut ctx, entry) = self.dispatch(req, trace);
        if self.dialect == Dialect::Kong {
            if ctx.route.is_none() && req.route.is_none() && !self.routes.is_empty() {
                trace.step(|| "no route matches: Kong's 404".into());
                return Decision::Reply(kong::no_route());
            }
            if ctx.https_only && !req.scheme.eq_ignore_ascii_case("https") {
                trace.step(|| "the route is HTTPS only: Kong's 426".into());
                return Decision::Reply(kong::use_https());
            }
        }
        match self.walk(&mut ctx, entry, Identify::Token { services, memo }, trace) {
            Outcome::TokenEndpoint(scope) => oauth::token_endpoint(self, &ctx, scope, services),
            Outcome::Revocation(scope, which) => {
                crate::revocation::endpoint(self, &ctx, scope, which, services)
            }
            Outcome::KongEndpoint(scope, which) => {
                kong::endpoint(self, &ctx, scope, which, services)
            }
            Outcome::Decided(decision) => decision.any_forward(),
            Outcome::Unauthenticated {
                why: TokenError::InsufficientScope(scope),
                ..
            } => Decision::Reply(insufficient_scope(req, &scope)),
            Outcome::Unauthenticated {
                why: TokenError::RefreshKeys(url),
                ..
            } => Decision::RefreshKeys { url },
            Outcome::Unauthenticated { presented, why } => {
                Decision::Reply(unauthorized(req, presented, why))
            }
            Outcome::Denied if self.dialect == Dialect::Kong => {
                Decision::Reply(kong::access::forbidden())
            }
            Outcome::Denied => Decision::Reply(forbidden(req)),
            Outcome::Forward => Decision::Forward(self.forward(ctx)),
        }
    }

    /// Normalise the request, resolve its route and pick the entry node.
    fn dispatch<'r>(&'r self, req: &'r Request<'r>, trace: &mut impl Trace) -> (Ctx<'r>, NodeId) {
        let mut ctx = Ctx {
            req,
            hostname: normalize_host(req.authority),
            route: req.route,
            upstream: None,
            consumer: None,
            granted: None,
            edits: Edits::default(),
            https_only: false,
            strip: None,
            service: req.service,
            external: None,
        };
        let declared = match req.route {
            Some(name) => self
                .route_by_name
                .get(name, |i| &self.routes[i as usize].name),
            None if self.kong_routing => super::routes::pick(
                self.routes.iter().map(|r| r.matcher()),
                &ctx.hostname,
                req.path,
            ),
            None => self
                .router
                .lookup(req.path, |i| super::route_prefix(&self.routes, i)),
        };
        let mut service = req.service;
        if let Some(r) = declared.map(|i| &self.routes[i as usize]) {
            ctx.route = Some(&r.name);
            ctx.https_only = r.https_only();
            if r.strip_path() {
                ctx.strip = r
                    .matcher()
                    .rank(&ctx.hostname, req.path)
                    .map(|(_, _, len)| len);
            }
            ctx.upstream = r.upstream();
            ctx.service = ctx.service.or(r.service());
            service = service.or(r.service()).or(r.upstream_text.as_deref());
        }
        trace.step(|| {
            format!(
                "hostname `{}`, route {}",
                ctx.hostname,
                ctx.route.map_or("none".into(), |r| format!("`{r}`"))
            )
        });

        let keys = MatchKeys {
            route: ctx.route,
            service,
            hostname: &ctx.hostname,
        };
        let node = match self.index.first_match(&keys) {
            Some(pos) => {
                trace.step(|| {
                    format!(
                        "first matching rule: {}",
                        self.rule_names.get(pos as usize).label()
                    )
                });
                trace.entered(Some(pos));
                self.rule_entry[pos as usize]
            }
            None => {
                trace.step(|| "no rule matches: instance behaviour (`global_auth`)".into());
                trace.entered(None);
                self.unmatched_entry
            }
        };
        (ctx, node)
    }

    /// Follow the node chain from `node` to its outcome.
    fn walk(
        &self,
        ctx: &mut Ctx<'_>,
        mut node: NodeId,
        mut identify: Identify<'_>,
        trace: &mut impl Trace,
    ) -> Outcome {
        loop {
            trace.visit(node);
            match self.nodes[node as usize] {
                Node::TokenEndpoint { scope, next } => {
                    let settings = &self.scopes[scope as usize].settings;
                    let path = &settings.auth_path;
                    let serving = matches!(identify, Identify::Token { .. });
                    if serving && settings.dialect == Dialect::Kong {
                        if let Some(which) = Endpoint::of(ctx.req.path) {
                            trace.step(|| format!("Kong's {which:?} endpoint"));
                            return Outcome::KongEndpoint(scope, which);
                        }
                    } else if serving && ctx.req.path.ends_with(path.as_str()) {
                        trace.step(|| format!("path ends with `{path}`: token endpoint"));
                        return Outcome::TokenEndpoint(scope);
                    } else if serving
                        && settings.revocation
                        && let Some(which) = crate::revocation::Endpoint::of(ctx.req.path)
                    {
                        trace.step(|| format!("{which:?} endpoint (RFC 7009/7662)"));
                        return Outcome::Revocation(scope, which);
                    }
                    node = next;
                }
                Node::Authenticate { scope, next }
                    if self.scopes[scope as usize].settings.dialect == Dialect::Kong
                        && matches!(identify, Identify::Token { .. }) =>
                {
                    let Identify::Token { services, memo } = &mut identify else {
                        unreachable!("matched above");
                    };
                    match kong::access::authenticate(
                        self,
                        ctx,
                        scope,
                        *services,
                        memo.as_deref_mut(),
                    ) {
                        Ok(kong::access::Access::Token(consumer, granted)) => {
                            trace.token(TokenCheck::Verified);
                            trace.step(|| {
                                format!(
                                    "authenticated as `{}`",
                                    self.consumer_names[consumer as usize]
                                )
                            });
                            ctx.consumer = Some((consumer, scope));
                            ctx.granted = Some(granted);
                        }
                        Ok(kong::access::Access::Anonymous(consumer)) => {
                            trace.step(|| {
                                format!(
                                    "authentication failed: anonymous consumer `{}`",
                                    self.consumer_names[consumer as usize]
                                )
                            });
                            ctx.consumer = Some((consumer, scope));
                        }
                        Err(stop) => {
                            if let kong::access::Stop::Reply(r) = &stop
                                && !displays_as(&TokenError::Missing, &r.reason)
                            {
                                trace.token(TokenCheck::Rejected);
                            }
                            trace.step(|| "authentication failed".into());
                            return Outcome::Decided(stop.into());
                        }
                    }
                    node = next;
                }
                Node::Authenticate { scope, next } => {
                    let found = match &mut identify {
                        Identify::Token { services, memo } => {
                            self.authenticate(ctx, scope, *services, memo.as_deref_mut())
                        }
                        Identify::Known(Some(c)) if self.in_scope(*c, scope) => {
                            Ok(Authenticated::Consumer(*c))
                        }
                        Identify::Known(c) => Err((c.is_some(), TokenError::UnknownClient)),
                    };
                    match found {
                        Ok(Authenticated::Consumer(consumer)) => {
                            trace.token(TokenCheck::Verified);
                            trace.step(|| {
                                format!(
                                    "authenticated as `{}`",
                                    self.consumer_names[consumer as usize]
                                )
                            });
                            ctx.consumer = Some((consumer, scope));
                            node = next;
                        }
                        Ok(Authenticated::External(issuer, principal)) => {
                            trace.token(TokenCheck::Verified);
                            trace.step(|| {
                                format!(
                                    "authenticated as `{}` by jwt_issuer `{}`{}",
                                    principal.name,
                                    self.issuers[issuer as usize].name,
                                    if principal.consumer.is_some() {
                                        ""
                                    } else {
                                        " (not a consumer of the policy)"
                                    }
                                )
                            });
                            ctx.consumer = principal.consumer.map(|c| (c, scope));
                            ctx.external = Some((principal, scope));
                            node = next;
                        }
                        Ok(Authenticated::Introspected(id, principal)) => {
                            trace.token(if ctx.req.fetched.is_some() {
                                TokenCheck::Introspected
                            } else {
                                TokenCheck::IntrospectionCached
                            });
                            trace.step(|| {
                                format!(
                                    "introspection `{}` vouched for `{}`",
                                    self.introspections[id as usize].name, principal.name
                                )
                            });
                            ctx.consumer = principal.consumer.map(|c| (c, scope));
                            ctx.external = Some((principal, scope));
                            node = next;
                        }
                        Ok(Authenticated::Stop(decision)) => {
                            // The introspection answer refused the token; a
                            // 5xx means the server could not be asked.
                            if matches!(&decision, Decision::Reply(r) if r.status < 500) {
                                trace.token(TokenCheck::Rejected);
                            }
                            trace.step(|| match &decision {
                                Decision::Fetch(f) => format!(
                                    "introspect the token: {} {}",
                                    f.method,
                                    f.url.split('?').next().unwrap_or_default()
                                ),
                                Decision::Reply(r) => format!("introspection: {}", r.reason),
                                _ => "introspection".into(),
                            });
                            return Outcome::Decided(decision);
                        }
                        Err((presented, why)) => {
                            if presented {
                                trace.token(TokenCheck::Rejected);
                            }
                            trace.step(|| format!("authentication failed: {why}"));
                            return Outcome::Unauthenticated { presented, why };
                        }
                    }
                }
                Node::Authorize { set, next } => {
                    let allowed = ctx
                        .consumer
                        .is_some_and(|(c, _)| self.sets[set as usize].contains(c));
                    if !allowed {
                        trace.step(|| "consumer not in the rule's `allow` list".into());
                        return Outcome::Denied;
                    }
                    trace.step(|| "consumer is allowed".into());
                    node = next;
                }
                Node::Forward => return Outcome::Forward,
            }
        }
    }

    /// Verify the bearer token against `scope` (or find it in `memo`): its
    /// own tokens, or those of an external issuer it lists whose `iss` the
    /// token names. Who it is, or whether a token was presented and why it
    /// failed.
    fn authenticate(
        &self,
        ctx: &Ctx<'_>,
        scope: ScopeId,
        services: &dyn Services,
        memo: Option<&mut VerifiedTokens>,
    ) -> Result<Authenticated, (bool, TokenError)> {
        let s = &self.scopes[scope as usize];
        if let Some(id) = s.settings.introspect {
            // A JWT of the scope's own issuer, or of an external one it
            // lists, is verified as such; every other token is introspected.
            let jwt = ctx
                .req
                .header(&s.settings.auth_header_name)
                .and_then(bearer)
                .is_some_and(|t| {
                    crate::external::peek_issuer(t).is_some_and(|iss| iss == s.settings.issuer)
                        || self.external_issuer(s, t).is_some()
                });
            if !jwt {
                let i = &self.introspections[id as usize];
                let by_name = |name: &str| {
                    self.consumer_names
                        .iter()
                        .position(|n| &**n == name)
                        .map(|c| c as ConsumerId)
                        .filter(|&c| self.in_scope(c, INSTANCE) || self.in_scope(c, scope))
                };
                return Ok(
                    match crate::introspect::authenticate(
                        (i, id),
                        ctx.req,
                        &s.settings.auth_header_name,
                        services,
                        &by_name,
                    ) {
                        Ok(p) => Authenticated::Introspected(id, p),
                        Err(d) => Authenticated::Stop(*d),
                    },
                );
            }
        }
        let mut values = ctx
            .req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&s.settings.auth_header_name));
        let query_token;
        let token = match values.next() {
            Some(_) if values.next().is_some() => return Err((true, TokenError::Ambiguous)),
            Some((_, value)) => bearer(value).ok_or((true, TokenError::NotBearer))?,
            // No header: the query parameter, where the scope names one
            // (a browser's WebSocket cannot set headers).
            None => match s.settings.token_query_param.as_deref() {
                None => return Err((false, TokenError::Missing)),
                Some(param) => {
                    query_token = query_token_of(ctx.req.query, param)?;
                    query_token.as_str()
                }
            },
        };
        if let Some(found) = self.external_issuer(s, token) {
            let now = (
                services.now(),
                s.settings.clock_skew_seconds,
                ctx.req.keys_refreshed,
            );
            return crate::external::verify(&self.issuers[found as usize], token, now, services)
                .map(|p| Authenticated::External(found, p))
                .map_err(|e| (true, e));
        }
        let audience = if s.settings.global_credentials {
            "default"
        } else {
            ctx.scope_key()
        };
        self.verify_in(ctx, scope, token, services, memo, Some(audience))
            .map(|v| Authenticated::Consumer(v.consumer))
    }

    /// The external issuer of `s` whose `iss` the token names (never for
    /// the scope's own issuer).
    fn external_issuer(&self, s: &CompiledScope, token: &str) -> Option<IssuerId> {
        if s.settings.issuers.is_empty() {
            return None;
        }
        let iss = crate::external::peek_issuer(token)?;
        if iss == s.settings.issuer {
            return None;
        }
        s.settings
            .issuers
            .iter()
            .copied()
            .find(|&id| self.issuers[id as usize].iss == iss)
    }

    /// Whether consumer `c` authenticates in `scope`.
    fn in_scope(&self, c: ConsumerId, scope: ScopeId) -> bool {
        self.consumer_scope.get(c as usize) == Some(&scope)
            || self.scopes[scope as usize]
                .clients
                .iter()
                .any(|client| client.consumer == c)
    }

    /// Verify `token` in `scope` (or find it in `memo`): signature, issuer,
    /// subject and times, and the audience when `audience` says which; a
    /// Kong-dialect token's grant comes with it.
    pub(crate) fn verify_in(
        &self,
        ctx: &Ctx<'_>,
        scope: ScopeId,
        token: &str,
        services: &dyn Services,
        memo: Option<&mut VerifiedTokens>,
        audience: Option<&str>,
    ) -> Result<Verified, (bool, TokenError)> {
        let s = &self.scopes[scope as usize];
        let expect = |consumer: ConsumerId| Expect {
            issuer: &s.settings.issuer,
            consumer: &self.consumer_names[consumer as usize],
            audience,
            now: services.now(),
            skew: s.settings.clock_skew_seconds,
        };
        let kong = s.settings.dialect == Dialect::Kong;
        // Scopes whose tokens can be revoked remember each token's `jti`.
        let keep_grant = kong || s.settings.revocation;
        let revoked = |granted: &Option<Granted>| {
            s.settings.revocation
                && granted
                    .as_ref()
                    .is_some_and(|g| services.is_revoked(&g.jti))
        };
        let verified = |consumer, aud: &str, granted| Verified {
            consumer,
            global: aud == "default",
            here: aud
                == if kong {
                    ctx.service_key()
                } else {
                    ctx.scope_key()
                },
            granted,
        };
        if let Some(memo) = memo {
            if let Some((consumer, aud, validity, granted)) = memo.lookup(scope, token) {
                // Signature, issuer and subject were proved when it was
                // remembered; audience and times depend on this request.
                validity
                    .check(aud, &expect(consumer))
                    .map_err(|e| (true, e))?;
                let granted = granted.cloned();
                if revoked(&granted) {
                    return Err((true, TokenError::Revoked));
                }
                return Ok(verified(consumer, aud, granted));
            }
            let (consumer, claims) = self.verify_token(s, token, &expect, services)?;
            let granted = keep_grant.then(|| Granted::of(&claims));
            if revoked(&granted) {
                return Err((true, TokenError::Revoked));
            }
            memo.insert(
                scope,
                token,
                consumer,
                &claims.aud,
                claims.validity(),
                granted.clone(),
            );
            return Ok(verified(consumer, &claims.aud, granted));
        }
        let (consumer, claims) = self.verify_token(s, token, &expect, services)?;
        let granted = keep_grant.then(|| Granted::of(&claims));
        if revoked(&granted) {
            return Err((true, TokenError::Revoked));
        }
        Ok(verified(consumer, &claims.aud, granted))
    }

    /// Parse and verify `token` in scope `s`: its consumer and claims.
    pub(crate) fn verify_token<'s>(
        &self,
        s: &CompiledScope,
        token: &str,
        expect: &impl Fn(ConsumerId) -> Expect<'s>,
        services: &dyn Services,
    ) -> Result<(ConsumerId, Claims), (bool, TokenError)> {
        let unverified = token::parse(token, s.settings.signing_alg).map_err(|e| (true, e))?;
        let client = s
            .clients
            .get(unverified.claims.client_id.as_str())
            .ok_or((true, TokenError::UnknownClient))?;
        let claims = unverified
            .verify(&client.keys.signing, &expect(client.consumer), services)
            .map_err(|e| (true, e))?;
        Ok((client.consumer, claims))
    }

    fn forward<'r>(&'r self, ctx: Ctx<'r>) -> ForwardRef<'r> {
        let mut remove: SmallVec<[Cow<'r, str>; 2]> = self
            .consumer_header
            .iter()
            .map(|h| Cow::Borrowed(&**h))
            .collect();
        for (name, _) in ctx.req.headers {
            if spoofable(name) && !remove.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                remove.push(lower_case(name));
            }
        }
        for h in &self.claim_headers {
            if !remove.iter().any(|r| r.eq_ignore_ascii_case(h)) {
                remove.push(Cow::Borrowed(&**h));
            }
        }
        let mut set = SetHeaders::new();
        let mut consumer = None;
        let mut query = ctx.edits.query.map(Cow::Owned);
        let without_token = |settings: &crate::model::Settings| {
            without_query_token(ctx.req.query, settings).map(Cow::Owned)
        };
        if let Some((p, scope)) = ctx.external {
            // An external issuer's token: the consumer it names (a policy
            // consumer, or a name the issuer vouches for), its claims.
            if let Some(h) = &self.consumer_header {
                set.push((Cow::Borrowed(&**h), Cow::Owned(p.name.clone())));
            }
            consumer = Some(Cow::Owned(p.name));
            set.extend(p.headers.into_iter().map(|(n, v)| (n.into(), v.into())));
            let settings = &self.scopes[scope as usize].settings;
            if !settings.keep_token {
                remove.push(Cow::Borrowed(&settings.auth_header_name));
                query = query.or_else(|| without_token(settings));
            }
        } else if let Some((id, scope)) = ctx.consumer {
            let name = &*self.consumer_names[id as usize];
            if let Some(h) = &self.consumer_header {
                set.push((Cow::Borrowed(&**h), Cow::Borrowed(name)));
            }
            consumer = Some(Cow::Borrowed(name));
            let settings = &self.scopes[scope as usize].settings;
            if settings.dialect == Dialect::Kong {
                kong::access::consumer_headers(self, id, ctx.granted, &mut set);
            } else if !settings.keep_token {
                remove.push(Cow::Borrowed(&settings.auth_header_name));
                query = query.or_else(|| without_token(settings));
            }
        }
        if let Some(h) = ctx.edits.remove_header {
            remove.push(Cow::Owned(h));
        }
        ForwardRef {
            set_headers: set,
            remove_headers: remove,
            consumer,
            route: ctx.route,
            upstream: ctx.upstream.map(Upstream::borrowed),
            query,
            body: ctx.edits.body.map(Cow::Owned),
            path: ctx.strip.map(|len| stripped(ctx.req.path, len)),
        }
    }
}

/// `name` in lower case, borrowed when it is already (as HTTP/2 and hyper's
/// HTTP/1 give header names).
fn lower_case(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether `value` displays as `text`, compared piece by piece as it is
/// formatted: no string is built (this runs on every refused request).
fn displays_as(value: &impl std::fmt::Display, text: &str) -> bool {
    struct Rest<'t>(&'t str);
    impl std::fmt::Write for Rest<'_> {
        fn write_str(&mut self, piece: &str) -> std::fmt::Result {
            self.0 = self.0.strip_prefix(piece).ok_or(std::fmt::Error)?;
            Ok(())
        }
    }
    let mut rest = Rest(text);
    std::fmt::write(&mut rest, format_args!("{value}")).is_ok() && rest.0.is_empty()
}

/// The token in query parameter `param` (`token_query_param`): the one
/// value, percent-decoded; two are ambiguous, as two headers are.
fn query_token_of(query: &str, param: &str) -> Result<String, (bool, TokenError)> {
    let mut values = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == param);
    match (values.next(), values.next()) {
        (None, _) => Err((false, TokenError::Missing)),
        (Some(_), Some(_)) => Err((true, TokenError::Ambiguous)),
        (Some((_, v)), None) if v.is_empty() => Err((true, TokenError::NotBearer)),
        (Some((_, v)), None) => Ok(v.into_owned()),
    }
}

/// The query without the scope's `token_query_param` (`keep_token false`):
/// `None` when it holds none, so an untouched query stays byte for byte.
fn without_query_token(query: &str, settings: &crate::model::Settings) -> Option<String> {
    let param = settings.token_query_param.as_deref()?;
    let pairs = || form_urlencoded::parse(query.as_bytes());
    if !pairs().any(|(k, _)| k == param) {
        return None;
    }
    Some(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs().filter(|(k, _)| k != param))
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_compares_the_whole_text() {
        let missing = TokenError::Missing.to_string();
        assert!(displays_as(&TokenError::Missing, &missing));
        assert!(!displays_as(&TokenError::Missing, &missing[1..]));
        assert!(!displays_as(
            &TokenError::Missing,
            &missing[..missing.len() - 1]
        ));
        assert!(!displays_as(&TokenError::Missing, &format!("{missing}.")));
        assert!(!displays_as(&TokenError::NotBearer, &missing));
        assert!(displays_as(&format_args!("{}-{}", 1, "a"), "1-a"));
    }
}
