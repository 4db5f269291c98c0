//! Golden files for every client format: `golden/<client>.before.<ext>` (a file as the client or
//! its user wrote it, with comments and other servers) and `golden/<client>.after.<ext>` (the same
//! after `connect`), committed. `LATCHKEY_BLESS=1 cargo test -p latchkey --lib clients::` rewrites
//! the `after` files from the code; review their diff before committing.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/clients/golden")
}

fn extension(client: &Client) -> &'static str {
    match client.format {
        Format::Json { .. } => "json",
        Format::Toml => "toml",
        Format::ContinueBlock => "yaml",
    }
}

fn launch() -> Launch {
    Launch::gateway(Path::new("/opt/latchkey/bin/latchkey"), &["gmail".to_string(), "slack".to_string()])
}

/// The golden file `name`, or `None` when there is none.
fn golden(name: &str) -> Option<String> {
    fs::read_to_string(golden_dir().join(name)).ok()
}

#[test]
fn connect_matches_the_golden_files_and_disconnect_restores_the_original_bytes() {
    let bless = std::env::var_os("LATCHKEY_BLESS").is_some();
    for client in CLIENTS {
        let ext = extension(client);
        let before = golden(&format!("{}.before.{ext}", client.id));
        let edit = editor(client.format);
        let text = before.as_deref().unwrap_or("");
        assert_eq!(edit.read(text).unwrap(), None, "{}: the original has no latchkey entry", client.id);

        let after = edit.connect(text, &launch()).unwrap_or_else(|problem| panic!("{}: {problem:?}", client.id));
        let after_name = format!("{}.after.{ext}", client.id);
        if bless {
            fs::write(golden_dir().join(&after_name), &after).unwrap();
        }
        let expected = golden(&after_name).unwrap_or_else(|| panic!("golden/{after_name} is missing; run with LATCHKEY_BLESS=1"));
        assert_eq!(after, expected, "{}: connect differs from golden/{after_name}", client.id);

        // Idempotent: the entry reads back as what was written, so a second connect changes nothing.
        assert_eq!(edit.read(&after).unwrap(), Some(launch()), "{}", client.id);
        assert_eq!(edit.connect(&after, &launch()).unwrap(), after, "{}: connecting twice", client.id);

        assert_eq!(edit.disconnect(&after).unwrap(), before, "{}: disconnect must give back the original bytes", client.id);
    }
}

#[test]
fn a_file_with_windows_line_endings_keeps_them() {
    for client in CLIENTS {
        let Some(before) = golden(&format!("{}.before.{}", client.id, extension(client))) else { continue };
        let crlf = before.replace('\n', "\r\n");
        let edit = editor(client.format);
        let after = with_line_endings_of(&crlf, edit.connect(&crlf, &launch()).unwrap());
        assert!(!after.replace("\r\n", "").contains('\n'), "{}: a lone LF in {after:?}", client.id);
        assert_eq!(edit.read(&after).unwrap(), Some(launch()), "{}", client.id);
        let removed = edit.disconnect(&after).unwrap().map(|text| with_line_endings_of(&after, text));
        assert_eq!(removed, Some(crlf), "{}: disconnect must give back the original bytes", client.id);
    }
    assert_eq!(with_line_endings_of("{}\n", "a\nb\n".into()), "a\nb\n", "a file with LF endings is left alone");
}

#[test]
fn an_entry_for_other_servers_is_updated_in_place_keeping_what_the_user_added() {
    let text = "{\n  \"mcpServers\": {\n    \"latchkey\": {\n      \"command\": \"/old/latchkey\",\n      \"args\": [\"gateway\", \"run\"],\n      \"env\": { \"LATCHKEY_HOME\": \"/srv/latchkey\" }\n    }\n  }\n}\n";
    let cursor = find("cursor").unwrap();
    let after = editor(cursor.format).connect(text, &launch()).unwrap();
    assert_eq!(
        after,
        "{\n  \"mcpServers\": {\n    \"latchkey\": {\n      \"command\": \"/opt/latchkey/bin/latchkey\",\n      \"args\": [\"gateway\", \"run\", \"--servers\", \"gmail,slack\"],\n      \"env\": { \"LATCHKEY_HOME\": \"/srv/latchkey\" }\n    }\n  }\n}\n"
    );

    let toml = "[mcp_servers.latchkey]\ncommand = \"/old/latchkey\" # moved\nargs = [\"gateway\", \"run\"]\nstartup_timeout_sec = 30\n";
    let after = editor(find("codex").unwrap().format).connect(toml, &launch()).unwrap();
    assert_eq!(
        after,
        "[mcp_servers.latchkey]\ncommand = \"/opt/latchkey/bin/latchkey\" # moved\nargs = [\"gateway\", \"run\", \"--servers\", \"gmail,slack\"]\nstartup_timeout_sec = 30\n"
    );
}

