//! `WWW-Authenticate` challenges from MCP servers (`oauth::discovery::Challenge::parse`): any header
//! value parses without a panic, and a parsed challenge written back as a `Bearer` header with
//! quoted values parses to the same challenge (so no value is cut or merged with another).

#![no_main]

use latchkey::oauth::discovery::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let Some(challenge) = Challenge::parse(header) else { return };
    let written = write(&challenge);
    assert_eq!(Challenge::parse(&written).as_ref(), Some(&challenge), "{header:?} parsed, was written as {written:?}");
});

/// The challenge as an RFC 6750 §3 header, every value a quoted-string.
fn write(challenge: &Challenge) -> String {
    let quoted = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    let params: Vec<String> =
        [("resource_metadata", &challenge.resource_metadata), ("scope", &challenge.scope), ("error", &challenge.error)]
            .into_iter()
            .filter_map(|(name, value)| value.as_deref().map(|value| format!("{name}={}", quoted(value))))
            .collect();
    format!("Bearer {}", params.join(", "))
}
