//! Codex's `config.toml`, edited with toml_edit: comments, spacing and the order of tables survive,
//! and latchkey's server is one `[mcp_servers.latchkey]` table.

use toml_edit::{Array, Document, DocumentMut, Item, Table, TableLike, Value};

use super::{ENTRY, Edit, Launch, Problem};

const SERVERS: &str = "mcp_servers";

pub(super) struct Toml;

/// `text` parsed, with `mcp_servers` checked to be a table (the positions are only known before
/// the document is made editable).
fn parse(text: &str) -> Result<DocumentMut, Problem> {
    let document = Document::parse(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        Problem::at(text, offset, format!("{} (the file must be TOML)", error.message().trim_end()))
    })?;
    for (name, item) in [(SERVERS, document.get(SERVERS)), (ENTRY, document.get(SERVERS).and_then(|servers| servers.get(ENTRY)))] {
        if let Some(item) = item
            && !item.is_table_like()
        {
            let offset = item.span().map_or(0, |span| span.start);
            return Err(Problem::at(text, offset, format!("`{name}` must be a table ([{SERVERS}.<name>] with command and args)")));
        }
    }
    Ok(document.into_mut())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

impl Edit for Toml {
    fn read(&self, text: &str) -> Result<Option<Launch>, Problem> {
        let document = parse(text)?;
        let Some(entry) = document.get(SERVERS).and_then(|servers| servers.get(ENTRY)).and_then(Item::as_table_like) else {
            return Ok(None);
        };
        let program = entry.get("command").and_then(Item::as_str).unwrap_or_default().to_string();
        let args = entry
            .get("args")
            .and_then(Item::as_array)
            .map(|array| array.iter().map(|arg| arg.as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default();
        Ok(Some(Launch { program, args }))
    }

    fn connect(&self, text: &str, launch: &Launch) -> Result<String, Problem> {
        let mut document = parse(text)?;
        if !document.contains_key(SERVERS) {
            // `[mcp_servers.latchkey]` alone, without an empty `[mcp_servers]` header above it.
            let mut servers = Table::new();
            servers.set_implicit(true);
            document.insert(SERVERS, Item::Table(servers));
        }
        let servers = document[SERVERS].as_table_like_mut().expect("checked by parse");
        if !servers.contains_key(ENTRY) {
            let entry = if servers.is_dotted() || document[SERVERS].is_inline_table() {
                Item::Value(Value::InlineTable(Default::default()))
            } else {
                Item::Table(Table::new())
            };
            document[SERVERS].as_table_like_mut().expect("checked by parse").insert(ENTRY, entry);
        }
        // Set latchkey's keys, keep any the user added (env, startup_timeout_sec, enabled...).
        let entry = document[SERVERS][ENTRY].as_table_like_mut().expect("checked by parse");
        set(entry, "command", Value::from(launch.program.as_str()));
        set(entry, "args", strings(&launch.args));
        Ok(document.to_string())
    }

    fn disconnect(&self, text: &str) -> Result<Option<String>, Problem> {
        let mut document = parse(text)?;
        if let Some(servers) = document.get_mut(SERVERS).and_then(Item::as_table_like_mut) {
            servers.remove(ENTRY);
            // The table was latchkey's alone: `connect` added it.
            if servers.is_empty() {
                document.remove(SERVERS);
            }
        }
        Ok(Some(document.to_string()))
    }
}

/// Set `key` to `value`, keeping the decoration (comments, spacing) of a value already there.
fn set(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}
