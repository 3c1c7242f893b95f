//! Checking `consumer NAME { … }` blocks: a consumer's credentials
//! (`client_id` with a `client_secret` literal, from `env`/`file`, or as a
//! PHC hash; Kong's public clients have none), unique names and client_ids
//! within a scope, and the Kong dialect's identity fields.

use super::*;

impl<'s> Checker<'s> {
    /// `consumer NAME { client_id …; client_secret … }` (or `credential { … }` blocks).
    pub(super) fn consumer(
        &mut self,
        item: &Item,
        scope: &mut ScopeRoster<'s>,
    ) -> Option<ConsumerId> {
        let name = match item.args.as_slice() {
            [v] => match self.r.nonempty("consumer", v) {
                Ok(n) => (n.to_string(), v.span),
                Err(d) => return self.fail(d),
            },
            [] => {
                return self.fail(self.r.err(
                    item.key_span,
                    "`consumer` needs a name: `consumer NAME { … }`",
                ));
            }
            [_, extra, ..] => {
                return self.fail(
                    self.r
                        .err(extra.span, "`consumer` takes one name before its `{`"),
                );
            }
        };
        let Some(block) = &item.block else {
            let d = self.r.err(
                item.span,
                format!(
                    "consumer `{}` needs a `{{ … }}` block with `client_id` and `client_secret`",
                    name.0
                ),
            );
            return self.fail(d);
        };
        let mut credentials = Vec::new();
        let mut direct = Vec::new();
        let mut kong_ids = KongConsumer::default();
        let mut seen = Seen::default();
        let kong = self.dialect == Dialect::Kong;
        for inner in &block.items {
            match inner.key {
                "client_id" | "client_secret" => direct.push(inner),
                k if kong && kong::KONG_CREDENTIAL_KEYS.contains(&k) => direct.push(inner),
                k if kong && kong::KONG_CONSUMER_KEYS.contains(&k) => {
                    if self.once(&mut seen, inner) {
                        let r = self.kong_consumer_key(&mut kong_ids, inner);
                        self.report(r);
                    }
                }
                "credential" => {
                    let Some(b) = &inner.block else {
                        let d = self.r.err(
                            inner.key_span,
                            "`credential` needs a `{ client_id …; client_secret … }` block",
                        );
                        self.errors.push(d);
                        continue;
                    };
                    let items: Vec<&Item> = b.items.iter().collect();
                    if let Some(c) = self.credential(&items, inner.span, scope) {
                        credentials.push(c);
                    }
                }
                _ => {
                    let keys: &[&[&str]] = if kong {
                        &[
                            CONSUMER_KEYS,
                            kong::KONG_CONSUMER_KEYS,
                            kong::KONG_CREDENTIAL_KEYS,
                        ]
                    } else {
                        &[CONSUMER_KEYS]
                    };
                    self.unknown_key(inner, "in a consumer", keys)
                }
            }
        }
        if !direct.is_empty() {
            if let Some(c) = self.credential(&direct, item.span, scope) {
                credentials.insert(0, c);
            }
        } else if credentials.is_empty() && !kong {
            // (A Kong consumer may have none: the `anonymous` one.)
            let d = self.r.err(
                name.1,
                format!(
                    "consumer `{}` has no `client_id` and `client_secret`",
                    name.0
                ),
            );
            return self.fail(d);
        }
        if let Some(&first) = scope.names.get(name.0.as_str()) {
            let line = self.r.lines.line(self.consumers[first as usize].span.start);
            let d = self
                .r
                .err(name.1, format!("duplicate consumer name `{}`", name.0))
                .with_help(format!(
                    "the first `{}` is on line {line}; consumer names must be unique",
                    name.0
                ));
            return self.fail(d);
        }
        // Kong's identity of a consumer: only the Kong dialect has one.
        let kong_ids = if kong {
            if kong_ids.id.is_empty() {
                kong_ids.id = kong::derived_id(&name.0);
            }
            // Kong requires a username or a custom_id: a consumer that gives
            // neither is known by its name.
            if kong_ids.username.is_none() && kong_ids.custom_id.is_none() {
                kong_ids.username = Some(name.0.clone());
            }
            // Kong's unique constraints on consumers: the first consumer
            // declared with any of the three is named.
            let id = self.consumers.len() as ConsumerId;
            if let Err((field, value, other)) = self.kong_identities.claim(&kong_ids, id) {
                let other = &self.consumers[other as usize];
                let line = self.r.lines.line(other.span.start);
                let d = self
                    .r
                    .err(name.1, format!("duplicate {field} `{value}`"))
                    .with_help(format!(
                        "consumer `{}` on line {line} has it; Kong's {field} identifies one consumer",
                        other.name
                    ));
                return self.fail(d);
            }
            Some(Box::new(kong_ids))
        } else {
            None
        };
        let id = self.consumers.len() as ConsumerId;
        scope.names.insert(self.r.in_source(&name.0), id);
        self.consumers.push(Consumer {
            name: name.0.into_boxed_str(),
            credentials: credentials.into(),
            span: item.span,
            kong: kong_ids,
        });
        Some(id)
    }

