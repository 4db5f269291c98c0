//! The mapping from `server.json` (documents written after the registry's published schema and
//! its examples) to catalog entries; every entry is read back by the catalog parser.

use std::path::PathBuf;

use super::*;
use crate::catalog::model::{Kind, Server, Source};
use crate::catalog::parse;

fn import(json: &str) -> Entry {
    import_with(json, &Options::default())
}

fn import_with(json: &str, options: &Options) -> Entry {
    let entry = convert("server.json", json, options).unwrap_or_else(|error| panic!("{error}"));
    // Everything imported must load: parse it back and expect no problem.
    parsed(&entry);
    entry
}

fn refused(json: &str, options: &Options) -> String {
    convert("docs/server.json", json, options).expect_err("the document should be refused").to_string()
}

/// The entry as the catalog reads it.
fn parsed(entry: &Entry) -> Server {
    let text = format!("servers:\n{}", entry.yaml("docs/server.json", 2));
    let parsed = parse::parse(&Source::File(PathBuf::from("imported.yaml")), &text);
    assert!(parsed.problems.is_empty(), "{:?}\n{text}", parsed.problems);
    assert_eq!(parsed.servers.len(), 1, "{text}");
    parsed.servers.into_iter().next().unwrap()
}

const WEATHER_NPM: &str = r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.user/weather",
  "title": "Weather",
  "description": "Weather forecasts from OpenWeatherMap",
  "version": "1.2.0",
  "repository": {"url": "https://github.com/user/weather", "source": "github"},
  "packages": [{
    "registryType": "npm",
    "registryBaseUrl": "https://registry.npmjs.org",
    "identifier": "@user/weather-mcp",
    "version": "1.2.0",
    "runtimeHint": "npx",
    "transport": {"type": "stdio"},
    "runtimeArguments": [{"type": "named", "name": "--node-options", "value": "--max-old-space-size=256"}],
    "packageArguments": [
      {"type": "positional", "value": "serve"},
      {"type": "named", "name": "--port", "value": "8080"},
      {"type": "named", "name": "--mode", "description": "Operation mode", "default": "local", "choices": ["local", "cached", "proxy"]},
      {"type": "positional", "valueHint": "target_dir", "description": "Folder to serve", "isRequired": true},
      {"type": "named", "name": "--verbose", "description": "Log more"}
    ],
    "environmentVariables": [
      {"name": "WEATHER_API_KEY", "description": "OpenWeatherMap key", "isRequired": true, "isSecret": true},
      {"name": "LOG_LEVEL", "description": "Logging level", "default": "info"},
      {"name": "WEATHER_UNITS", "description": "Units", "isRequired": true, "choices": ["metric", "imperial"]},
      {"name": "WEATHER_CITY", "description": "Default city", "isRequired": true},
      {"name": "WEATHER_CACHE", "description": "Cache folder"}
    ]
  }],
  "_meta": {"io.modelcontextprotocol.registry/publisher-provided": {"tool": "publisher-cli"}}
}"#;

#[test]
fn an_npm_package_runs_with_npx_at_its_version_with_its_fixed_arguments() {
    let entry = import(WEATHER_NPM);
    assert_eq!(entry.name, "weather");
    assert_eq!(entry.chosen, "npm package @user/weather-mcp@1.2.0");
    assert_eq!(
        entry.run,
        Run::Command(
            [
                "npx",
                "-y",
                "--node-options",
                "--max-old-space-size=256",
                "@user/weather-mcp@1.2.0",
                "serve",
                "--port",
                "8080",
                "--mode",
                "{{weather.mode}}",
                "{{weather.target_dir}}",
            ]
            .map(String::from)
            .to_vec()
        )
    );
    let server = parsed(&entry);
    assert_eq!(server.title.as_deref(), Some("Weather"));
    assert!(matches!(&server.kind, Kind::Command { command, .. } if command[4] == "@user/weather-mcp@1.2.0"));
    assert!(
        entry.notices.iter().any(|notice| notice.contains("packageArguments[4]") && notice.contains("--verbose")),
        "{:?}",
        entry.notices
    );
}

