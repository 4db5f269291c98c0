//! Shared support for the integration tests in `tests/tests/`: real artefacts and a real `latchkey`.
//!
//! - [`fixture`] builds a crate under `tests/fixtures/` for `wasm32-wasip2` (with one feature set)
//!   and returns the component. Fixtures build into `<target>/latchkey-fixtures`, a target folder
//!   of their own: the `cargo test` that runs these tests holds the lock of the main one.
//! - [`Home`] is a private `LATCHKEY_HOME` for one test, and runs the `latchkey` binary in it.
//! - [`keyring`] decides whether a test that needs the OS keyring runs, skips or fails, and reads
//!   the keyring with `secret-tool`.
//! - [`recorder`] is an HTTP endpoint that records what arrives (or must receive nothing), and
//!   [`peers`] starts the Node peers of `tests/peers`.
//!
//! Compiling a component takes seconds in a debug build, so every [`Home`] starts with a copy of
//! a compiled-code cache that already holds the built-ins and the fixtures (filled once, then kept
//! in the fixtures folder between runs). Only the cache's own tests start cold.

pub mod hostile;
pub mod keyring;
pub mod peers;
pub mod recorder;
pub mod stored;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use latchkey::paths::{self, Paths};
use latchkey::plugins::{Limits, Origin, Registry, Runtime};

const TARGET: &str = "wasm32-wasip2";

/// The folder of the test executable's profile (`<target>/debug`): the test runs from `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    exe.parent().and_then(Path::parent).expect("the test executable lives in <target>/<profile>/deps").to_path_buf()
}

/// The fixtures' own target folder (`<target>/latchkey-fixtures`), with the artefacts and the
/// shared compiled-code cache.
fn fixtures_dir() -> PathBuf {
    profile_dir().parent().expect("the profile folder is inside the target folder").join("latchkey-fixtures")
}

/// The `latchkey` binary of this build (`<target>/debug/latchkey`).
pub fn latchkey_bin() -> PathBuf {
    let bin = profile_dir().join(format!("latchkey{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: these tests run the latchkey binary; build it first with `cargo build -p latchkey` \
         (tests/run does; `cargo test` alone does not build another package's binary)",
        bin.display()
    );
    bin
}

/// The component built from `tests/fixtures/<name>` (package `latchkey-fixture-<name>`) with
/// `features` (comma-separated, may be empty). Built at most once per test process.
pub fn fixture(name: &str, features: &str) -> Vec<u8> {
    // One build at a time: every feature set of a crate writes the same output file, which is copied
    // away before the next build starts. The file lock does the same for other test processes.
    static BUILT: Mutex<BTreeMap<(String, String), PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (name.to_string(), features.to_string());
    let artefact = match built.get(&key) {
        Some(path) => path.clone(),
        None => {
            let path = build_fixture(name, features);
            warm_cache(&path);
            built.insert(key, path.clone());
            path
        }
    };
    fs::read(&artefact).unwrap_or_else(|e| panic!("reading {}: {e}", artefact.display()))
}

/// The cargo that runs these tests, for building a guest component: without the host's flags and
/// wrappers (coverage, sanitizers), which are not meant for the guests, and without its target.
pub fn guest_cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    command
}

fn build_fixture(name: &str, features: &str) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let manifest = crate_dir.join("Cargo.toml");
    assert!(manifest.is_file(), "no fixture crate at {}", crate_dir.display());
    let target_dir = fixtures_dir();
    fs::create_dir_all(&target_dir).unwrap();
    let lock = fs::File::create(target_dir.join(".build-lock")).unwrap();
    lock.lock().expect("locking the fixtures folder");

    let mut command = guest_cargo();
    command
        .args(["build", "--quiet", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--features", features]);
    let output = command.output().expect("running cargo to build a fixture component");
    assert!(
        output.status.success(),
        "building fixture {name} (features `{features}`) failed; is the {TARGET} target installed \
         (`rustup target add {TARGET}`)?\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = target_dir.join(TARGET).join("release").join(format!("latchkey_fixture_{}.wasm", name.replace('-', "_")));
    let label = if features.is_empty() { name.to_string() } else { format!("{name}+{}", features.replace(',', "+")) };
    let artefact = target_dir.join("artefacts").join(format!("{label}.wasm"));
    fs::create_dir_all(artefact.parent().unwrap()).unwrap();
    fs::copy(&output, &artefact).unwrap_or_else(|e| panic!("copying {}: {e}", output.display()));
    artefact
}

/// The compiled-code cache that every [`Home`] starts from: the built-ins, compiled once.
fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = fixtures_dir().join("compiled");
        let runtime = Runtime::new(Some(dir.clone()), Limits::default()).expect("a runtime with the shared cache");
        // Built-ins load when first used: ask for every one.
        let registry = Registry::load(&runtime, None);
        assert!(
            registry.providers().count() > 0 && registry.failures().is_empty(),
            "built-in providers failed to load: {:?}",
            registry.failures()
        );
        dir
    })
}

