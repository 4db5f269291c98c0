//! Real AI clients read what `latchkey client connect` wrote and start latchkey's gateway from it:
//! Claude Code, Gemini CLI and Codex CLI, installed from npm into `tests/peers`, each with a private
//! HOME and nothing but the loopback. The gateway serves one catalog server, npm's
//! server-everything, so that it has an upstream to start.
//!
//! - `claude mcp list` and `gemini mcp list` start each configured stdio server, initialize it and
//!   print `Connected` (or why not).
//! - `codex mcp list --json` only reads the configuration (it starts nothing): the test checks that
//!   Codex parses latchkey's table into the command and arguments `connect` meant.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use latchkey_tests::peers::{node, peers_dir};
use latchkey_tests::{Run, latchkey_bin};

/// A machine with one user: a private HOME holding latchkey's configuration (found through HOME,
/// as the gateway the client starts finds it) and the clients' files, and a project folder.
struct Machine {
    home: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let machine = Machine { home: tempfile::tempdir().unwrap() };
        let everything = peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(everything.is_file(), "server-everything is not installed: run `npm ci --prefix tests/peers`");
        let catalogs = machine.home().join(".config/latchkey/catalogs");
        fs::create_dir_all(&catalogs).unwrap();
        fs::write(
            catalogs.join("test.yaml"),
            format!("servers:\n  everything:\n    command: [{}, {}, stdio]\n", node().display(), everything.display()),
        )
        .unwrap();
        fs::create_dir_all(machine.project()).unwrap();
        machine
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn project(&self) -> PathBuf {
        self.home().join("work")
    }

    /// `program <args>` as this user, in the project folder: HOME here, Node from the peers first on
    /// PATH, the file store (no keyring needed), and none of the variables that move the files.
    fn run(&self, program: &Path, args: &[&str]) -> Run {
        let node_dir = node().parent().map(Path::to_path_buf).unwrap_or_default();
        let path = std::env::join_paths([node_dir, "/usr/bin".into(), "/bin".into()]).unwrap();
        let mut command = Command::new(program);
        command.args(args).current_dir(self.project()).env("HOME", self.home()).env("PATH", path).env("NO_COLOR", "1");
        command.env("LATCHKEY_STORE", "file").env("DISABLE_AUTOUPDATER", "1").env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        for variable in ["LATCHKEY_HOME", "LATCHKEY_LOG", "XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_API_KEY"] {
            command.env_remove(variable);
        }
        Run::piped(command, b"")
    }

    fn connect(&self, client: &str) {
        let run = self.run(&latchkey_bin(), &["client", "connect", client, "--servers", "everything"]);
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
}

/// A client's program from `tests/peers/node_modules/.bin`.
fn client(name: &str) -> PathBuf {
    let program = peers_dir().join("node_modules/.bin").join(name);
    assert!(program.exists(), "{} is missing: run `npm ci --prefix tests/peers`", program.display());
    program
}

/// The command line `connect` writes, as the clients print it.
fn gateway_command() -> String {
    format!("{} gateway run --servers everything", latchkey_bin().canonicalize().unwrap().display())
}

#[test]
fn claude_code_starts_the_gateway_that_connect_configured() {
    let machine = Machine::new();
    machine.connect("claude-code");
    let run = machine.run(&client("claude"), &["mcp", "list"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let line = run.stdout.lines().find(|line| line.starts_with("latchkey: ")).unwrap_or_else(|| panic!("{run:#?}"));
    assert_eq!(line, format!("latchkey: {} - ✔ Connected", gateway_command()), "{run:#?}");
}

#[test]
fn gemini_cli_starts_the_gateway_that_connect_configured() {
    let machine = Machine::new();
    machine.connect("gemini");
    // Gemini CLI runs no MCP server in a folder the user has not trusted.
    let trusted = serde_json::json!({ machine.project().to_string_lossy(): "TRUST_FOLDER" });
    fs::write(machine.home().join(".gemini/trustedFolders.json"), trusted.to_string()).unwrap();
    let run = machine.run(&client("gemini"), &["mcp", "list"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // Gemini CLI prints the list on stderr.
    let line = run.stderr.lines().find(|line| line.contains("latchkey: ")).unwrap_or_else(|| panic!("{run:#?}"));
    assert_eq!(line, format!("✓ latchkey: {} (stdio) - Connected", gateway_command()), "{run:#?}");
}

#[test]
fn codex_cli_reads_the_table_that_connect_wrote() {
    let machine = Machine::new();
    fs::create_dir_all(machine.home().join(".codex")).unwrap();
    fs::write(machine.home().join(".codex/config.toml"), "# mine\nmodel = \"o3\"\n").unwrap();
    machine.connect("codex");
    let run = machine.run(&client("codex"), &["mcp", "list", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let servers = run.json();
    let latchkey = servers
        .as_array()
        .and_then(|servers| servers.iter().find(|server| server["name"] == "latchkey"))
        .unwrap_or_else(|| panic!("{run:#?}"));
    assert_eq!(latchkey["enabled"], true, "{latchkey}");
    assert_eq!(latchkey["transport"]["type"], "stdio", "{latchkey}");
    assert_eq!(latchkey["transport"]["command"], latchkey_bin().canonicalize().unwrap().to_string_lossy().as_ref(), "{latchkey}");
    assert_eq!(latchkey["transport"]["args"], serde_json::json!(["gateway", "run", "--servers", "everything"]), "{latchkey}");
}
