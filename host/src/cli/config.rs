//! `latchkey config set | ls | rm`: the settings that catalog entries declare under `config:`
//! (Docker's per-server configuration), which fill their `{{<server>.<key>}}` placeholders.

use std::io::{IsTerminal, Read, Write};

use clap::Subcommand;
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, DIM};
use crate::catalog::Catalog;
use crate::catalog::config::{self, ValueFile};
use crate::paths::Paths;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Give a setting a value, checked against the entry's schema (type, allowed values).
    Set {
        /// `<server>.<key>`, as `latchkey config ls` lists them.
        setting: String,
        /// The value; without one it is read from standard input (one trailing newline dropped).
        /// A list is `a,b` or a JSON list.
        value: Option<String>,
    },
    /// List every declared setting: its value, default, and whether a required one is missing.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a setting's value.
    #[command(alias = "remove")]
    Rm { setting: String },
}

pub fn run(command: ConfigCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    let values = ValueFile::new(&paths);
    match command {
        ConfigCommand::Set { setting, value } => set(&paths, &values, &setting, value),
        ConfigCommand::Ls { json } => list(&paths, &values, json),
        ConfigCommand::Rm { setting } => remove(&values, &setting),
    }
}

fn set(paths: &Paths, values: &ValueFile, setting: &str, value: Option<String>) -> Result<(), Failure> {
    let catalog = Catalog::load(paths)?;
    let declared = config::declared(&catalog, setting).map_err(anyhow::Error::msg)?;
    let text = match value {
        Some(text) => text,
        None => read_value(setting)?,
    };
    let value = config::coerce(setting, declared.property, &text).map_err(anyhow::Error::msg)?;
    values.set(setting, value.clone())?;
    anstream::println!("Set {BOLD}{setting}{BOLD:#} = {} (server `{}`).", config::text_of(&value), declared.server.name);
    Ok(())
}

/// One line from standard input, or from a prompt on a terminal.
fn read_value(setting: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if std::io::stdin().is_terminal() {
        eprint!("Value for {setting}: ");
        let _ = std::io::stderr().flush();
        std::io::stdin().read_line(&mut text)?;
    } else {
        std::io::stdin().read_to_string(&mut text).map_err(|error| anyhow::anyhow!("cannot read standard input: {error}"))?;
    }
    for ending in ["\n", "\r"] {
        if text.ends_with(ending) {
            text.pop();
        }
    }
    Ok(text)
}

fn list(paths: &Paths, values: &ValueFile, as_json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(paths)?;
    let listed = config::list(catalog.servers(), &values.read()?);
    if as_json {
        output::json(&json!({ "settings": listed }));
        return Ok(());
    }
    if listed.is_empty() {
        anstream::println!("No catalog entry declares settings (`config:`), and none are stored.");
        return Ok(());
    }
    let mut table = output::table(&["SETTING", "SERVER", "TYPE", "VALUE", "STATUS"]);
    for row in &listed {
        let value = row.value.as_ref().or(row.default.as_ref()).map(config::text_of).unwrap_or_else(|| "-".into());
        table.add_row(vec![
            row.setting.clone(),
            row.server.clone().unwrap_or_else(|| "-".into()),
            row.value_type.map_or_else(|| "string".into(), |value_type| value_type.to_string()),
            value,
            if row.required && row.status == "missing" { "missing (required)".into() } else { row.status.to_string() },
        ]);
    }
    output::print_table(&table);
    for row in listed.iter().filter(|row| row.status == "missing") {
        output::note(&format!(
            "`{}` needs `{}` to start: run `latchkey config set {} <value>`",
            row.server.as_deref().unwrap_or("-"),
            row.setting,
            row.setting
        ));
    }
    if listed.iter().any(|row| row.status == "undeclared") {
        anstream::println!("{DIM}undeclared: stored, but no catalog entry declares it any more; `latchkey config rm` removes it{DIM:#}");
    }
    Ok(())
}

fn remove(values: &ValueFile, setting: &str) -> Result<(), Failure> {
    if values.remove(setting)? {
        anstream::println!("Removed {BOLD}{setting}{BOLD:#}.");
    } else {
        anstream::println!("{BOLD}{setting}{BOLD:#} has no value; nothing to remove.");
    }
    Ok(())
}