/// Compile `component` into the shared cache. Loading it may fail (that is what most fixtures are
/// for), but the runtime caches the compiled code before it checks the component's contract.
fn warm_cache(component: &Path) {
    let runtime = Runtime::new(Some(shared_cache().to_path_buf()), Limits::default()).unwrap();
    let _ = runtime.prepare(&Origin::File(component.to_path_buf()), &fs::read(component).unwrap());
}

/// A private `LATCHKEY_HOME` for one test, removed when dropped.
pub struct Home {
    dir: tempfile::TempDir,
}

/// How a `latchkey` run ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: std::process::Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Run `command` with `stdin` piped in and its output captured.
    pub fn piped(mut command: Command, stdin: &[u8]) -> Run {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("running latchkey");
        // A command that exits without reading its input closes the pipe: not an error here.
        let _ = child.stdin.take().expect("a piped stdin").write_all(stdin);
        Run::of(child.wait_with_output().expect("waiting for latchkey"))
    }

    /// Stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Everything the user saw.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

impl Home {
    /// An empty home whose compiled-code cache holds copies of the shared cache's files.
    pub fn new() -> Home {
        let home = Home::empty();
        let compiled = home.paths().compiled_dir();
        paths::create_private_dir(&compiled).unwrap();
        for entry in fs::read_dir(shared_cache()).unwrap() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|ext| ext == "cwasm") {
                // `fs::copy` keeps the mode (0600), so the cache trusts the copy.
                fs::copy(entry.path(), compiled.join(entry.file_name())).unwrap();
            }
        }
        home
    }

    /// A home with nothing in it, not even the compiled-code cache: for tests of commands that
    /// load no provider (secrets, catalogs), which need not pay for copying the cache.
    pub fn empty() -> Home {
        Home { dir: tempfile::tempdir().expect("a temporary LATCHKEY_HOME") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn paths(&self) -> Paths {
        Paths::under(self.path().to_path_buf())
    }

    /// Write `bytes` to `name` in the home folder (not the drop-in folder).
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Put `bytes` into the drop-in folder as `name`.
    pub fn drop_in(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.paths().providers_dir();
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// The runtime and registry the host would use in this home.
    pub fn load(&self) -> (Arc<Runtime>, Registry) {
        latchkey::plugins::load(&self.paths()).expect("loading the providers")
    }

    /// Give `command` the environment of every latchkey run in this home: this home, no colour,
    /// and neither extra logging nor a store choice taken over from the shell that runs the tests.
    /// For a command that runs latchkey itself, such as a shell script.
    pub fn environment<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env(paths::HOME_VAR, self.path()).env("NO_COLOR", "1").env_remove("LATCHKEY_LOG").env_remove(latchkey::store::STORE_VAR)
    }

    /// `latchkey <args>` in this home's [environment](Home::environment), for a test that needs
    /// more of it; [`Run::of`] or [`Run::piped`] reads its output.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(latchkey_bin());
        self.environment(command.args(args));
        command
    }

    /// Run `latchkey <args>` in this home, with nothing on standard input.
    pub fn latchkey(&self, args: &[&str]) -> Run {
        self.run(args, &[], b"")
    }

    /// Run `latchkey <args>` in this home with `env` on top and `stdin` piped in.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        Run::piped(command, stdin)
    }
}

/// Every file under `dir` whose bytes contain `needle`: where a secret must not have landed.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if fs::read(&path).unwrap().windows(needle.len()).any(|window| window == needle.as_bytes()) {
            found.push(path);
        }
    }
    found
}
