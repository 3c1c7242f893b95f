//! Checking `introspection NAME { … }` blocks: an RFC 7662 server that
//! vouches for opaque tokens, configured with the options of Gravitee's
//! generic OAuth2 resource and `oauth2` policy (docs/gravitee-oauth2.md),
//! used by a scope's `introspect NAME`.
//!
//! ```text
//! introspection corp {
//!   endpoint            "https://as.example.com/oauth/introspect"
//!   method              POST                 # GET, Gravitee's default
//!   client_id           warden
//!   client_secret       env AS_SECRET
//!   client_auth_header  Authorization        # `none`: no client authentication
//!   client_auth_scheme  Basic
//!   token_query_param   token                # Gravitee's default; `none` to not send it so
//!   token_header        X-Token              # off by default
//!   token_form_field    token                # POST only; off by default
//!   user_claim          sub
//!   scope_separator     " "
//!   required_scopes     [read]
//!   scopes_mode         strict               # all (Gravitee's modeStrict) or `any`
//!   payload_headers     { username X-User }  # Gravitee's extractPayload, as headers
//!   cache_ttl           5m                   # positive answers, never past `exp`
//! }
//! ```

use super::*;

const INTROSPECTION_KEYS: &[&str] = &[
    "endpoint",
    "method",
    "client_id",
    "client_secret",
    "client_auth_header",
    "client_auth_scheme",
    "token_query_param",
    "token_header",
    "token_form_field",
    "user_claim",
    "scope_separator",
    "required_scopes",
    "scopes_mode",
    "payload_headers",
    "cache_ttl",
];

