//! The keyring store against a real Secret Service (gnome-keyring over D-Bus; see
//! `latchkey_tests::keyring` for when these tests run, skip or fail): secrets and credentials
//! round-trip through the keyring, the index lists names without holding values, and keys of
//! different credentials never collide.

use std::time::{Duration, UNIX_EPOCH};

use latchkey::store::{Credential, CredentialId, ExposeSecret, SecretString, Status, StoreKind, TokenSet};
use latchkey_tests::{files_containing, keyring};

fn credential(id: &CredentialId, access: &str) -> Credential {
    let tokens = TokenSet {
        scopes: vec!["openid".into()],
        ..TokenSet::bearer(
            SecretString::from(access.to_string()),
            Some(SecretString::from(format!("refresh-{access}"))),
            Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        )
    };
    Credential::authorized(id.clone(), "google", tokens)
}

#[test]
fn secrets_live_in_the_keyring_and_only_names_in_the_index() {
    let home = tempfile::tempdir().unwrap();
    let Some(store) = keyring::store(home.path()) else {
        return;
    };
    assert_eq!(store.kind(), StoreKind::Keyring);
    assert_eq!(store.describe(), "the OS keyring (Secret Service)");
    let value = "keyring-VALUE-51";

    assert!(store.get_secret("gmail.client_secret").unwrap().is_none());
    store.set_secret("gmail.client_secret", &SecretString::from("first-VALUE".to_string())).unwrap();
    store.set_secret("gmail.client_secret", &SecretString::from(value.to_string())).unwrap();
    store.set_secret("slack.client_secret", &SecretString::from("other-VALUE".to_string())).unwrap();

    assert_eq!(store.get_secret("gmail.client_secret").unwrap().unwrap().expose_secret(), value);
    assert_eq!(keyring::lookup(home.path(), "secret/gmail.client_secret").as_deref(), Some(value));
    assert_eq!(store.secret_names().unwrap(), ["gmail.client_secret", "slack.client_secret"]);
    assert!(files_containing(home.path(), "VALUE").is_empty(), "a value reached a file");
    assert!(files_containing(home.path(), "gmail.client_secret").iter().any(|path| path.ends_with("keyring-index.json")));

    assert!(store.delete_secret("gmail.client_secret").unwrap());
    assert!(!store.delete_secret("gmail.client_secret").unwrap());
    assert!(store.get_secret("gmail.client_secret").unwrap().is_none());
    assert_eq!(keyring::lookup(home.path(), "secret/gmail.client_secret"), None);
    assert_eq!(store.secret_names().unwrap(), ["slack.client_secret"]);
    assert!(store.delete_secret("slack.client_secret").unwrap());
    assert!(store.secret_names().unwrap().is_empty());
}

#[test]
fn credentials_round_trip_and_never_collide() {
    let home = tempfile::tempdir().unwrap();
    let Some(store) = keyring::store(home.path()) else {
        return;
    };
    let ids = [
        CredentialId::new("gmail", "https://accounts.google.com", "1234.apps"),
        CredentialId::new("gmail", "https://accounts.google.com/", "1234.apps"),
        CredentialId::new("gmail", "https://accounts.google.com", "5678.apps"),
        CredentialId::new("a/b", "c", "d"),
        CredentialId::new("a", "b/c", "d"),
    ];
    for (n, id) in ids.iter().enumerate() {
        store.save_credential(&credential(id, &format!("access-{n}-VALUE"))).unwrap();
    }
    for (n, id) in ids.iter().enumerate() {
        let loaded = store.load_credential(id).unwrap().unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(loaded.id, *id);
        assert_eq!(loaded.tokens.access_token.expose_secret(), format!("access-{n}-VALUE"));
        assert_eq!(loaded.tokens.refresh_token.unwrap().expose_secret(), format!("refresh-access-{n}-VALUE"));
        assert_eq!(loaded.tokens.expires_at, Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)));
        assert_eq!(loaded.status, Status::Authorized);
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    assert_eq!(store.credential_ids().unwrap(), sorted);
    assert!(store.secret_names().unwrap().is_empty());
    assert!(files_containing(home.path(), "VALUE").is_empty(), "a token reached a file");

    // Updating one credential (a refresh, under its lock) leaves the others alone.
    {
        let _lock = store.lock_credential(&ids[0]).unwrap();
        let mut refreshed = store.load_credential(&ids[0]).unwrap().unwrap();
        refreshed.tokens.access_token = SecretString::from("refreshed-VALUE".to_string());
        refreshed.status = Status::NeedsReauthorization { reason: "invalid_grant".into() };
        store.save_credential(&refreshed).unwrap();
    }
    let reloaded = store.load_credential(&ids[0]).unwrap().unwrap();
    assert_eq!(reloaded.tokens.access_token.expose_secret(), "refreshed-VALUE");
    assert_eq!(reloaded.status, Status::NeedsReauthorization { reason: "invalid_grant".into() });
    assert_eq!(store.load_credential(&ids[1]).unwrap().unwrap().tokens.access_token.expose_secret(), "access-1-VALUE");

    for id in &ids {
        assert!(store.delete_credential(id).unwrap());
        assert!(store.load_credential(id).unwrap().is_none());
    }
    assert!(store.credential_ids().unwrap().is_empty());
}

#[test]
fn two_homes_do_not_share_keyring_entries() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (Some(one), Some(two)) = (keyring::store(first.path()), keyring::store(second.path())) else {
        return;
    };
    one.set_secret("shared.name", &SecretString::from("one-VALUE".to_string())).unwrap();
    assert!(two.get_secret("shared.name").unwrap().is_none());
    two.set_secret("shared.name", &SecretString::from("two-VALUE".to_string())).unwrap();
    assert_eq!(one.get_secret("shared.name").unwrap().unwrap().expose_secret(), "one-VALUE");
    assert!(one.delete_secret("shared.name").unwrap());
    assert_eq!(two.get_secret("shared.name").unwrap().unwrap().expose_secret(), "two-VALUE");
    assert!(two.delete_secret("shared.name").unwrap());
}
