//! The environment a local process server starts with.
//!
//! Not the gateway's: that holds whatever the user's session holds, such as
//! `DBUS_SESSION_BUS_ADDRESS` (which opens every item of the keyring, latchkey's tokens included,
//! to whoever connects), cloud credentials and the front door's own token. A server gets what the
//! MCP SDKs pass to the servers they start by default (the TypeScript SDK's
//! `getDefaultEnvironment`), the locale and the temporary folder, then the variables its catalog
//! entry names in `inherit_env`, then its declared `env` and secrets (which the caller sets).

use std::ffi::OsString;

/// What every local process inherits from the gateway, when the gateway has it.
#[cfg(unix)]
const DEFAULT_INHERITED: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LANGUAGE", "TMPDIR"];
#[cfg(windows)]
const DEFAULT_INHERITED: &[&str] = &[
    "APPDATA",
    "HOMEDRIVE",
    "HOMEPATH",
    "LOCALAPPDATA",
    "PATH",
    "PROCESSOR_ARCHITECTURE",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TEMP",
    "USERNAME",
    "USERPROFILE",
    "PROGRAMFILES",
];

/// The locale categories (`LC_ALL`, `LC_CTYPE`…) are inherited too.
const LOCALE_PREFIX: &str = "LC_";

/// The variables of `gateway` (the gateway's environment) that a local process starts with: the
/// defaults, the locale, and `inherit` (the entry's `inherit_env`). The front door's token is
/// never among them, even when named.
pub fn inherited(gateway: impl IntoIterator<Item = (OsString, OsString)>, inherit: &[String]) -> Vec<(OsString, OsString)> {
    gateway
        .into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else { return false };
            let wanted = DEFAULT_INHERITED.iter().any(|default| same_name(default, name))
                || name.starts_with(LOCALE_PREFIX)
                || inherit.iter().any(|named| same_name(named, name));
            wanted && !same_name(name, super::http::TOKEN_VAR)
        })
        .collect()
}

/// Variable names are case-sensitive, except on Windows.
fn same_name(a: &str, b: &str) -> bool {
    if cfg!(windows) { a.eq_ignore_ascii_case(b) } else { a == b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(names: &[&str]) -> Vec<(OsString, OsString)> {
        names.iter().map(|name| (OsString::from(name), OsString::from(format!("{name}-value")))).collect()
    }

    #[test]
    fn only_the_defaults_the_locale_and_what_the_entry_names_are_inherited() {
        let gateway = pairs(&[
            "PATH",
            "HOME",
            "LC_ALL",
            "DBUS_SESSION_BUS_ADDRESS",
            "AWS_SECRET_ACCESS_KEY",
            "HTTPS_PROXY",
            super::super::http::TOKEN_VAR,
        ]);
        let names = |inherit: &[String]| -> Vec<String> {
            inherited(gateway.clone(), inherit).into_iter().map(|(name, _)| name.into_string().unwrap()).collect()
        };
        assert_eq!(names(&[]), ["PATH", "HOME", "LC_ALL"]);
        assert_eq!(names(&["HTTPS_PROXY".into(), super::super::http::TOKEN_VAR.into()]), ["PATH", "HOME", "LC_ALL", "HTTPS_PROXY"]);
    }
}
