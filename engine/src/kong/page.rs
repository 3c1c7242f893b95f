//! Warden's ready authorization page for Kong-dialect plugins with
//! `authorization_page` (Kong leaves this page to every application, which
//! then POSTs `provision_key` and `authenticated_userid` to
//! `…/oauth2/authorize`; that POST keeps working unchanged).
//!
//! - `GET …/oauth2/authorize?response_type=…&client_id=…` ([`show`]) runs
//!   Kong's checks of the request (`authorize::check`). An unknown client or
//!   a redirect URI it has not registered is an error page, never a
//!   redirect (RFC 6749 §4.1.2.1); any other failure goes back to the
//!   client's redirect URI with `error`, `error_description` and `state`,
//!   built as Kong builds them. Otherwise: the consent page, with the
//!   application's name and the scopes it asks for, who is signed in (the
//!   request's `trusted_user`, named by a proxy the host trusts) or a
//!   sign-in form (the page's `user`s), and Approve and Deny.
//! - The form POSTs back to the same path ([`submit`]), its hidden fields
//!   carrying the request and a CSRF token (`csrf`): a missing, forged or
//!   expired one is a 403 error page. Deny goes back with
//!   `error=access_denied`; Approve signs the user in (the password checked
//!   by the host, [`Services::verify_secret_hash`]; a wrong one shows the
//!   page again, 401) and issues exactly what Kong's `provision_key` POST
//!   issues (`authorize::issue`), answered `302 Found` to the redirect URI
//!   with the code and the state (implicit: the token in the fragment).
//!
//! Every page is HTML with one hashed inline style sheet and no script
//! (`page_html`), sent with a strict `Content-Security-Policy`,
//! `X-Frame-Options: DENY`, `Cache-Control: no-store` and
//! `Referrer-Policy: no-referrer`.

use serde_json::{Map, Value};

use super::authorize::{Checked, check, issue, with_params};
use super::page_html::{self, Consent};
use super::{OAuthError, Params, csrf, https};
use crate::graph::{ClientKeys, CompiledScope, Ctx, DecisionGraph};
use crate::model::{AuthorizationPage, ScopeId};
use crate::{Reply, Services};

/// The form field that says which button was pressed (`approve`, `deny`):
/// a POST with it is the page's, one without it Kong's own.
pub(super) const ACTION: &str = "page_action";

/// Longest username and password the page checks (a password hash is slow
/// whatever its input; these only bound the work a request asks for).
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 1024;

/// `GET` of the authorization endpoint: the consent page.
pub(super) fn show(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    params: &Params,
    services: &dyn Services,
) -> Reply {
    let s = graph.scope(scope);
    let (page, checked, redirect, keys) = match preflight(s, ctx, params) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if let Some(e) = &checked.error {
        return redirect_error(redirect, e, params.str("state"));
    }
    let user = trusted_user(ctx);
    if user.is_none() && page.users.is_empty() {
        return not_signed_in();
    }
    let nonce =
        csrf::cookie_nonce(ctx.req).map_or_else(|| csrf::new_nonce(services), str::to_string);
    let form = Form {
        s,
        ctx,
        checked: &checked,
        keys,
        redirect,
        params,
    };
    form.render(
        200,
        &nonce,
        user,
        ("", None),
        format!(
            "authorization page shown for client `{}`",
            client_of(&checked)
        ),
        services,
    )
}

