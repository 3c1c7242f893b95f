//! A scope's registered clients: client_id → the consumer and its keys.
//!
//! One list in client_id order of declaration, and a [`NameTable`] of
//! indexes into it, so that each client_id is stored once (moved from the
//! model, not copied) and the table is four bytes a slot. Built at its
//! final size: a 100,000-consumer policy's clients are two allocations.

use super::index::NameTable;
use crate::model::{ClientSecret, Consumer, ConsumerId, Credential, Dialect, Settings};
use crate::token::Signing;

/// A client's keys: what the token endpoint checks its secret against, and
/// the key its tokens are signed and verified with (the host's keys with an
/// asymmetric `signing_alg`; else the scope's `signing_key`, else the
/// client secret itself, as Higress does: the two share one copy).
#[derive(Debug, Clone)]
pub struct ClientKeys {
    pub check: ClientSecret,
    pub signing: Signing,
    /// Kong: the registered redirect URIs (the first is the default).
    pub redirect_uris: Box<[String]>,
    /// Kong: the application's name (the credential's `name`, else its
    /// client_id), which the authorization page shows. Empty outside the
    /// Kong dialect, which has no such page.
    pub name: Box<str>,
}

/// One registered client of a scope.
#[derive(Debug)]
pub struct Client {
    pub id: Box<str>,
    pub consumer: ConsumerId,
    pub keys: ClientKeys,
}

/// A scope's clients, by client_id.
#[derive(Debug, Default)]
pub struct Clients {
    list: Box<[Client]>,
    by_id: NameTable,
}

impl Clients {
    /// The clients of the consumers `ids` under `settings`. A credential
    /// whose tokens nothing could sign — a hashed or public client's without
    /// the scope's `signing_key` — is left out (a hashed one does not
    /// compile: `model::check_signing_keys`). `uses` counts the scopes yet
    /// to be built that have each consumer: from the last, its client_ids
    /// are moved, not copied.
    pub fn new(
        ids: &[ConsumerId],
        consumers: &mut [Consumer],
        uses: &mut [u32],
        settings: &Settings,
        dialect: Dialect,
    ) -> Clients {
        let count = ids
            .iter()
            .map(|&id| consumers[id as usize].credentials.len())
            .sum();
        let mut list = Vec::with_capacity(count);
        for &consumer in ids {
            let left = &mut uses[consumer as usize];
            *left = left.saturating_sub(1);
            let take = *left == 0;
            for c in consumers[consumer as usize].credentials.iter_mut() {
                Self::push(&mut list, consumer, c, take, settings, dialect);
            }
        }
        let list = list.into_boxed_slice();
        let by_id = NameTable::new(list.len(), (0..).zip(list.iter().map(|c| &*c.id)), |i| {
            &list[i as usize].id
        });
        Clients { list, by_id }
    }

    fn push(
        list: &mut Vec<Client>,
        consumer: ConsumerId,
        c: &mut Credential,
        take: bool,
        settings: &Settings,
        dialect: Dialect,
    ) {
        let alg = settings.signing_alg;
        let signing = match (&settings.signing_key, &c.secret) {
            _ if alg.is_asymmetric() => Signing::Host(alg),
            (Some(key), _) => Signing::Hmac(key.clone()),
            (None, ClientSecret::Plain(secret)) => Signing::Hmac(secret.clone()),
            (None, ClientSecret::Hashed(_) | ClientSecret::Public) => return,
        };
        let keys = ClientKeys {
            check: c.secret.clone(),
            signing,
            redirect_uris: c.redirect_uris().into(),
            name: match dialect {
                Dialect::Kong => c.name().into(),
                Dialect::Higress => Box::default(),
            },
        };
        let id = if take {
            std::mem::take(&mut c.client_id)
        } else {
            c.client_id.clone()
        };
        list.push(Client { id, consumer, keys });
    }

    /// The client registered as `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&Client> {
        let i = self.by_id.get(client_id, |i| &self.list[i as usize].id)?;
        Some(&self.list[i as usize])
    }

    /// Every client, in declaration order.
    pub fn iter(&self) -> std::slice::Iter<'_, Client> {
        self.list.iter()
    }
}
