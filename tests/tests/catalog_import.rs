//! `latchkey catalog import` as a user runs it: `server.json` documents written after the MCP
//! registry's published schema (2025-12-11) and its examples, imported by the built binary into a
//! private LATCHKEY_HOME, then read by `catalog show` / `validate`, and one of them run by
//! `latchkey gateway run` and called by the reference TypeScript MCP client
//! (`tests/peers/mcp-client.mjs`).
//!
//! The gateway test runs `npx -y @modelcontextprotocol/server-everything@<version>` as the entry
//! says, with the working directory at `tests/peers`: npx finds that exact version installed in
//! the local project there and runs it without asking the npm registry (`npm ci --prefix
//! tests/peers` installed it). It needs `npx` on PATH, which npm provides.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_tests::peers::peers_dir;
use latchkey_tests::{Home, files_containing, latchkey_bin};
use serde_json::{Value, json};

/// The registry's example of a package (valid/with-package.json), with the variables the mapping
/// distinguishes: a secret, a fixed default, one to choose from, one the user must give.
const WEATHER: &str = r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.user/weather",
  "title": "Weather",
  "description": "Local MCP server distributed as an npm package.",
  "version": "1.0.0",
  "packages": [
    {
      "registryType": "npm",
      "identifier": "@modelcontextprotocol/server-weather",
      "version": "1.0.0",
      "transport": { "type": "stdio" },
      "runtimeHint": "npx",
      "packageArguments": [
        { "type": "named", "name": "--port", "value": "8080" }
      ],
      "environmentVariables": [
        { "name": "API_KEY", "isSecret": true, "isRequired": true, "default": "sk-example-default-never-written" },
        { "name": "LOG_LEVEL", "description": "Logging level", "default": "info" },
        { "name": "WEATHER_UNITS", "description": "Units", "isRequired": true, "choices": ["metric", "imperial"] }
      ]
    }
  ]
}"#;

/// The registry's valid/with-remote.json.
const REMOTE: &str = r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.user/remote-weather",
  "description": "Remote MCP server reachable over streamable HTTP.",
  "version": "2.1.0",
  "title": "Remote Weather",
  "websiteUrl": "https://modelcontextprotocol.io/examples",
  "icons": [{ "src": "https://example.com/icon.png", "mimeType": "image/png", "sizes": ["48x48", "96x96"] }],
  "remotes": [
    {
      "type": "streamable-http",
      "url": "https://{host}/mcp",
      "headers": [{ "name": "Authorization", "isSecret": true, "isRequired": true }],
      "variables": { "host": { "description": "API host", "default": "api.example.com" } }
    }
  ]
}"#;

/// An OCI package in the schema's current form (the tag in the identifier).
const IMAGE: &str = r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.owner/boxed",
  "description": "An MCP server in a container",
  "version": "1.0.0",
  "packages": [{ "registryType": "oci", "identifier": "ghcr.io/owner/boxed:v1.0.0", "transport": { "type": "stdio" } }]
}"#;

