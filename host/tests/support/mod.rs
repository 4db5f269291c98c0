//! Shared by the secret store's integration tests: running the `latchkey` binary with a private
//! home, and deciding whether the keyring tests can run.
//!
//! Keyring tests run when a Secret Service is reachable (`tests/support/with-keyring.sh` provides
//! one). Without one they skip with a message, unless `LATCHKEY_TEST_KEYRING=1` promises a
//! keyring: then they fail, so a broken CI setup cannot pass by skipping.

#![allow(dead_code)] // Each test file uses a part.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use latchkey::paths::Paths;
use latchkey::store::{Store, StoreKind};

/// How a `latchkey` run ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Everything the user saw.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `latchkey` with `LATCHKEY_HOME=home`, no store choice, no colour; `env` on top.
pub fn command(home: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.env("LATCHKEY_HOME", home).env("NO_COLOR", "1").env_remove("LATCHKEY_LOG").env_remove("LATCHKEY_STORE");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Run `command` with `stdin` piped in.
pub fn run(mut command: Command, stdin: &[u8]) -> Run {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("running latchkey");
    // A command that exits without reading its input closes the pipe: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `latchkey <args>` in `home` with `env`, `stdin` piped in.
pub fn latchkey(home: &Path, env: &[(&str, &str)], stdin: &[u8], args: &[&str]) -> Run {
    let mut command = command(home, env);
    command.args(args);
    run(command, stdin)
}

fn keyring_promised() -> bool {
    std::env::var("LATCHKEY_TEST_KEYRING").is_ok_and(|value| value == "1")
}

/// Skip (returning false) or fail, for a test that needs `what`.
fn missing(what: &str) -> bool {
    if keyring_promised() {
        panic!("LATCHKEY_TEST_KEYRING=1, but {what}; run the tests through tests/run (tests/support/with-keyring.sh)");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipping: {what}; run under tests/support/with-keyring.sh, or set LATCHKEY_TEST_KEYRING=1 to make this a failure"
    );
    false
}

/// The keyring store for `home`, or `None` (after a message) to skip the test.
pub fn keyring_store(home: &Path) -> Option<Store> {
    match Store::open_kind(&Paths::under(home.to_path_buf()), Some(StoreKind::Keyring)) {
        Ok(store) => Some(store),
        Err(error) => {
            missing(&format!("no Secret Service is reachable ({error:#})"));
            None
        }
    }
}

/// `tests/support/with-keyring.sh`, when its tools are installed.
pub fn with_keyring_script() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/with-keyring.sh");
    let have = |tool: &str| {
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|out| out.status.success())
    };
    let absent: Vec<&str> =
        ["dbus-run-session", "dbus-send", "gnome-keyring-daemon", "secret-tool"].into_iter().filter(|tool| !have(tool)).collect();
    if absent.is_empty() {
        Some(script)
    } else {
        missing(&format!("{} cannot be found", absent.join(", ")));
        None
    }
}

/// The value `secret-tool` finds for `key` in the keyring items of `home`.
pub fn secret_tool_lookup(home: &Path, key: &str) -> Option<String> {
    let service = format!("latchkey:{}", home.display());
    let output =
        Command::new("secret-tool").args(["lookup", "service", &service, "username", key]).output().expect("running secret-tool");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|window| window == needle.as_bytes()) {
            found.push(path);
        }
    }
    found
}
