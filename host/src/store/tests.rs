//! The file store and the credential lock, on real files. The keyring store is tested against a
//! real gnome-keyring in `tests/tests/keyring_store.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::credential::tests::{REFRESH, assert_same, sample};
use super::*;

fn file_store(home: &tempfile::TempDir) -> Store {
    Store::open_kind(&Paths::under(home.path().to_path_buf()), Some(StoreKind::File)).unwrap()
}

/// The file behind a file store.
fn data_file(store: &Store) -> std::path::PathBuf {
    match &store.backend {
        Backend::File(file) => file.path().to_path_buf(),
        Backend::Keyring(_) => panic!("not a file store"),
    }
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_string())
}

fn reveal(value: Option<SecretString>) -> Option<String> {
    value.map(|value| value.expose_secret().to_string())
}

#[test]
fn secrets_round_trip_and_updates_keep_other_entries() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    assert_eq!(store.kind(), StoreKind::File);
    assert!(store.notice().is_none());
    assert_eq!(reveal(store.get_secret("gmail.client_secret").unwrap()), None);

    store.set_secret("gmail.client_secret", &secret("first")).unwrap();
    store.set_secret("slack.client_secret", &secret("other")).unwrap();
    store.set_secret("gmail.client_secret", &secret("second")).unwrap();

    // A second handle reads what the first wrote.
    let again = file_store(&home);
    assert_eq!(reveal(again.get_secret("gmail.client_secret").unwrap()).as_deref(), Some("second"));
    assert_eq!(reveal(again.get_secret("slack.client_secret").unwrap()).as_deref(), Some("other"));
    assert_eq!(again.secret_names().unwrap(), ["gmail.client_secret", "slack.client_secret"]);

    assert!(again.delete_secret("gmail.client_secret").unwrap());
    assert!(!again.delete_secret("gmail.client_secret").unwrap());
    assert_eq!(reveal(store.get_secret("slack.client_secret").unwrap()).as_deref(), Some("other"));
    assert_eq!(store.secret_names().unwrap(), ["slack.client_secret"]);
}

#[test]
fn a_handle_that_read_the_file_sees_what_another_wrote_since() {
    let home = tempfile::tempdir().unwrap();
    let (reader, writer) = (file_store(&home), file_store(&home));
    writer.set_secret("gmail.client_secret", &secret("first")).unwrap();
    assert_eq!(reveal(reader.get_secret("gmail.client_secret").unwrap()).as_deref(), Some("first"));
    // The same length, at once: the replaced file is told apart by more than its size and time.
    writer.set_secret("gmail.client_secret", &secret("again")).unwrap();
    assert_eq!(reveal(reader.get_secret("gmail.client_secret").unwrap()).as_deref(), Some("again"));
    writer.delete_secret("gmail.client_secret").unwrap();
    assert_eq!(reveal(reader.get_secret("gmail.client_secret").unwrap()), None);
    fs::remove_file(data_file(&writer)).unwrap();
    assert!(reader.secret_names().unwrap().is_empty());
}

#[test]
fn a_file_made_readable_by_others_is_refused_even_after_it_was_read() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    store.set_secret("gmail.client_secret", &secret("first")).unwrap();
    assert!(store.get_secret("gmail.client_secret").is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(data_file(&store), fs::Permissions::from_mode(0o644)).unwrap();
        let refused = store.get_secret("gmail.client_secret").unwrap_err().to_string();
        assert!(refused.contains("can be read by other users"), "{refused}");
    }
}

#[test]
fn credentials_saved_together_are_each_loaded_and_keep_the_others() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    store.set_secret("gmail.client_secret", &secret("kept")).unwrap();
    let credentials: Vec<Credential> =
        ["a", "b", "c"].iter().map(|server| sample(CredentialId::new(*server, "https://accounts.google.com", "client"))).collect();
    store.save_credentials(&credentials).unwrap();
    for credential in &credentials {
        assert_same(&store.load_credential(&credential.id).unwrap().unwrap(), credential);
    }
    assert_eq!(store.credential_ids().unwrap().len(), 3);
    assert_eq!(reveal(store.get_secret("gmail.client_secret").unwrap()).as_deref(), Some("kept"));
}

#[test]
fn bad_names_and_empty_values_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    for bad in ["", "a/b", "../x", "a b"] {
        assert!(store.set_secret(bad, &secret("v")).is_err(), "{bad:?} was accepted");
        assert!(store.get_secret(bad).is_err(), "{bad:?} was accepted");
    }
    let error = store.set_secret("empty", &secret("")).unwrap_err().to_string();
    assert!(error.contains("empty"), "{error}");
    assert!(!data_file(&store).exists(), "nothing should have been written");
}