/// A `POST` of the page's form: Approve or Deny.
pub(super) fn submit(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    params: &Params,
    services: &dyn Services,
) -> Reply {
    let s = graph.scope(scope);
    if !https(ctx.req, s.settings.kong.accept_http_if_already_terminated) {
        return https_required();
    }
    let nonce = csrf::cookie_nonce(ctx.req);
    let genuine = s.settings.signing_key.as_ref().is_some_and(|key| {
        csrf::verify(
            key,
            &s.label,
            nonce,
            &csrf::fields(params),
            params.str(csrf::FIELD),
            services.now(),
        )
    });
    if !genuine {
        return html(
            403,
            page_html::message(
                "This form has expired",
                "It was not sent by this page, or it is older than ten minutes. Go back to the application and start again.",
            ),
            None,
            None,
            "authorization page: CSRF token missing, forged or expired".into(),
        );
    }
    let (page, checked, redirect, keys) = match preflight(s, ctx, params) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let state = params.str("state");
    match params.str(ACTION) {
        Some("deny") => {
            let e = OAuthError::new("access_denied", "The resource owner denied the request");
            redirect_error(redirect, &e, state)
        }
        Some("approve") => {
            if let Some(e) = &checked.error {
                return redirect_error(redirect, e, state);
            }
            let user = match trusted_user(ctx) {
                Some(user) => user,
                None if page.users.is_empty() => return not_signed_in(),
                None => {
                    let name = params.str("username").unwrap_or("");
                    let password = params.str("password").unwrap_or("");
                    match sign_in(page, name, password, services) {
                        Some(user) => user,
                        None => {
                            let form = Form {
                                s,
                                ctx,
                                checked: &checked,
                                keys,
                                redirect,
                                params,
                            };
                            let Some(nonce) = nonce else {
                                return not_signed_in();
                            };
                            let shown = if name.len() <= MAX_USERNAME { name } else { "" };
                            return form.render(
                                401,
                                nonce,
                                None,
                                (shown, Some("Wrong username or password.")),
                                "authorization page: wrong username or password".into(),
                                services,
                            );
                        }
                    }
                }
            };
            match issue(graph, ctx, scope, &checked, user, services) {
                Ok((mut out, reason)) => {
                    if let Some(state) = state {
                        out.insert("state".into(), state.into());
                    }
                    let location = with_params(redirect, &out, checked.implicit);
                    redirect_reply(location, format!("{reason} on the authorization page"))
                }
                Err(e) => redirect_error(redirect, &e, state),
            }
        }
        _ => html(
            400,
            page_html::message(
                "Unknown action",
                "Use the Approve or Deny button of the page.",
            ),
            None,
            None,
            "authorization page: no known action".into(),
        ),
    }
}

/// What every page request needs: HTTPS, the page, a known client and a
/// registered redirect URI (else an error page, never a redirect).
fn preflight<'g>(
    s: &'g CompiledScope,
    ctx: &Ctx<'_>,
    params: &Params,
) -> Result<(&'g AuthorizationPage, Checked<'g>, &'g str, &'g ClientKeys), Reply> {
    let k = &s.settings.kong;
    if !https(ctx.req, k.accept_http_if_already_terminated) {
        return Err(https_required());
    }
    let Some(page) = &k.authorization_page else {
        return Err(html(
            404,
            page_html::message("No authorization page", "This gateway has none here."),
            None,
            None,
            "no authorization page in this plugin".into(),
        ));
    };
    let checked = check(s, params);
    let (Some((_, _, keys)), Some(redirect)) = (checked.client, checked.redirect) else {
        return Err(html(
            400,
            page_html::message(
                "Unknown application",
                "The application that sent you here is not registered with this gateway, so you cannot be sent back to it.",
            ),
            None,
            None,
            "authorization page: unknown client_id".into(),
        ));
    };
    if checked.redirect_mismatch {
        return Err(html(
            400,
            page_html::message(
                "Unregistered redirect address",
                "The application asked to send you back to an address it has not registered. You are not sent there.",
            ),
            None,
            None,
            "authorization page: redirect_uri not registered for the client".into(),
        ));
    }
    Ok((page, checked, redirect, keys))
}

/// The consent page for one checked request.
struct Form<'a, 'g> {
    s: &'g CompiledScope,
    ctx: &'a Ctx<'a>,
    checked: &'a Checked<'g>,
    keys: &'g ClientKeys,
    redirect: &'g str,
    params: &'a Params,
}

impl Form<'_, '_> {
    /// The page, with a fresh token for `nonce` (and the cookie that holds it).
    fn render(
        &self,
        status: u16,
        nonce: &str,
        user: Option<&str>,
        (username, error): (&str, Option<&str>),
        reason: String,
        services: &dyn Services,
    ) -> Reply {
        let Some(key) = &self.s.settings.signing_key else {
            // The Kong dialect requires a signing key: never here.
            return not_signed_in();
        };
        let mut fields = csrf::fields(self.params);
        fields[2] = Some(self.redirect); // the one checked, also when none was given
        let exp = services.now().saturating_add(csrf::TTL);
        let token = csrf::token(key, &self.s.label, nonce, exp, &fields);
        let mut hidden: Vec<(&str, &str)> = csrf::FIELDS
            .iter()
            .zip(fields)
            .filter_map(|(name, value)| Some((*name, value?)))
            .collect();
        hidden.push((csrf::FIELD, &token));
        let body = page_html::consent(&Consent {
            action: self.ctx.req.path,
            app: &self.keys.name,
            scopes: self
                .checked
                .scope
                .as_deref()
                .map_or_else(Vec::new, |s| s.split(' ').collect()),
            redirect: self.redirect,
            user,
            username,
            error,
            hidden,
        });
        let mut reply = html(
            status,
            body,
            Some(self.redirect),
            Some(csrf::set_cookie(nonce)),
            reason,
        );
        if status == 401 {
            reply
                .headers
                .push(("www-authenticate".into(), "Form".into()));
        }
        reply
    }
}

