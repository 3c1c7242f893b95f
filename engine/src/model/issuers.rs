//! Checking `jwt_issuer NAME { … }` blocks: identity providers whose JWTs a
//! scope accepts beside its own (`issuers [NAME, …]`), each with its `iss`,
//! accepted audiences, algorithms, keys (an inline JWK Set or a `jwks_url`
//! the host fetches), the claim that names the consumer, required scopes
//! and claims forwarded as headers.
//!
//! ```text
//! jwt_issuer okta {
//!   iss               "https://idp.example.com/"
//!   audiences         [api://warden]
//!   algorithms        [RS256]
//!   jwks_url          "https://idp.example.com/.well-known/jwks.json"   # or: jwks file okta.json
//!   consumer_claim    sub                 # the default
//!   consumers         [alice, bob]        # names `allow` lists may use
//!   required_scopes   [read]
//!   claims_to_headers { email X-User-Email }
//! }
//! ```

use super::*;
use crate::keys::Alg;

const ISSUER_KEYS: &[&str] = &[
    "iss",
    "audiences",
    "algorithms",
    "jwks",
    "jwks_url",
    "jwks_refresh",
    "consumer_claim",
    "consumers",
    "required_scopes",
    "claims_to_headers",
];

/// The most keys an inline JWK Set may hold.
const MAX_JWKS_KEYS: usize = 64;

