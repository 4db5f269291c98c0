use std::path::PathBuf;

use super::*;

fn source() -> Source {
    Source::File(PathBuf::from("test.yaml"))
}

/// The problems of `yaml` as `(line, column, message)`, each also checked to name the file.
fn problems(yaml: &str) -> Vec<(u64, u64, String)> {
    let parsed = parse::parse(&source(), yaml);
    parsed
        .problems
        .into_iter()
        .map(|problem| {
            assert_eq!(problem.source, source());
            assert!(problem.to_string().starts_with(&format!("test.yaml:{}:{}: ", problem.line, problem.column)), "{problem}");
            (problem.line, problem.column, problem.message)
        })
        .collect()
}

/// The single problem of `yaml`.
fn problem(yaml: &str) -> (u64, u64, String) {
    let mut all = problems(yaml);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    all.remove(0)
}

fn servers(yaml: &str) -> Vec<Server> {
    let parsed = parse::parse(&source(), yaml);
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    parsed.servers
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/catalog/testdata").join(name)).unwrap()
}

#[test]
fn the_default_catalog_validates_and_ships_no_client_id() {
    let catalog = Catalog::from_yaml(Source::BuiltIn, DEFAULT_CATALOG).unwrap_or_else(|error| panic!("{error}"));
    let expected = [
        ("gmail", "google"),
        ("google-calendar", "google"),
        ("google-drive", "google"),
        ("slack", "slack"),
        ("microsoft-365", "microsoft"),
    ];
    assert_eq!(catalog.servers().count(), expected.len());
    for (name, provider_id) in expected {
        let server = catalog.server(name).unwrap();
        let oauth = server.oauth.as_ref().unwrap();
        assert!(!oauth.scopes.is_empty(), "{name} has scopes");
        assert_eq!(oauth.providers.len(), 1);
        let provider = &oauth.providers[0];
        assert_eq!(provider.provider.as_deref().map(String::as_str), Some(provider_id));
        assert!(provider.registration.is_none(), "{name} ships without a client id");
        let metadata = provider.server_metadata.as_ref().unwrap();
        assert!(metadata.issuer.starts_with("https://"));
        assert!(metadata.endpoints().all(|(_, url)| url.starts_with("https://")));
        let token = server.secret(provider.secret.as_ref().unwrap()).expect("the token secret is declared");
        let client_secret = server.secret(&format!("{name}.client_secret")).expect("a client secret is declared");
        assert!(client_secret.env.is_none(), "a client secret never reaches the server");
        match &server.kind {
            Kind::Remote { remote } => assert!(remote.url.starts_with("https://")),
            Kind::Command { .. } => assert!(token.env.is_some(), "a local server gets its token in a variable"),
            Kind::Image { .. } | Kind::Poci { .. } => panic!("only remote and local servers in the default catalog"),
        }
    }
    // The anchor shares Google's metadata between the three Google servers.
    let calendar = catalog.server("google-calendar").unwrap();
    let metadata = calendar.oauth.as_ref().unwrap().providers[0].server_metadata.as_ref().unwrap();
    assert_eq!(metadata.token_endpoint.as_str(), "https://oauth2.googleapis.com/token");
}

#[test]
fn every_kind_of_entry_reads_into_its_fields() {
    let servers = servers(&fixture("good.yaml"));
    let names: Vec<&str> = servers.iter().map(|server| server.name.as_str()).collect();
    assert_eq!(names, ["files", "local", "notes"]);

    let files = &servers[0];
    assert_eq!(files.line, 3);
    assert_eq!(files.title.as_deref(), Some("Files"));
    match &files.kind {
        Kind::Image { image, command, container } => {
            assert_eq!(image, "example/files-mcp:1.0");
            assert_eq!(command, &["serve", "--stdio"]);
            assert_eq!(container, &Container { network: "bridge".into(), cpus: Some(0.5), memory: Some(256 << 20) });
        }
        other => panic!("not an image: {other:?}"),
    }
    assert_eq!(files.env[0].name.as_str(), "LOG_LEVEL");
    assert_eq!(files.env[0].value, "info");
    assert_eq!(files.secret("files.token").unwrap().env.as_deref().map(String::as_str), Some("FILES_TOKEN"));
    let provider = &files.oauth.as_ref().unwrap().providers[0];
    assert_eq!(provider.registration.as_ref().unwrap().client_id.as_str(), "files-client");
    assert_eq!(provider.config.get("audience").map(String::as_str), Some("files"));
    let metadata = provider.server_metadata.as_ref().unwrap();
    assert_eq!(metadata.authorization_response_iss_parameter_supported, Some(true));
    assert_eq!((metadata.token_endpoint.line(), metadata.token_endpoint.column()), (23, 29));

    assert!(matches!(&servers[1].kind, Kind::Command { command, .. } if command == &["local-mcp", "--verbose"]));
    match &servers[2].kind {
        Kind::Remote { remote } => {
            assert_eq!(remote.url.as_str(), "http://127.0.0.1:8123/mcp");
            assert_eq!(*remote.transport, Transport::StreamableHttp);
            assert_eq!(remote.headers.get("X-Team").map(|value| value.as_str()), Some("blue"));
        }
        other => panic!("not remote: {other:?}"),
    }
}