#[cfg(unix)]
#[test]
fn the_file_and_its_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let store =
        Store::open_kind(&Paths { config_dir: config.clone(), cache_dir: home.path().join("cache") }, Some(StoreKind::File)).unwrap();
    store.set_secret("a", &secret("v")).unwrap();
    let mode = |path: &std::path::Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_file(&store)), 0o600);
    assert_eq!(mode(&config), 0o700);
    assert_eq!(mode(&config.join("locks")), 0o700);

    // A file others can read is refused, for reading and for writing.
    fs::set_permissions(data_file(&store), fs::Permissions::from_mode(0o644)).unwrap();
    let error = store.get_secret("a").unwrap_err().to_string();
    assert!(error.contains("chmod 600") && error.contains("0644"), "{error}");
    assert!(store.set_secret("b", &secret("v")).is_err());
}

#[test]
fn a_damaged_file_is_reported_and_never_overwritten() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    store.set_secret("a", &secret("precious-VALUE")).unwrap();
    let mut damaged = fs::read(data_file(&store)).unwrap();
    damaged.truncate(damaged.len() / 2);
    fs::write(data_file(&store), &damaged).unwrap();

    let error = format!("{:#}", store.set_secret("b", &secret("v")).unwrap_err());
    assert!(error.contains("damaged") && error.contains("line"), "{error}");
    assert!(!error.contains("precious-VALUE"), "the error repeats a secret: {error}");
    assert_eq!(fs::read(data_file(&store)).unwrap(), damaged, "the damaged file was changed");
}

#[test]
fn a_file_from_a_newer_layout_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    store.set_secret("a", &secret("v")).unwrap();
    let newer = fs::read_to_string(data_file(&store)).unwrap().replace("\"version\": 1", "\"version\": 2");
    fs::write(data_file(&store), newer).unwrap();
    let error = store.secret_names().unwrap_err().to_string();
    assert!(error.contains("layout version 2"), "{error}");
}

#[test]
fn credentials_of_different_servers_issuers_and_clients_stay_apart() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    let ids = [
        CredentialId::new("gmail", "https://accounts.google.com", "1234.apps"),
        CredentialId::new("gmail", "https://accounts.google.com/", "1234.apps"),
        CredentialId::new("gmail", "https://accounts.google.com", "5678.apps"),
        CredentialId::new("calendar", "https://accounts.google.com", "1234.apps"),
        CredentialId::new("a/b", "c", "d"),
        CredentialId::new("a", "b/c", "d"),
    ];
    for (n, id) in ids.iter().enumerate() {
        let mut credential = sample(id.clone());
        credential.provider = format!("provider-{n}");
        store.save_credential(&credential).unwrap();
    }
    // A secret with a name like a credential's parts is a different thing again.
    store.set_secret("gmail", &secret("not-a-token")).unwrap();

    for (n, id) in ids.iter().enumerate() {
        let loaded = store.load_credential(id).unwrap().unwrap_or_else(|| panic!("{id} is missing"));
        let mut expected = sample(id.clone());
        expected.provider = format!("provider-{n}");
        assert_same(&loaded, &expected);
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    assert_eq!(store.credential_ids().unwrap(), sorted);
    assert_eq!(store.secret_names().unwrap(), ["gmail"]);

    assert!(store.delete_credential(&ids[1]).unwrap());
    assert!(store.load_credential(&ids[1]).unwrap().is_none());
    assert!(store.load_credential(&ids[0]).unwrap().is_some());
    assert!(!store.delete_credential(&ids[1]).unwrap());
}

#[test]
fn the_file_holds_the_values_in_its_documented_layout() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
    store.save_credential(&sample(id.clone())).unwrap();
    store.set_secret("gmail.client_secret", &secret("s3cret")).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&fs::read(data_file(&store)).unwrap()).unwrap();
    assert_eq!(file["version"], 1);
    let entry = &file["entries"]["secret/gmail.client_secret"];
    assert_eq!(entry["kind"], "secret");
    assert_eq!(entry["name"], "gmail.client_secret");
    assert_eq!(entry["value"], "s3cret");
    let entry = &file["entries"][id.key()];
    assert_eq!(entry["kind"], "credential");
    assert_eq!(entry["client_id"], "1234.apps");
    assert!(entry["value"].as_str().unwrap().contains(REFRESH));
}