impl<'s> Checker<'s> {
    /// One `jwt_issuer` block; consumers it names that the policy does not
    /// declare join the instance as consumers without credentials.
    pub(super) fn jwt_issuer(
        &mut self,
        item: &Item,
        instance: &mut ScopeRoster<'s>,
        known: &[ExternalIssuer],
    ) -> Option<ExternalIssuer> {
        let name = match item.args.as_slice() {
            [v] => self
                .r
                .nonempty("jwt_issuer", v)
                .map(|n| (n.to_string(), v.span)),
            _ => Err(self
                .r
                .err(item.key_span, "`jwt_issuer` takes one name before its `{`")),
        };
        let (name, name_span) = match name {
            Ok(n) => n,
            Err(d) => return self.fail(d),
        };
        if let Some(first) = known.iter().find(|i| i.name == name) {
            let line = self.r.lines.line(first.span.start);
            let d = self
                .r
                .err(name_span, format!("duplicate jwt_issuer `{name}`"))
                .with_help(format!("the first is on line {line}"));
            return self.fail(d);
        }
        let Some(block) = &item.block else {
            let d = self.r.err(
                item.span,
                format!("jwt_issuer `{name}` needs a `{{ … }}` block with `iss`, `audiences`, `algorithms` and `jwks` or `jwks_url`"),
            );
            return self.fail(d);
        };
        let errors_before = self.errors.len();
        let mut seen = Seen::default();
        let mut iss = None;
        let mut audiences = Vec::new();
        let mut algorithms = Vec::new();
        let mut keys = None;
        let mut refresh = (300, None);
        let mut consumer_claim = "sub".to_string();
        let mut consumers = Vec::new();
        let mut required_scopes = Vec::new();
        let mut claims_to_headers = Vec::new();
        for inner in &block.items {
            let key = inner.key;
            if !ISSUER_KEYS.contains(&key) {
                self.unknown_key(inner, "in a jwt_issuer", &[ISSUER_KEYS]);
                continue;
            }
            if !self.once(&mut seen, inner) {
                continue;
            }
            if key == "claims_to_headers" {
                claims_to_headers = self.claims_to_headers(inner);
                continue;
            }
            if !self.no_block(inner) {
                continue;
            }
            if key == "jwks" {
                match self.inline_jwks(inner) {
                    Ok(k) => keys = Some((IssuerKeys::Inline(k), inner.key_span)),
                    Err(d) => self.errors.push(d),
                }
                continue;
            }
            let r: Result<(), Diagnostic> = (|| {
                let v = self.r.one(inner)?;
                match key {
                    "iss" => iss = Some(self.r.nonempty(key, v)?.to_string()),
                    "audiences" => {
                        audiences = self
                            .r
                            .texts(key, v)?
                            .into_iter()
                            .map(|(t, _)| t.to_string())
                            .collect();
                    }
                    "algorithms" => {
                        for (t, span) in self.r.texts(key, v)? {
                            match Alg::parse(t).filter(|a| a.is_asymmetric()) {
                                Some(a) if !algorithms.contains(&a) => algorithms.push(a),
                                Some(_) => {}
                                None => {
                                    return Err(self.r.err(span, format!("`{t}` is not an algorithm an external issuer's keys can have")).with_help("RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA (an issuer's HS256 secret is not a public key)"));
                                }
                            }
                        }
                    }
                    "jwks_url" => {
                        let url = self.r.nonempty(key, v)?;
                        if !(url.starts_with("https://") || url.starts_with("http://"))
                            || url.contains(char::is_whitespace)
                        {
                            return Err(self.r.err(
                                v.span,
                                format!("`jwks_url` must be an http(s) URL, found `{url}`"),
                            ));
                        }
                        keys = Some((
                            IssuerKeys::Url {
                                url: url.to_string(),
                                refresh: 0,
                            },
                            inner.key_span,
                        ));
                    }
                    "jwks_refresh" => {
                        let secs = self.r.duration(key, v)?;
                        if !(10..=86_400).contains(&secs) {
                            return Err(self
                                .r
                                .err(v.span, "`jwks_refresh` must be between 10s and 1d"));
                        }
                        refresh = (secs, Some(inner.key_span));
                    }
                    "consumer_claim" => consumer_claim = self.r.nonempty(key, v)?.to_string(),
                    "consumers" => consumers = self.issuer_consumers(v, instance)?,
                    "required_scopes" => {
                        required_scopes = self
                            .r
                            .texts(key, v)?
                            .into_iter()
                            .map(|(t, _)| t.to_string())
                            .collect();
                    }
                    _ => unreachable!("ISSUER_KEYS and this match list the same keys"),
                }
                Ok(())
            })();
            self.report(r);
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let missing: Vec<&str> = [
            ("iss", iss.is_none()),
            ("audiences", audiences.is_empty()),
            ("algorithms", algorithms.is_empty()),
            ("jwks` or `jwks_url", keys.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        if !missing.is_empty() {
            let d = self
                .r
                .err(name_span, format!("jwt_issuer `{name}` needs `{}`", missing.join("`, `")))
                .with_help("a token is accepted only for the issuer, audiences and algorithms the policy names (RFC 8725 §3.8–3.9)");
            return self.fail(d);
        }
        let (mut keys, keys_at) = keys?;
        match &mut keys {
            IssuerKeys::Url { refresh: r, .. } => *r = refresh.0,
            IssuerKeys::Inline(_) if refresh.1.is_some() => {
                let d = self.r.err(
                    refresh.1.unwrap_or(keys_at),
                    "`jwks_refresh` is for a `jwks_url`",
                );
                return self.fail(d);
            }
            IssuerKeys::Inline(_) => {}
        }
        Some(ExternalIssuer {
            name,
            iss: iss.unwrap_or_default(),
            audiences,
            algorithms,
            keys,
            consumer_claim,
            consumers,
            required_scopes,
            claims_to_headers,
            span: item.span,
        })
    }

    /// `consumers [a, b]`: each an instance consumer, made one (without
    /// credentials) when the policy does not declare it.
    fn issuer_consumers(
        &mut self,
        v: &Value,
        instance: &mut ScopeRoster<'s>,
    ) -> Result<Vec<(String, ConsumerId)>, Diagnostic> {
        let mut out: Vec<(String, ConsumerId)> = Vec::new();
        for (name, span) in self.r.texts("consumers", v)? {
            if out.iter().any(|(n, _)| n == name) {
                continue;
            }
            let id = match instance.names.get(name) {
                Some(&id) => id,
                None => {
                    let id = self.consumers.len() as ConsumerId;
                    self.consumers.push(Consumer {
                        name: name.into(),
                        credentials: Few::default(),
                        span,
                        // (Issuers are not in the Kong dialect: no Kong identity.)
                        kong: None,
                    });
                    instance.names.insert(self.r.in_source(name), id);
                    instance.ids.push(id);
                    id
                }
            };
            out.push((name.to_string(), id));
        }
        Ok(out)
    }

    /// `claims_to_headers { CLAIM HEADER … }`.
    pub(super) fn claims_to_headers(&mut self, item: &Item) -> Vec<(String, String)> {
        let Some(block) = &item.block else {
            let d = self.r.err(
                item.span,
                "`claims_to_headers` needs a block: `claims_to_headers { email X-User-Email }`",
            );
            self.errors.push(d);
            return Vec::new();
        };
        let mut out = Vec::new();
        for inner in &block.items {
            match self
                .r
                .one(inner)
                .and_then(|v| self.r.header_name("claims_to_headers", v))
            {
                Ok(h) => out.push((inner.key.to_string(), h)),
                Err(d) => self.errors.push(d),
            }
        }
        out
    }

    /// `jwks "JSON"`, `jwks file PATH` or `jwks env NAME`: a JWK Set of
    /// public keys.
    fn inline_jwks(&self, item: &Item) -> Result<Vec<PublicJwk>, Diagnostic> {
        let text = match self.secret(item)? {
            ClientSecret::Plain(s) => String::from_utf8_lossy(s.expose()).into_owned(),
            _ => {
                return Err(self
                    .r
                    .err(item.span, "`jwks` is a JWK Set (JSON), not a hash"));
            }
        };
        parse_jwks(&text).map_err(|why| self.r.err(item.span, format!("`jwks`: {why}")))
    }
}

/// The public keys of JWK Set `text` (RFC 7517 §5): `RSA`, `EC` (P-256,
/// P-384) and `OKP` (Ed25519) keys for signatures; a private member (`d`),
/// a symmetric key or an unusable one is an error, not skipped.
pub fn parse_jwks(text: &str) -> Result<Vec<PublicJwk>, String> {
    let set: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JWK Set: no `keys` array")?;
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(format!(
            "a JWK Set of 1 to {MAX_JWKS_KEYS} keys, found {}",
            keys.len()
        ));
    }
    let mut out: Vec<PublicJwk> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let field = |f: &str| k.get(f).and_then(|v| v.as_str()).map(str::to_string);
        let at = |why: &str| format!("key {}: {why}", i + 1);
        let kty = field("kty").ok_or_else(|| at("no `kty`"))?;
        let crv = field("crv");
        let fine = match (kty.as_str(), crv.as_deref()) {
            ("RSA", _) => field("n").is_some() && field("e").is_some(),
            ("EC", Some("P-256" | "P-384")) => field("x").is_some() && field("y").is_some(),
            ("OKP", Some("Ed25519")) => field("x").is_some(),
            _ => false,
        };
        if !fine {
            return Err(at("not an RSA, EC P-256/P-384 or Ed25519 public key"));
        }
        if k.get("d").is_some() {
            return Err(at("holds a private key (`d`): publish only public keys"));
        }
        if field("use").is_some_and(|u| u != "sig") {
            return Err(at("its `use` is not `sig`"));
        }
        let alg = match field("alg") {
            None => None,
            Some(a) => Some(
                Alg::parse(&a)
                    .filter(|a| a.is_asymmetric())
                    .ok_or_else(|| at(&format!("unknown `alg` `{a}`")))?,
            ),
        };
        let kid = field("kid");
        if kid.is_some() && out.iter().any(|o| o.kid == kid) {
            return Err(at("its `kid` is used twice"));
        }
        out.push(PublicJwk {
            kid,
            kty,
            crv,
            alg,
            json: k.to_string(),
        });
    }
    Ok(out)
}