#[test]
fn a_new_or_empty_file_gets_just_the_entry() {
    let zed = find("zed").unwrap();
    for text in ["", "\n", "// nothing yet\n"] {
        let after = editor(zed.format).connect(text, &launch()).unwrap();
        assert_eq!(editor(zed.format).read(&after).unwrap(), Some(launch()), "from {text:?}: {after}");
        assert!(after.starts_with(text.trim_end()) && after.ends_with("}\n"), "from {text:?}: {after}");
    }
}

/// Each malformed file is refused with its line and column, and with what is wrong.
#[test]
fn malformed_files_are_refused_with_their_line_and_column() {
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        // A comment where the client reads strict JSON.
        ("claude-desktop", "{\n  \"mcpServers\": {\n    // mine\n  }\n}\n", 3, 5, "Comments are not allowed"),
        (
            "cursor",
            "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"},\n  }\n}\n",
            3,
            26,
            "Trailing commas are not allowed (the client reads strict JSON",
        ),
        (
            "vscode",
            "{\n  \"servers\": {\n    \"a\": {\"command\": \"x\"\n  }\n",
            2,
            14,
            "Unterminated object (the client reads JSON with comments)",
        ),
        (
            "gemini",
            "{\n  // mine\n  \"mcpServers\": {},\n}\n",
            3,
            19,
            "Trailing commas are not allowed (the client reads JSON with comments, without",
        ),
        ("gemini", "{\n  \"mcpServers\": [\n    \"latchkey\"\n  ]\n}\n", 2, 3, "`mcpServers` must be an object"),
        ("zed", "[1, 2]\n", 1, 1, "must hold a JSON object"),
        ("codex", "model = \"o3\"\n[mcp_servers\ncommand = 1\n", 2, 13, "TOML"),
        ("codex", "mcp_servers = 3\n", 1, 15, "`mcp_servers` must be a table"),
        ("continue", "name: latchkey\nmcpServers:\n  - command: x\n", 3, 5, "Continue MCP block"),
    ];
    for (id, text, line, column, wanted) in cases {
        let client = find(id).unwrap();
        let problem = editor(client.format).connect(text, &launch()).expect_err(id);
        let message = problem.into_error(Path::new("/home/me/settings")).to_string();
        assert!(message.starts_with(&format!("/home/me/settings:{line}:{column}: ")), "{id}: {message}");
        assert!(message.contains(wanted), "{id}: {message}");
        assert!(message.contains("latchkey has not changed the file"), "{id}: {message}");
    }
}

#[test]
fn continue_refuses_a_block_named_latchkey_that_latchkey_did_not_write() {
    let client = find("continue").unwrap();
    let text = "name: mine\nversion: 1.0.0\nschema: v1\nmcpServers:\n  - name: other\n    command: other\n";
    let message = editor(client.format).connect(text, &launch()).unwrap_err().message;
    assert!(message.contains("latchkey did not write it"), "{message}");
}

#[test]
fn launch_servers_are_read_from_either_spelling() {
    let launch = |args: &[&str]| Launch { program: "latchkey".into(), args: args.iter().map(|arg| arg.to_string()).collect() };
    assert_eq!(launch(&["gateway", "run"]).servers(), None);
    assert_eq!(launch(&["gateway", "run", "--servers", "a,b"]).servers(), Some(vec!["a".into(), "b".into()]));
    assert_eq!(launch(&["gateway", "run", "--servers=a", "--servers", "b"]).servers(), Some(vec!["a".into(), "b".into()]));
}
