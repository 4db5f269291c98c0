//! The authoring kit around a built component: `provider test` (vectors in the production
//! sandbox, with a diff and the guest's panic text), `provider install` and `provider remove`, and
//! hot reload of the drop-in folder the way the gateway runs it ([`LiveRegistry::watch`]).
//!
//! The components are the `rogue` fixture crate (tests/fixtures), built for wasm32-wasip2: without
//! features a well-behaved provider `rogue` 6.6.6 whose `configure` panics when asked to, and with
//! `claims-standard` one that calls itself `standard`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::plugins::replacements::Replacements;
use latchkey::plugins::{LiveRegistry, Origin, Provider, Registry};
use latchkey_tests::{Home, fixture};

/// The files in the drop-in folder, hidden ones included.
fn dropin_names(home: &Home) -> Vec<String> {
    let Ok(entries) = fs::read_dir(home.paths().providers_dir()) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn write_vectors(dir: &Path, vectors: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, text) in vectors {
        fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn provider_test_shows_each_difference_and_the_guests_panic_and_exits_with_3() {
    let home = Home::new();
    let wasm = home.file("rogue.wasm", &fixture("rogue", ""));
    let vectors = home.path().join("vectors");
    write_vectors(
        &vectors,
        &[
            (
                "a-right.json",
                r#"{"name": "the flow", "source": "https://rogue.example/docs", "hook": "configure",
                "expect": {"flow": {"endpoints": {"token": "https://rogue.example/token"}, "pkce": "required"}}}"#,
            ),
            (
                "b-wrong.json",
                r#"{"name": "a wrong flow", "source": "https://rogue.example/docs", "hook": "configure",
                "expect": {"flow": {"client_auth": "post", "scope_separator": " "}}}"#,
            ),
            (
                "c-panics.json",
                r#"{"name": "configure panics", "source": "https://rogue.example/docs", "hook": "configure",
                "config": {"misbehave": "panic"}, "expect": {"flow": {}}}"#,
            ),
        ],
    );
    let (wasm_text, vectors_text) = (wasm.to_str().unwrap(), vectors.to_str().unwrap());

    let run = home.latchkey(&["provider", "test", wasm_text, "--vectors", vectors_text]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    let out = &run.stdout;
    for line in [
        format!("ok {}: the flow", vectors.join("a-right.json").display()),
        format!("FAIL {}: a wrong flow", vectors.join("b-wrong.json").display()),
        "  flow.client_auth: expected \"post\", got \"basic\"".to_string(),
        format!("FAIL {}: configure panics", vectors.join("c-panics.json").display()),
        "1 of 3 vectors passed for provider `rogue` 6.6.6 (".to_string() + wasm_text + ")",
    ] {
        assert!(out.lines().any(|printed| printed == line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("scope_separator"), "a field that matched was reported:\n{out}");
    let panic_line = out.lines().find(|line| line.starts_with("  hook failed: ")).unwrap_or_else(|| panic!("no hook failure:\n{out}"));
    assert!(panic_line.contains("`configure` panicked: the rogue provider's `configure` panics on purpose"), "{panic_line}");

    let json = home.latchkey(&["provider", "test", "--json", wasm_text, "--vectors", vectors_text]);
    assert_eq!(json.code, Some(3), "{json:#?}");
    let report = json.json();
    assert_eq!(
        (report["ok"].as_bool(), report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(false), Some(1), Some(2)),
        "{report:#}"
    );
    assert_eq!(report["vectors"][1]["mismatches"][0]["path"], "flow.client_auth", "{report:#}");

    // Only the passing vector: exit 0.
    fs::remove_file(vectors.join("b-wrong.json")).unwrap();
    fs::remove_file(vectors.join("c-panics.json")).unwrap();
    let run = home.latchkey(&["provider", "test", wasm_text, "--vectors", vectors_text]);
    assert_eq!(run.code, Some(0), "{run:#?}");

    // A component that does not load is refused like `verify` refuses it.
    let broken = home.file("broken.wasm", b"not a component");
    let run = home.latchkey(&["provider", "test", broken.to_str().unwrap(), "--vectors", vectors_text]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stderr.starts_with(&format!("invalid: {}: not a WebAssembly file", broken.display())), "{run:#?}");
}

#[test]
fn install_checks_then_copies_and_remove_takes_only_drop_ins() {
    let home = Home::new();
    let garbage = home.file("garbage.wasm", b"\0asm but not really");
    let run = home.latchkey(&["provider", "install", garbage.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(dropin_names(&home).is_empty(), "a refused component was copied: {:?}", dropin_names(&home));

    let rogue = home.file("build-output.wasm", &fixture("rogue", ""));
    let run = home.latchkey(&["provider", "install", rogue.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let installed = home.paths().providers_dir().join("rogue.wasm");
    assert!(run.stdout.contains(&format!("Installed `rogue` 6.6.6 as {}.", installed.display())), "{}", run.stdout);
    assert_eq!(dropin_names(&home), ["rogue.wasm"], "the file is named by its id, and no temporary file is left");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&rogue).unwrap());

    // A drop-in replaces a built-in only when asked to; removing it brings the built-in back.
    let standard = home.file("standard-build.wasm", &fixture("rogue", "claims-standard"));
    let run = home.latchkey(&["provider", "install", standard.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains(&format!("`latchkey provider install --replace {}`", standard.display())), "{run:#?}");
    assert_eq!(dropin_names(&home), ["rogue.wasm"], "nothing was installed");
    let run = home.latchkey(&["provider", "install", "--replace", standard.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("it replaces the built-in `standard` 0.1.0"), "{}", run.stdout);
    assert_eq!(home.load().1.get("standard").unwrap().info().version, "6.6.6");
    let run = home.latchkey(&["provider", "remove", "standard"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("The built-in `standard` 0.1.0 is used again."), "{}", run.stdout);
    assert!(matches!(home.load().1.get("standard").unwrap().origin(), Origin::BuiltIn(_)));

    // A built-in itself cannot be removed.
    let run = home.latchkey(&["provider", "remove", "standard"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("`standard` is built into latchkey and cannot be removed"), "{run:#?}");

    let run = home.latchkey(&["provider", "remove", "rogue"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(dropin_names(&home).is_empty(), "{:?}", dropin_names(&home));
    let run = home.latchkey(&["provider", "remove", "rogue"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("unknown provider `rogue`"), "{run:#?}");
}

/// Poll `registry` until `done` holds; a watcher reacts within a second, so a minute is generous
/// even for a debug build on a busy machine.
fn wait_for(live: &LiveRegistry, what: &str, done: impl Fn(&Registry) -> bool) {
    let start = Instant::now();
    while !done(&live.current()) {
        assert!(start.elapsed() < Duration::from_secs(60), "the watcher did not reload: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn origin_of(registry: &Registry, id: &str) -> Option<Origin> {
    registry.get(id).ok().map(|provider| provider.origin().clone())
}

#[test]
fn a_watched_folder_reloads_new_changed_and_removed_files_but_never_a_broken_one() {
    let home = Home::new();
    let (runtime, registry) = home.load();
    let live = Arc::new(LiveRegistry::new(runtime, registry, home.paths().providers_dir()));
    let _watcher = live.watch().expect("watching the providers folder");
    let file: PathBuf = home.paths().providers_dir().join("extra.wasm");
    let dropped = Some(Origin::File(file.clone()));

    // New: written in place (not atomically), which the debounce absorbs.
    home.drop_in("extra.wasm", &fixture("rogue", ""));
    wait_for(&live, "a new file", |registry| origin_of(registry, "rogue") == dropped);

    // Changed: the same file now holds a provider that replaces the built-in `standard`, as
    // `provider install --replace` allowed.
    let replacement = fixture("rogue", "claims-standard");
    let sha256 = Provider::load(&home.load().0, Origin::File(file.clone()), &replacement).unwrap().sha256().to_string();
    Replacements::allow(&home.paths().providers_dir(), "standard", &sha256).unwrap();
    home.drop_in("extra.wasm", &replacement);
    wait_for(&live, "a changed file", |registry| origin_of(registry, "standard") == dropped && registry.get("rogue").is_err());
    let working = live.current().get("standard").unwrap().sha256().to_string();

    // Broken: the failure is recorded, and the working provider stays.
    home.drop_in("extra.wasm", b"half a component");
    wait_for(&live, "a broken file", |registry| !registry.failures().is_empty());
    let registry = live.current();
    let kept = registry.get("standard").unwrap();
    assert_eq!((kept.origin(), kept.sha256()), (&Origin::File(file.clone()), working.as_str()));
    assert!(
        registry.failures()[0].to_string().starts_with(&format!("{}: not a WebAssembly file", file.display())),
        "{:?}",
        registry.failures()
    );
    assert!(registry.notices().iter().any(|notice| notice.contains("keeping provider `standard` 6.6.6")), "{:?}", registry.notices());

    // Hidden files (a copy in progress) are not providers.
    fs::write(home.paths().providers_dir().join(".extra.wasm"), fixture("rogue", "")).unwrap();

    // Removed: the built-in `standard` is back.
    fs::remove_file(&file).unwrap();
    wait_for(&live, "a removed file", |registry| matches!(origin_of(registry, "standard"), Some(Origin::BuiltIn(_))));
    let registry = live.current();
    assert!(registry.failures().is_empty() && registry.get("rogue").is_err(), "{:?}", registry.failures());
}