#[test]
fn containers_default_to_no_network() {
    let servers = servers("servers:\n  s:\n    image: example/s:1\n");
    assert!(matches!(&servers[0].kind, Kind::Image { container, .. } if container == &Container::default()));
    assert_eq!(Container::default().network, "none");
}

#[test]
fn docker_legacy_entries_load_and_list_what_latchkey_ignores() {
    let servers = servers(&fixture("docker-legacy.yaml"));
    let workspace = &servers[0];
    assert_eq!(workspace.name, "google-workspace");
    assert_eq!(workspace.ignored, ["volumes", "allowHosts"]);
    assert!(matches!(&workspace.kind, Kind::Image { image, .. } if image == "example/google-workspace-mcp@sha256:0123"));
    // Docker's `env: ""` means no variable.
    assert!(workspace.secret("google-workspace.client_secret").unwrap().env.is_none());
    let provider = &workspace.oauth.as_ref().unwrap().providers[0];
    let metadata = provider.server_metadata.as_ref().unwrap();
    assert_eq!(metadata.scopes_supported, ["https://www.googleapis.com/auth/gmail.readonly"]);
    assert_eq!(provider.registration.as_ref().unwrap().client_id.as_str(), "1234567890-abc.apps.googleusercontent.com");

    let remote = &servers[1];
    assert!(remote.ignored.is_empty());
    assert!(matches!(&remote.kind, Kind::Remote { remote } if remote.url.as_str() == "https://catalog.example.com/mcp"));
}

#[test]
fn a_client_secret_is_refused_with_the_command_that_stores_it() {
    let (line, column, message) = problem(&fixture("client-secret.yaml"));
    assert_eq!((line, column), (9, 13));
    assert!(message.contains("`client_secret` does not belong in a catalog"), "{message}");
    assert!(message.contains("`latchkey secret set gmail.client_secret` (the value is read from stdin)"), "{message}");
    // The secret itself is never repeated in the message.
    assert!(!message.contains("GOCSPX"), "{message}");
}

#[test]
fn a_client_secret_is_refused_anywhere_in_any_spelling() {
    let (line, column, message) = problem("servers:\n  slack:\n    command: [x]\n    clientSecret: abc\n");
    assert_eq!((line, column), (4, 5));
    assert!(message.contains("`latchkey secret set slack.client_secret`"), "{message}");
    let (line, _, message) = problem("client_secret: abc\n");
    assert_eq!(line, 1);
    assert!(message.contains("`latchkey secret set <server>.client_secret`"), "{message}");
}

#[test]
fn a_client_secret_in_an_env_value_is_refused() {
    let (line, column, message) =
        problem("servers:\n  g:\n    command: [g]\n    env:\n      - {name: GOOGLE_CLIENT_SECRET, value: s3cret}\n");
    assert_eq!((line, column), (5, 16));
    assert!(message.contains("`latchkey secret set <server>.client_secret`"), "{message}");
    assert!(!message.contains("s3cret"));
}

#[test]
fn a_client_secret_pasted_as_the_client_id_is_refused() {
    let (line, _, message) = problem(
        "servers:\n  g:\n    remote: {url: https://g.example.com/mcp}\n    oauth:\n      providers:\n        - registration: {client_id: GOCSPX-abc}\n",
    );
    assert_eq!(line, 6);
    assert!(message.contains("looks like a Google client secret"), "{message}");
    // One with a space too (found by the catalog fuzz target) is not quoted by the space check.
    let (_, _, message) = problem(
        "servers:\n  g:\n    remote: {url: https://g.example.com/mcp}\n    oauth:\n      providers:\n        - registration: {client_id: GOCSPX-abc 1234}\n",
    );
    assert!(message.contains("looks like a Google client secret") && !message.contains("GOCSPX-abc"), "{message}");
}

#[test]
fn each_problem_of_a_file_is_reported_with_its_line() {
    let found = problems(&fixture("many-problems.yaml"));
    let summary: Vec<(u64, &str)> = found
        .iter()
        .map(|(line, _, message)| {
            let key = [
                "has both `remote` and `image`",
                "is not https",
                "is already declared on line 11",
                "is already set on line 10",
                "is not declared under `secrets:`",
                "says neither `image`",
            ]
            .into_iter()
            .find(|key| message.contains(key))
            .unwrap_or_else(|| panic!("unexpected problem on line {line}: {message}"));
            (*line, key)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (4, "has both `remote` and `image`"),
            (7, "is not https"),
            (12, "is already declared on line 11"),
            (16, "is not declared under `secrets:`"),
            (17, "says neither `image`"),
        ],
        "{found:#?}"
    );
}

