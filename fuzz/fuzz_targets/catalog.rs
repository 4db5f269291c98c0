//! Catalog files (`catalog::Catalog::from_yaml`, the parser and checks every user catalog goes
//! through): any text is read without a panic, into servers or into problems.
//!
//! What must hold: every problem points into the file (a line no further than its end), and no
//! problem or notice quotes a client secret written in it (the value of a `client_secret` key, or
//! a Google client secret pasted as a `client_id`). For the latter, each such value is replaced by
//! a marker that no message could contain by chance, and the file is read again.

#![no_main]

use std::path::PathBuf;

use latchkey::catalog::{Catalog, Source};
use libfuzzer_sys::fuzz_target;

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

/// `text` with the client secrets written in it replaced by [`MARKER`]s of the same length in
/// bytes (so that the other secrets' offsets hold, however they overlap): plain
/// values (8 characters or more) of keys spelled like `client_secret`, and what follows `GOCSPX-`
/// in `client_id` values.
fn mark_secrets(text: &str) -> String {
    let mut marked = text.to_string();
    for (start, end) in secret_spans(text) {
        let marker: String = MARKER.chars().cycle().take(end - start).collect();
        marked.replace_range(start..end, &marker);
    }
    marked
}

/// Byte ranges of the secret values, last first.
fn secret_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (colon, _) in text.match_indices(':') {
        let before = text[..colon].trim_end_matches(['"', '\'']);
        let key_start = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).len();
        let key: String = before[key_start..].chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
        let after = &text[colon + 1..];
        let start = colon + 1 + (after.len() - after.trim_start_matches([' ', '"', '\'']).len());
        let value = &text[start..];
        let end = start + value.find(|c: char| c.is_whitespace() || "\"',{}[]#".contains(c)).unwrap_or(value.len());
        match key.as_str() {
            "clientsecret" if end - start >= 8 => spans.push((start, end)),
            "clientid" if text[start..end].starts_with("GOCSPX-") && end - start >= 12 => spans.push((start + 7, end)),
            _ => {}
        }
    }
    spans.reverse();
    spans
}
