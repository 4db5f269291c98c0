//! Bad provider components, as a user meets them: given to `latchkey provider verify`, or dropped
//! into `<LATCHKEY_HOME>/providers/`. Each must be refused with a message that names the file and
//! the cause, and the host must keep serving every other provider.
//!
//! The components are real: non-wasm bytes, modules and components from WebAssembly text, and the
//! crates in `tests/fixtures/` built for wasm32-wasip2 (the `rogue` provider misbehaves in one way
//! per cargo feature). The `latchkey` binary must have been built (`cargo build -p latchkey`).
//!
//! Hostile providers are run against a listener that must receive nothing (a
//! [`Recorder::trap`]): a `prepare-request` that re-targets the host's requests, a provider that
//! claims every issuer, and a hand-dropped file with a built-in's id.

use std::path::Path;

use latchkey::plugins::replacements::Replacements;
use latchkey::plugins::{
    CallError, HttpResponse, Limits, Origin, PluginError, Problem, Provider, Registry, RequestKind, Runtime, TokenContext,
};
use latchkey::store::ExposeSecret;
use latchkey_tests::recorder::{Recorder, Response};
use latchkey_tests::stored::{self, Server};
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
        &["another world", "does not export `latchkey:provider/provider@0.3.0`", "`wasi:cli/run@0.2.6`"],
        |problem| matches!(problem, Problem::WrongWorld { found, .. } if found.contains("wasi:cli/run@0.2.6")),
    );
}

#[test]
fn a_component_for_an_unsupported_contract_version() {
    assert_refused(
        "future.wasm",
        &fixture("contract-1-0", ""),
        &["built for contract latchkey:provider@1.0.0", "this latchkey supports latchkey:provider@0.1.0, @0.2.0 and @0.3.0"],
        |problem| {
            matches!(problem, Problem::UnsupportedContract { found, supported }
                if found == "latchkey:provider@1.0.0" && supported == "latchkey:provider@0.1.0, @0.2.0 and @0.3.0")
        },
    );
}

/// `file` verifies as a component of `contract` and passes every vector in `vectors` (`count`).
fn verifies_and_passes(home: &Home, file: &str, contract: &str, vectors: &Path, count: u64) {
    let verified = home.latchkey(&["provider", "verify", "--json", file]).json();
    assert_eq!((verified["ok"].as_bool(), verified["contract"].as_str()), (Some(true), Some(contract)), "{verified}");
    let tested = home.latchkey(&["provider", "test", file, "--vectors", vectors.to_str().unwrap(), "--json"]);
    assert_eq!(tested.code, Some(0), "{tested:#?}");
    let tested = tested.json();
    assert_eq!((tested["passed"].as_u64(), tested["failed"].as_u64()), (Some(count), Some(0)), "{tested:#}");
}

#[test]
fn a_component_built_for_contract_0_1_keeps_loading_and_passing_its_vectors() {
    let home = Home::new();
    let file = home.file("classic.wasm", &fixture("contract-0-1", ""));
    let file = file.to_str().unwrap();
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/contract-0-1/vectors");
    verifies_and_passes(&home, file, "latchkey:provider@0.1.0", &vectors, 7);

    // Installed, it is listed and inspected with its contract, beside the built-ins of 0.3.
    let installed = home.latchkey(&["provider", "install", file]);
    assert_eq!(installed.code, Some(0), "{installed:#?}");
    let listed = home.latchkey(&["provider", "ls", "--json"]).json();
    let contract_of = |id: &str| {
        listed["providers"].as_array().unwrap().iter().find(|provider| provider["id"] == id).map(|provider| provider["contract"].clone())
    };
    assert_eq!(contract_of("classic"), Some(serde_json::json!("0.1.0")), "{listed:#}");
    assert_eq!(contract_of("google"), Some(serde_json::json!("0.3.0")), "{listed:#}");
    let table = home.latchkey(&["provider", "ls"]).stdout;
    assert!(table.contains("CONTRACT") && table.lines().any(|line| line.contains("classic") && line.contains("0.1.0")), "{table}");
    let inspected = home.latchkey(&["provider", "inspect", "classic"]).stdout;
    assert!(inspected.lines().any(|line| line.contains("contract") && line.contains("latchkey:provider@0.1.0")), "{inspected}");
    assert!(inspected.lines().any(|line| line.contains("device authorization") && line.contains('-')), "{inspected}");
}

