//! The `headers` of a remote entry: HTTP headers sent with every request to the server, whose
//! values may name the server's variables as Docker writes them (`os.Expand`): `$VAR` or `${VAR}`,
//! and `$$` for a literal `$`.
//!
//! The catalog checks the syntax here (a valid header name that latchkey does not set itself, a
//! value without line breaks or control characters, well-formed references); the gateway expands
//! the [`pieces`] when it starts the upstream (`crate::gateway::inject`). Stricter than
//! `os.Expand` on purpose: a `$` that starts no variable is an error rather than text, so that a
//! mistyped reference cannot silently send a wrong credential.

use http::{HeaderName, HeaderValue};

use super::rules;

/// Headers the MCP transport sets itself; a catalog value would conflict with it (rmcp refuses
/// some of these at request time, which would fail every request).
const RESERVED: &[&str] =
    &["accept", "connection", "content-length", "content-type", "host", "last-event-id", "te", "transfer-encoding", "upgrade"];

/// One part of a header value: text sent as is, or a variable to put in.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// `template` split into text and variables.
pub fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        if dollar > 0 {
            pieces.push(Piece::Text(&rest[..dollar]));
        }
        let after = &rest[dollar + 1..];
        let (piece, taken) = if after.starts_with('$') {
            (Piece::Text("$"), 1)
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("`${{` in `{template}` has no closing `}}`"))?;
            let name = &braced[..end];
            rules::env_name(name).map_err(|message| format!("`${{{name}}}` in `{template}`: {message}"))?;
            (Piece::Variable(name), end + 2)
        } else {
            let length = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let name = &after[..length];
            if rules::env_name(name).is_err() {
                return Err(format!("a `$` in `{template}` starts no variable; write `$VAR` or `${{VAR}}`, or `$$` for a literal `$`"));
            }
            (Piece::Variable(name), length)
        };
        pieces.push(piece);
        rest = &after[taken..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// A header name a catalog may set.
pub fn name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("header name `{name}` is not an HTTP header name: use letters, digits and `-`, such as `X-Api-Key`"))?;
    if RESERVED.contains(&parsed.as_str()) || parsed.as_str().starts_with("mcp-") {
        return Err(format!("header `{name}` is set by the MCP transport itself; remove it"));
    }
    Ok(parsed)
}

/// A header value as written (before expansion): its references are well formed and its text is
/// valid in an HTTP header.
pub fn value<'a>(header: &str, template: &'a str) -> Result<Vec<&'a str>, String> {
    if HeaderValue::from_str(template).is_err() {
        return Err(format!(
            "the value of header `{header}` has a line break or a control character, which HTTP headers cannot carry; remove it"
        ));
    }
    let pieces = pieces(template).map_err(|message| format!("header `{header}`: {message}"))?;
    Ok(pieces
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Variable(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(template: &str) -> Result<String, String> {
        Ok(pieces(template)?
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.to_string(),
                Piece::Variable(name) => format!("<{name}>"),
            })
            .collect())
    }

    #[test]
    fn variables_are_expanded_and_dollars_escaped() {
        assert_eq!(expanded("Bearer $TOKEN").unwrap(), "Bearer <TOKEN>");
        assert_eq!(expanded("${A}-$B_2.x").unwrap(), "<A>-<B_2>.x");
        assert_eq!(expanded("${A}${B}").unwrap(), "<A><B>");
        assert_eq!(expanded("cost: $$5 $$$A").unwrap(), "cost: $5 $<A>");
        assert_eq!(expanded("plain").unwrap(), "plain");
        assert_eq!(expanded("").unwrap(), "");
    }

    #[test]
    fn a_dollar_that_starts_no_variable_is_an_error() {
        for bad in ["$", "a $ b", "$5", "${", "${A", "${}", "${1A}", "${A-B}"] {
            let error = expanded(bad).unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
        assert!(expanded("5$").unwrap_err().contains("`$$` for a literal `$`"));
    }

    #[test]
    fn names_and_values_must_be_http() {
        assert_eq!(name("X-Api-Key").unwrap().as_str(), "x-api-key");
        assert!(name("Authorization").is_ok());
        assert!(name("X Team").unwrap_err().contains("not an HTTP header name"));
        assert!(name("X:Team").is_err());
        assert!(name("").is_err());
        assert!(name("Accept").unwrap_err().contains("MCP transport"));
        assert!(name("Mcp-Session-Id").unwrap_err().contains("MCP transport"));
        assert_eq!(value("X", "key-$API_KEY ${TEAM}").unwrap(), ["API_KEY", "TEAM"]);
        assert!(value("X", "a\nb").unwrap_err().contains("line break"));
        assert!(value("X", "a\u{7f}").is_err());
        assert!(value("X", "$").unwrap_err().contains("header `X`"));
    }
}
