//! Reading Kong consumers and their oauth2 credentials.
//!
//! Credentials come nested (`consumers[].oauth2_credentials`) or top-level
//! (`oauth2_credentials[]` with `consumer: <username or id>`); a consumer
//! keeps its nested ones first, then the top-level ones in file order.
//! Other plugins' credentials (key-auth, jwt, …) have no use without their
//! plugin, which Warden does not have: they are left out with a comment.
//!
//! Secrets: with `hash_secret: true` a `client_secret` that is an argon2 or
//! PBKDF2 PHC string (what Kong stores and decK dumps) becomes
//! `client_secret hash "…"`; a bcrypt hash is refused (Warden cannot check
//! it); a plain secret stays a literal with a comment (Kong hashes it on
//! load unless `_transform: false`, where it is refused: Kong would compare
//! against a "hash" that is none). A public client has no secret line.
//! `client_id` and a confidential client's secret are required: Kong would
//! generate them at random.

use serde_norway::Value;

use crate::model::{Consumer, Credential, Secret};
use crate::quote;
use crate::yaml::{Map, Node, Res};

/// Credential collections of plugins Warden does not have: (field, plugin).
pub(crate) const OTHER_CREDENTIALS: &[(&str, &str)] = &[
    ("keyauth_credentials", "key-auth"),
    ("basicauth_credentials", "basic-auth"),
    ("hmacauth_credentials", "hmac-auth"),
    ("jwt_secrets", "jwt"),
    ("acls", "acl"),
    ("mtls_auth_credentials", "mtls-auth"),
];

const CONSUMER_FIELDS: &[&str] = &[
    "id",
    "username",
    "custom_id",
    "tags",
    "created_at",
    "updated_at",
    "oauth2_credentials",
    "plugins",
    "groups",
];

const CREDENTIAL_FIELDS: &[&str] = &[
    "id",
    "name",
    "client_id",
    "client_secret",
    "hash_secret",
    "redirect_uris",
    "client_type",
    "tags",
    "created_at",
];

/// The PHC prefixes of the hashes Warden can check.
const PHC_PREFIXES: &[&str] = &[
    "$argon2id$",
    "$argon2i$",
    "$argon2d$",
    "$pbkdf2-sha256$",
    "$pbkdf2-sha512$",
];

/// Reads `consumers` and the top-level `oauth2_credentials`. `transform` is
/// the file's `_transform` (default true: Kong hashes `hash_secret`
/// secrets on load).
pub(crate) fn read(
    consumers: Option<Node<'_>>,
    top_credentials: Option<Node<'_>>,
    transform: bool,
) -> Res<Vec<Consumer>> {
    let mut out: Vec<Consumer> = Vec::new();
    let mut client_ids: Vec<String> = Vec::new();
    for node in consumers
        .map(|n| n.items("`consumers`"))
        .transpose()?
        .unwrap_or_default()
    {
        let c = consumer(&node, &out, &mut client_ids, transform)?;
        out.push(c);
    }
    let tops = top_credentials
        .map(|n| n.items("`oauth2_credentials`"))
        .transpose()?
        .unwrap_or_default();
    for node in tops {
        let map = node.map("an oauth2 credential")?;
        let Some(reference) = map.get("consumer") else {
            return Err(
                node.fault("a top-level oauth2 credential needs `consumer` (a username or id)")
            );
        };
        let wanted = reference_text(&reference)?;
        let owner = out
            .iter()
            .position(|c| c.id.as_deref() == Some(wanted.as_str()))
            .or_else(|| {
                out.iter()
                    .position(|c| c.username.as_deref() == Some(wanted.as_str()))
            })
            .ok_or_else(|| {
                reference.fault(format!("no consumer has the username or id `{wanted}`"))
            })?;
        let mut cred = credential(&map, true, &mut client_ids, transform)?;
        cred.notes
            .insert(0, "from the top-level oauth2_credentials".to_owned());
        if let Some(c) = out.get_mut(owner) {
            c.credentials.push(cred);
        }
    }
    Ok(out)
}

/// `consumer: bob`, or `consumer: {id: …}` / `{username: …}`.
fn reference_text(node: &Node<'_>) -> Res<String> {
    if let Value::Mapping(_) = node.value {
        let map = node.map("`consumer`")?;
        map.only("`consumer`", &["id", "username"])?;
        return match (
            map.text("id", "`consumer`")?,
            map.text("username", "`consumer`")?,
        ) {
            (Some(id), None) => Ok(id),
            (None, Some(name)) => Ok(name),
            _ => Err(node.fault("`consumer` must give one of `id` or `username`")),
        };
    }
    node.text("`consumer`").map(str::to_owned)
}