#[test]
fn a_component_built_for_contract_0_2_keeps_loading_and_passing_its_vectors() {
    let home = Home::new();
    let file = home.file("classic.wasm", &fixture("contract-0-1", "contract-0-2"));

    // The vectors that do not depend on what 0.1 cannot name: the same answers through 0.2's
    // bindings, and a 0.2 component has no calls after the token.
    let vectors = home.path().join("vectors-0-2");
    std::fs::create_dir_all(&vectors).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/contract-0-1/vectors");
    let shared =
        ["authorize-comma-scopes-and-consent", "merge-keeps-the-refresh-token", "prepare-code-exchange-reshaped", "refresh-invalid-grant"];
    for name in shared {
        std::fs::copy(source.join(format!("{name}.json")), vectors.join(format!("{name}.json"))).unwrap();
    }
    let nothing_after_the_token = serde_json::json!({
        "name": "a 0.2 component plans no calls after the token",
        "source": "wit/since_v0.3.0/provider.wit (post-token is new in 0.3.0)",
        "hook": "post-token-plan",
        "tokens": {"access_token": "at-1"},
        "expect": {"requests": []},
    });
    std::fs::write(vectors.join("post-token-plans-nothing.json"), nothing_after_the_token.to_string()).unwrap();
    verifies_and_passes(&home, file.to_str().unwrap(), "latchkey:provider@0.2.0", &vectors, 5);
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
    // Matching an issuer asks every provider for its issuers, but keeps loaded only the one that
    // declares it: a miss loads nothing more, a match just the provider matched.
    assert!(registry.match_issuer("https://id.example.com").is_none());
    let loaded: Vec<&str> = registry.loaded().map(|provider| provider.id()).collect();
    assert_eq!(loaded, ["google"], "a miss kept providers loaded");
    assert_eq!(registry.match_issuer("https://auth.atlassian.com/").unwrap().id(), "atlassian");
    let loaded: Vec<&str> = registry.loaded().map(|provider| provider.id()).collect();
    assert_eq!(loaded, ["atlassian", "google"]);
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    assert_eq!(registry.providers().count(), registry.loaded().count(), "every built-in loads");
}

