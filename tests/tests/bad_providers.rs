//! Bad provider components, as a user meets them: given to `latchkey provider verify`, or dropped
//! into `<LATCHKEY_HOME>/providers/`. Each must be refused with a message that names the file and
//! the cause, and the host must keep serving every other provider.
//!
//! The components are real: non-wasm bytes, modules and components from WebAssembly text, and the
//! crates in `tests/fixtures/` built for wasm32-wasip2 (the `rogue` provider misbehaves in one way
//! per cargo feature). The `latchkey` binary must have been built (`cargo build -p latchkey`).

use latchkey::plugins::{
    CallError, HttpResponse, Limits, Origin, PluginError, Problem, Provider, Registry, RequestKind, Runtime, TokenContext,
};
use latchkey_tests::{Home, fixture};

/// `wasi:cli/run`, as exported by a command component (a Rust `main` built for wasm32-wasip2): a
/// component, but of another world.
const COMMAND_COMPONENT: &str = r#"
(component
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.6" (instance $run-instance))
)
"#;

/// Refuses `bytes` as `name` in every place a component can be given, and checks that the message
/// names the file and contains every piece of `cause`, and that the registry records a problem for
/// which `expected` holds. Returns the message `verify` printed.
fn assert_refused(name: &str, bytes: &[u8], cause: &[&str], expected: impl Fn(&Problem) -> bool) -> String {
    let home = Home::new();
    let has_cause = |text: &str| cause.iter().all(|piece| text.contains(piece));

    // `provider verify <file>`: exit code 3, one line on stderr naming the file and the cause.
    let file = home.file(name, bytes);
    let file_text = file.to_str().unwrap();
    let run = home.latchkey(&["provider", "verify", file_text]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    let message = run.stderr.trim_end().to_string();
    assert_eq!(message.lines().count(), 1, "{run:#?}");
    assert!(message.starts_with(&format!("invalid: {file_text}: ")), "{message}");
    assert!(has_cause(&message), "`{message}` does not contain all of {cause:?}");

    // `provider verify --json <file>`.
    let run = home.latchkey(&["provider", "verify", "--json", file_text]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    let json = run.json();
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["file"], file_text, "{json}");
    let error = json["error"].as_str().unwrap_or_else(|| panic!("no error text in {json}"));
    assert!(has_cause(error), "`{error}` does not contain all of {cause:?}");

    // The same file as a drop-in. The registry records the failure with its file and cause, and
    // every other provider still loads and serves.
    let dropped = home.drop_in(name, bytes);
    let dropped_text = dropped.to_str().unwrap();
    let (runtime, registry) = home.load();
    let failures = registry.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    assert_eq!(failure.origin, Origin::File(dropped.clone()));
    assert!(expected(&failure.problem), "unexpected problem: {:?}", failure.problem);
    let ids = |registry: &Registry| registry.providers().map(|provider| provider.id().to_string()).collect::<Vec<_>>();
    let others = ids(&Registry::load(&runtime, None));
    assert_eq!(ids(&registry), others);
    assert_standard_works(registry.get("standard").expect("the built-in standard provider"));

    // `provider ls` lists every other provider and warns once, naming the file and the cause.
    let run = home.latchkey(&["provider", "ls"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    for id in &others {
        assert!(run.stdout.lines().any(|line| line.split_whitespace().next() == Some(id)), "`{id}` is not listed:\n{}", run.stdout);
    }
    let warnings: Vec<&str> = run.stderr.lines().filter(|line| line.contains(dropped_text)).collect();
    assert_eq!(warnings.len(), 1, "expected one warning about {dropped_text}:\n{}", run.stderr);
    assert!(warnings[0].starts_with(&format!("warning: not loaded: {dropped_text}: ")), "{}", warnings[0]);
    assert!(has_cause(warnings[0]), "`{}` does not contain all of {cause:?}", warnings[0]);

    println!("{name}: {message}");
    message
}

/// Calls hooks of the built-in `standard` provider and checks what they return.
fn assert_standard_works(standard: &Provider) {
    assert!(matches!(standard.origin(), Origin::BuiltIn(_)), "{:?}", standard.origin());
    let config = standard.resolve_config(&[]).unwrap();
    standard.configure(&config).expect("the standard flow");
    let params = standard.authorize_params(&["openid".into(), "email".into()], &config).unwrap();
    assert_eq!(params, vec![("scope".to_string(), "openid email".to_string())]);
    let context = TokenContext { kind: RequestKind::AuthorizationCode, requested_scopes: vec!["openid".into()], callback: vec![], config };
    let response = HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"access_token":"at-1","token_type":"bearer","expires_in":3600}"#.to_vec(),
    };
    let tokens = standard.read_token_response(&context, &response).unwrap().expect("a token set");
    assert_eq!((tokens.access_token.as_str(), tokens.expires_in), ("at-1", Some(3600)));
}

#[test]
fn a_file_that_is_not_wasm() {
    assert_refused("script.wasm", b"#!/bin/sh\necho hello\n", &["not a WebAssembly file", "23 21 2f 62", "wasm32-wasip2"], |problem| {
        matches!(problem, Problem::NotWasm(_))
    });
}

#[test]
fn a_core_module() {
    let module = wat::parse_str("(module (func (export \"info\")))").unwrap();
    assert_refused("module.wasm", &module, &["a core WebAssembly module, not a component", "wasm32-wasip2"], |problem| {
        matches!(problem, Problem::CoreModule)
    });
}

#[test]
fn a_component_of_another_world() {
    let component = wat::parse_str(COMMAND_COMPONENT).unwrap();
    assert_refused(
        "command.wasm",
        &component,
        &["another world", "does not export `latchkey:provider/provider@0.1.0`", "`wasi:cli/run@0.2.6`"],
        |problem| matches!(problem, Problem::WrongWorld { found, .. } if found.contains("wasi:cli/run@0.2.6")),
    );
}

#[test]
fn a_component_for_an_unsupported_contract_version() {
    assert_refused(
        "future.wasm",
        &fixture("contract-0-2", ""),
        &["built for contract latchkey:provider@0.2.0", "this latchkey supports latchkey:provider@0.1.0"],
        |problem| {
            matches!(problem, Problem::UnsupportedContract { found, supported }
                if found == "latchkey:provider@0.2.0" && supported == "latchkey:provider@0.1.0")
        },
    );
}

#[test]
fn a_component_that_imports_files_and_clocks() {
    assert_refused(
        "nosy.wasm",
        &fixture("rogue", "info-uses-files-and-clock"),
        &["imports", "`wasi:filesystem/", "`wasi:clocks/wall-clock@", "which providers may not use", "std::fs"],
        |problem| {
            matches!(problem, Problem::ForbiddenImports { forbidden, .. }
                if forbidden.iter().all(|name| !name.starts_with("`wasi:cli/") && !name.starts_with("`wasi:io/")))
        },
    );
}

#[test]
fn info_that_loops_forever() {
    let fuel = Limits::default().fuel.to_string();
    assert_refused("loops.wasm", &fixture("rogue", "info-loops"), &["`info` ran out of fuel", &fuel, "loops forever"], |problem| {
        matches!(problem, Problem::OutOfFuel { hook: "info", .. })
    });
}

#[test]
fn info_that_allocates_without_bound() {
    let limit = format!("{} MiB limit", Limits::default().memory_bytes >> 20);
    assert_refused("greedy.wasm", &fixture("rogue", "info-allocates"), &["`info` tried to grow its memory", &limit], |problem| {
        matches!(problem, Problem::OutOfMemory { hook: "info", .. })
    });
}

#[test]
fn info_that_panics() {
    assert_refused(
        "panics.wasm",
        &fixture("rogue", "info-panics"),
        &["`info` panicked: the rogue provider's `info` panics on purpose (at src/lib.rs:"],
        |problem| matches!(problem, Problem::Panicked { hook: "info", message } if message.contains("panics on purpose")),
    );
}

#[test]
fn info_that_returns_oversized_output() {
    let limit = format!("more than the {} bytes allowed", Limits::default().output_bytes);
    assert_refused(
        "big.wasm",
        &fixture("rogue", "info-oversized"),
        &["`info` returned", "bytes of output", &limit],
        |problem| matches!(problem, Problem::OversizedOutput { hook: "info", size, .. } if *size > 1 << 20),
    );
}

#[test]
fn built_ins_load_when_first_used() {
    let home = Home::new();
    let (_runtime, registry) = home.load();
    assert_eq!(registry.loaded().count(), 0, "a fresh registry loaded built-ins nobody asked for");
    assert!(registry.contains("google") && !registry.contains("acme"));
    assert_eq!(registry.get("google").unwrap().id(), "google");
    let loaded: Vec<&str> = registry.loaded().map(|provider| provider.id()).collect();
    assert_eq!(loaded, ["google"]);
    // Matching an issuer asks the providers in turn, so every built-in has been loaded by a miss.
    assert!(registry.match_issuer("https://id.example.com").is_none());
    assert_eq!(registry.loaded().count(), registry.providers().count());
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
}

#[test]
fn a_drop_in_with_a_built_in_id_overrides_it() {
    let home = Home::new();
    let dropped = home.drop_in("my-standard.wasm", &fixture("rogue", "claims-standard"));
    let (_runtime, registry) = home.load();
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    let standard = registry.get("standard").unwrap();
    assert_eq!(standard.origin(), &Origin::File(dropped.clone()));
    assert_eq!(standard.info().version, "6.6.6");
    let expected = format!("{} (provider `standard` 6.6.6) overrides the built-in `standard` 0.1.0", dropped.display());
    assert_eq!(registry.notices(), [expected.clone()]);

    let run = home.latchkey(&["provider", "ls"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let row = run.stdout.lines().find(|line| line.split_whitespace().next() == Some("standard")).expect("a standard row");
    assert!(row.trim_end().ends_with(dropped.to_str().unwrap()), "{row}");
    assert_eq!(run.stderr.trim_end(), format!("note: {expected}"));
    println!("override: {expected}");
}

#[test]
fn a_second_drop_in_with_the_same_id_is_refused() {
    let home = Home::new();
    let rogue = fixture("rogue", "");
    let first = home.drop_in("a-rogue.wasm", &rogue);
    let second = home.drop_in("b-rogue.wasm", &rogue);
    let (_runtime, registry) = home.load();
    assert_eq!(registry.get("rogue").unwrap().origin(), &Origin::File(first.clone()));
    let failures = registry.failures();
    let [failure] = failures.as_slice() else { panic!("expected one failure: {failures:?}") };
    assert_eq!(failure.origin, Origin::File(second.clone()));
    assert!(
        matches!(&failure.problem, Problem::DuplicateId { id, first: taken } if id == "rogue" && *taken == Origin::File(first.clone())),
        "{:?}",
        failure.problem
    );

    let run = home.latchkey(&["provider", "ls"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let warning = run.stderr.trim_end();
    assert!(
        warning.starts_with(&format!("warning: not loaded: {}: its id `rogue` is already taken by {}", second.display(), first.display())),
        "{warning}"
    );
    assert_eq!(warning.lines().count(), 1, "{warning}");
    println!("duplicate: {warning}");
}

#[cfg(unix)]
#[test]
fn compiled_code_is_cached_unless_others_could_have_written_it() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let rogue = fixture("rogue", "");
    let origin = Origin::File(dir.path().join("rogue.wasm"));
    let load = || {
        let runtime = Runtime::new(Some(dir.path().to_path_buf()), Limits::default()).unwrap();
        let provider = Provider::load(&runtime, origin.clone(), &rogue).unwrap();
        assert_eq!(provider.id(), "rogue");
        provider.configure(&provider.resolve_config(&[]).unwrap()).expect("a working provider");
        provider.compiled_from_cache()
    };
    let cached_file = || {
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    };

    assert!(!load(), "a cold cache compiles");
    assert!(load(), "the second runtime takes the compiled code from the cache");
    for mode in [0o620, 0o602] {
        std::fs::set_permissions(cached_file(), std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(!load(), "a cache file with mode {mode:o} is compiled again");
        // The new compilation replaced it with a private file, which is trusted again.
        assert_eq!(std::fs::metadata(cached_file()).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(load());
    }
}

#[test]
fn a_failing_hook_does_not_poison_the_next_call() {
    let home = Home::new();
    let file = home.file("rogue.wasm", &fixture("rogue", ""));
    let run = home.latchkey(&["provider", "verify", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "the well-behaved build verifies: {run:#?}");

    home.drop_in("rogue.wasm", &fixture("rogue", ""));
    let (_runtime, registry) = home.load();
    let rogue = registry.get("rogue").unwrap();
    let configure = |how: Option<&str>| {
        let entries: Vec<(String, String)> = how.map(|how| ("misbehave".to_string(), how.to_string())).into_iter().collect();
        rogue.configure(&rogue.resolve_config(&entries).unwrap())
    };
    let failures: [(&str, fn(&Problem) -> bool); 3] = [
        ("loop", |problem| matches!(problem, Problem::OutOfFuel { hook: "configure", .. })),
        (
            "panic",
            |problem| matches!(problem, Problem::Panicked { hook: "configure", message } if message.contains("`configure` panics on purpose")),
        ),
        ("allocate", |problem| matches!(problem, Problem::OutOfMemory { hook: "configure", .. })),
    ];
    for (how, expected) in failures {
        match configure(Some(how)) {
            Err(CallError::Plugin(PluginError { origin, problem })) => {
                assert_eq!(origin, *rogue.origin());
                assert!(expected(&problem), "misbehave={how}: {problem:?}");
                println!("configure misbehave={how}: {origin}: {problem}");
            }
            other => panic!("misbehave={how} should fail, got {other:?}"),
        }
        let flow = configure(None).unwrap_or_else(|error| panic!("the call after misbehave={how} failed: {error}"));
        assert_eq!(flow.endpoints.token, "https://rogue.example/token");
    }
    assert_standard_works(registry.get("standard").unwrap());
}