fn consumer(
    node: &Node<'_>,
    earlier: &[Consumer],
    client_ids: &mut Vec<String>,
    transform: bool,
) -> Res<Consumer> {
    let map = node.map("a consumer")?;
    let known: Vec<&str> = CONSUMER_FIELDS
        .iter()
        .copied()
        .chain(OTHER_CREDENTIALS.iter().map(|(f, _)| *f))
        .collect();
    map.only("consumer", &known)?;
    let username = map.text("username", "consumer")?;
    let custom_id = map.text("custom_id", "consumer")?;
    let id = map.text("id", "consumer")?;
    if let Some(i) = &id
        && !warden_engine::internal::model::is_uuid(i)
    {
        return Err(map.key_fault(
            "id",
            format!("consumer id `{i}` is not a UUID (Kong's ids are)"),
        ));
    }
    let name = username
        .clone()
        .or_else(|| custom_id.clone())
        .ok_or_else(|| {
            node.fault("a consumer needs a `username` or a `custom_id` (Kong requires one)")
        })?;
    for (key, value, same) in [
        (
            "username",
            &username,
            earlier.iter().map(|c| &c.username).collect::<Vec<_>>(),
        ),
        (
            "custom_id",
            &custom_id,
            earlier.iter().map(|c| &c.custom_id).collect(),
        ),
        ("id", &id, earlier.iter().map(|c| &c.id).collect()),
    ] {
        if value.is_some() && same.contains(&value) {
            return Err(map.key_fault(
                key,
                format!(
                    "two consumers have the {key} `{}`",
                    value.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    if earlier.iter().any(|c| c.name == name) {
        return Err(node.fault(format!(
            "two consumers would both be named `{name}` in Warden (one's username is the other's custom_id)"
        )));
    }
    let label = quote::value(&name);
    map.only_empty(
        "plugins",
        &format!("consumer {label}"),
        "consumer-scoped plugins",
    )?;
    map.only_empty("groups", &format!("consumer {label}"), "consumer groups")?;
    let mut notes = Vec::new();
    for (field, plugin) in OTHER_CREDENTIALS {
        if let Some(n) = map.get(field) {
            let count = n.items(&format!("`{field}`"))?.len();
            if count > 0 {
                notes.push(format!(
                    "{count} {field} left out: Warden has no {plugin} plugin to use them"
                ));
            }
        }
    }
    let mut credentials = Vec::new();
    if let Some(list) = map.get("oauth2_credentials") {
        for item in list.items("`oauth2_credentials`")? {
            let cmap = item.map("an oauth2 credential")?;
            if cmap.get("consumer").is_some() {
                return Err(cmap.key_fault(
                    "consumer",
                    "a credential nested in a consumer belongs to it: remove `consumer`",
                ));
            }
            credentials.push(credential(&cmap, false, client_ids, transform)?);
        }
    }
    Ok(Consumer {
        name,
        username,
        custom_id,
        id,
        credentials,
        notes,
    })
}

fn credential(
    map: &Map<'_>,
    top_level: bool,
    client_ids: &mut Vec<String>,
    transform: bool,
) -> Res<Credential> {
    let mut known = CREDENTIAL_FIELDS.to_vec();
    if top_level {
        known.push("consumer");
    }
    map.only("oauth2 credential", &known)?;
    let what = "oauth2 credential";
    let name = map.text("name", what)?.ok_or_else(|| {
        map.node
            .fault("an oauth2 credential needs a `name` (Kong requires one)")
    })?;
    let client_id = map.text("client_id", what)?.ok_or_else(|| {
        map.node.fault(
            "an oauth2 credential needs a `client_id`: Kong would make up one at random, which no client could know",
        )
    })?;
    if client_ids.contains(&client_id) {
        return Err(map.key_fault(
            "client_id",
            format!("two oauth2 credentials have the client_id `{client_id}`"),
        ));
    }
    client_ids.push(client_id.clone());
    let public = match map.text("client_type", what)?.as_deref() {
        None | Some("confidential") => false,
        Some("public") => true,
        Some(other) => {
            return Err(map.key_fault(
                "client_type",
                format!("`client_type` must be `confidential` or `public`, found `{other}`"),
            ));
        }
    };
    let hashed = map.boolean("hash_secret", what)?.unwrap_or(false);
    let redirect_uris = map.texts("redirect_uris", what)?;
    if let (Some(uris), Some(node)) = (&redirect_uris, map.get("redirect_uris")) {
        for (uri, item) in uris.iter().zip(node.items("`redirect_uris`")?) {
            if let Err(why) = warden_engine::internal::model::check_redirect_uri(uri) {
                return Err(item.fault(format!("redirect URI: {why} (Kong refuses it)")));
            }
        }
    }
    let mut notes = Vec::new();
    let secret = match (map.text("client_secret", what)?, public) {
        (Some(_), true) => {
            notes.push("public client: Kong's client_secret is not used".to_owned());
            Secret::None
        }
        (None, true) => Secret::None,
        (None, false) => {
            return Err(map.node.fault(
                "a confidential oauth2 credential needs a `client_secret`: Kong would make up one at random, which no client could know",
            ));
        }
        (Some(s), false) if hashed && PHC_PREFIXES.iter().any(|p| s.starts_with(p)) => {
            if let Err(why) = warden_engine::internal::secret_hash::SecretHash::parse(&s) {
                return Err(
                    map.key_fault("client_secret", format!("the hashed client_secret: {why}"))
                );
            }
            Secret::Hash(s)
        }
        (Some(s), false) if hashed && s.starts_with("$2") => {
            return Err(map.key_fault(
                "client_secret",
                "a bcrypt-hashed client_secret has no Warden equivalent (Warden checks argon2 and PBKDF2 hashes)",
            ));
        }
        (Some(_), false) if hashed && !transform => {
            return Err(map.key_fault(
                "client_secret",
                "`hash_secret: true` with `_transform: false` needs an argon2 or PBKDF2 PHC hash in `client_secret`",
            ));
        }
        (Some(s), false) => {
            if hashed {
                notes.push("Kong stores this secret hashed (hash_secret: true); here it stays in the clear".to_owned());
            }
            Secret::Plain(s)
        }
    };
    Ok(Credential {
        name,
        client_id,
        secret,
        redirect_uris,
        public,
        notes,
    })
}