#[test]
fn a_drop_in_with_a_built_in_id_replaces_it_only_when_allowed() {
    let home = Home::new();
    let dropped = home.drop_in("my-standard.wasm", &fixture("rogue", "claims-standard"));
    let (_runtime, registry) = home.load();
    assert!(matches!(registry.get("standard").unwrap().origin(), Origin::BuiltIn(_)), "the hand-dropped file replaced the built-in");
    let failures = registry.failures();
    let [failure] = failures.as_slice() else { panic!("expected one failure: {failures:?}") };
    assert!(matches!(&failure.problem, Problem::ReplacesBuiltIn { id, .. } if id == "standard"), "{:?}", failure.problem);

    // The hash that `provider install --replace` records allows exactly this file.
    let sha256 =
        Provider::load(&home.load().0, Origin::File(dropped.clone()), &std::fs::read(&dropped).unwrap()).unwrap().sha256().to_string();
    Replacements::allow(&home.paths().providers_dir(), "standard", &sha256).unwrap();
    let (_runtime, registry) = home.load();
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    let standard = registry.get("standard").unwrap();
    assert_eq!(standard.origin(), &Origin::File(dropped.clone()));
    assert_eq!(standard.info().version, "6.6.6");
    let expected = format!(
        "{} (provider `standard` 6.6.6) replaces the built-in `standard` 0.1.0, as `latchkey provider install --replace` allowed",
        dropped.display()
    );
    assert_eq!(registry.notices(), std::slice::from_ref(&expected));

    let run = home.latchkey(&["provider", "ls"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let row = run.stdout.lines().find(|line| line.split_whitespace().next() == Some("standard")).expect("a standard row");
    assert!(row.trim_end().ends_with(dropped.to_str().unwrap()), "{row}");
    assert_eq!(run.stderr.trim_end(), format!("note: {expected}"));

    // Another file under the allowed name is not the allowed file.
    std::fs::write(&dropped, fixture("rogue", "claims-standard,steals")).unwrap();
    let (_runtime, registry) = home.load();
    assert!(matches!(registry.get("standard").unwrap().origin(), Origin::BuiltIn(_)));
    println!("replacement: {expected}");
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
    /// A misbehaviour the fixture can be told to show, and how its refusal must read.
    type Expected = (&'static str, fn(&Problem) -> bool);
    let failures: [Expected; 3] = [
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

#[test]
fn a_provider_that_claims_every_issuer_is_refused() {
    assert_refused(
        "every-issuer.wasm",
        &fixture("rogue", "claims-every-issuer"),
        &["issuer `https://` does not name an https host, so it would match the issuers of every server", "https://login.example.com"],
        |problem| matches!(problem, Problem::InvalidOutput { hook: "info", message } if message.contains("`https://`")),
    );
}

#[test]
fn a_loopback_redirect_with_route_syntax_is_refused() {
    assert_refused(
        "route.wasm",
        &fixture("rogue", "loopback-route-syntax"),
        &["`configure` returned invalid output", "the loopback redirect path `/:cb` is not a plain absolute path"],
        |problem| matches!(problem, Problem::InvalidOutput { hook: "configure", .. }),
    );
}

#[test]
fn a_device_endpoint_away_from_the_token_endpoint_is_refused() {
    assert_refused(
        "device.wasm",
        &fixture("rogue", "device-elsewhere"),
        &[
            "`configure` returned invalid output",
            "its device authorization endpoint is on https://collector.example, not on its token endpoint's origin https://rogue.example",
        ],
        |problem| matches!(problem, Problem::InvalidOutput { hook: "configure", .. }),
    );
}

#[test]
fn a_loopback_redirect_to_another_host_is_refused() {
    assert_refused(
        "far.wasm",
        &fixture("rogue", "loopback-foreign-host"),
        &["the loopback redirect host `evil.example` is not one of 127.0.0.1, localhost, [::1]"],
        |problem| matches!(problem, Problem::InvalidOutput { hook: "configure", .. }),
    );
}

/// A token endpoint that answers a refresh as the standard says.
fn token_endpoint() -> Recorder {
    Recorder::start(Response::json(200, serde_json::json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600})))
}

/// A home with the rogue provider built with `features` installed (which must succeed: a hostile
/// provider looks like any other until it acts), and its catalog server `notes`, whose entry
/// names the returned token endpoint and gives the provider the trap's `path` as `steal_to`: where
/// the rogue wants what it steals. Also what `provider install` said.
struct Rogue {
    home: Home,
    trap: Recorder,
    endpoint: Recorder,
    server: Server,
    install: latchkey_tests::Run,
}

fn rogue(features: &str, path: &str) -> Rogue {
    let home = Home::new();
    let (trap, endpoint) = (Recorder::trap(), token_endpoint());
    let file = home.file("rogue.wasm", &fixture("rogue", features));
    let install = home.latchkey(&["provider", "install", file.to_str().unwrap()]);
    assert_eq!(install.code, Some(0), "{install:#?}");
    let mut server = Server::new("notes", Some("rogue"), &endpoint.origin());
    server.config = vec![("steal_to".into(), trap.url(path))];
    Rogue { home, trap, endpoint, server, install }
}

/// What the trap received, for an assertion message.
fn received(trap: &Recorder) -> String {
    trap.requests().iter().map(|request| request.text()).collect::<Vec<_>>().join("\n---\n")
}

#[test]
fn a_provider_that_aims_its_calls_after_sign_in_elsewhere_gets_no_token_sent() {
    let Rogue { home, trap, endpoint, server, .. } = rogue("steals-after-token", "/collect");
    server.install(&home, "the-client-secret", "at-1", None);

    // The client's own token: issued, stored, and then the provider plans a call to the trap.
    let issued = stored::run(&home, &["oauth", "authorize", "notes", "--client-credentials"]);
    assert_eq!(issued.code, Some(1), "{issued:#?}");
    let message = issued.stderr.trim_end();
    for piece in [
        "signed in to `notes` and stored the token, but without what the provider's calls after sign-in would have added",
        "provider `rogue`",
        &format!("tried to send the request for a call after the token exchange to {}", trap.origin()),
        &format!("this flow allows only {}", endpoint.origin()),
        "the request was not sent",
    ] {
        assert!(message.contains(piece), "`{piece}` is not in: {message}");
    }
    assert!(!message.contains("/collect") && !message.contains("at-2"), "{message}");
    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));
    let kept: Vec<String> =
        server.stored(&home).iter().map(|credential| credential.tokens.access_token.expose_secret().to_string()).collect();
    assert_eq!(kept, ["at-2"], "the issued token is kept");
}

#[test]
fn a_providers_own_revocation_endpoint_gets_no_token_of_the_server_the_catalog_names() {
    let Rogue { home, trap, server, .. } = rogue("endpoints-elsewhere", "/revoke");
    // The catalog names the server's token endpoint and no revocation endpoint; the provider
    // names the trap as its own.
    server.install(&home, "the-client-secret", "at-1", Some("rt-1"));

    let revoke = stored::run(&home, &["oauth", "revoke", "notes"]);
    assert_eq!(revoke.code, Some(0), "{revoke:#?}");
    assert!(revoke.output().contains("no revocation endpoint is known for `notes`"), "{revoke:#?}");
    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));
}

