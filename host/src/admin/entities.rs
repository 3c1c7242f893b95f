//! The Admin API's entities as Kong's Admin API shows them — consumers and
//! their oauth2 credentials — their validation with Kong's schema errors,
//! and the policy text a node compiles them into.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warden_engine::internal::model::{check_redirect_uri, is_uuid};
use warden_import::quote::{list, quoted};

/// A Kong consumer (`/consumers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub id: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// An oauth2 credential (`/consumers/{c}/oauth2`). `client_secret` is the
/// secret, or its PHC hash when `hash_secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub created_at: u64,
    pub consumer: ForeignKey,
    pub name: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub client_type: String,
    pub hash_secret: bool,
}

/// `{"id": …}`, as Kong shows a reference to another entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub id: String,
}

/// An Admin API failure, answered as Kong answers it.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminError {
    /// 400, Kong's `schema violation` (code 2): field → message.
    Schema(Vec<(String, Value)>),
    /// 409, Kong's `unique constraint violation` (code 5).
    Unique(&'static str, String),
    /// 400 with Kong's error `code` and `name` (an invalid size or offset).
    Invalid(u8, &'static str, String),
    /// 404 `{"message":"Not found"}`.
    NotFound,
    /// 400 with a plain message (a body that is not JSON or a form).
    BadRequest(String),
    /// 405 `{"message":"Method not allowed"}`.
    MethodNotAllowed,
    /// 401 `{"message":"Unauthorized"}`.
    Unauthorized,
    /// 415: a body in an encoding Kong does not read.
    UnsupportedMediaType,
    /// 503: the store could not answer.
    Unavailable(String),
}

impl AdminError {
    /// The status and the JSON body.
    pub fn answer(&self) -> (u16, Value) {
        match self {
            AdminError::Schema(fields) => {
                let message = schema_message(fields);
                let map: Map<String, Value> = fields.iter().cloned().collect();
                (
                    400,
                    json!({"code": 2, "name": "schema violation", "message": message, "fields": map}),
                )
            }
            AdminError::Unique(field, value) => (
                409,
                json!({
                    "code": 5,
                    "name": "unique constraint violation",
                    "message": format!("UNIQUE violation detected on '{{{field}=\"{value}\"}}'"),
                    "fields": {*field: value},
                }),
            ),
            AdminError::Invalid(code, name, message) => {
                (400, json!({"code": code, "name": name, "message": message}))
            }
            AdminError::NotFound => (404, json!({"message": "Not found"})),
            AdminError::BadRequest(m) => (400, json!({"message": m})),
            AdminError::MethodNotAllowed => (405, json!({"message": "Method not allowed"})),
            AdminError::Unauthorized => (401, json!({"message": "Unauthorized"})),
            AdminError::UnsupportedMediaType => (415, json!({"message": "Unsupported Media Type"})),
            AdminError::Unavailable(m) => (503, json!({"message": m})),
        }
    }
}

/// Kong's `schema_violation` message: entity-level errors first, then each
/// field in sorted order (`field.N: …` for the N-th element of an array,
/// counted from 1).
fn schema_message(fields: &[(String, Value)]) -> String {
    let mut parts = Vec::new();
    for (_, m) in fields.iter().filter(|(f, _)| f == "@entity") {
        match m {
            Value::Array(items) => {
                parts.extend(items.iter().filter_map(|i| i.as_str().map(String::from)))
            }
            other => parts.push(other.as_str().unwrap_or_default().to_string()),
        }
    }
    let mut named: Vec<&(String, Value)> = fields.iter().filter(|(f, _)| f != "@entity").collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (f, m) in named {
        match m {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(text) = item.as_str() {
                        parts.push(format!("{f}.{}: {text}", i + 1));
                    }
                }
            }
            Value::String(text) => parts.push(format!("{f}: {text}")),
            other => parts.push(format!("{f}: {other}")),
        }
    }
    if parts.len() == 1 {
        format!("schema violation ({})", parts[0])
    } else {
        format!("{} schema violations ({})", parts.len(), parts.join("; "))
    }
}

/// Builds a schema violation field by field.
#[derive(Default)]
pub(super) struct Violations(Vec<(String, Value)>);

impl Violations {
    pub(super) fn add(&mut self, field: &str, message: impl Into<Value>) {
        self.0.push((field.to_string(), message.into()));
    }