/// The notices of `yaml`, which must have no problem, as `(line, column, message)`.
fn notices(yaml: &str) -> Vec<(u64, u64, String)> {
    let parsed = parse::parse(&source(), yaml);
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    parsed.notices.into_iter().map(|notice| (notice.line, notice.column, notice.message)).collect()
}

#[test]
fn unknown_keys_of_an_entry_or_the_file_are_notices_as_docker_ignores_them() {
    let found = notices("version: 3\nlabels: [a]\nservers:\n  s:\n    image: x\n    imagee: y\n    featured: true\n");
    assert_eq!(found.len(), 3, "{found:#?}");
    // `version` (Docker's catalog format version) is known; `labels` is not.
    assert_eq!((found[0].0, found[0].1), (2, 1));
    assert!(found[0].2.starts_with("`labels` is not a field of the top level of a catalog"), "{found:#?}");
    let imagee = found.iter().find(|(line, ..)| *line == 6).unwrap();
    assert_eq!(imagee.1, 5);
    assert!(imagee.2.starts_with("`imagee` is not a field of a server entry"), "{}", imagee.2);
    assert!(imagee.2.contains("did you mean `image`?"), "{}", imagee.2);
    let featured = found.iter().find(|(line, ..)| *line == 7).unwrap();
    assert!(featured.2.contains("the fields are `name`, `title`"), "an unlike key lists the fields: {}", featured.2);
}

#[test]
fn misspelt_keys_where_spelling_matters_are_problems_with_a_suggestion_each() {
    let found = problems(
        "servers:\n  s:\n    remote: {url: https://s.example.com/mcp, header: {X-A: b}}\n    secrets:\n      - {name: s.key, evn: KEY}\n    oauth:\n      scope: [a]\n      providers:\n        - server_metadata:\n            issuer: https://a.example.com\n            authorization_endpoint: https://a.example.com/a\n            token_endpoint: https://a.example.com/t\n            token_endpont: https://a.example.com/t\nregistrations:\n  s: {clientid: abc}\n",
    );
    let found: Vec<(u64, &str)> = found.iter().map(|(line, _, message)| (*line, message.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "unknown field `header` in `remote`; did you mean `headers`?"),
            (5, "unknown field `evn` in a secret; did you mean `env`?"),
            (7, "unknown field `scope` in `oauth`; did you mean `scopes`?"),
            (15, "unknown field `clientid` in a registration; did you mean `client_id`?"),
        ]
    );
}

#[test]
fn docker_remote_catalogs_load_with_their_older_oauth_shape_and_tool_containers() {
    let parsed = parse::parse(&source(), &fixture("docker-remote.yaml"));
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    let names: Vec<&str> = parsed.servers.iter().map(|server| server.name.as_str()).collect();
    assert_eq!(names, ["notion-remote", "stripe-remote", "curl"]);
    // `oauth: {enabled: true, provider: …}`: sign in through the discovered authorization server.
    let notion = &parsed.servers[0];
    assert!(matches!(&notion.kind, Kind::Remote { remote } if *remote.transport == Transport::StreamableHttp));
    assert!(notion.oauth.as_ref().is_some_and(|oauth| oauth.providers.is_empty()));
    assert!(matches!(notion.bindings()[0].entry, BindingEntry::Discovery));
    // `enabled: false`: no OAuth; the header carries the secret.
    let stripe = &parsed.servers[1];
    assert!(stripe.oauth.is_none());
    assert_eq!(stripe.secret("stripe-remote.secret_key").unwrap().example.as_deref(), Some("sk_test_123"));
    // A tool-container entry is listed, and refused when started.
    let curl = &parsed.servers[2];
    assert!(matches!(&curl.kind, Kind::Poci { tools } if tools == &["curl"]));
    assert!(curl.kind.refusal("curl").unwrap().contains("latchkey runs MCP servers, not per-tool containers"));
    // Only the key neither Docker nor latchkey knows is mentioned.
    let notices: Vec<(u64, &str)> = parsed.notices.iter().map(|notice| (notice.line, notice.message.as_str())).collect();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].0, 41);
    assert!(notices[0].1.starts_with("`featured` is not a field of a server entry"), "{notices:#?}");
}

#[test]
fn the_older_oauth_shape_cannot_contradict_itself() {
    let found = problems(
        "servers:\n  a:\n    remote: {url: https://a.example.com/mcp}\n    oauth: {enabled: false, providers: [{provider: google}]}\n  b:\n    remote: {url: https://b.example.com/mcp}\n    oauth: {provider: b, providers: [{provider: google}]}\n",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].2.contains("`enabled: false` but lists `providers`"), "{found:#?}");
    assert!(found[1].2.contains("`oauth.provider` (Docker's older shape) and `oauth.providers` are both set"), "{found:#?}");
}