fn documents(home: &Home, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = home.path().join("documents");
    fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn imported(home: &Home) -> std::path::PathBuf {
    home.path().join("catalogs/imported.yaml")
}

#[test]
fn a_folder_of_documents_imports_into_entries_that_show_and_validate() {
    let home = Home::empty();
    let dir = documents(&home, &[("weather.json", WEATHER), ("remote.json", REMOTE), ("boxed/server.json", IMAGE)]);
    let dir = dir.to_str().unwrap();

    let dry = home.latchkey(&["catalog", "import", dir, "--dry-run"]);
    assert_eq!(dry.code, Some(0), "{dry:#?}");
    assert!(
        dry.stdout.starts_with("servers:\n") && dry.stdout.contains("\"npx\", \"-y\", \"@modelcontextprotocol/server-weather@1.0.0\""),
        "{dry:#?}"
    );
    assert!(dry.stderr.contains("latchkey secret set weather.api_key") && dry.stderr.contains("nothing was written"), "{dry:#?}");
    assert!(!imported(&home).exists(), "a dry run writes nothing");

    let run = home.latchkey(&["catalog", "import", dir]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    for name in ["weather", "remote-weather", "boxed"] {
        assert!(run.stdout.contains(&format!("imported `{name}`")), "{run:#?}");
    }
    assert!(run.stderr.contains("latchkey secret set remote-weather.authorization"), "{run:#?}");
    assert!(run.stderr.contains("latchkey config set weather.weather_units <value>"), "{run:#?}");
    assert!(run.stderr.contains("marked secret and carries a value"), "{run:#?}");
    assert!(
        files_containing(&home.path().join("catalogs"), "sk-example-default-never-written").is_empty(),
        "a secret's value is never written"
    );

    let validate = home.latchkey(&["catalog", "validate"]);
    assert_eq!(validate.code, Some(0), "{validate:#?}");
    let file = home.latchkey(&["catalog", "validate", imported(&home).to_str().unwrap(), "--json"]).json();
    assert_eq!((file["ok"].clone(), file["servers"].clone()), (json!(true), json!(3)), "{file:#}");

    let weather = home.latchkey(&["catalog", "show", "weather"]);
    assert_eq!(weather.code, Some(0), "{weather:#?}");
    let text = &weather.stdout;
    assert!(text.contains("npx -y @modelcontextprotocol/server-weather@1.0.0 --port 8080"), "{text}");
    assert!(text.contains("LOG_LEVEL=info") && text.contains("WEATHER_UNITS={{weather.weather_units}}"), "{text}");
    assert!(text.contains("weather.api_key") && text.contains("API_KEY"), "{text}");
    let remote = home.latchkey(&["catalog", "show", "remote-weather", "--json"]).json();
    assert_eq!(remote["remote"]["url"], "https://api.example.com/mcp", "{remote:#}");
    assert_eq!(remote["remote"]["headers"]["Authorization"], "${AUTHORIZATION}", "{remote:#}");
    assert_eq!(remote["secrets"][0], json!({"name": "remote-weather.authorization", "env": "AUTHORIZATION"}), "{remote:#}");
    let boxed = home.latchkey(&["catalog", "show", "boxed", "--json"]).json();
    assert_eq!(boxed["image"], "ghcr.io/owner/boxed:v1.0.0", "{boxed:#}");
    // The setting the import declared takes values as the document allows them.
    let wrong = home.latchkey(&["config", "set", "weather.weather_units", "kelvin"]);
    assert!(wrong.stderr.contains("`weather.weather_units` must be one of metric, imperial"), "{wrong:#?}");
    assert_eq!(home.latchkey(&["config", "set", "weather.weather_units", "metric"]).code, Some(0));

    // Importing again would overwrite: refused, and the file stays as it was.
    let before = fs::read_to_string(imported(&home)).unwrap();
    let again = home.latchkey(&["catalog", "import", &format!("{dir}/weather.json")]);
    assert_ne!(again.code, Some(0), "{again:#?}");
    assert!(again.stderr.contains("`weather` is already in") && again.stderr.contains("--replace"), "{again:#?}");
    let replaced = home.latchkey(&["catalog", "import", &format!("{dir}/weather.json"), "--replace", "--name", "weather"]);
    assert_eq!(replaced.code, Some(0), "{replaced:#?}");
    let after = fs::read_to_string(imported(&home)).unwrap();
    assert_eq!(after.matches("  weather:\n").count(), 1, "{after}");
    assert!(after.contains("remote-weather:") && after.len() == before.len(), "the other entries stay:\n{after}");
}

#[test]
fn a_document_that_cannot_be_imported_is_named_and_nothing_is_written() {
    let home = Home::empty();
    let broken =
        "{\n  \"name\": \"io.github.user/broken\",\n  \"packages\": [\n    {\"registryType\": \"npm\" \"identifier\": \"x\"}\n  ]\n}\n";
    let sse = r#"{"name": "io.github.user/old", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "https://example.com/sse"}]}"#;
    let dir = documents(&home, &[("a-weather.json", WEATHER), ("broken.json", broken), ("old.json", sse)]);
    let run = home.latchkey(&["catalog", "import", dir.to_str().unwrap()]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    let broken_file = dir.join("broken.json");
    assert!(run.stderr.contains(&format!("{}:4:", broken_file.display())) && run.stderr.contains("expected `,` or `}`"), "{run:#?}");
    assert!(run.stderr.contains("old.json: `remotes[0].type` is `sse`"), "{run:#?}");
    assert!(run.stderr.contains("nothing was imported: 2 of 3 documents"), "{run:#?}");
    assert!(!imported(&home).exists(), "no partial import");
}

#[test]
fn an_imported_npm_package_runs_through_the_gateway() {
    let everything = peers_dir().join("node_modules/@modelcontextprotocol/server-everything/package.json");
    let manifest: Value = serde_json::from_str(
        &fs::read_to_string(&everything)
            .unwrap_or_else(|e| panic!("server-everything is not installed ({e}): run `npm ci --prefix tests/peers`")),
    )
    .unwrap();
    let version = manifest["version"].as_str().unwrap();
    // As the server's own server.json would describe it, with variables to show the mapping.
    let document = json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.modelcontextprotocol/everything",
        "description": "MCP server that exercises all the features of the MCP protocol",
        "version": version,
        "repository": {"url": "https://github.com/modelcontextprotocol/servers", "source": "github", "subfolder": "src/everything"},
        "packages": [{
            "registryType": "npm",
            "registryBaseUrl": "https://registry.npmjs.org",
            "identifier": "@modelcontextprotocol/server-everything",
            "version": version,
            "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "valueHint": "transport", "value": "stdio"}],
            "environmentVariables": [
                {"name": "EVERYTHING_TOKEN", "description": "A token", "isSecret": true, "isRequired": true},
                {"name": "EVERYTHING_MODE", "description": "A fixed setting", "default": "imported-default"}
            ]
        }]
    });
    let home = Home::new();
    let file = home.file("server.json", document.to_string().as_bytes());
    let run = home.latchkey(&["catalog", "import", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout.contains(&format!("imported `everything` (npm package @modelcontextprotocol/server-everything@{version})")),
        "{run:#?}"
    );
    let store = [("LATCHKEY_STORE", "file")];
    let set = home.run(&["secret", "set", "everything.everything_token"], &store, b"token-from-the-secret-store");
    assert_eq!(set.code, Some(0), "{set:#?}");

    let steps = json!([
        {"call": "everything__get-env"},
        {"call": "everything__echo", "arguments": {"message": "an imported server"}}
    ]);
    let mut client = Command::new("node");
    client
        .arg(peers_dir().join("mcp-client.mjs"))
        .args(["stdio", latchkey_bin().to_str().unwrap(), "gateway", "run", "--servers", "everything"])
        // npx resolves the package from the project it runs in: tests/peers.
        .current_dir(peers_dir())
        .env("MCP_STEPS", steps.to_string());
    // The home's environment first: it clears any store choice, and the secret is in the file store.
    home.environment(&mut client).envs(store);
    let (code, stdout, stderr) = run_within(client, Duration::from_secs(120), home.path());
    assert_eq!(code, Some(0), "the MCP client failed:\n{stdout}\n{stderr}");
    let results: Vec<Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let text = |step: &Value| {
        assert_eq!(step["ok"], true, "{step}");
        step["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {step}")).to_string()
    };
    let env_json = text(&results[0]);
    let env: Value = serde_json::from_str(&env_json).unwrap_or_else(|e| panic!("get-env did not answer JSON ({e}): {env_json}"));
    assert_eq!(env["EVERYTHING_TOKEN"], "token-from-the-secret-store", "the declared secret arrives");
    assert_eq!(env["EVERYTHING_MODE"], "imported-default", "the fixed variable arrives");
    assert!(text(&results[1]).contains("an imported server"), "{:?}", results[1]);
}

/// Run `command` to its end, killing it (and failing) after `deadline`: its exit code, stdout
/// and stderr (through files in `dir`, so that no pipe can fill up and stall it).
fn run_within(mut command: Command, deadline: Duration, dir: &Path) -> (Option<i32>, String, String) {
    let (out, err) = (dir.join("client.out"), dir.join("client.err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("starting the MCP client (node)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the MCP client did not finish within {deadline:?}:\n{}", fs::read_to_string(&err).unwrap_or_default());
        }
        thread::sleep(Duration::from_millis(50));
    };
    (status.code(), fs::read_to_string(&out).unwrap(), fs::read_to_string(&err).unwrap())
}