#[test]
fn environment_variables_become_secrets_env_or_config() {
    let entry = import(WEATHER_NPM);
    assert_eq!(entry.secrets, vec![Secret { name: "weather.weather_api_key".into(), env: "WEATHER_API_KEY".into() }]);
    assert_eq!(entry.secret_commands(), vec!["latchkey secret set weather.weather_api_key"]);
    assert_eq!(
        entry.env,
        [("LOG_LEVEL", "info"), ("WEATHER_UNITS", "{{weather.weather_units}}"), ("WEATHER_CITY", "{{weather.weather_city}}")]
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .to_vec()
    );
    let keys: Vec<&str> = entry.config.iter().map(|property| property.key.as_str()).collect();
    assert_eq!(keys, ["mode", "target_dir", "weather_units", "weather_city"]);
    let units = &entry.config[2];
    assert_eq!(
        (units.kind, units.required, units.choices.as_slice()),
        ("string", true, ["metric".to_string(), "imperial".into()].as_slice())
    );
    let mode = &entry.config[0];
    assert_eq!((mode.required, mode.default.as_deref()), (false, Some("local")), "choices with a default: optional, defaulted");
    assert!(entry.notices.iter().any(|notice| notice.contains("environmentVariables[4]")), "optional without default: {:?}", entry.notices);
    assert_eq!(
        entry.config_commands(),
        ["target_dir", "weather_units", "weather_city"].map(|key| format!("latchkey config set weather.{key} <value>")).to_vec()
    );
    let yaml = entry.yaml("server.json", 2);
    assert!(
        yaml.contains("config:\n      - name: \"weather\"\n")
            && yaml.contains("required: [\"target_dir\", \"weather_units\", \"weather_city\"]"),
        "{yaml}"
    );
    assert!(yaml.contains("enum: [\"metric\", \"imperial\"]"), "{yaml}");
}

#[test]
fn a_secret_value_in_the_document_is_never_written() {
    let json = r#"{"name": "io.github.user/leaky", "description": "d", "version": "1.0.0",
      "packages": [{"registryType": "npm", "identifier": "leaky-mcp", "version": "1.0.0", "transport": {"type": "stdio"},
        "environmentVariables": [{"name": "API_TOKEN", "isSecret": true, "value": "sk-live-do-not-publish", "default": "sk-default-secret"}]}]}"#;
    let entry = import(json);
    let yaml = entry.yaml("server.json", 2);
    assert!(!yaml.contains("sk-live") && !yaml.contains("sk-default"), "{yaml}");
    assert_eq!(entry.secrets, vec![Secret { name: "leaky.api_token".into(), env: "API_TOKEN".into() }]);
    assert!(entry.notices.iter().any(|notice| notice.contains("not written")), "{:?}", entry.notices);
    let argument = r#"{"name": "a/b", "description": "d", "version": "1",
      "packages": [{"registryType": "npm", "identifier": "b", "version": "1", "transport": {"type": "stdio"},
        "packageArguments": [{"type": "named", "name": "--token", "isSecret": true, "isRequired": true}]}]}"#;
    let error = refused(argument, &Options::default());
    assert!(error.contains("packages[0].packageArguments[0]") && error.contains("secret"), "{error}");
}

#[test]
fn a_pypi_package_runs_with_uvx() {
    let json = r#"{"name": "io.github.example/weather-mcp", "description": "Python MCP server for weather data access", "version": "0.5.0",
      "packages": [{"registryType": "pypi", "registryBaseUrl": "https://pypi.org", "identifier": "weather-mcp-server", "version": "0.5.0",
        "runtimeHint": "uvx", "transport": {"type": "stdio"},
        "environmentVariables": [{"name": "WEATHER_UNITS", "description": "Temperature units", "default": "celsius"}]}]}"#;
    let entry = import(json);
    assert_eq!(entry.name, "weather-mcp");
    assert_eq!(entry.run, Run::Command(vec!["uvx".into(), "weather-mcp-server@0.5.0".into()]));
    assert_eq!(entry.env, vec![("WEATHER_UNITS".to_string(), "celsius".to_string())]);
    let other_index = json.replace("https://pypi.org", "https://pypi.example.com");
    assert!(refused(&other_index, &Options::default()).contains("registryBaseUrl"));
}

