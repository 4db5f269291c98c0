//! Catalog files (`catalog::Catalog::from_yaml`, the parser and checks every user catalog goes
//! through): any text is read without a panic, into servers or into problems.
//!
//! What must hold: every problem points into the file (a line no further than its end), and no
//! problem or notice quotes a client secret written in it (the value of a `client_secret` key, or
//! a Google client secret pasted as a `client_id`). For the latter, each such value is replaced by
//! markers that no message could contain by chance, and the file is read again. The values are
//! found by the YAML parser, not by matching text: `client_secret: …` inside a quoted URL is part
//! of the URL, and a message may quote the URL.

#![no_main]

use std::fmt;
use std::path::PathBuf;

use latchkey::catalog::{Catalog, Source};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// Stands in for a client secret: no fixed wording contains it.
const MARKER: &str = "zQ9x";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    read(text);
    let marked = mark_secrets(text);
    if marked != text && !text.contains(MARKER) {
        for message in read(&marked) {
            assert!(!message.contains(MARKER), "{message:?} quotes a client secret written in\n{marked}");
        }
    }
});

/// Read `text` as a catalog file, check where its problems point, and return every message.
fn read(text: &str) -> Vec<String> {
    match Catalog::from_yaml(Source::File(PathBuf::from("fuzz.yaml")), text) {
        Ok(catalog) => catalog.notices().to_vec(),
        Err(error) => {
            // YAML breaks lines at `\n`, `\r\n` and a lone `\r`.
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() as u64 + 1;
            for problem in &error.problems {
                assert!(problem.line <= lines, "{problem} is past the end of the file ({lines} lines)");
            }
            error.problems.into_iter().map(|problem| problem.message).collect()
        }
    }
}

/// `text` with the client secrets written in it replaced by [`marker_for`] them (the same length
/// in bytes, so that the other secrets' offsets hold): string values (8 bytes or more) of keys
/// spelled like `client_secret`, and what follows `GOCSPX-` in `client_id` values. A file the
/// parser refuses is left as it is: the catalog reports that error alone, without quoting the file.
fn mark_secrets(text: &str) -> String {
    let Ok(Some(node)) = serde_saphyr::from_str::<Option<Node>>(text) else { return text.to_string() };
    let mut spans: Vec<(usize, usize)> = node.secrets.iter().filter_map(|secret| secret.span_in(text)).collect();
    // An alias makes one value the secret of several keys.
    spans.sort_unstable();
    spans.dedup();
    let mut marked = text.to_string();
    for &(start, end) in spans.iter().rev() {
        marked.replace_range(start..end, &marker_for(&text[start..end]));
    }
    marked
}

/// [`MARKER`]s in place of `secret`, byte for byte, with its whitespace kept: a value with a space
/// stays one (which some checks look for), and each run of four bytes or more holds a marker.
fn marker_for(secret: &str) -> String {
    let mut marker = String::with_capacity(secret.len());
    let mut run = MARKER.chars().cycle();
    for c in secret.chars() {
        if c.is_whitespace() {
            marker.push(c);
            run = MARKER.chars().cycle();
        } else {
            marker.extend(run.by_ref().take(c.len_utf8()));
        }
    }
    marker
}

/// A key as the catalog matches it: `client_secret`, `clientSecret` and `client-secret` alike.
fn fold(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase()
}

/// A string value under a key that names a client credential, and where the parser found it.
struct Secret {
    /// The key, [`fold`]ed: `clientsecret` or `clientid`.
    key: String,
    value: String,
    at: Location,
}

impl Secret {
    /// The bytes of `text` that hold the secret, when they are the value as written (plain or
    /// quoted without escapes); a value written otherwise is skipped, which only narrows the check.
    fn span_in(&self, text: &str) -> Option<(usize, usize)> {
        let span = self.at.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let end = start.checked_add(usize::try_from(span.byte_len()?).ok()?)?;
        let written = text.get(start..end)?;
        let (start, end) = if written == self.value {
            (start, end)
        } else if written.len() >= 2
            && (written.starts_with('"') && written.ends_with('"') || written.starts_with('\'') && written.ends_with('\''))
            && written[1..written.len() - 1] == self.value
        {
            (start + 1, end - 1)
        } else {
            return None;
        };
        match self.key.as_str() {
            "clientsecret" if end - start >= 8 => Some((start, end)),
            "clientid" if self.value.starts_with("GOCSPX-") && end - start >= 12 => Some((start + 7, end)),
            _ => None,
        }
    }
}

/// Any YAML node: its text when it is a string, and the secrets found in it.
#[derive(Default)]
struct Node {
    text: Option<String>,
    secrets: Vec<Secret>,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! other_scalars {
    ($($method:ident: $type:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $type) -> Result<Node, E> { Ok(Node::default()) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    other_scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
        visit_f64: f64, visit_bytes: &[u8]);

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        Ok(Node { text: Some(value.to_string()), secrets: Vec::new() })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::default())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut secrets = Vec::new();
        while let Some(Node { secrets: inner, .. }) = seq.next_element()? {
            secrets.extend(inner);
        }
        Ok(Node { text: None, secrets })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut secrets = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let node: Spanned<Node> = map.next_value()?;
            secrets.extend(key.secrets);
            secrets.extend(node.value.secrets);
            if let (Some(key), Some(value)) = (key.text, node.value.text) {
                let key = fold(&key);
                if matches!(key.as_str(), "clientsecret" | "clientid") {
                    secrets.push(Secret { key, value, at: node.defined });
                }
            }
        }
        Ok(Node { text: None, secrets })
    }
}