    pub(super) fn done(self) -> Result<(), AdminError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Schema(self.0))
        }
    }
}

/// The fields of a request body, as Kong reads them (JSON or a form).
pub(super) type Fields = Map<String, Value>;

fn text(fields: &Fields, key: &str, v: &mut Violations) -> Option<String> {
    match fields.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            v.add(key, "expected a string");
            None
        }
    }
}

fn strings(fields: &Fields, key: &str, v: &mut Violations) -> Option<Vec<String>> {
    match fields.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        v.add(key, "expected an array of strings");
                        return None;
                    }
                }
            }
            Some(out)
        }
        Some(_) => {
            v.add(key, "expected a set");
            None
        }
    }
}

fn boolean(fields: &Fields, key: &str, v: &mut Violations) -> Option<bool> {
    match fields.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        Some(_) => {
            v.add(key, "expected a boolean");
            None
        }
    }
}

fn unknown(fields: &Fields, known: &[&str], v: &mut Violations) {
    for key in fields.keys() {
        if !known.contains(&key.as_str()) {
            v.add(key, "unknown field");
        }
    }
}

/// No control characters, nothing that would not survive an upstream header.
fn header_safe(field: &str, value: &str, v: &mut Violations) {
    if value.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
}

const CONSUMER_FIELDS: &[&str] = &[
    "id",
    "username",
    "custom_id",
    "tags",
    "created_at",
    "updated_at",
];

/// A new consumer from a POST body; `id` and times filled in by the caller.
pub(super) fn new_consumer(fields: &Fields, id: String, now: u64) -> Result<Consumer, AdminError> {
    let mut v = Violations::default();
    unknown(fields, CONSUMER_FIELDS, &mut v);
    let username = text(fields, "username", &mut v).filter(|s| !s.is_empty());
    let custom_id = text(fields, "custom_id", &mut v).filter(|s| !s.is_empty());
    let tags = strings(fields, "tags", &mut v);
    let id = match text(fields, "id", &mut v) {
        Some(given) if is_uuid(&given) => given.to_ascii_lowercase(),
        Some(_) => {
            v.add("id", "expected a valid UUID");
            id
        }
        None => id,
    };
    for (field, value) in [("username", &username), ("custom_id", &custom_id)] {
        if let Some(value) = value {
            header_safe(field, value, &mut v);
        }
    }
    if username.is_none() && custom_id.is_none() && v.0.is_empty() {
        v.add(
            "@entity",
            json!(["at least one of these fields must be non-empty: 'custom_id', 'username'"]),
        );
    }
    v.done()?;
    Ok(Consumer {
        id,
        created_at: now,
        updated_at: now,
        username,
        custom_id,
        tags,
    })
}

const CREDENTIAL_FIELDS: &[&str] = &[
    "id",
    "name",
    "client_id",
    "client_secret",
    "redirect_uris",
    "tags",
    "client_type",
    "hash_secret",
    "consumer",
    "created_at",
];

/// What a POST or PATCH says of a credential, checked. Absent fields stay
/// `None` (a PATCH keeps them).
#[derive(Debug, Default)]
pub(super) struct CredentialFields {
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) redirect_uris: Option<Vec<String>>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) client_type: Option<String>,
    pub(super) hash_secret: Option<bool>,
}

pub(super) fn credential_fields(fields: &Fields) -> Result<CredentialFields, AdminError> {
    let mut v = Violations::default();
    unknown(fields, CREDENTIAL_FIELDS, &mut v);
    let c = CredentialFields {
        id: text(fields, "id", &mut v),
        name: text(fields, "name", &mut v),
        client_id: text(fields, "client_id", &mut v),
        client_secret: text(fields, "client_secret", &mut v),
        redirect_uris: strings(fields, "redirect_uris", &mut v),
        tags: strings(fields, "tags", &mut v),
        client_type: text(fields, "client_type", &mut v),
        hash_secret: boolean(fields, "hash_secret", &mut v),
    };
    if let Some(id) = &c.id
        && !is_uuid(id)
    {
        v.add("id", "expected a valid UUID");
    }
    if let Some(t) = &c.client_type
        && t != "confidential"
        && t != "public"
    {
        v.add("client_type", "expected one of: confidential, public");
    }
    if let Some(uris) = &c.redirect_uris {
        let bad: Vec<Value> = uris
            .iter()
            .map(|u| check_redirect_uri(u).err().map_or(Value::Null, Value::from))
            .collect();
        if bad.iter().any(|b| !b.is_null()) {
            v.add("redirect_uris", Value::Array(bad));
        }
    }
    for (field, value) in [
        ("name", &c.name),
        ("client_id", &c.client_id),
        ("client_secret", &c.client_secret),
    ] {
        if let Some(value) = value {
            header_safe(field, value, &mut v);
            if value.is_empty() {
                v.add(field, "length must be at least 1");
            }
        }
    }
    v.done()?;
    Ok(c)
}