#[test]
fn docker_config_schemas_are_read_and_placeholders_checked() {
    let parsed = parse::parse(&source(), &fixture("docker-config.yaml"));
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    let server = &parsed.servers[0];
    assert!(server.ignored.is_empty(), "`config` is no longer ignored: {:?}", server.ignored);
    assert_eq!(server.config[0].name.as_str(), "my-mcp");
    assert_eq!(server.config[0].properties.keys().collect::<Vec<_>>(), ["level", "mode", "paths", "port"]);
    assert!(server.config[0].is_required("mode"));
    // `{{my-mcp.region}}` names nothing declared: empty, as in Docker, with a notice.
    assert_eq!(parsed.notices.len(), 1, "{:#?}", parsed.notices);
    assert_eq!(parsed.notices[0].line, 21);
    assert!(parsed.notices[0].message.contains("`{{my-mcp.region}}` names no setting declared under `config:`"), "{:#?}", parsed.notices);

    let (line, _, message) = problem(
        "servers:\n  s:\n    command: [s]\n    config:\n      - name: s\n        properties: {a: {type: string}}\n        required: [b]\n",
    );
    assert_eq!(line, 7);
    assert!(message.contains("required setting `b` is not among the `properties` of config `s`"), "{message}");
}

#[test]
fn settings_fill_placeholders_from_values_defaults_and_fallbacks() {
    let server = servers(&fixture("docker-config.yaml")).remove(0);
    let mut values = config::Values::new();
    let error = config::resolve(&server, &values).unwrap_err();
    assert_eq!(error, "it needs a value for its required setting `my-mcp.mode`: run `latchkey config set my-mcp.mode fast|safe`");
    values.insert("my-mcp.mode".into(), serde_json::json!("safe"));
    values.insert("my-mcp.paths".into(), serde_json::json!(["/a", "/b c"]));
    let resolved = config::resolve(&server, &values).unwrap();
    let env: Vec<(&str, &str)> = resolved.env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    assert_eq!(env, [("MODE", "safe"), ("LEVEL", "info"), ("REGION", "")]);
    // The default port; a list-valued argument becomes one argument per item.
    assert_eq!(resolved.command, ["--transport=stdio", "--port=8080", "/a", "/b c"]);
    values.insert("my-mcp.level".into(), serde_json::json!("debug"));
    values.insert("my-mcp.port".into(), serde_json::json!(9000));
    let resolved = config::resolve(&server, &values).unwrap();
    assert_eq!(resolved.env[1].1, "debug");
    assert_eq!(resolved.command[1], "--port=9000");
}