impl Checker<'_> {
    pub(super) fn introspection(
        &mut self,
        item: &Item,
        known: &[Introspection],
    ) -> Option<Introspection> {
        let (name, name_span) = match item.args.as_slice() {
            [v] => match self.r.nonempty("introspection", v) {
                Ok(n) => (n.to_string(), v.span),
                Err(d) => return self.fail(d),
            },
            _ => {
                return self.fail(self.r.err(
                    item.key_span,
                    "`introspection` takes one name before its `{`",
                ));
            }
        };
        if let Some(first) = known.iter().find(|i| i.name == name) {
            let line = self.r.lines.line(first.span.start);
            let d = self
                .r
                .err(name_span, format!("duplicate introspection `{name}`"))
                .with_help(format!("the first is on line {line}"));
            return self.fail(d);
        }
        let Some(block) = &item.block else {
            let d = self.r.err(
                item.span,
                format!("introspection `{name}` needs a `{{ … }}` block with its `endpoint`"),
            );
            return self.fail(d);
        };
        let errors_before = self.errors.len();
        let mut seen = Seen::default();
        let mut i = Introspection {
            name,
            endpoint: String::new(),
            method: "GET".into(),
            client_id: None,
            client_secret: None,
            client_auth: Some(("authorization".into(), "Basic".into())),
            token_query: Some("token".into()),
            token_header: None,
            token_form: None,
            user_claim: "sub".into(),
            scope_separator: " ".into(),
            required_scopes: Vec::new(),
            strict: true,
            payload_headers: Vec::new(),
            cache_ttl: 300,
            span: item.span,
        };
        let mut scheme = None;
        for inner in &block.items {
            let key = inner.key;
            if !INTROSPECTION_KEYS.contains(&key) {
                self.unknown_key(inner, "in an introspection", &[INTROSPECTION_KEYS]);
                continue;
            }
            if !self.once(&mut seen, inner) {
                continue;
            }
            if key == "payload_headers" {
                i.payload_headers = self.claims_to_headers(inner);
                continue;
            }
            if !self.no_block(inner) {
                continue;
            }
            if key == "client_secret" {
                match self.secret(inner) {
                    Ok(ClientSecret::Plain(s)) => i.client_secret = Some(s),
                    Ok(_) => self.errors.push(self.r.err(inner.span, "the introspection `client_secret` is sent to the server: it cannot be a hash")),
                    Err(d) => self.errors.push(d),
                }
                continue;
            }
            let r: Result<(), Diagnostic> = (|| {
                let v = self.r.one(inner)?;
                let off = |v: &Value| v.text() == Some("none");
                match key {
                    "endpoint" => {
                        let url = self.r.nonempty(key, v)?;
                        if !(url.starts_with("https://") || url.starts_with("http://"))
                            || url.contains(char::is_whitespace)
                            || url.contains('#')
                        {
                            return Err(self.r.err(
                                v.span,
                                format!("`endpoint` must be an http(s) URL, found `{url}`"),
                            ));
                        }
                        i.endpoint = url.to_string();
                    }
                    "method" => {
                        i.method = match self.r.nonempty(key, v)?.to_ascii_uppercase().as_str() {
                            m @ ("GET" | "POST") => m.to_string(),
                            other => {
                                return Err(self.r.err(
                                    v.span,
                                    format!("`method` is GET or POST, found `{other}`"),
                                ));
                            }
                        };
                    }
                    "client_id" => i.client_id = Some(self.r.nonempty(key, v)?.to_string()),
                    "client_auth_header" if off(v) => i.client_auth = None,
                    "client_auth_header" => {
                        let h = self.r.header_name(key, v)?;
                        i.client_auth = Some((h, String::new()));
                    }
                    "client_auth_scheme" => {
                        scheme = Some(self.r.nonempty(key, v)?.trim().to_string())
                    }
                    "token_query_param" if off(v) => i.token_query = None,
                    "token_query_param" => {
                        i.token_query = Some(self.r.nonempty(key, v)?.to_string())
                    }
                    "token_header" => i.token_header = Some(self.r.header_name(key, v)?),
                    "token_form_field" => i.token_form = Some(self.r.nonempty(key, v)?.to_string()),
                    "user_claim" => i.user_claim = self.r.nonempty(key, v)?.to_string(),
                    "scope_separator" => {
                        let sep = self.r.text(key, v)?;
                        if sep.is_empty() {
                            return Err(self.r.err(v.span, "`scope_separator` must not be empty"));
                        }
                        i.scope_separator = sep.to_string();
                    }
                    "required_scopes" => {
                        i.required_scopes = self
                            .r
                            .texts(key, v)?
                            .into_iter()
                            .map(|(t, _)| t.to_string())
                            .collect();
                    }
                    "scopes_mode" => {
                        i.strict =
                            match self.r.nonempty(key, v)? {
                                "strict" | "all" => true,
                                "any" => false,
                                other => return Err(self.r.err(
                                    v.span,
                                    format!(
                                        "`scopes_mode` is `strict` (all) or `any`, found `{other}`"
                                    ),
                                )),
                            };
                    }
                    "cache_ttl" => i.cache_ttl = self.r.duration(key, v)?,
                    _ => unreachable!("INTROSPECTION_KEYS and this match list the same keys"),
                }
                Ok(())
            })();
            self.report(r);
        }
        if self.errors.len() > errors_before {
            return None;
        }
        if i.endpoint.is_empty() {
            return self.fail(self.r.err(
                name_span,
                format!("introspection `{}` needs an `endpoint`", i.name),
            ));
        }
        if let Some((header, s)) = &mut i.client_auth {
            *s = scheme.unwrap_or_else(|| "Basic".into());
            if i.client_id.is_none() || i.client_secret.is_none() {
                let d = self
                    .r
                    .err(name_span, format!("introspection `{}` authenticates with `{header}`: it needs `client_id` and `client_secret`", i.name))
                    .with_help("or `client_auth_header none` for a server that takes unauthenticated calls");
                return self.fail(d);
            }
        }
        if i.token_form.is_some() && i.method != "POST" {
            return self.fail(self.r.err(
                name_span,
                "`token_form_field` needs `method POST` (a GET has no body)",
            ));
        }
        if i.token_query.is_none() && i.token_header.is_none() && i.token_form.is_none() {
            return self.fail(self.r.err(name_span, format!("introspection `{}` sends the token nowhere: set `token_query_param`, `token_header` or `token_form_field`", i.name)));
        }
        Some(i)
    }
}