#[test]
fn an_oci_package_becomes_an_image_in_either_schema_form() {
    let current = r#"{"name": "io.github.owner/repo", "description": "d", "version": "1.0.0",
      "packages": [{"registryType": "oci", "identifier": "ghcr.io/owner/repo:v1.0.0", "transport": {"type": "stdio"},
        "runtimeArguments": [{"type": "named", "name": "--mount", "value": "type=bind,src=/tmp,dst=/project"}],
        "packageArguments": [{"type": "positional", "valueHint": "target_dir", "value": "/project"}]}]}"#;
    let entry = import(current);
    assert_eq!(entry.run, Run::Image { image: "ghcr.io/owner/repo:v1.0.0".into(), command: vec!["/project".into()] });
    assert!(entry.notices.iter().any(|notice| notice.contains("runtimeArguments") && notice.contains("--mount")), "{:?}", entry.notices);
    assert!(matches!(parsed(&entry).kind, Kind::Image { .. }));

    let hub = r#"{"name": "io.github.modelcontextprotocol/filesystem", "description": "d", "version": "1.0.2",
      "packages": [{"registryType": "oci", "registryBaseUrl": "https://docker.io", "identifier": "mcp/filesystem", "version": "1.0.2",
        "transport": {"type": "stdio"}}]}"#;
    assert_eq!(import(hub).run, Run::Image { image: "mcp/filesystem:1.0.2".into(), command: vec![] });
    let ghcr = hub.replace("https://docker.io", "https://ghcr.io");
    assert_eq!(import(&ghcr).run, Run::Image { image: "ghcr.io/mcp/filesystem:1.0.2".into(), command: vec![] });
    let untagged = hub.replace(r#""version": "1.0.2","#, "");
    let error = refused(&untagged, &Options::default());
    assert!(error.contains("packages[0].identifier") && error.contains("no tag"), "{error}");
}

#[test]
fn a_remote_with_headers_declares_its_secrets_and_config() {
    // The registry's valid/with-remote.json, with a header to choose and one with a template.
    let json = r#"{
      "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
      "name": "io.github.user/remote-weather",
      "description": "Remote MCP server reachable over streamable HTTP.",
      "version": "2.1.0",
      "title": "Remote Weather",
      "remotes": [
        {"type": "sse", "url": "https://api.example.com/sse"},
        {
          "type": "streamable-http",
          "url": "https://{host}/mcp",
          "headers": [
            {"name": "Authorization", "isSecret": true, "isRequired": true},
            {"name": "X-Region", "description": "Service region", "default": "us-east-1", "choices": ["us-east-1", "eu-west-1"]},
            {"name": "X-Team", "value": "{team}$", "variables": {"team": {"description": "Team", "default": "blue"}}},
            {"name": "X-Signature", "isSecret": true, "value": "Key {key_id}:{signing_key}",
             "variables": {"key_id": {"default": "k1"}, "signing_key": {"isSecret": true}}}
          ],
          "variables": {"host": {"description": "API host", "default": "api.example.com"}}
        }
      ]
    }"#;
    let entry = import(json);
    assert_eq!(entry.name, "remote-weather");
    let Run::Remote { url, headers } = &entry.run else { panic!("{:?}", entry.run) };
    assert_eq!(url, "https://api.example.com/mcp");
    assert_eq!(
        headers,
        &[
            ("Authorization", "${AUTHORIZATION}"),
            ("X-Region", "${X_REGION}"),
            ("X-Team", "blue$$"),
            ("X-Signature", "Key k1:${SIGNING_KEY}")
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()))
    );
    assert_eq!(
        entry.secrets,
        vec![
            Secret { name: "remote-weather.authorization".into(), env: "AUTHORIZATION".into() },
            Secret { name: "remote-weather.signing_key".into(), env: "SIGNING_KEY".into() }
        ]
    );
    assert_eq!(entry.env, vec![("X_REGION".to_string(), "{{remote-weather.x_region}}".to_string())]);
    assert_eq!(entry.config[0].choices, ["us-east-1", "eu-west-1"]);
    let server = parsed(&entry);
    assert!(matches!(&server.kind, Kind::Remote { remote } if remote.headers.len() == 4));

    let tenant = json.replace(r#""default": "api.example.com""#, r#""isRequired": true"#);
    let error = refused(&tenant, &Options::default());
    assert!(error.contains("remotes[1].url") && error.contains("`host` (API host)") && error.contains("default"), "{error}");
    let only_sse = r#"{"name": "io.modelcontextprotocol.anonymous/mcp-fs", "description": "Cloud-hosted MCP filesystem server",
      "version": "2.0.0", "remotes": [{"type": "sse", "url": "https://mcp-fs.example.com/sse"}]}"#;
    let sse = refused(only_sse, &Options::default());
    assert!(sse.starts_with("docs/server.json: `remotes[0].type` is `sse`") && sse.contains("Streamable HTTP"), "{sse}");
}