/// A credential's whole-entity rules (Kong's `name` is required; a public
/// client keeps no secret).
pub(super) fn check_credential(c: &Credential) -> Result<(), AdminError> {
    let mut v = Violations::default();
    if c.name.is_empty() {
        v.add("name", "required field missing");
    }
    if c.client_type == "public" && c.client_secret.is_some() {
        v.add(
            "client_secret",
            "client_secret is disallowed for public clients",
        );
    }
    v.done()
}

/// The policy text for `consumers` with their `credentials`: a section
/// after the file's own text, Kong-dialect `consumer` blocks named by the
/// consumer's id (unique across nodes, never a policy's own name).
pub(crate) fn policy_text(consumers: &[Consumer], credentials: &[Credential]) -> String {
    if consumers.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\n# --- Consumers from the Admin API (generated) ---\n");
    for c in consumers {
        out.push_str(&format!("consumer {} {{\n", quoted(&c.id)));
        out.push_str(&format!("  id {}\n", quoted(&c.id)));
        if let Some(u) = &c.username {
            out.push_str(&format!("  username {}\n", quoted(u)));
        }
        if let Some(u) = &c.custom_id {
            out.push_str(&format!("  custom_id {}\n", quoted(u)));
        }
        for cred in credentials.iter().filter(|k| k.consumer.id == c.id) {
            out.push_str("  credential {\n");
            out.push_str(&format!("    name {}\n", quoted(&cred.name)));
            out.push_str(&format!("    client_id {}\n", quoted(&cred.client_id)));
            match &cred.client_secret {
                Some(s) if cred.hash_secret => {
                    out.push_str(&format!("    client_secret hash {}\n", quoted(s)));
                    out.push_str("    hash_secret true\n");
                }
                Some(s) => out.push_str(&format!("    client_secret {}\n", quoted(s))),
                None => {}
            }
            if let Some(uris) = cred.redirect_uris.as_deref().filter(|u| !u.is_empty()) {
                out.push_str(&format!("    redirect_uris {}\n", list(uris)));
            }
            if cred.client_type == "public" {
                out.push_str("    client_type public\n");
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn kong_schema_errors() {
        let e = new_consumer(&fields(json!({})), "x".into(), 0).unwrap_err();
        assert_eq!(
            e.answer().1,
            json!({"code": 2, "name": "schema violation",
                   "message": "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
                   "fields": {"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]}})
        );
        let e = credential_fields(&fields(
            json!({"redirect_uris": ["https://a/#x", "https://ok/cb"], "color": 1}),
        ))
        .unwrap_err();
        let (status, body) = e.answer();
        assert_eq!(status, 400);
        assert_eq!(body["fields"]["color"], "unknown field");
        assert_eq!(
            body["fields"]["redirect_uris"],
            json!(["fragment not allowed in 'https://a/#x'", null])
        );
        assert_eq!(
            body["message"],
            "2 schema violations (color: unknown field; redirect_uris.1: fragment not allowed in 'https://a/#x')"
        );
        assert_eq!(
            AdminError::Unique("client_id", "abc".into()).answer(),
            (
                409,
                json!({"code": 5, "name": "unique constraint violation",
                       "message": "UNIQUE violation detected on '{client_id=\"abc\"}'",
                       "fields": {"client_id": "abc"}})
            )
        );
    }

    /// Whatever text the Admin API accepts, the policy it generates compiles
    /// and means that text: the client gets a token with its own secret and
    /// the consumer's username reaches the upstream unchanged — no value can
    /// end its string or block early.
    #[test]
    fn generated_policy_text_means_what_was_accepted() {
        use warden_engine::fixtures::request;
        use warden_engine::{FixedServices, Policy};
        const BASE: &str = "dialect kong\nsigning_key \"prop-signing-key-0123456789abcdef012345\"\n\
            route r { path_prefix /r; upstream echo }\n\
            rule k { match route [r]; enable_client_credentials true }\n";
        const TRICKY: &[&str] = &[
            "\"",
            "\\",
            "{",
            "}",
            "#",
            ";",
            "[",
            "]",
            ",",
            " ",
            "é",
            "円",
            "\\\"",
            "}\n",
            "a",
            "Z",
            "9",
            "env",
            "hash",
            "true",
            "$argon2id$",
            "'",
            "=",
            "\u{202e}",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for round in 0..200 {
            let mut word = |n: u64| -> String {
                (0..1 + next() % n)
                    .map(|_| TRICKY[(next() % TRICKY.len() as u64) as usize])
                    .collect::<String>()
                    .replace('\n', "")
            };
            let fields = json!({"username": word(6), "custom_id": word(4)});
            let Ok(c) = new_consumer(
                fields.as_object().unwrap(),
                format!("00000000-0000-4000-8000-{round:012}"),
                1,
            ) else {
                continue;
            };
            let (client_id, secret, name) = (word(5), word(8), word(5));
            let f = json!({"name": name, "client_id": client_id, "client_secret": secret});
            let Ok(f) = credential_fields(f.as_object().unwrap()) else {
                continue;
            };
            let k = Credential {
                id: format!("10000000-0000-4000-8000-{round:012}"),
                created_at: 1,
                consumer: ForeignKey { id: c.id.clone() },
                name: f.name.unwrap(),
                client_id: f.client_id.unwrap(),
                client_secret: f.client_secret,
                redirect_uris: None,
                tags: None,
                client_type: "confidential".into(),
                hash_secret: false,
            };
            let text = format!(
                "{BASE}{}",
                policy_text(std::slice::from_ref(&c), std::slice::from_ref(&k))
            );
            let services = FixedServices::at(1_700_000_000);
            let policy = Policy::compile(&text, &services)
                .unwrap_or_else(|d| panic!("round {round}: {d:?}\n{text}"));
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &k.client_id)
                .append_pair("client_secret", k.client_secret.as_deref().unwrap())
                .finish();
            let headers = [("content-type", "application/x-www-form-urlencoded")];
            let req = request(
                ("POST", "https"),
                "gw",
                "/r/oauth2/token",
                &headers,
                Some(body.as_bytes()),
            );
            let reply = policy.decide(&req, &services);
            let reply = reply
                .reply()
                .unwrap_or_else(|| panic!("round {round}: no reply"));
            assert_eq!(reply.status, 200, "round {round}: {}\n{text}", reply.reason);
            let token: Value = serde_json::from_slice(&reply.body).unwrap();
            let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
            let headers = [("authorization", bearer.as_str())];
            let d = policy.decide(
                &request(("GET", "https"), "gw", "/r/x", &headers, None),
                &services,
            );
            let forward = d
                .forward()
                .unwrap_or_else(|| panic!("round {round}: {d:?}"));
            let seen = |name: &str| {
                forward
                    .set_headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(seen("x-consumer-username"), c.username, "round {round}");
            assert_eq!(seen("x-consumer-custom-id"), c.custom_id, "round {round}");
            assert_eq!(
                seen("x-credential-identifier"),
                Some(k.client_id.clone()),
                "round {round}"
            );
            checked += 1;
        }
        // (Only the few with an empty name or the like are refused first.)
        assert!(checked > 150, "only {checked} rounds reached the policy");
    }

    #[test]
    fn policy_text_quotes_everything() {
        let c = Consumer {
            id: "4c2c4c6e-0000-4000-8000-000000000001".into(),
            created_at: 1,
            updated_at: 1,
            username: Some("al\"ice".into()),
            custom_id: None,
            tags: None,
        };
        let k = Credential {
            id: "x".into(),
            created_at: 1,
            consumer: ForeignKey { id: c.id.clone() },
            name: "app }".into(),
            client_id: "cid".into(),
            client_secret: Some("s\\ec".into()),
            redirect_uris: Some(vec!["https://a/cb".into()]),
            tags: None,
            client_type: "confidential".into(),
            hash_secret: false,
        };
        let t = policy_text(&[c], &[k]);
        assert!(t.contains("username \"al\\\"ice\""), "{t}");
        assert!(t.contains("name \"app }\""), "{t}");
        assert!(t.contains("client_secret \"s\\\\ec\""), "{t}");
    }
}
