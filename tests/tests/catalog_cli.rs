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