#[test]
fn a_provider_that_retargets_its_requests_sends_nothing() {
    let Rogue { home, trap, endpoint, mut server, install } = rogue("steals", "/steal");
    assert!(install.stdout.contains("It may send requests to: https://rogue.example (or the token endpoint's origin"), "{install:#?}");

    let inspect = home.latchkey(&["provider", "inspect", "rogue"]);
    assert!(inspect.stdout.lines().any(|line| line.contains("may contact") && line.contains("https://rogue.example")), "{inspect:#?}");

    server.revocation_endpoint = Some(endpoint.url("/revoke"));
    server.install(&home, "the-client-secret", "at-1", Some("rt-1"));

    let refresh = stored::run(&home, &["oauth", "refresh", "notes"]);
    assert_eq!(refresh.code, Some(1), "{refresh:#?}");
    let message = refresh.stderr.trim_end();
    for piece in [
        "provider `rogue`",
        &format!("tried to send the request for the token endpoint to {}", trap.origin()),
        &format!("this flow allows only {}", endpoint.origin()),
        "the request was not sent",
        "`latchkey provider remove rogue`",
    ] {
        assert!(message.contains(piece), "`{piece}` is not in: {message}");
    }
    assert!(!message.contains("/steal") && !message.contains("rt-1"), "{message}");

    let revoke = stored::run(&home, &["oauth", "revoke", "notes"]);
    assert_eq!(revoke.code, Some(1), "{revoke:#?}");
    assert!(revoke.output().contains("tried to send the request for the revocation endpoint to"), "{revoke:#?}");
    assert_eq!(server.stored(&home).len(), 1, "the credential is kept: nothing was revoked");

    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));
    assert_eq!(endpoint.connections(), 0, "a refused request is not sent anywhere");
    println!("re-targeted: {message}");
}

#[test]
fn a_provider_that_claims_every_issuer_is_not_chosen() {
    let home = Home::new();
    let (trap, endpoint) = (Recorder::trap(), token_endpoint());
    home.drop_in("every-issuer.wasm", &fixture("rogue", "claims-every-issuer,steals"));
    // No `provider:`: the provider that declares the issuer is chosen, else `standard`. The
    // stolen-to URL travels as a requested scope, which every provider is handed.
    let mut server = Server::new("notes", None, &endpoint.origin());
    server.issuer = "https://login.example.com".into();
    server.scopes = vec!["read".into(), trap.url("/steal")];
    server.install(&home, "the-client-secret", "at-1", Some("rt-1"));

    let ls = home.latchkey(&["provider", "ls"]);
    assert!(ls.stderr.contains("issuer `https://` does not name an https host"), "{ls:#?}");
    let refresh = stored::run(&home, &["oauth", "refresh", "notes"]);
    assert_eq!(refresh.code, Some(0), "{refresh:#?}");
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].field("refresh_token").as_deref(), Some("rt-1"));
    assert_eq!(server.stored(&home)[0].provider, "standard");
    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));
}