#[test]
fn missing_fields_are_named() {
    let (line, _, message) = problem("servers:\n  s:\n    command: [s]\n    secrets:\n      - {env: TOKEN}\n");
    assert_eq!(line, 5);
    assert!(message.contains("missing field `name`"), "{message}");
    let (line, _, message) = problem(
        "servers:\n  s:\n    remote: {url: https://s.example.com/mcp}\n    oauth:\n      providers:\n        - server_metadata: {issuer: https://a.example.com, token_endpoint: https://a.example.com/t}\n",
    );
    assert_eq!(line, 6);
    assert!(message.contains("missing field `authorization_endpoint`"), "{message}");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let (line, column, message) = problem("servers:\n  s:\n    image: \"unterminated\n");
    assert_eq!((line, column), (3, 12));
    assert!(message.contains("quote"), "{message}");
    let (line, _, _) = problem("servers:\n  s:\n    image: x\n   bad: indent\n");
    assert_eq!(line, 4);
    let (line, column, message) = problem("servers:\n  s: {image: x}\n  s: {image: y}\n");
    assert_eq!((line, column), (3, 3));
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn server_metadata_takes_every_registered_name_and_keeps_others_with_a_notice() {
    let yaml = "servers:\n  s:\n    remote: {url: https://s.example.com/mcp}\n    oauth:\n      providers:\n        - server_metadata:\n            issuer: https://a.example.com\n            authorization_endpoint: https://a.example.com/a\n            token_endpoint: https://a.example.com/t\n            device_authorization_endpoint: https://a.example.com/device\n            jwks_uri: https://a.example.com/jwks\n            mtls_endpoint_aliases: {token_endpoint: https://mtls.a.example.com/t}\n            require_pushed_authorization_requests: true\n            token_endpont: https://a.example.com/t\n";
    let found = notices(yaml);
    assert_eq!(found.len(), 1, "only the unregistered name: {found:#?}");
    assert_eq!(found[0].0, 14);
    assert!(found[0].2.contains("`token_endpont` is not a name of the authorization server metadata registry"), "{found:#?}");
    assert!(found[0].2.contains("did you mean `token_endpoint`?"), "{found:#?}");
    let servers = servers(yaml);
    let Kind::Remote { .. } = &servers[0].kind else { panic!("a remote server") };
    let metadata = servers[0].oauth.as_ref().unwrap().providers[0].server_metadata.as_ref().unwrap();
    assert_eq!(metadata.token_endpoint.as_str(), "https://a.example.com/t");
    assert_eq!(metadata.token_endpoint.line(), 9, "values keep their positions");
    assert_eq!(
        metadata.device_authorization_endpoint.as_ref().map(|url| url.as_str()),
        Some("https://a.example.com/device"),
        "used, so typed"
    );
    let kept: Vec<&str> = metadata.other.keys().map(String::as_str).collect();
    assert_eq!(kept, ["jwks_uri", "mtls_endpoint_aliases", "require_pushed_authorization_requests", "token_endpont"]);
    assert_eq!(metadata.other["mtls_endpoint_aliases"]["token_endpoint"], "https://mtls.a.example.com/t");
    assert_eq!(metadata.other["require_pushed_authorization_requests"], true);
}

#[test]
fn endpoints_must_be_https_except_on_loopback() {
    let yaml = |token: &str| {
        format!(
            "servers:\n  s:\n    remote: {{url: https://s.example.com/mcp}}\n    oauth:\n      providers:\n        - server_metadata:\n            issuer: https://a.example.com\n            authorization_endpoint: https://a.example.com/a\n            token_endpoint: {token}\n"
        )
    };
    let (line, column, message) = problem(&yaml("http://a.example.com/token"));
    assert_eq!((line, column), (9, 29));
    assert!(message.starts_with("token_endpoint: `http://a.example.com/token` is not https"), "{message}");
    assert!(problems(&yaml("http://127.0.0.1:9000/token")).is_empty());
    let (_, _, message) = problem(&yaml("https://user:pw@a.example.com/token"));
    assert!(message.contains("user name or password") && !message.contains("pw@"), "{message}");
}

#[test]
fn the_provider_secret_must_be_declared_and_reach_a_local_server() {
    let (line, column, message) = problem(
        "servers:\n  s:\n    remote: {url: https://s.example.com/mcp}\n    oauth:\n      providers:\n        - {provider: standard, secret: s.token}\n",
    );
    assert_eq!((line, column), (6, 40));
    assert!(message.contains("provider secret `s.token` is not declared under `secrets:`; add `- {name: s.token}`"), "{message}");

    let (line, _, message) = problem(
        "servers:\n  s:\n    command: [s]\n    secrets: [{name: s.token}]\n    oauth:\n      providers:\n        - {provider: standard, secret: s.token}\n",
    );
    assert_eq!(line, 7);
    assert!(message.contains("has no `env`, so the command server never sees it"), "{message}");

    let (line, _, message) = problem("servers:\n  s:\n    command: [s]\n    oauth:\n      providers:\n        - {provider: standard}\n");
    assert_eq!(line, 6);
    assert!(message.contains("needs `secret:`"), "{message}");

    let (line, _, message) = problem("servers:\n  s:\n    command: [s]\n    oauth: {scopes: [a]}\n");
    assert_eq!(line, 4);
    assert!(message.contains("only a remote server can discover"), "{message}");
}

#[test]
fn remote_headers_are_http_and_name_only_declared_variables() {
    let entry = |headers: &str| {
        format!(
            "servers:\n  s:\n    remote:\n      url: https://s.example.com/mcp\n      headers:\n{headers}    env: [{{name: TEAM, value: blue}}]\n\
             \x20   secrets:\n      - {{name: s.key, env: API_KEY}}\n      - {{name: s.client_secret}}\n"
        )
    };
    let servers = servers(&entry("        X-Api-Key: \"key-${API_KEY}\"\n        X-Team: $TEAM-$$1\n"));
    let Kind::Remote { remote } = &servers[0].kind else { panic!("not remote") };
    assert_eq!(remote.headers["X-Api-Key"].as_str(), "key-${API_KEY}", "kept as written, expanded when the server starts");

    let found = problems(&entry(
        "        X-Fine: ok\n        X Team: blue\n        X-Line: \"a\\nb\"\n        X-Cost: 5$\n        X-Other: $OTHER\n        Accept: text/plain\n",
    ));
    let mut summary: Vec<(u64, &str)> = found
        .iter()
        .map(|(line, _, message)| {
            let key = [
                "is not an HTTP header name",
                "line break",
                "starts no variable",
                "uses $OTHER, which `s` does not declare",
                "MCP transport",
            ]
            .into_iter()
            .find(|key| message.contains(key))
            .unwrap_or_else(|| panic!("unexpected problem on line {line}: {message}"));
            (*line, key)
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        [
            (7, "is not an HTTP header name"),
            (8, "line break"),
            (9, "starts no variable"),
            (10, "uses $OTHER, which `s` does not declare"),
            (11, "MCP transport"),
        ],
        "each problem on its header's line: {found:#?}"
    );
    let (line, _, message) = problem(&entry("        X-Team: a\n        x-team: b\n"));
    assert_eq!(line, 7);
    assert!(message.contains("header `x-team` is also set as `X-Team`"), "{message}");
    // A secret without `env` (a client secret) is no variable a header can name.
    let (_, _, message) = problem(&entry("        X-Secret: $CLIENT_SECRET\n"));
    assert!(message.contains("header `X-Secret` uses $CLIENT_SECRET") && message.contains("env: CLIENT_SECRET"), "{message}");
}

#[test]
fn the_deprecated_sse_transport_is_refused_with_what_to_do() {
    let (line, _, message) = problem("servers:\n  old:\n    remote:\n      url: https://s.example.com/sse\n      transport_type: sse\n");
    assert_eq!(line, 5);
    assert!(message.contains("`old` uses `transport_type: sse`") && message.contains("remove `transport_type`"), "{message}");
    for streamable in ["http", "streamable", "streaming", "streamable-http"] {
        let servers = servers(&format!("servers:\n  s:\n    remote: {{url: https://s.example.com/mcp, transport_type: {streamable}}}\n"));
        assert!(matches!(&servers[0].kind, Kind::Remote { remote } if *remote.transport == Transport::StreamableHttp));
    }
}

#[test]
fn duplicate_secrets_and_variables_are_refused() {
    let (line, _, message) = problem("servers:\n  s:\n    command: [s]\n    secrets:\n      - {name: s.a}\n      - {name: s.a}\n");
    assert_eq!(line, 6);
    assert_eq!(message, "secret `s.a` is already declared on line 5; declare it once");
    let (line, _, message) =
        problem("servers:\n  s:\n    command: [s]\n    env: [{name: TOKEN, value: x}]\n    secrets:\n      - {name: s.a, env: TOKEN}\n");
    assert_eq!(line, 6);
    assert!(message.contains("`TOKEN` is already set on line 4"), "{message}");
}

#[test]
fn container_limits_belong_to_images_and_never_share_the_host_network() {
    let (line, _, message) = problem("servers:\n  s:\n    command: [s]\n    memory: 1g\n");
    assert_eq!(line, 4);
    assert!(message.contains("`memory` applies to containers"), "{message}");
    let (line, _, message) = problem("servers:\n  s:\n    image: s\n    network: host\n");
    assert_eq!(line, 4);
    assert!(message.contains("use `bridge`"), "{message}");
    let (_, _, message) = problem("servers:\n  s:\n    image: s\n    cpus: -1\n");
    assert!(message.contains("positive"), "{message}");
}

#[test]
fn docker_type_must_match_the_entry() {
    let (line, _, message) = problem("servers:\n  s:\n    type: remote\n    image: s\n");
    assert_eq!(line, 3);
    assert!(message.contains("does not match the entry, which is `server`"), "{message}");
    let (_, _, message) = problem("servers:\n  s:\n    type: sever\n    image: s\n");
    assert!(message.contains("`type: sever` is not one of `server`, `remote` or `poci`"), "{message}");
}

#[test]
fn a_server_in_both_maps_or_with_a_bad_name_is_refused() {
    let (line, _, message) = problem("servers:\n  s: {image: x}\nregistry:\n  s: {image: y}\n");
    assert_eq!(line, 4);
    assert!(message.contains("also defined on line 2"), "{message}");
    let (line, _, message) = problem("servers:\n  my.server: {image: x}\n");
    assert_eq!(line, 2);
    assert!(message.contains("server name `my.server`"), "{message}");
    let (line, _, message) = problem("servers:\n  team: {image: x}\n  team__notes: {image: y}\n");
    assert_eq!(line, 3);
    assert!(message.contains("server name `team__notes` contains `__`") && message.contains("`team-notes`"), "{message}");
}

#[test]
fn an_empty_file_is_an_empty_catalog() {
    assert!(servers("").is_empty());
    assert!(servers("# nothing yet\n").is_empty());
    assert!(servers("servers:\n").is_empty());
}

#[test]
fn json_shows_values_without_positions() {
    let servers = servers(&fixture("good.yaml"));
    let json = serde_json::to_value(&servers[0]).unwrap();
    assert_eq!(json["kind"], "image");
    assert_eq!(json["image"], "example/files-mcp:1.0");
    assert_eq!(json["network"], "bridge");
    assert_eq!(json["secrets"][0]["name"], "files.token");
    assert_eq!(json["oauth"]["providers"][0]["server_metadata"]["token_endpoint"], "https://auth.example.com/token");
    assert_eq!(json["source"], "test.yaml");
    let remote = serde_json::to_value(&servers[2]).unwrap();
    assert_eq!(remote["remote"]["transport_type"], "http");
}

/// A LATCHKEY_HOME-style folder with user catalogs.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(files: &[(&str, &str)]) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let catalogs = dir.path().join("catalogs");
        std::fs::create_dir(&catalogs).unwrap();
        for (name, text) in files {
            std::fs::write(catalogs.join(name), text).unwrap();
        }
        Home { dir }
    }

    fn paths(&self) -> Paths {
        Paths::under(self.dir.path().to_path_buf())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join("catalogs").join(name)
    }
}

