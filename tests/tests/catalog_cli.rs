//! `latchkey catalog …` as a user runs it: the built binary, a private LATCHKEY_HOME, real files.

use latchkey_tests::Home;

fn home_with(files: &[(&str, &str)]) -> Home {
    let home = Home::empty();
    std::fs::create_dir(home.path().join("catalogs")).unwrap();
    for (name, text) in files {
        std::fs::write(home.path().join("catalogs").join(name), text).unwrap();
    }
    home
}

#[test]
fn ls_shows_the_built_in_servers_and_user_client_ids() {
    let home = home_with(&[("clients.yaml", "registrations:\n  slack: {client_id: \"123.456\"}\n")]);
    let run = home.latchkey(&["catalog", "ls"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let text = &run.stdout;
    let row = |name: &str| {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("SERVER"), ["SERVER", "KIND", "OAUTH", "CLIENT", "ID", "SOURCE"]);
    assert_eq!(row("slack"), ["slack", "remote", "slack", "set", "built-in", "catalog"]);
    assert_eq!(row("gmail"), ["gmail", "remote", "google", "missing", "built-in", "catalog"]);
    assert_eq!(row("microsoft-365"), ["microsoft-365", "command", "microsoft", "missing", "built-in", "catalog"]);

    let json = home.latchkey(&["catalog", "ls", "--json"]).json();
    let slack = json["servers"].as_array().unwrap().iter().find(|server| server["name"] == "slack").unwrap();
    assert_eq!(slack["oauth"]["providers"][0]["registration"]["client_id"], "123.456");
    assert_eq!(slack["remote"]["url"], "https://mcp.slack.com/mcp");
}

#[test]
fn a_client_id_from_oauth_register_counts_as_set() {
    let home = home_with(&[]);
    let run = home.latchkey(&["oauth", "register", "gmail", "--client-id", "abc.apps.googleusercontent.com"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let ls = home.latchkey(&["catalog", "ls"]).stdout;
    let gmail = ls.lines().find(|line| line.split_whitespace().next() == Some("gmail")).unwrap_or_else(|| panic!("{ls}"));
    assert_eq!(gmail.split_whitespace().nth(3), Some("set"), "{ls}");
    let show = home.latchkey(&["catalog", "show", "gmail"]).stdout;
    assert!(show.contains("abc.apps.googleusercontent.com (from `latchkey oauth register`)"), "{show}");
    assert!(!show.contains("missing:"), "{show}");
}

#[test]
fn show_prints_one_server_and_unknown_names_list_the_known_ones() {
    let home = home_with(&[]);
    let run = home.latchkey(&["catalog", "show", "google-drive"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let text = &run.stdout;
    assert!(text.contains("https://drivemcp.googleapis.com/mcp/v1"), "{text}");
    assert!(text.contains("latchkey oauth register google-drive --client-id <id>"), "{text}");

    let json = home.latchkey(&["catalog", "show", "gmail", "--json"]).json();
    assert_eq!(json["name"], "gmail");
    assert_eq!(json["kind"], "remote");

    let run = home.latchkey(&["catalog", "show", "gmial"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("unknown server `gmial`; known servers: gmail, google-calendar"), "{}", run.stderr);
}

#[test]
fn validate_exits_3_with_every_problem_and_its_line() {
    let home = home_with(&[]);
    let run = home.latchkey(&["catalog", "validate"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.starts_with("ok: 1 catalog: 5 servers"), "{}", run.stdout);

    let file = home.path().join("candidate.yaml");
    std::fs::write(
        &file,
        "servers:\n  gmail:\n    remote: {url: https://gmailmcp.googleapis.com/mcp/v1}\n    oauth:\n      providers:\n        - registration: {client_id: abc, client_secret: shh}\n  web:\n    remote: {url: http://example.com/mcp}\n",
    )
    .unwrap();
    let run = home.latchkey(&["catalog", "validate", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let text = &run.stdout;
    assert!(text.contains(&format!("{}:6:42: `client_secret` does not belong in a catalog", file.display())), "{text}");
    assert!(text.contains("`latchkey secret set gmail.client_secret`"), "{text}");
    assert!(!text.contains("shh"), "the secret is never echoed: {text}");

    // Without the client secret, the next problem in the file shows.
    std::fs::write(&file, "servers:\n  web:\n    remote: {url: http://example.com/mcp}\n").unwrap();
    let run = home.latchkey(&["catalog", "validate", "--json", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(3));
    let json = run.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"][0]["line"], 3);
    assert!(json["problems"][0]["message"].as_str().unwrap().contains("is not https"));

    // An installed broken catalog makes `ls` fail with the same advice.
    std::fs::copy(&file, home.path().join("catalogs/web.yaml")).unwrap();
    let run = home.latchkey(&["catalog", "ls"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("web.yaml:3:19: `http://example.com/mcp` is not https"), "{}", run.stderr);
}

/// A catalog file written in the shapes of Docker's own catalogs (host/src/catalog/testdata).
fn docker_fixture(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/catalog/testdata").join(name)).unwrap()
}

#[test]
fn docker_catalogs_load_as_docker_loads_them_and_say_what_is_ignored() {
    let home = home_with(&[("docker-remote.yaml", &docker_fixture("docker-remote.yaml"))]);
    let run = home.latchkey(&["catalog", "validate"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("ok: 2 catalogs: 8 servers"), "{}", run.stdout);
    assert!(run.stderr.contains("docker-remote.yaml:41:5: `featured` is not a field of a server entry"), "{}", run.stderr);

    let ls = home.latchkey(&["catalog", "ls"]).stdout;
    let kind = |name: &str| {
        ls.lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(str::to_string)
    };
    assert_eq!(kind("notion-remote").as_deref(), Some("remote"), "{ls}");
    assert_eq!(kind("curl").as_deref(), Some("poci"), "{ls}");
    let show = home.latchkey(&["catalog", "show", "curl"]).stdout;
    assert!(show.contains("never: latchkey does not run Docker's per-tool containers"), "{show}");
    let show = home.latchkey(&["catalog", "show", "notion-remote"]).stdout;
    assert!(show.contains("discovered from the server (RFC 9728)"), "the older `oauth: {{enabled: true}}` means discovery: {show}");
}

#[test]
fn config_set_checks_values_against_the_entry_and_show_and_ls_present_them() {
    let home = home_with(&[("docker-config.yaml", &docker_fixture("docker-config.yaml"))]);
    let show = home.latchkey(&["catalog", "show", "my-mcp"]);
    assert!(show.stdout.contains("my-mcp.mode") && show.stdout.contains("missing"), "{show:#?}");
    assert!(
        show.stderr.contains("`my-mcp` does not start without `my-mcp.mode`: run `latchkey config set my-mcp.mode fast|safe`"),
        "{show:#?}"
    );

    for (args, expected) in [
        (&["config", "set", "my-mcp.mode", "quick"][..], "`my-mcp.mode` must be one of fast, safe; `quick` is not"),
        (&["config", "set", "my-mcp.mod", "fast"], "`my-mcp` has no setting `mod` (did you mean `mode`?)"),
        (&["config", "set", "my-mpc.mode", "fast"], "no catalog entry declares settings named `my-mpc` (did you mean `my-mcp`?)"),
        (&["config", "set", "my-mcp.port", "eighty"], "`my-mcp.port` is an integer, such as 8080; `eighty` is not"),
        (&["config", "set", "my-mcp.SECRET_KEY", "x"], "`my-mcp.SECRET_KEY` is a secret of server `my-mcp`, not a setting"),
    ] {
        let run = home.latchkey(args);
        assert_eq!(run.code, Some(1), "{args:?}: {run:#?}");
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    assert!(!home.path().join("config.json").exists(), "a refused value writes nothing");
    let run = home.run(&["secret", "set", "my-mcp.mode"], &[("LATCHKEY_STORE", "file")], b"fast\n");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("`my-mcp.mode` is a setting of server `my-mcp` (its `config:`), not a secret"), "{run:#?}");

    let run = home.latchkey(&["config", "set", "my-mcp.mode", "fast"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let run = home.run(&["config", "set", "my-mcp.paths"], &[], b"/data,/logs\n");
    assert_eq!(run.code, Some(0), "the value can come from standard input: {run:#?}");
    let json = home.latchkey(&["config", "ls", "--json"]).json();
    let setting = |name: &str| json["settings"].as_array().unwrap().iter().find(|row| row["setting"] == name).cloned().unwrap();
    assert_eq!(setting("my-mcp.mode")["value"], "fast");
    assert_eq!(setting("my-mcp.mode")["status"], "set");
    assert_eq!(setting("my-mcp.paths")["value"], serde_json::json!(["/data", "/logs"]));
    assert_eq!(setting("my-mcp.port")["status"], "default");
    assert_eq!(setting("my-mcp.level")["status"], "empty");
    let show = home.latchkey(&["catalog", "show", "my-mcp"]);
    assert!(!show.stderr.contains("does not start without"), "{show:#?}");

    assert_eq!(home.latchkey(&["config", "rm", "my-mcp.mode"]).code, Some(0));
    let ls = home.latchkey(&["config", "ls"]).stdout;
    assert!(ls.lines().any(|line| line.trim_start().starts_with("my-mcp.mode") && line.contains("missing (required)")), "{ls}");
}
