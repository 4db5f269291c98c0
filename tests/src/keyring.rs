//! Tests that need the OS keyring: whether they run, and what the keyring holds.
//!
//! They run when a Secret Service is reachable (`tests/support/with-keyring.sh` provides one).
//! Without one they skip with a message, unless `LATCHKEY_TEST_KEYRING=1` promises a keyring
//! (`tests/run` does): then they fail, so a broken CI setup cannot pass by skipping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use latchkey::paths::Paths;
use latchkey::store::{Store, StoreKind};

fn promised() -> bool {
    std::env::var("LATCHKEY_TEST_KEYRING").is_ok_and(|value| value == "1")
}

/// Skip (after a message) or fail, for a test that needs `what`.
fn missing(what: &str) {
    if promised() {
        panic!("LATCHKEY_TEST_KEYRING=1, but {what}; run the tests through tests/run (tests/support/with-keyring.sh)");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipping: {what}; run under tests/support/with-keyring.sh, or set LATCHKEY_TEST_KEYRING=1 to make this a failure"
    );
}

/// The keyring store for the latchkey home `home`, or `None` to skip the test.
pub fn store(home: &Path) -> Option<Store> {
    match Store::open_kind(&Paths::under(home.to_path_buf()), Some(StoreKind::Keyring)) {
        Ok(store) => Some(store),
        Err(error) => {
            missing(&format!("no Secret Service is reachable ({error:#})"));
            None
        }
    }
}

/// `tests/support/with-keyring.sh`, for a test that needs a keyring session of its own (one that
/// it locks); `None`, to skip the test, when the tools the script runs are not installed.
pub fn script() -> Option<PathBuf> {
    let have = |tool: &str| Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|out| out.status.success());
    let absent: Vec<&str> =
        ["dbus-run-session", "dbus-send", "gnome-keyring-daemon", "secret-tool"].into_iter().filter(|tool| !have(tool)).collect();
    if absent.is_empty() {
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("support/with-keyring.sh"))
    } else {
        missing(&format!("{} cannot be found", absent.join(", ")));
        None
    }
}

/// The `secret-tool` attribute that marks the keyring items of the latchkey home `home`.
fn service(home: &Path) -> String {
    format!("latchkey:{}", home.display())
}

/// The value `secret-tool` finds for `key` among the keyring items of `home`.
pub fn lookup(home: &Path, key: &str) -> Option<String> {
    let output =
        Command::new("secret-tool").args(["lookup", "service", &service(home), "username", key]).output().expect("running secret-tool");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Everything `secret-tool` shows of the keyring items of `home`, values included.
pub fn search(home: &Path) -> String {
    let output = Command::new("secret-tool").args(["search", "--all", "service", &service(home)]).output().expect("running secret-tool");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