#[test]
fn user_catalogs_replace_entries_by_name_in_file_order() {
    let home = Home::new(&[
        ("b.yaml", "servers:\n  slack:\n    remote: {url: https://slack.example.com/mcp}\n"),
        ("a.yml", "servers:\n  slack:\n    command: [first]\n  extra:\n    command: [extra]\n"),
        (".hidden.yaml", "servers: {broken"),
        ("notes.txt", "not a catalog"),
    ]);
    let catalog = Catalog::load(&home.paths()).unwrap_or_else(|error| panic!("{error}"));
    let slack = catalog.server("slack").unwrap();
    assert_eq!(slack.source, Source::File(home.file("b.yaml")));
    assert!(matches!(&slack.kind, Kind::Remote { .. }));
    assert!(catalog.server("extra").is_ok());
    assert!(catalog.server("gmail").is_ok(), "the built-in servers stay");
    let built_in_line = DEFAULT_CATALOG.lines().position(|line| line == "  slack:").unwrap() + 1;
    assert_eq!(
        catalog.notices(),
        [
            format!("`slack` from {}:2 replaces the entry from built-in catalog:{built_in_line}", home.file("a.yml").display()),
            format!("`slack` from {}:2 replaces the entry from {}:2", home.file("b.yaml").display(), home.file("a.yml").display()),
        ]
    );
}