#[test]
fn concurrent_writers_lose_nothing() {
    const WRITERS: usize = 6;
    const EACH: usize = 8;
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::under(home.path().to_path_buf());
    thread::scope(|scope| {
        for writer in 0..WRITERS {
            let paths = &paths;
            scope.spawn(move || {
                // Each thread has its own store, as separate processes would.
                let store = Store::open_kind(paths, Some(StoreKind::File)).unwrap();
                for n in 0..EACH {
                    store.set_secret(&format!("w{writer}.s{n}"), &secret(&format!("value-{writer}-{n}"))).unwrap();
                    let id = CredentialId::new(format!("server{writer}"), "https://issuer", format!("client{n}"));
                    store.save_credential(&sample(id)).unwrap();
                }
            });
        }
    });
    let store = Store::open_kind(&paths, Some(StoreKind::File)).unwrap();
    let names: BTreeSet<String> = store.secret_names().unwrap().into_iter().collect();
    let expected: BTreeSet<String> = (0..WRITERS).flat_map(|w| (0..EACH).map(move |n| format!("w{w}.s{n}"))).collect();
    assert_eq!(names, expected);
    assert_eq!(store.credential_ids().unwrap().len(), WRITERS * EACH);
    for writer in 0..WRITERS {
        for n in 0..EACH {
            let value = reveal(store.get_secret(&format!("w{writer}.s{n}")).unwrap());
            assert_eq!(value.as_deref(), Some(format!("value-{writer}-{n}").as_str()));
        }
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(home.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".latchkey-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_credential_lock_allows_one_refresh_at_a_time() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 5;
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::under(home.path().to_path_buf());
    let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
    let mut credential = sample(id.clone());
    credential.tokens.extra.clear();
    credential.tokens.access_token = secret("0");
    file_store(&home).save_credential(&credential).unwrap();
    let inside = Arc::new(AtomicBool::new(false));

    thread::scope(|scope| {
        for _ in 0..THREADS {
            let (paths, id, inside) = (&paths, &id, inside.clone());
            scope.spawn(move || {
                let store = Store::open_kind(paths, Some(StoreKind::File)).unwrap();
                for _ in 0..ROUNDS {
                    let _guard = store.lock_credential(id).unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders of one credential lock");
                    // A "refresh": read, wait as a token request would, write back.
                    let mut current = store.load_credential(id).unwrap().unwrap();
                    let count: usize = current.tokens.access_token.expose_secret().parse().unwrap();
                    thread::sleep(Duration::from_millis(5));
                    current.tokens.access_token = secret(&(count + 1).to_string());
                    store.save_credential(&current).unwrap();
                    inside.store(false, Ordering::SeqCst);
                }
            });
        }
    });
    let last = file_store(&home).load_credential(&id).unwrap().unwrap();
    assert_eq!(last.tokens.access_token.expose_secret(), (THREADS * ROUNDS).to_string());
}

#[test]
fn locks_of_different_credentials_are_independent() {
    let home = tempfile::tempdir().unwrap();
    let store = file_store(&home);
    let a = CredentialId::new("a/b", "c", "d");
    let b = CredentialId::new("a", "b/c", "d");
    let _held = store.lock_credential(&a).unwrap();
    // Taking b's lock on another thread must not wait for a's (the timeout only guards against a hang).
    let other = file_store(&home);
    let (sender, receiver) = std::sync::mpsc::channel();
    thread::spawn(move || sender.send(other.lock_credential(&b).map(drop).is_ok()));
    assert_eq!(receiver.recv_timeout(Duration::from_secs(30)), Ok(true), "b's lock waited for a's");
}

#[test]
fn the_store_choice_is_parsed() {
    assert_eq!(StoreKind::parse("").unwrap(), None);
    assert_eq!(StoreKind::parse(" keyring ").unwrap(), Some(StoreKind::Keyring));
    assert_eq!(StoreKind::parse("file").unwrap(), Some(StoreKind::File));
    let error = StoreKind::parse("vault").unwrap_err().to_string();
    assert!(error.contains("LATCHKEY_STORE=vault") && error.contains("`keyring` or `file`"), "{error}");
    let description = file_store(&tempfile::tempdir().unwrap()).describe();
    assert!(description.starts_with("the file ") && description.ends_with(file::FILE_NAME), "{description}");
}