    fn credential(
        &mut self,
        items: &[&Item],
        span: Span,
        scope: &mut ScopeRoster<'s>,
    ) -> Option<Credential> {
        let mut seen = Seen::default();
        let (mut id, mut secret, mut secret_span) = (None, None, Span::default());
        let kong = self.dialect == Dialect::Kong;
        let keys = if kong {
            kong::KONG_CREDENTIAL_KEYS
        } else {
            CREDENTIAL_KEYS
        };
        let mut extra = kong::KongCredential::default();
        for item in items {
            if !keys.contains(&item.key) {
                self.unknown_key(item, "in a credential", &[keys]);
                continue;
            }
            if !self.once(&mut seen, item) || !self.no_block(item) {
                continue;
            }
            match item.key {
                "client_id" | "client_secret" => {}
                _ => {
                    let r = self.kong_credential_key(&mut extra, item);
                    self.report(r);
                    continue;
                }
            }
            match item.key {
                "client_id" => match self
                    .r
                    .one(item)
                    .and_then(|v| Ok((self.r.nonempty("client_id", v)?, v.span)))
                    .and_then(|(t, s)| {
                        if kong {
                            self.header_safe("client_id", t, s)?;
                        }
                        Ok((t, s))
                    }) {
                    Ok((t, s)) => id = Some((self.r.in_source(t), s)),
                    Err(d) => self.errors.push(d),
                },
                _ => match self.secret(item) {
                    Ok(s) => {
                        secret = Some(s);
                        secret_span = item.span;
                    }
                    Err(d) => self.errors.push(d),
                },
            }
        }
        if extra.public {
            if secret.is_some() {
                let d = self
                    .r
                    .err(secret_span, "a public client has no `client_secret`")
                    .with_help("Kong refuses a secret from a public client (`client_secret is disallowed for public clients`): remove the line, or make the client `confidential`");
                return self.fail(d);
            }
            secret = Some(ClientSecret::Public);
        }
        if let Some((on, at)) = extra.hash_secret {
            let hashed = matches!(secret, Some(ClientSecret::Hashed(_)));
            if on != hashed && secret.is_some() && !extra.public {
                let d = self.r.err(at, if on {
                    "`hash_secret true`: the `client_secret` must then be stored as a hash"
                } else {
                    "`hash_secret false` contradicts `client_secret hash …`"
                }).with_help("write `client_secret hash \"$pbkdf2-sha512$…\"` (Kong's stored hash, or `warden hash-secret`'s); `hash_secret` may then be left out");
                return self.fail(d);
            }
        }
        let missing = match (&id, &secret) {
            (None, _) => Some("client_id"),
            (_, None) => Some("client_secret"),
            _ => None,
        };
        if let Some(m) = missing {
            if seen.0.iter().any(|(k, _)| *k == m) {
                return None; // already reported as malformed
            }
            return self.fail(self.r.err(span, format!("credential has no `{m}`")));
        }
        let ((client_id, id_span), secret) = (id?, secret?);
        if let Some(first) = scope.client_ids.get(&client_id) {
            let line = self.r.lines.line(first.start);
            let d = self
                .r
                .err(id_span, format!("duplicate client_id `{client_id}`"))
                .with_help(format!(
                    "it is already used on line {line}; a client_id identifies one consumer"
                ));
            return self.fail(d);
        }
        let boxed = (*client_id).into();
        scope.client_ids.insert(client_id, id_span);
        let app = (extra.name.is_some() || !extra.redirect_uris.is_empty()).then(|| {
            Box::new(Application {
                name: extra.name.map(String::into_boxed_str),
                redirect_uris: extra.redirect_uris,
            })
        });
        Some(Credential {
            client_id: boxed,
            secret,
            secret_span,
            app,
        })
    }

    /// `KEY "literal"`, `KEY env NAME`, `KEY file PATH`, or `KEY hash "PHC"`,
    /// for `client_secret` and `signing_key`.
    pub(super) fn secret(&self, item: &Item) -> Result<ClientSecret, Diagnostic> {
        let key = item.key;
        let bytes = match item.args.as_slice() {
            [v] => self.r.nonempty(key, v)?.as_bytes().to_vec(),
            [kind, v] if kind.text() == Some("hash") => {
                let phc = self.r.nonempty(key, v)?;
                return crate::secret_hash::SecretHash::parse(phc)
                    .map(|h| ClientSecret::Hashed(Box::new(h)))
                    .map_err(|why| self.r.err(v.span, format!("`{key} hash`: {why}")));
            }
            [kind, v] if matches!(kind.text(), Some("env" | "file")) => {
                let source = kind.text().unwrap_or_default();
                let name = self.r.nonempty(key, v)?;
                let reference = format!("{source}:{name}");
                self.services.secret(&reference).ok_or_else(|| {
                    self.r
                        .err(
                            kind.span.to(v.span),
                            format!("the host cannot supply secret `{reference}`"),
                        )
                        .with_help(match source {
                            "env" => format!("set the environment variable `{name}` for the host"),
                            _ => format!("make `{name}` readable by the host"),
                        })
                })?
            }
            [] => return Err(self.r.err(item.key_span, format!("`{key}` needs a value"))),
            [first, ..] => {
                return Err(self
                    .r
                    .err(
                        first.span.to(item.span),
                        format!(
                            "`{key}` takes a string, `env NAME`, `file PATH` or `hash \"PHC\"`"
                        ),
                    )
                    .with_help(format!("e.g. `{key} env CONSUMER1_SECRET`")));
            }
        };
        if bytes.is_empty() {
            return Err(self.r.err(item.span, format!("`{key}` must not be empty")));
        }
        Ok(ClientSecret::Plain(Secret::new(bytes)))
    }
}