#[test]
fn registrations_give_a_defined_server_its_client_id() {
    let home = Home::new(&[(
        "clients.yaml",
        "registrations:\n  gmail: {client_id: 1234.apps.googleusercontent.com}\n  slack:\n    client_id: \"123.456\"\n    provider: slack\n",
    )]);
    let catalog = Catalog::load(&home.paths()).unwrap_or_else(|error| panic!("{error}"));
    for (server, id) in [("gmail", "1234.apps.googleusercontent.com"), ("slack", "123.456")] {
        let provider = &catalog.server(server).unwrap().oauth.as_ref().unwrap().providers[0];
        assert_eq!(provider.registration.as_ref().unwrap().client_id.as_str(), id);
    }
    assert!(catalog.server("google-drive").unwrap().oauth.as_ref().unwrap().providers[0].registration.is_none());
    assert!(catalog.notices().is_empty(), "{:?}", catalog.notices());
}

#[test]
fn registrations_that_cannot_apply_are_problems() {
    let home = Home::new(&[
        (
            "a.yaml",
            "servers:\n  two:\n    remote: {url: https://two.example.com/mcp}\n    oauth:\n      providers: [{provider: one}, {provider: two}]\n",
        ),
        (
            "b.yaml",
            "registrations:\n  gmial: {client_id: x}\n  two: {client_id: y}\n  local: {client_id: z}\nservers:\n  local: {command: [l]}\n",
        ),
    ]);
    let error = Catalog::load(&home.paths()).unwrap_err();
    let messages: Vec<(u64, String)> = error.problems.iter().map(|problem| (problem.line, problem.message.clone())).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[0].0, 2);
    assert!(messages[0].1.starts_with("registration for unknown server `gmial`; known servers: "), "{}", messages[0].1);
    assert!(messages[0].1.contains("gmail"));
    assert_eq!(messages[1], (3, "server `two` has 2 providers; say which with `provider:` (one of one, two)".to_string()));
    assert_eq!(messages[2], (4, "server `local` has no `oauth.providers` to register a client id for".to_string()));
    assert!(error.problems.iter().all(|problem| problem.source == Source::File(home.file("b.yaml"))));
    let text = error.to_string();
    assert!(text.starts_with("the catalog has 3 problems:\n  "), "{text}");
    assert!(text.contains(&format!("{}:2:3: registration for unknown server", home.file("b.yaml").display())), "{text}");
}

#[test]
fn a_later_registration_replaces_a_client_id_with_a_notice() {
    let home = Home::new(&[
        (
            "a.yaml",
            "servers:\n  s:\n    remote: {url: https://s.example.com/mcp}\n    oauth:\n      providers:\n        - registration: {client_id: old}\n",
        ),
        ("b.yaml", "registrations:\n  s: {client_id: new}\n"),
    ]);
    let catalog = Catalog::load(&home.paths()).unwrap();
    let provider = &catalog.server("s").unwrap().oauth.as_ref().unwrap().providers[0];
    assert_eq!(provider.registration.as_ref().unwrap().client_id.as_str(), "new");
    assert_eq!(catalog.notices(), [format!("{}:2: the client id of `s` replaces the one in its entry", home.file("b.yaml").display())]);
}

#[test]
fn check_of_one_file_reports_only_that_file() {
    let home = Home::new(&[("broken.yaml", "servers:\n  x: {}\n"), ("ok.yaml", "servers:\n  ok: {command: [ok]}\n")]);
    let outside = home.dir.path().join("candidate.yaml");
    std::fs::write(&outside, "servers:\n  candidate:\n    remote: {url: http://example.com/mcp}\n").unwrap();
    let report = check(&home.paths(), Some(&outside));
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].source, Source::File(outside.clone()));
    assert_eq!(report.problems[0].line, 3);
    assert_eq!(report.sources.last(), Some(&Source::File(outside)));

    // A file that is already a user catalog is read once, under its catalog name.
    let report = check(&home.paths(), Some(&home.dir.path().join("catalogs/../catalogs/broken.yaml")));
    assert_eq!(report.sources.len(), 3);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].source, Source::File(home.file("broken.yaml")));

    let everything = check(&home.paths(), None);
    assert_eq!(everything.problems.len(), 1);
    assert!(everything.catalog.server("ok").is_ok(), "valid servers load next to a broken one");
}

