//! `latchkey secret set | ls | rm` end to end, through the binary: values on standard input and
//! never in any output, the store choice and its fallback, concurrent processes, and writes that
//! fail or die half-way. The keyring cases run against a real gnome-keyring (see
//! `latchkey_tests::keyring`).

use std::fs;

use latchkey::store::{ExposeSecret, Store, StoreKind};
use latchkey_tests::{Home, Run, files_containing, keyring, latchkey_bin};

const FILE: &[(&str, &str)] = &[("LATCHKEY_STORE", "file")];

fn stored(home: &Home, name: &str) -> Option<String> {
    let store = Store::open_kind(&home.paths(), Some(StoreKind::File)).unwrap();
    store.get_secret(name).unwrap().map(|value| value.expose_secret().to_string())
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[test]
fn set_ls_rm_through_stdin_never_show_the_value() {
    let home = Home::empty();
    let value = "s3cret-VALUE-41";

    let set = home.run(&["secret", "set", "gmail.client_secret"], FILE, format!("{value}\n").as_bytes());
    assert_ok(&set);
    let file = home.path().join("secrets.json");
    assert_eq!(set.stdout.trim(), format!("Stored secret gmail.client_secret in the file {}.", file.display()));
    assert!(set.stderr.is_empty(), "{set:#?}");
    // The newline that `echo` adds is not part of the value.
    assert_eq!(stored(&home, "gmail.client_secret").as_deref(), Some(value));

    let set = home.run(&["secret", "set", "slack.client_secret"], FILE, b"other-VALUE-42");
    assert_ok(&set);

    let ls = home.run(&["secret", "ls"], FILE, b"");
    assert_ok(&ls);
    let lines: Vec<&str> = ls.stdout.lines().map(str::trim).collect();
    assert_eq!(lines[..3], ["NAME", "gmail.client_secret", "slack.client_secret"], "{ls:#?}");
    assert_eq!(lines[3], format!("2 secrets in the file {}", file.display()));

    let json = home.run(&["secret", "ls", "--json"], FILE, b"");
    assert_ok(&json);
    let json = json.json();
    assert_eq!(json["store"]["kind"], "file");
    assert_eq!(json["secrets"], serde_json::json!(["gmail.client_secret", "slack.client_secret"]));

    let rm = home.run(&["secret", "rm", "gmail.client_secret"], FILE, b"");
    assert_ok(&rm);
    assert!(rm.stdout.starts_with("Removed secret gmail.client_secret from the file"), "{rm:#?}");
    let again = home.run(&["secret", "rm", "gmail.client_secret"], FILE, b"");
    assert_ok(&again);
    assert!(again.stdout.starts_with("There is no secret gmail.client_secret in the file"), "{again:#?}");
    assert_eq!(stored(&home, "gmail.client_secret"), None);
    assert_eq!(stored(&home, "slack.client_secret").as_deref(), Some("other-VALUE-42"));

    for run in [set, ls, rm, again] {
        assert!(!run.output().contains("VALUE"), "a value was printed: {run:#?}");
    }
}

#[test]
fn values_never_come_from_the_command_line_and_bad_input_is_refused() {
    let home = Home::empty();

    // There is no value argument.
    let run = home.run(&["secret", "set", "gmail.client_secret", "argv-VALUE"], FILE, b"");
    assert_eq!(run.code, Some(2), "{run:#?}");

    let run = home.run(&["secret", "set", "gmail/client secret"], FILE, b"v");
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("not a valid secret name"), "{run:#?}");

    for empty in [&b""[..], b"\n", b"\r\n"] {
        let run = home.run(&["secret", "set", "gmail.client_secret"], FILE, empty);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(run.stderr.contains("the value is empty"), "{run:#?}");
    }
    let run = home.run(&["secret", "set", "binary"], FILE, &[0xff, 0xfe]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("not UTF-8"), "{run:#?}");
    assert!(!home.path().join("secrets.json").exists(), "something was stored");

    let run = home.run(&["secret", "set", "x"], &[("LATCHKEY_STORE", "vault")], b"v");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("LATCHKEY_STORE=vault is not a store"), "{run:#?}");
}

/// No D-Bus session: the keyring is unreachable.
#[cfg(all(unix, not(target_os = "macos")))]
fn no_bus(home: &Home) -> String {
    format!("unix:path={}", home.path().join("no-bus").display())
}

