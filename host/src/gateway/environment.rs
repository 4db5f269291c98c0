//! The environment a local process server starts with.
//!
//! Not the gateway's: that holds whatever the user's session holds, such as
//! `DBUS_SESSION_BUS_ADDRESS` (which opens every item of the keyring, latchkey's tokens included,
//! to whoever connects), cloud credentials and the front door's own token. A server gets what the
//! MCP SDKs pass to the servers they start by default (the TypeScript SDK's
//! `getDefaultEnvironment`), the locale and the temporary folder, then the variables its catalog
//! entry names in `inherit_env`, then its declared `env` and secrets (which the caller sets).
//!
//! The program itself is looked up in the PATH of that environment by [`locate`].

use std::ffi::OsString;
use std::path::PathBuf;

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

/// Where the program `program` (an entry's `command[0]`) is, as a shell finds it: a name is looked
/// up in the PATH of `environment` (the server's, the last value winning), and a path is taken
/// relative to the gateway's folder. On Windows PATHEXT's extensions are tried too: `npx` and
/// `uvx` are `npx.cmd` and `uvx.cmd` shims there, which Windows would not find (it looks for
/// `.exe` only) and which the standard library runs through `cmd.exe` with quoted arguments once
/// named by their full path.
pub fn locate(program: &str, environment: &[(OsString, OsString)]) -> Result<PathBuf, String> {
    let path = environment.iter().rev().find(|(name, _)| name.to_str().is_some_and(|name| same_name(name, "PATH"))).map(|(_, value)| value);
    which::which_in(program, path, std::env::current_dir().unwrap_or_default()).map_err(|_| match path {
        _ if program.contains(['/', std::path::MAIN_SEPARATOR]) => format!("`{program}` is not an executable file; correct its `command`"),
        Some(path) => format!(
            "`{program}` is in no folder of the PATH it starts with ({}); install it, or give its full path in its `command`",
            path.to_string_lossy()
        ),
        None => format!("it starts without a PATH to find `{program}` in; give its full path in its `command`"),
    })
}

/// Variable names are case-sensitive, except on Windows.
fn same_name(a: &str, b: &str) -> bool {
    if cfg!(windows) { a.eq_ignore_ascii_case(b) } else { a == b }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;

    /// The user's home folder, by each platform's name for it.
    #[cfg(unix)]
    const HOME: &str = "HOME";
    #[cfg(windows)]
    const HOME: &str = "USERPROFILE";

    fn pairs(names: &[&str]) -> Vec<(OsString, OsString)> {
        names.iter().map(|name| (OsString::from(name), OsString::from(format!("{name}-value")))).collect()
    }

    #[test]
    fn only_the_defaults_the_locale_and_what_the_entry_names_are_inherited() {
        let gateway = pairs(&[
            "PATH",
            HOME,
            "LC_ALL",
            "DBUS_SESSION_BUS_ADDRESS",
            "AWS_SECRET_ACCESS_KEY",
            "HTTPS_PROXY",
            super::super::http::TOKEN_VAR,
        ]);
        let names = |inherit: &[String]| -> Vec<String> {
            inherited(gateway.clone(), inherit).into_iter().map(|(name, _)| name.into_string().unwrap()).collect()
        };
        assert_eq!(names(&[]), ["PATH", HOME, "LC_ALL"]);
        assert_eq!(names(&["HTTPS_PROXY".into(), super::super::http::TOKEN_VAR.into()]), ["PATH", HOME, "LC_ALL", "HTTPS_PROXY"]);
    }

    /// A program as npm installs one on Windows: a `.cmd` shim beside an extensionless shell
    /// script (for Git Bash), which Windows cannot run.
    #[cfg(windows)]
    fn install_program(dir: &std::path::Path, name: &str) -> PathBuf {
        fs::write(dir.join(name), "#!/bin/sh\necho 'not for Windows'\n").unwrap();
        let shim = dir.join(format!("{name}.cmd"));
        fs::write(&shim, "@echo off\r\necho hello %~1\r\n").unwrap();
        shim
    }

    /// A program as npm installs one elsewhere: an executable script.
    #[cfg(unix)]
    fn install_program(dir: &std::path::Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join(name);
        fs::write(&script, "#!/bin/sh\necho hello \"$1\"\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn a_program_is_found_in_the_servers_path_and_runs_with_its_arguments() {
        let (bin, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let installed = install_program(bin.path(), "greet");
        let environment = |path: &std::path::Path| vec![(OsString::from("PATH"), OsString::from("/nowhere")), ("PATH".into(), path.into())];

        let program = locate("greet", &environment(bin.path())).unwrap();
        assert!(program.to_string_lossy().eq_ignore_ascii_case(&installed.to_string_lossy()), "{}", program.display());
        let output = loop {
            match std::process::Command::new(&program).arg("big world").output() {
                // Another test's fork may still hold the script open for writing, for a moment.
                Err(error) if error.kind() == std::io::ErrorKind::ExecutableFileBusy => std::thread::sleep(Duration::from_millis(10)),
                result => break result.unwrap(),
            }
        };
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), "hello big world", "{output:?}");

        // Given as a path, it is taken as it is.
        assert_eq!(locate(installed.to_str().unwrap(), &[]).unwrap(), installed);

        let error = locate("greet", &environment(elsewhere.path())).unwrap_err();
        assert_eq!(
            error,
            format!(
                "`greet` is in no folder of the PATH it starts with ({}); install it, or give its full path in its `command`",
                elsewhere.path().display()
            )
        );
        assert!(locate("greet", &[]).unwrap_err().contains("without a PATH"));
        let missing = bin.path().join("missing");
        assert!(locate(missing.to_str().unwrap(), &[]).unwrap_err().contains("is not an executable file"));
    }
}
