//! `echo-mcp`: the smallest MCP server over stdio, with one tool, `echo`, answering
//! `Echo: <message>` as server-everything's does. The `servers` scenario starts hundreds of these
//! behind one gateway, where a Node server each would measure Node (40 MB and a start-up apiece)
//! rather than the gateway.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(message) = serde_json::from_str::<Value>(&line?) else { continue };
        // Notifications (no id) need no answer.
        let Some(id) = message.get("id").cloned() else { continue };
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let answer = match message.get("method").and_then(Value::as_str).unwrap_or_default() {
            "initialize" => json!({"result": {
                "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "echo-mcp", "version": env!("CARGO_PKG_VERSION")},
            }}),
            "ping" => json!({"result": {}}),
            "tools/list" => json!({"result": {"tools": [{
                "name": "echo",
                "description": "Echoes back the input",
                "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
            }]}}),
            "tools/call" => {
                let text = params.pointer("/arguments/message").and_then(Value::as_str).unwrap_or_default();
                json!({"result": {"content": [{"type": "text", "text": format!("Echo: {text}")}]}})
            }
            method => json!({"error": {"code": -32601, "message": format!("method not found: {method}")}}),
        };
        let mut response = answer;
        response["jsonrpc"] = json!("2.0");
        response["id"] = id;
        writeln!(stdout, "{response}")?;
        stdout.flush()?;
    }
    Ok(())
}