fn client_of<'g>(checked: &Checked<'g>) -> &'g str {
    checked.client.map_or("-", |(id, _, _)| id)
}

/// The user a trusted proxy named, if it is one that can be a code's user.
fn trusted_user<'r>(ctx: &Ctx<'r>) -> Option<&'r str> {
    ctx.req
        .trusted_user
        .filter(|u| !u.trim().is_empty() && super::bad_user(u).is_none())
}

/// The page's user `name`, if `password` is theirs. An unknown name costs
/// a hash check too, so that names cannot be told from their timing.
fn sign_in<'p>(
    page: &'p AuthorizationPage,
    name: &str,
    password: &str,
    services: &dyn Services,
) -> Option<&'p str> {
    if name.is_empty()
        || password.is_empty()
        || name.len() > MAX_USERNAME
        || password.len() > MAX_PASSWORD
    {
        return None;
    }
    match page.users.iter().find(|u| u.name == name) {
        Some(u) => services
            .verify_secret_hash(u.password.phc(), password.as_bytes())
            .then_some(u.name.as_str()),
        None => {
            if let Some(u) = page.users.first() {
                let _ = services.verify_secret_hash(u.password.phc(), password.as_bytes());
            }
            None
        }
    }
}

fn https_required() -> Reply {
    html(
        400,
        page_html::message("HTTPS required", "Open this page over HTTPS."),
        None,
        None,
        "authorization page: not HTTPS".into(),
    )
}

fn not_signed_in() -> Reply {
    html(
        401,
        page_html::message(
            "You are not signed in",
            "This gateway signs its users in through a single sign-on proxy, which has not named you.",
        ),
        None,
        None,
        "authorization page: no trusted user and no users to sign in".into(),
    )
}

/// An HTML page with the page's security headers. `form_to`: the page has
/// a form whose answer redirects there (Chromium holds a form's redirects
/// to `form-action` too), else `form-action 'none'`.
fn html(
    status: u16,
    body: String,
    form_to: Option<&str>,
    cookie: Option<String>,
    reason: String,
) -> Reply {
    let form_action = match form_to {
        Some(uri) => match origin(uri) {
            Some(o) => format!("'self' {o}"),
            None => "'self'".into(),
        },
        None => "'none'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        page_html::style_source()
    );
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "text/html; charset=utf-8".into()),
        ("content-security-policy".into(), csp),
        ("x-frame-options".into(), "DENY".into()),
        ("x-content-type-options".into(), "nosniff".into()),
        ("referrer-policy".into(), "no-referrer".into()),
        ("cache-control".into(), "no-store".into()),
        ("pragma".into(), "no-cache".into()),
    ];
    if let Some(c) = cookie {
        headers.push(("set-cookie".into(), c));
    }
    Reply {
        status,
        headers,
        body: body.into_bytes(),
        reason,
    }
}

/// `scheme://authority` of a registered redirect URI, as a CSP source;
/// `None` if it holds anything a source cannot.
fn origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let fine = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    (fine(scheme, b"+-.") && fine(host, b".-:[]")).then(|| format!("{scheme}://{host}"))
}

/// `302 Found` to `location`.
fn redirect_reply(location: String, reason: String) -> Reply {
    Reply {
        status: 302,
        headers: vec![
            ("location".into(), location),
            ("cache-control".into(), "no-store".into()),
            ("pragma".into(), "no-cache".into()),
            ("referrer-policy".into(), "no-referrer".into()),
        ],
        body: Vec::new(),
        reason,
    }
}

/// Back to the client with an error, as Kong's authorize builds it.
fn redirect_error(uri: &str, e: &OAuthError, state: Option<&str>) -> Reply {
    let mut out = Map::new();
    out.insert("error".into(), e.error.into());
    out.insert(
        "error_description".into(),
        Value::from(e.description.clone()),
    );
    if let Some(state) = state {
        out.insert("state".into(), state.into());
    }
    redirect_reply(
        with_params(uri, &out, false),
        format!("authorization page: {}: {}", e.error, e.description),
    )
}

#[cfg(all(test, feature = "hash-verify", feature = "test-util"))]
#[path = "page_tests.rs"]
mod tests;