#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn without_a_keyring_the_file_store_is_used_with_a_notice() {
    let home = Home::empty();
    let bus = no_bus(&home);
    let file = home.path().join("secrets.json");

    let run = home.run(&["secret", "set", "a"], &[("DBUS_SESSION_BUS_ADDRESS", &bus)], b"fallback-VALUE");
    assert_ok(&run);
    assert_eq!(run.stderr.lines().count(), 1, "the notice is one line: {run:#?}");
    let notice = &run.stderr;
    assert!(notice.starts_with("note: the OS keyring is not reachable"), "{notice}");
    assert!(notice.contains(&file.display().to_string()), "the notice names the file: {notice}");
    assert!(notice.contains("LATCHKEY_STORE=file") && notice.contains("LATCHKEY_STORE=keyring"), "{notice}");
    assert!(run.stdout.contains("in the file"), "{run:#?}");
    assert_eq!(stored(&home, "a").as_deref(), Some("fallback-VALUE"));

    // Chosen explicitly: no notice.
    let run = home.run(&["secret", "ls"], &[("DBUS_SESSION_BUS_ADDRESS", &bus), ("LATCHKEY_STORE", "file")], b"");
    assert_ok(&run);
    assert!(run.stderr.is_empty(), "{run:#?}");

    // The keyring asked for and not there: an error, no fallback.
    let run = home.run(&["secret", "set", "b"], &[("DBUS_SESSION_BUS_ADDRESS", &bus), ("LATCHKEY_STORE", "keyring")], b"v");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("not reachable") && run.stderr.contains("LATCHKEY_STORE=file"), "{run:#?}");
    assert_eq!(stored(&home, "b"), None);
}

#[test]
fn concurrent_processes_lose_nothing() {
    const PROCESSES: usize = 8;
    let home = Home::empty();
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            let mut command = home.command(&["secret", "set", &format!("p{n}")]);
            command.envs(FILE.iter().copied());
            std::thread::spawn(move || Run::piped(command, format!("value-{n}").as_bytes()))
        })
        .collect();
    for child in children {
        assert_ok(&child.join().unwrap());
    }
    let ls = home.run(&["secret", "ls", "--json"], FILE, b"");
    let names: Vec<String> = serde_json::from_value(ls.json()["secrets"].clone()).unwrap();
    assert_eq!(names, (0..PROCESSES).map(|n| format!("p{n}")).collect::<Vec<_>>());
    for n in 0..PROCESSES {
        assert_eq!(stored(&home, &format!("p{n}")), Some(format!("value-{n}")));
    }
}

/// `ulimit -f` makes the write of a large store fail half-way: with SIGXFSZ ignored the write
/// returns an error; otherwise the signal kills the process mid-write, like a crash.
#[cfg(target_os = "linux")]
#[test]
fn a_write_that_fails_or_dies_half_way_leaves_the_old_file() {
    use std::os::unix::process::ExitStatusExt;

    let home = Home::empty();
    assert_ok(&home.run(&["secret", "set", "kept"], FILE, b"old-VALUE"));
    let file = home.path().join("secrets.json");
    let before = fs::read(&file).unwrap();
    assert!(before.len() < 1024, "the first file must fit under the limit");
    let big = "x".repeat(64 * 1024);

    for (ignore_signal, label) in [(true, "error"), (false, "killed")] {
        let trap = if ignore_signal { "trap '' XFSZ; " } else { "" };
        let mut command = std::process::Command::new("sh");
        // dash counts `ulimit -f` in 512-byte blocks, bash in 1024: either way 2 blocks < 64 KiB.
        let script = format!("{trap}ulimit -f 2; exec \"$0\" secret set big");
        home.environment(command.arg("-c").arg(script).arg(latchkey_bin())).envs(FILE.iter().copied());
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), big.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if ignore_signal {
            assert_eq!(output.status.code(), Some(1), "{label}: {stderr}");
            assert!(stderr.contains("cannot write"), "{label}: {stderr}");
            let temporary: Vec<_> = fs::read_dir(home.path())
                .unwrap()
                .filter_map(|entry| {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    name.starts_with(".latchkey-").then_some(name)
                })
                .collect();
            assert!(temporary.is_empty(), "a failed write left {temporary:?}");
        } else {
            assert_eq!(output.status.signal(), Some(25), "{label}: expected death by SIGXFSZ, got {:?}: {stderr}", output.status);
        }
        assert_eq!(fs::read(&file).unwrap(), before, "{label}: the store file changed");
        assert_eq!(stored(&home, "kept").as_deref(), Some("old-VALUE"), "{label}");
        assert_eq!(stored(&home, "big"), None, "{label}");
    }
    // The store still takes writes.
    assert_ok(&home.run(&["secret", "set", "after"], FILE, b"new-VALUE"));
    assert_eq!(stored(&home, "kept").as_deref(), Some("old-VALUE"));
    assert_eq!(stored(&home, "after").as_deref(), Some("new-VALUE"));
}

