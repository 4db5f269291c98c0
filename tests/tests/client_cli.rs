//! `latchkey client …`, `completions` and `man` as a user runs them: the built binary, a private
//! LATCHKEY_HOME and a private HOME where the AI clients' files live, real files.

use std::fs;
use std::path::{Path, PathBuf};

use latchkey_tests::{Home, Run, latchkey_bin};

/// A user's home folder for the clients' files, beside a latchkey home.
struct User {
    latchkey: Home,
    home: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User { latchkey: Home::empty(), home: tempfile::tempdir().unwrap() }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// Write `text` to `relative` in the home folder, creating its folders.
    fn file(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.home().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// `latchkey <args>` with HOME here, and none of the variables that move the clients' files.
    fn latchkey(&self, args: &[&str]) -> Run {
        let mut command = self.latchkey.command(args);
        command.env("HOME", self.home()).env("PATH", self.home().join("bin"));
        for variable in ["XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "APPDATA"] {
            command.env_remove(variable);
        }
        Run::piped(command, b"")
    }
}

/// A golden file of the clients module: a client's file as its user wrote it.
fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/clients/golden").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn latchkey_program() -> String {
    latchkey_bin().canonicalize().unwrap().to_string_lossy().into_owned()
}

#[test]
fn connect_adds_one_entry_keeps_a_backup_is_idempotent_and_disconnect_restores_the_file() {
    let user = User::new();
    let original = golden("claude-code.before.json");
    let config = user.file(".claude.json", &original);

    let run = user.latchkey(&["client", "connect", "claude-code", "--servers", "gmail,slack"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("connected Claude Code"), "{run:#?}");
    assert!(run.stderr.contains("LATCHKEY_HOME is set here, but Claude Code starts the gateway without it"), "{run:#?}");
    let written: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(
        written["mcpServers"]["latchkey"],
        serde_json::json!({"type": "stdio", "command": latchkey_program(), "args": ["gateway", "run", "--servers", "gmail,slack"]})
    );
    assert_eq!(written["projects"]["/home/me/work"]["mcpServers"]["local-only"]["command"], "node");
    assert_eq!(fs::read_to_string(user.home().join(".claude.json.latchkey.bak")).unwrap(), original);

    let connected = fs::read_to_string(&config).unwrap();
    let again = user.latchkey(&["client", "connect", "claude-code", "--servers", "gmail,slack"]);
    assert_eq!(again.code, Some(0), "{again:#?}");
    assert!(again.stdout.contains("already runs latchkey's gateway"), "{again:#?}");
    assert_eq!(fs::read_to_string(&config).unwrap(), connected);

    let run = user.latchkey(&["client", "disconnect", "claude-code"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(fs::read_to_string(&config).unwrap(), original);
    let again = user.latchkey(&["client", "disconnect", "claude-code"]);
    assert!(again.stdout.contains("has no latchkey entry"), "{again:#?}");
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let user = User::new();
    let original = golden("zed.before.json");
    let settings = user.file(".config/zed/settings.json", &original);

    let run = user.latchkey(&["client", "connect", "zed", "--dry-run"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let shown = settings.display().to_string();
    assert!(run.stdout.starts_with(&format!("--- {shown}\n+++ {shown}\n@@ ")), "{}", run.stdout);
    assert!(run.stdout.contains("+    \"latchkey\": {\n"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("+      \"command\": \"{}\",\n", latchkey_program())), "{}", run.stdout);
    assert!(run.stdout.contains("\n       \"env\": {}, // no secrets here\n"), "the diff has context lines:\n{}", run.stdout);
    assert_eq!(fs::read_to_string(&settings).unwrap(), original);
    assert!(!user.home().join(".config/zed/settings.json.latchkey.bak").exists());
}

#[test]
fn a_malformed_file_is_refused_with_its_line_and_left_alone() {
    let user = User::new();
    let broken = "{\n  \"mcpServers\": {\n    \"a\": { \"command\": \"x\" }\n    \"b\": { \"command\": \"y\" }\n  }\n}\n";
    let config = user.file(".cursor/mcp.json", broken);

    let run = user.latchkey(&["client", "connect", "cursor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains(&format!("{}:3:28: Expected comma", config.display())), "{}", run.stderr);
    assert!(run.stderr.contains("latchkey has not changed the file"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), broken);
    assert_eq!(fs::read_dir(config.parent().unwrap()).unwrap().count(), 1, "no backup, no temporary file");

    let ls = user.latchkey(&["client", "ls"]);
    assert_eq!(ls.code, Some(0), "{ls:#?}");
    assert!(ls.stdout.lines().any(|line| line.trim_start().starts_with("cursor ") && line.contains("unreadable")), "{}", ls.stdout);
    assert!(ls.stderr.contains(&format!("{}:3:28", config.display())), "{}", ls.stderr);
}

#[test]
fn ls_shows_installed_connected_and_servers_for_the_user_and_a_project() {
    let user = User::new();
    fs::create_dir_all(user.home().join(".gemini")).unwrap();
    fs::create_dir_all(user.home().join("bin")).unwrap();
    fs::write(user.home().join("bin/codex"), "").unwrap();
    let project = user.home().join("work");
    fs::create_dir_all(&project).unwrap();

    assert_eq!(user.latchkey(&["client", "connect", "gemini"]).code, Some(0));
    let run = user.latchkey(&["client", "connect", "codex", "--servers", "slack", "--project", project.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(project.join(".codex/config.toml").is_file());

    let json = user.latchkey(&["client", "ls", "--json"]).json();
    let client =
        |json: &serde_json::Value, id: &str| json["clients"].as_array().unwrap().iter().find(|client| client["id"] == id).unwrap().clone();
    assert_eq!(json["clients"].as_array().unwrap().len(), 10);
    let gemini = client(&json, "gemini");
    assert_eq!((&gemini["installed"], &gemini["connected"], &gemini["servers"]), (&true.into(), &true.into(), &serde_json::Value::Null));
    assert_eq!(gemini["command"], serde_json::json!([latchkey_program(), "gateway", "run"]));
    let codex = client(&json, "codex");
    assert_eq!((&codex["installed"], &codex["connected"]), (&true.into(), &false.into()), "the user's file is not the project's");
    let cursor = client(&json, "cursor");
    assert_eq!((&cursor["installed"], &cursor["connected"]), (&false.into(), &false.into()));

    let json = user.latchkey(&["client", "ls", "--json", "--project", project.to_str().unwrap()]).json();
    let ids: Vec<&str> = json["clients"].as_array().unwrap().iter().map(|client| client["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&"windsurf") && !ids.contains(&"claude-desktop"), "no project files: {ids:?}");
    let codex = client(&json, "codex");
    assert_eq!((&codex["connected"], &codex["servers"]), (&true.into(), &serde_json::json!(["slack"])));

    let table = user.latchkey(&["client", "ls"]).stdout;
    let row =
        |id: &str| table.lines().find(|line| line.split_whitespace().next() == Some(id)).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(row("CLIENT"), ["CLIENT", "INSTALLED", "CONNECTED", "SERVERS", "CONFIGURATION"]);
    assert_eq!(row("gemini"), ["gemini", "yes", "yes", "all", "~/.gemini/settings.json"]);
    assert_eq!(row("windsurf"), ["windsurf", "no", "no", "-", "~/.codeium/windsurf/mcp_config.json"]);
}

#[test]
fn unknown_servers_and_clients_are_refused_before_anything_is_written() {
    let user = User::new();
    let run = user.latchkey(&["client", "connect", "cursor", "--servers", "gmail,no-such-server"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("no-such-server"), "{}", run.stderr);
    assert!(!user.home().join(".cursor").exists());

    let run = user.latchkey(&["client", "connect", "notepad"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("claude-desktop") && run.stderr.contains("opencode"), "{}", run.stderr);

    let run = user.latchkey(&["client", "connect", "windsurf", "--project"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("Windsurf has no project configuration"), "{}", run.stderr);
}

#[test]
fn continue_gets_a_block_file_of_its_own() {
    let user = User::new();
    let config = user.file(".continue/config.yaml", "# my models\nmodels: []\n");
    let run = user.latchkey(&["client", "connect", "continue", "--servers", "gmail"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let block = fs::read_to_string(user.home().join(".continue/mcpServers/latchkey.yaml")).unwrap();
    assert!(
        block.contains(&format!("command: \"{}\"\n    args: [\"gateway\", \"run\", \"--servers\", \"gmail\"]\n", latchkey_program())),
        "{block}"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "# my models\nmodels: []\n");

    assert_eq!(user.latchkey(&["client", "disconnect", "continue"]).code, Some(0));
    assert!(!user.home().join(".continue/mcpServers/latchkey.yaml").exists());
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    let user = User::new();
    // Every shell completes the subcommands; bash and zsh also complete the client names.
    for (shell, client_names) in [("bash", true), ("zsh", true), ("fish", false), ("powershell", false)] {
        let run = user.latchkey(&["completions", shell]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert!(run.stdout.contains("disconnect") && run.stdout.contains("dry-run"), "{shell}:\n{}", run.stdout);
        assert_eq!(run.stdout.contains("claude-desktop"), client_names, "{shell}:\n{}", run.stdout);
    }
    let man = user.latchkey(&["man"]);
    assert_eq!(man.code, Some(0), "{man:#?}");
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq \\(aq") || man.stdout.contains(".TH latchkey 1"), "{}", man.stdout);
    assert!(man.stdout.contains("latchkey\\-client(1)"), "{}", man.stdout);

    let dir = user.home().join("man1");
    let run = user.latchkey(&["man", "--out-dir", dir.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let page = fs::read_to_string(dir.join("latchkey-client-connect.1")).unwrap();
    assert!(page.contains("\\-\\-dry\\-run"), "{page}");
}

#[cfg(unix)]
#[test]
fn a_configuration_file_that_is_a_link_stays_a_link() {
    let user = User::new();
    let kept = user.file("dotfiles/cursor-mcp.json", "{\n  \"mcpServers\": {}\n}\n");
    fs::create_dir_all(user.home().join(".cursor")).unwrap();
    let link = user.home().join(".cursor/mcp.json");
    std::os::unix::fs::symlink(&kept, &link).unwrap();

    let run = user.latchkey(&["client", "connect", "cursor"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced by a file");
    assert!(fs::read_to_string(&kept).unwrap().contains("\"latchkey\": {"), "{}", fs::read_to_string(&kept).unwrap());
}

#[test]
fn an_entry_that_already_runs_the_gateway_is_left_as_the_user_formatted_it() {
    let user = User::new();
    let program = serde_json::to_string(&latchkey_program()).unwrap();
    let text = format!(
        "{{\n  \"mcpServers\": {{\n    \"latchkey\": {{\n      \"command\": {program},\n      \"args\": [\n        \"gateway\",\n        \"run\"\n      ],\n      \"env\": {{}}\n    }}\n  }}\n}}\n"
    );
    let config = user.file(".cursor/mcp.json", &text);
    let run = user.latchkey(&["client", "connect", "cursor"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("already runs latchkey's gateway"), "{run:#?}");
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
}