const HYBRID: &str = r#"{"name": "io.modelcontextprotocol.anonymous/hybrid-mcp", "description": "Local package and remote service",
  "version": "1.5.0",
  "packages": [
    {"registryType": "nuget", "identifier": "Hybrid.Mcp", "version": "1.5.0", "transport": {"type": "stdio"}},
    {"registryType": "npm", "identifier": "@example/hybrid-mcp-server", "version": "1.5.0", "transport": {"type": "streamable-http", "url": "http://localhost:8080/mcp"}},
    {"registryType": "oci", "identifier": "docker.io/example/hybrid:1.5.0", "transport": {"type": "stdio"}}
  ],
  "remotes": [{"type": "streamable-http", "url": "https://mcp.example.com/http"}]}"#;

#[test]
fn the_first_stdio_package_is_chosen_unless_the_user_chooses() {
    // nuget is not run by latchkey, and npm here serves HTTP: the OCI image is the first to run.
    let oci = import(HYBRID);
    assert_eq!(oci.chosen, "OCI image docker.io/example/hybrid:1.5.0");
    assert_eq!(oci.alternatives, ["nuget", "npm", "remote"]);
    let remote = import_with(HYBRID, &Options { remote: true, ..Options::default() });
    assert_eq!(remote.run, Run::Remote { url: "https://mcp.example.com/http".into(), headers: vec![] });
    let npm = refused(HYBRID, &Options { package: Some("npm".into()), ..Options::default() });
    assert!(npm.contains("`packages[1].transport.type` is `streamable-http`") && npm.contains("--remote"), "{npm}");
    let error = refused(HYBRID, &Options { package: Some("nuget".into()), ..Options::default() });
    assert!(error.contains("`packages[0].registryType` is `nuget`") && error.contains("--package"), "{error}");
    let missing = refused(HYBRID, &Options { package: Some("pypi".into()), ..Options::default() });
    assert!(missing.contains("no `pypi` package") && missing.contains("nuget, npm, oci, remote"), "{missing}");
}

#[test]
fn names_come_from_the_registry_name_or_the_user() {
    let dotted = WEATHER_NPM.replace("io.github.user/weather", "io.github.user/weather.v2");
    let error = refused(&dotted, &Options::default());
    assert!(error.contains("name: io.github.user/weather.v2") && error.contains("--name"), "{error}");
    let named = import_with(&dotted, &Options { name: Some("weather2".into()), ..Options::default() });
    assert_eq!(named.name, "weather2");
    assert_eq!(named.secrets[0].name, "weather2.weather_api_key");
    assert!(refused(WEATHER_NPM, &Options { name: Some("a__b".into()), ..Options::default() }).contains("--name"));
}

#[test]
fn a_malformed_document_is_named_with_line_and_column() {
    let error = refused("{\n  \"name\": \"a/b\",\n  \"packages\": [{\"registryType\": 3}]\n}", &Options::default());
    assert!(error.starts_with("docs/server.json:3:33: invalid type: integer `3`, expected a string; see"), "{error}");
    let old = r#"{"name": "io.modelcontextprotocol/brave-search", "description": "d", "version_detail": {"version": "1.0.2"},
      "packages": [{"registry_type": "npm", "identifier": "@modelcontextprotocol/server-brave-search", "version": "1.0.2"}]}"#;
    let error = refused(old, &Options::default());
    assert!(error.contains("missing field `registryType`") && error.contains("2025-07-09"), "{error}");
    let array = refused("[1, 2]", &Options::default());
    assert!(array.starts_with("docs/server.json: this is not a JSON object"), "{array}");
}

#[test]
fn the_yaml_keeps_every_character_of_a_value() {
    let json = r#"{"name": "a/quoted", "description": "A \"quoted\" description: with # and ' and\nnew line", "version": "1",
      "packages": [{"registryType": "npm", "identifier": "q", "version": "1", "transport": {"type": "stdio"},
        "environmentVariables": [{"name": "GREETING", "value": "yes"}, {"name": "EMPTY", "value": ""}]}]}"#;
    let server = parsed(&import(json));
    assert_eq!(server.description.as_deref(), Some("A \"quoted\" description: with # and ' and\nnew line"));
    assert_eq!(server.env[0].value, "yes", "not YAML's boolean");
    assert_eq!(server.env[1].value, "");
}