#[test]
fn unknown_servers_list_the_known_ones() {
    let home = Home::new(&[]);
    let catalog = Catalog::load(&home.paths()).unwrap();
    let error = catalog.server("gmial").unwrap_err().to_string();
    assert!(
        error.starts_with("unknown server `gmial`; known servers: gmail, google-calendar, google-drive, microsoft-365, slack."),
        "{error}"
    );
    assert!(error.contains(&home.dir.path().join("catalogs").display().to_string()), "{error}");
}

#[test]
fn an_unreadable_catalog_is_a_problem_for_that_file() {
    let home = Home::new(&[]);
    std::fs::write(home.file("binary.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let error = Catalog::load(&home.paths()).unwrap_err();
    assert_eq!(error.problems.len(), 1);
    assert_eq!(error.problems[0].line, 0);
    assert!(error.problems[0].to_string().starts_with(&format!("{}: cannot read the file", home.file("binary.yaml").display())));
}

#[test]
fn inherit_env_names_variables_for_a_local_process() {
    let parsed = servers("servers:\n  files:\n    command: [files-mcp]\n    inherit_env: [HTTPS_PROXY, NO_PROXY]\n");
    assert!(matches!(&parsed[0].kind, Kind::Command { inherit_env, .. } if inherit_env == &["HTTPS_PROXY", "NO_PROXY"]));

    let (line, _, message) = problem("servers:\n  files:\n    command: [files-mcp]\n    inherit_env: [HTTPS_PROXY, 1BAD]\n");
    assert_eq!(line, 4);
    assert!(message.contains("`1BAD` is not an environment variable name"), "{message}");
    let (line, _, message) = problem("servers:\n  boxed:\n    image: files\n    inherit_env: [HTTPS_PROXY]\n");
    assert_eq!(line, 4);
    assert!(message.contains("`inherit_env` applies to local processes (`command`) only"), "{message}");
}

/// A local server `mail` whose token comes from one provider entry, with `oauth` lines (each
/// indented under `oauth:`) and `provider` lines (under the provider entry); the entry's first
/// provider line is line 10.
fn oauth_entry(oauth: &str, provider: &str) -> String {
    format!(
        "servers:\n  mail:\n    command: [mail]\n    secrets:\n      - {{name: mail.token, env: TOKEN}}\n    oauth:\n{oauth}\
         \x20     providers:\n        - provider: google\n          secret: mail.token\n{provider}"
    )
}

#[test]
fn a_provider_entry_names_its_grant_and_an_unknown_one_lists_the_known() {
    let entry = |grant: &str| oauth_entry("", &format!("          registration: {{client_id: svc}}\n          grant: {grant}\n"));
    let servers = servers(&entry("client_credentials"));
    assert_eq!(servers[0].oauth.as_ref().unwrap().providers[0].grant, Some(CatalogGrant::ClientCredentials));
    let (line, _, message) = problem(&entry("password"));
    assert_eq!(line, 11);
    assert!(message.contains("password") && message.contains("authorization_code") && message.contains("client_credentials"), "{message}");
}

#[test]
fn an_entry_names_the_account_it_uses_and_a_bad_name_is_a_problem() {
    let entry = |account: &str| oauth_entry(&format!("      account: \"{account}\"\n"), "");
    let servers = servers(&entry("work"));
    assert_eq!(servers[0].account.as_deref(), Some("work"));
    assert_eq!(servers[0].served_name(servers[0].account.as_deref()), "mail-work");
    assert_eq!(servers[0].bindings()[0].account.as_deref(), Some("work"), "its credential is the account's");
    let (line, _, message) = problem(&entry("two words"));
    assert_eq!(line, 7);
    assert!(message.contains("`two words` is not a valid account name"), "{message}");
}

#[test]
fn a_provider_entry_maps_context_to_variables_of_its_own() {
    let entry = |context: &str| oauth_entry("", &format!("          context: {{{context}}}\n"));
    let servers = servers(&entry("CLOUD_ID: cloud_id, SITE: site_url"));
    let context = &servers[0].oauth.as_ref().unwrap().providers[0].context;
    assert_eq!(
        context.iter().map(|(variable, name)| (variable.as_str(), name.as_str())).collect::<Vec<_>>(),
        [("CLOUD_ID", "cloud_id"), ("SITE", "site_url")]
    );
    for (context, expected) in [
        ("1CLOUD: cloud_id", "context: `1CLOUD` is not an environment variable name"),
        ("CLOUD_ID: Cloud-Id", "context name `Cloud-Id` is not 1-64 characters of a-z, 0-9 and `_`"),
        ("TOKEN: cloud_id", "`TOKEN` already receives a secret; give the context its own variable"),
    ] {
        let (line, _, message) = problem(&entry(context));
        assert_eq!(line, 10, "{message}");
        assert!(message.contains(expected), "{context}: {message}");
    }
}
