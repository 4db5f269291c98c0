//! Every mapping key of a catalog file, with its position and the keys above it, read before the
//! typed parse. Two rules read them:
//!
//! - **client secrets**: a key spelled `client_secret` (or `clientSecret`, `client-secret`)
//!   anywhere is refused with the command that stores the secret instead;
//! - **known fields**, with Docker's leniency where Docker is lenient: Docker's parser ignores keys
//!   it does not know at the top level and in a server entry, and Docker's catalogs carry such
//!   keys (`dateAdded`, `upstream`, `source`…), so there an unknown key is a *notice* naming it;
//!   inside `remote`, `oauth`, `secrets`, `env` and `registrations`, where a misspelt key would
//!   silently change what latchkey does (a scope not asked for, a secret not passed), it is a
//!   problem with a "did you mean". `server_metadata` takes every name RFC 8414's registry has,
//!   and keeps any other with a notice. Docker's own structures that latchkey does not act on
//!   (`tools`, `metadata`, `policy`…) are not looked into.
//!
//! The known fields are read from the typed structures themselves ([`serde_fields`]), so a field
//! added to one is known here without a second list.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::model::{
    ConfigObject, ConfigProperty, EnvVar, Located, OAuth, OAuthProvider, REGISTERED_METADATA, Registration, Remote, Secret, ServerMetadata,
};
use super::parse::{RawFile, RawRegistration, RawServer};

/// A mapping key as written, with the keys (and list indexes) above it.
pub(crate) struct FoundKey {
    pub name: String,
    pub line: u64,
    pub column: u64,
    pub path: Vec<String>,
}

impl FoundKey {
    /// The server whose entry holds the key, when it is inside one.
    pub fn server(&self) -> Option<&str> {
        match self.path.as_slice() {
            [top, server, ..] if matches!(top.as_str(), "servers" | "registry" | "registrations") => Some(server),
            _ => None,
        }
    }
}

/// Every mapping key of `text`, in document order.
pub(crate) fn scan(text: &str) -> Result<Vec<FoundKey>, serde_saphyr::Error> {
    Ok(serde_saphyr::from_str::<Option<Scan>>(text)?.map(|scan| scan.0).unwrap_or_default())
}

pub(crate) fn is_client_secret(key: &str) -> bool {
    let folded: String = key.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    folded.eq_ignore_ascii_case("clientsecret")
}

/// What an unknown key at some place is.
pub(crate) enum Unknown {
    /// Docker ignores it, and so does latchkey: the message is a notice.
    Ignored(String),
    /// It would change what latchkey does: the message is a problem.
    Refused(String),
}