#[test]
fn set_uses_the_keyring_when_it_is_reachable() {
    let home = Home::empty();
    if keyring::store(home.path()).is_none() {
        return;
    }
    let value = "keyring-cli-VALUE-43";
    let set = home.run(&["secret", "set", "gmail.client_secret"], &[], format!("{value}\n").as_bytes());
    assert_ok(&set);
    assert!(set.stderr.is_empty(), "no notice when the keyring is used: {set:#?}");
    assert!(set.stdout.contains("in the OS keyring (Secret Service)"), "{set:#?}");
    // Really in gnome-keyring, and in no file of latchkey's.
    assert_eq!(keyring::lookup(home.path(), "secret/gmail.client_secret").as_deref(), Some(value));
    assert_eq!(files_containing(home.path(), value), Vec::<std::path::PathBuf>::new());
    assert!(!home.path().join("secrets.json").exists());

    let ls = home.run(&["secret", "ls", "--json"], &[], b"");
    assert_ok(&ls);
    assert_eq!(ls.json()["store"]["kind"], "keyring");
    assert_eq!(ls.json()["secrets"], serde_json::json!(["gmail.client_secret"]));

    let rm = home.run(&["secret", "rm", "gmail.client_secret"], &[], b"");
    assert_ok(&rm);
    assert!(rm.stdout.starts_with("Removed secret gmail.client_secret from the OS keyring"), "{rm:#?}");
    assert_eq!(keyring::lookup(home.path(), "secret/gmail.client_secret"), None);
    for run in [set, ls, rm] {
        assert!(!run.output().contains("VALUE"), "a value was printed: {run:#?}");
    }
}

/// A locked keyring is an error that says how to unlock it, not a fallback; and the names index
/// stays true to what the keyring holds. Runs in a keyring session of its own, since it locks it.
#[test]
fn a_locked_keyring_is_a_clear_error_and_keeps_the_index_true() {
    let Some(script) = keyring::script() else {
        return;
    };
    let home = Home::empty();
    let steps = r#"
        lk="$LATCHKEY_BIN"
        printf kept-VALUE | "$lk" secret set kept >/dev/null || exit 90
        dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null || exit 91
        printf new-VALUE | "$lk" secret set added 2>"$LATCHKEY_HOME/added.err"; echo "added=$?"
        printf changed-VALUE | "$lk" secret set kept 2>/dev/null; echo "changed=$?"
        "$lk" secret ls --json >"$LATCHKEY_HOME/ls.json"; echo "ls=$?"
        # The advice for a machine without a desktop: restart the keyring unlocked.
        printf %s "$LATCHKEY_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --replace --unlock --components=secrets >/dev/null 2>&1
        tries=0
        until secret-tool lookup service "latchkey:$LATCHKEY_HOME" username secret/kept >"$LATCHKEY_HOME/kept.value" 2>/dev/null; do
            tries=$((tries + 1)); [ "$tries" -lt 100 ] || exit 92; sleep 0.1
        done
        echo unlocked
    "#;
    let mut command = std::process::Command::new(script);
    let output = home.environment(command.args(["sh", "-c", steps])).env("LATCHKEY_BIN", latchkey_bin()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("added=1") && stdout.contains("changed=1") && stdout.contains("ls=0"), "{stdout}");
    assert!(stdout.contains("unlocked"), "{stdout}");

    let error = fs::read_to_string(home.path().join("added.err")).unwrap();
    assert!(error.contains("locked"), "{error}");
    assert!(error.contains("gnome-keyring-daemon --replace --unlock"), "the error says how to unlock: {error}");
    assert!(error.contains("LATCHKEY_STORE=file"), "{error}");
    assert!(!error.contains("VALUE"), "{error}");
    // No silent fallback: nothing went to a file.
    assert!(!home.path().join("secrets.json").exists());
    // The failed new name was taken out of the index again; the old one is still listed.
    let ls: serde_json::Value = serde_json::from_slice(&fs::read(home.path().join("ls.json")).unwrap()).unwrap();
    assert_eq!(ls["secrets"], serde_json::json!(["kept"]));
    // The refused update changed nothing.
    assert_eq!(fs::read_to_string(home.path().join("kept.value")).unwrap(), "kept-VALUE");
}
