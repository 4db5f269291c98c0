//! Continue's MCP server block, `latchkey.yaml` in a `.continue/mcpServers/` folder: a file of
//! latchkey's own, written whole and removed whole, so the user's `config.yaml` (and its comments)
//! is never edited. Continue loads every block file in the folder beside its `config.yaml` entries.

use serde::Deserialize;

use super::{ENTRY, Edit, Launch, Problem};

pub(super) struct ContinueBlock;

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "mcpServers", default)]
    servers: Vec<Server>,
}

#[derive(Deserialize)]
struct Server {
    name: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

/// A YAML double-quoted scalar: JSON's string escapes are a subset of YAML's.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

impl Edit for ContinueBlock {
    fn read(&self, text: &str) -> Result<Option<Launch>, Problem> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let block: Block = serde_saphyr::from_str(text).map_err(|error| {
            let (line, column) = error.location().map_or((1, 1), |at| (at.line() as usize, at.column() as usize));
            Problem { line, column, message: format!("not a Continue MCP block latchkey can read: {error}") }
        })?;
        Ok(block
            .servers
            .into_iter()
            .find(|server| server.name == ENTRY)
            .map(|server| Launch { program: server.command, args: server.args }))
    }

    fn connect(&self, text: &str, launch: &Launch) -> Result<String, Problem> {
        if !text.trim().is_empty() && self.read(text)?.is_none() {
            return Err(Problem::at(text, 0, format!("this block has no `{ENTRY}` server, so latchkey did not write it; rename it")));
        }
        let args: Vec<String> = launch.args.iter().map(|arg| quoted(arg)).collect();
        Ok(format!(
            "# Written by `latchkey client connect continue`; `latchkey client disconnect continue` removes it.\n\
             name: {ENTRY}\nversion: 0.0.1\nschema: v1\nmcpServers:\n  - name: {ENTRY}\n    command: {}\n    args: [{}]\n",
            quoted(&launch.program),
            args.join(", ")
        ))
    }

    fn disconnect(&self, _text: &str) -> Result<Option<String>, Problem> {
        Ok(None)
    }
}
