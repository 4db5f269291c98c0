//! `latchkey secret set | ls | rm`. Values come from standard input or a hidden prompt, never
//! from the command line (where the process list and shell history would keep them), and are
//! never printed.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, DIM};
use crate::catalog::Catalog;
use crate::catalog::config;
use crate::paths::Paths;
use crate::store::{self, ExposeSecret, SecretString, Store};

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store a secret. The value is read from standard input when it is piped in (one trailing
    /// newline is dropped), otherwise from a hidden prompt.
    Set {
        /// Letters, digits, '.', '_' and '-', for example gmail.client_secret.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// List the stored secrets' names (never their values) and the store they are in.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    #[command(alias = "remove")]
    Rm {
        #[arg(value_parser = parse_name)]
        name: String,
    },
}

fn parse_name(name: &str) -> Result<String, String> {
    store::validate_secret_name(name).map(|()| name.to_string()).map_err(|error| error.to_string())
}

pub fn run(command: SecretCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    let store = Store::open(&paths)?;
    if let Some(notice) = store.notice_once() {
        output::note(notice);
    }
    match command {
        SecretCommand::Set { name } => {
            refuse_setting(&paths, &name)?;
            set(&store, &name)
        }
        SecretCommand::Ls { json } => list(&store, json),
        SecretCommand::Rm { name } => remove(&store, &name),
    }
}

fn set(store: &Store, name: &str) -> Result<(), Failure> {
    let value = read_value(name)?;
    if value.expose_secret().is_empty() {
        return Err(
            anyhow::anyhow!("the value is empty, so secret {name} was not stored; pipe the value in or type it at the prompt").into()
        );
    }
    // A client's private key (`private_key_jwt`) is checked now, not at the first sign-in.
    if name.ends_with(".client_key") {
        crate::oauth::client_key::check(name, &value).map_err(anyhow::Error::from)?;
    }
    store.set_secret(name, &value)?;
    anstream::println!("Stored secret {BOLD}{name}{BOLD:#} in {}.", store.describe());
    Ok(())
}

/// A setting that a catalog entry declares (`config:`) is configuration, which the server reads
/// through a placeholder; stored as a secret it would never arrive. (A catalog that does not load
/// is `catalog validate`'s business, not a reason to refuse a secret.)
fn refuse_setting(paths: &Paths, name: &str) -> anyhow::Result<()> {
    let Ok(catalog) = Catalog::load(paths) else { return Ok(()) };
    match config::declared(&catalog, name) {
        Ok(declared) => Err(anyhow::anyhow!(
            "`{name}` is a setting of server `{}` (its `config:`), not a secret: give it with `latchkey config set {name} <value>`",
            declared.server.name
        )),
        Err(_) => Ok(()),
    }
}

/// The value from piped standard input, or from a prompt that does not echo.
pub(super) fn read_value(name: &str) -> anyhow::Result<SecretString> {
    let mut value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value for {name} (not shown): "))
            .map_err(|error| anyhow::anyhow!("cannot read the value from the terminal: {error}"))?
    } else {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|error| anyhow::anyhow!("cannot read standard input: {error}"))?;
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the value on standard input is not UTF-8 text; nothing was stored"))?
    };
    // `echo value | latchkey secret set x` adds a newline that is not part of the value.
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(SecretString::from(value))
}

fn list(store: &Store, as_json: bool) -> Result<(), Failure> {
    let names = store.secret_names()?;
    if as_json {
        output::json(&json!({
            "store": {"kind": store.kind(), "description": store.describe()},
            "secrets": names,
        }));
        return Ok(());
    }
    if names.is_empty() {
        anstream::println!("No secrets in {}.", store.describe());
        return Ok(());
    }
    let mut table = output::table(&["NAME"]);
    for name in &names {
        table.add_row([name]);
    }
    output::print_table(&table);
    let count = if names.len() == 1 { "1 secret".to_string() } else { format!("{} secrets", names.len()) };
    anstream::println!("{DIM}{count} in {}{DIM:#}", store.describe());
    Ok(())
}

fn remove(store: &Store, name: &str) -> Result<(), Failure> {
    if store.delete_secret(name)? {
        anstream::println!("Removed secret {BOLD}{name}{BOLD:#} from {}.", store.describe());
    } else {
        anstream::println!("There is no secret {BOLD}{name}{BOLD:#} in {}; nothing to remove.", store.describe());
    }
    Ok(())
}