/// The verdict on `key` when it is not a field of its place; `None` when it is known, or when
/// its place is one latchkey does not look into.
pub(crate) fn unknown(key: &FoundKey) -> Option<Unknown> {
    let path: Vec<&str> = key.path.iter().map(String::as_str).collect();
    let (fields, what, strict): (&[&str], &str, bool) = match path.as_slice() {
        [] => (serde_fields::<RawFile>(), "the top level of a catalog", false),
        ["servers" | "registry", _] => (serde_fields::<RawServer>(), "a server entry", false),
        ["servers" | "registry", _, "remote"] => (serde_fields::<Remote>(), "`remote`", true),
        ["servers" | "registry", _, "oauth"] => (serde_fields::<OAuth>(), "`oauth`", true),
        ["servers" | "registry", _, "oauth", "providers", _] => (serde_fields::<OAuthProvider>(), "an OAuth provider", true),
        // RFC 8414 lets a server publish names of its own, and registers many that latchkey
        // does not use: they are kept (`catalog show` lists them); only an unregistered one gets
        // a notice, in case it is a misspelling.
        ["servers" | "registry", _, "oauth", "providers", _, "server_metadata"] => {
            if REGISTERED_METADATA.contains(&key.name.as_str()) {
                return None;
            }
            let fields = serde_fields::<ServerMetadata>();
            if fields.contains(&key.name.as_str()) {
                return None;
            }
            let mut names: Vec<&str> = fields.iter().chain(REGISTERED_METADATA).copied().collect();
            names.sort_unstable();
            let hint = closest(&key.name, &names).map(|name| format!(" (did you mean `{name}`?)")).unwrap_or_default();
            return Some(Unknown::Ignored(format!(
                "`{}` is not a name of the authorization server metadata registry (RFC 8414); latchkey keeps it and does not use \
                 it{hint}",
                key.name
            )));
        }
        ["servers" | "registry", _, "oauth", "providers", _, "registration"] => (serde_fields::<Registration>(), "`registration`", true),
        ["servers" | "registry", _, "secrets", _] => (serde_fields::<Secret>(), "a secret", true),
        ["servers" | "registry", _, "env", _] => (serde_fields::<EnvVar>(), "an `env` entry", true),
        // JSON Schema has more keywords than latchkey reads: the others are ignored, as by Docker.
        ["servers" | "registry", _, "config", _] => (serde_fields::<ConfigObject>(), "a `config` object", false),
        ["servers" | "registry", _, "config", _, "properties", _] => (serde_fields::<ConfigProperty>(), "a `config` property", false),
        ["registrations", _] => (serde_fields::<RawRegistration>(), "a registration", true),
        _ => return None,
    };
    if fields.contains(&key.name.as_str()) {
        return None;
    }
    let hint = match closest(&key.name, fields) {
        Some(field) => format!("did you mean `{field}`?"),
        None => format!("the fields are {}", fields.iter().map(|field| format!("`{field}`")).collect::<Vec<_>>().join(", ")),
    };
    Some(if strict {
        Unknown::Refused(format!("unknown field `{}` in {what}; {hint}", key.name))
    } else {
        Unknown::Ignored(format!("`{}` is not a field of {what} in Docker's or latchkey's catalogs, so it is ignored ({hint})", key.name))
    })
}

/// The one of `fields` that `name` was most likely meant to be.
pub(crate) fn closest<'a>(name: &str, fields: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    fields
        .iter()
        .map(|field| (field.to_ascii_lowercase(), *field))
        // Jaro-Winkler, as clap's suggestions, misses a swap in a short word (`evn`): one edit is close too.
        .filter(|(lower, _)| strsim::jaro_winkler(&name, lower) >= 0.8 || strsim::damerau_levenshtein(&name, lower) <= 1)
        .max_by(|a, b| strsim::jaro_winkler(&name, &a.0).total_cmp(&strsim::jaro_winkler(&name, &b.0)))
        .map(|(_, field)| field)
}

/// The names a serde-derived struct reads (its fields under their serialized names), asked of
/// the struct itself: its `Deserialize` hands them to `deserialize_struct`, which records them
/// and stops.
pub(crate) fn serde_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

/// Any YAML node, reduced to the mapping keys found inside it.
struct Scan(Vec<FoundKey>);

impl<'de> Deserialize<'de> for Scan {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScanVisitor)
    }
}

struct ScanVisitor;

macro_rules! scalars_hold_no_keys {
    ($($method:ident: $type:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $type) -> Result<Scan, E> { Ok(Scan(Vec::new())) })*
    };
}

impl<'de> Visitor<'de> for ScanVisitor {
    type Value = Scan;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalars_hold_no_keys!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
        visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Scan, E> {
        Ok(Scan(Vec::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Scan, E> {
        Ok(Scan(Vec::new()))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Scan, D::Error> {
        Scan::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scan, A::Error> {
        let mut found = Vec::new();
        let mut index = 0usize;
        while let Some(Scan(inner)) = seq.next_element()? {
            found.extend(inner.into_iter().map(|mut key| {
                key.path.insert(0, index.to_string());
                key
            }));
            index += 1;
        }
        Ok(Scan(found))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<Located<KeyText>>()? {
            let Scan(inner) = map.next_value()?;
            let text = key.0.clone().unwrap_or_default();
            found.push(FoundKey { name: text.clone(), line: key.line(), column: key.column(), path: Vec::new() });
            found.extend(inner.into_iter().map(|mut nested| {
                nested.path.insert(0, text.clone());
                nested
            }));
        }
        Ok(Scan(found))
    }
}

/// A mapping key: its text when it is a scalar.
#[derive(Clone)]
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }

            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }

            // A complex key (a mapping or list used as a key) has no name to match.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}