#[test]
fn a_hand_dropped_built_in_replacement_is_not_loaded_until_installed_with_replace() {
    let home = Home::new();
    let (trap, endpoint) = (Recorder::trap(), token_endpoint());
    let hostile = fixture("rogue", "claims-google,steals");
    let dropped = home.drop_in("google.wasm", &hostile);
    let mut server = Server::new("mail", Some("google"), &endpoint.origin());
    server.scopes = vec!["openid".into(), trap.url("/steal")];
    server.install(&home, "the-client-secret", "at-1", Some("rt-1"));

    // `provider ls` says why the file is not loaded and how to allow it.
    let ls = home.latchkey(&["provider", "ls"]);
    assert_eq!(ls.code, Some(0), "{ls:#?}");
    let row = ls.stdout.lines().find(|line| line.split_whitespace().next() == Some("google")).expect("a google row");
    assert!(row.trim_end().ends_with("built-in"), "{row}");
    let warning = ls.stderr.lines().find(|line| line.contains(dropped.to_str().unwrap())).expect("a warning about the file");
    for piece in [
        "its id `google` is the built-in provider `google`'s",
        "a drop-in replaces a built-in only when asked to",
        &format!("`latchkey provider install --replace {}`", dropped.display()),
    ] {
        assert!(warning.contains(piece), "`{piece}` is not in: {warning}");
    }

    // The built-in serves the server: the refresh goes to the catalog's token endpoint.
    let refresh = stored::run(&home, &["oauth", "refresh", "mail"]);
    assert_eq!(refresh.code, Some(0), "{refresh:#?}");
    assert_eq!(endpoint.requests().len(), 1);
    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));

    // Without `--replace`, installing it is refused, saying how.
    let file = home.file("google-replacement.wasm", &hostile);
    let file_text = file.to_str().unwrap();
    let refused = home.latchkey(&["provider", "install", file_text]);
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(refused.stderr.contains(&format!("`latchkey provider install --replace {file_text}`")), "{refused:#?}");

    // With it, the file's hash is recorded and shown, and the replacement is used; still confined.
    let installed = home.latchkey(&["provider", "install", "--replace", file_text]);
    assert_eq!(installed.code, Some(0), "{installed:#?}");
    let sha256 = Provider::load(&home.load().0, Origin::File(file.clone()), &hostile).unwrap().sha256().to_string();
    for piece in
        ["Installed `google` 6.6.6", "it replaces the built-in `google`", &sha256, "It may send requests to: https://rogue.example"]
    {
        assert!(installed.stdout.contains(piece), "`{piece}` is not in: {installed:#?}");
    }
    let ls = home.latchkey(&["provider", "ls"]);
    let row = ls.stdout.lines().find(|line| line.split_whitespace().next() == Some("google")).expect("a google row");
    assert!(row.contains("6.6.6") && row.trim_end().ends_with(dropped.to_str().unwrap()), "{ls:#?}");
    assert!(ls.stderr.contains("replaces the built-in `google`"), "{ls:#?}");
    let refresh = stored::run(&home, &["oauth", "refresh", "mail"]);
    assert_eq!(refresh.code, Some(1), "{refresh:#?}");
    assert!(refresh.stderr.contains("provider `google`") && refresh.stderr.contains("the request was not sent"), "{refresh:#?}");
    assert_eq!(trap.connections(), 0, "the trap received:\n{}", received(&trap));

    // `provider remove` brings the built-in back and forgets the hash.
    let removed = home.latchkey(&["provider", "remove", "google"]);
    assert_eq!(removed.code, Some(0), "{removed:#?}");
    assert!(removed.stdout.contains("The built-in `google`"), "{removed:#?}");
    home.drop_in("google.wasm", &hostile);
    let (_runtime, registry) = home.load();
    assert!(matches!(registry.get("google").unwrap().origin(), Origin::BuiltIn(_)), "the forgotten hash allowed the file again");
}
