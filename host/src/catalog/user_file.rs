//! Adding entries to a user catalog file without disturbing what is already in it.
//!
//! `latchkey catalog import` writes to `<config dir>/catalogs/imported.yaml`. The file's text is
//! kept as it is, comments included: new entries are appended to its `servers:` mapping (which
//! must be the file's last top-level key, as it is in a file this command wrote), and an entry
//! replaced with `--replace` has its lines cut out (with the comment line the import wrote above
//! it). The result is parsed again before anything is written, and written atomically
//! ([`crate::paths::write_private_atomically`]): the file is the old one or the new one, never a
//! mix, and never one the catalog would refuse.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::import::Entry;
use super::model::Source;
use super::parse;
use crate::paths::{self, Paths};

/// The user catalog that imports go to.
pub const IMPORT_FILE: &str = "imported.yaml";

/// A new entry and the document it came from (named in the comment above it).
pub struct NewEntry<'a> {
    pub entry: &'a Entry,
    pub document: &'a str,
}

/// The file as it will be written.
#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub text: String,
    /// Entries of the same name that the new ones replace, with where they were.
    pub replaced: Vec<String>,
}

impl Plan {
    /// Write the file, atomically.
    pub fn write(&self) -> anyhow::Result<()> {
        let dir = self.path.parent().context("a catalog file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        paths::write_private_atomically(&self.path, self.text.as_bytes())
    }
}

/// The import file with `entries` added. An entry whose name another catalog already defines is
/// refused unless `replace`: in the import file its old lines go, the built-in catalog's entry is
/// overridden (user catalogs load after it); one in another user file is always refused, since
/// which file wins would depend on file names.
pub fn add(paths: &Paths, entries: &[NewEntry], replace: bool) -> anyhow::Result<Plan> {
    let path = super::catalogs_dir(paths).join(IMPORT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let source = Source::File(path.clone());
    let parsed = parse::parse(&source, &text);
    if let Some(problem) = parsed.problems.first() {
        bail!("{problem}\nfix {} first (check it with `latchkey catalog validate {}`)", path.display(), path.display());
    }
    let report = super::check(paths, None);
    let mut cut: Vec<(u64, u64)> = Vec::new();
    let mut replaced = Vec::new();
    for name in entries.iter().map(|new| new.entry.name.as_str()) {
        let choose = "choose another name with `--name <name>`";
        if let Some(existing) = parsed.servers.iter().find(|server| server.name == *name) {
            if !replace {
                bail!("`{name}` is already in {}:{}; {choose}, or replace it with `--replace`", path.display(), existing.line);
            }
            cut.push(entry_lines(&text, existing.line));
            replaced.push(format!("{}:{}", path.display(), existing.line));
            continue;
        }
        if let Some(existing) = report.catalog.servers().find(|server| server.name == *name) {
            match &existing.source {
                Source::BuiltIn if replace => replaced.push(format!("the built-in catalog's `{name}`")),
                Source::BuiltIn => bail!("`{name}` is an entry of the built-in catalog; {choose}, or override it with `--replace`"),
                Source::File(other) => {
                    bail!("`{name}` is already defined in {}:{}; {choose}, or remove it from that file", other.display(), existing.line)
                }
            }
        }
    }
    let mut kept = without_lines(&text, &cut);
    // New keys line up with the file's own (YAML needs sibling keys at one indentation).
    let indent = parsed.servers.first().map_or(2, |server| key_indent(&text, server.line));
    if !kept.trim().is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    match last_top_level_key(&kept) {
        None => kept.push_str("servers:\n"),
        Some(key) if key == "servers:" || key == "registry:" => {}
        Some(key) => bail!(
            "cannot add entries to {}: its last top-level key is `{key}`, and imported entries go at the end of \
             its `servers:` mapping; move `servers:` to the end of the file",
            path.display()
        ),
    }
    for new in entries {
        kept.push_str(&new.entry.yaml(new.document, indent));
    }
    let check = parse::parse(&source, &kept);
    let missing: Vec<&str> =
        entries.iter().map(|new| new.entry.name.as_str()).filter(|name| !check.servers.iter().any(|server| server.name == *name)).collect();
    if let Some(problem) = check.problems.first() {
        bail!("adding the entries to {} would make it invalid, so nothing was written: {problem}", path.display());
    }
    if !missing.is_empty() {
        bail!(
            "adding {} to {} did not give the entries (is its `servers:` mapping written in flow style?); nothing was written",
            missing.join(", "),
            path.display()
        );
    }
    Ok(Plan { path, text: kept, replaced })
}

/// The lines (from 1, end exclusive) of the entry whose key is on `line`: up to the next line as
/// little indented as the key, and the import's comment just above it.
fn entry_lines(text: &str, line: u64) -> (u64, u64) {
    let lines: Vec<&str> = text.lines().collect();
    let index = (line as usize).saturating_sub(1);
    let indent = lines.get(index).map_or(0, |key| indentation(key));
    let end = lines
        .iter()
        .enumerate()
        .skip(index + 1)
        .find(|(_, next)| !next.trim().is_empty() && indentation(next) <= indent)
        .map_or(lines.len(), |(at, _)| at);
    // A comment right after the entry, at the key's indentation, belongs to the next entry.
    let mut start = index;
    if index > 0 && lines[index - 1].trim_start().starts_with("# imported by `latchkey catalog import`") {
        start -= 1;
    }
    (start as u64 + 1, end as u64 + 1)
}

fn without_lines(text: &str, cut: &[(u64, u64)]) -> String {
    let mut kept = String::new();
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let number = number as u64 + 1;
        if !cut.iter().any(|(from, to)| *from <= number && number < *to) {
            kept.push_str(line);
        }
    }
    kept
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn key_indent(text: &str, line: u64) -> usize {
    text.lines().nth((line as usize).saturating_sub(1)).map_or(2, indentation)
}

/// The last key at column 0 (`servers:`), ignoring comments, blank lines and `---`.
fn last_top_level_key(text: &str) -> Option<String> {
    text.lines()
        .rfind(|line| !line.is_empty() && !line.starts_with([' ', '\t', '#', '-']) && !line.starts_with("..."))
        .map(|line| line.split('#').next().unwrap_or(line).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::import::{Options, convert};

    fn entry(name: &str, identifier: &str) -> Entry {
        let json = format!(
            r#"{{"name": "io.github.user/{name}", "description": "d", "version": "1.0.0",
              "packages": [{{"registryType": "npm", "identifier": "{identifier}", "version": "1.0.0", "transport": {{"type": "stdio"}}}}]}}"#
        );
        convert("server.json", &json, &Options::default()).unwrap()
    }

    fn home(existing: Option<&str>) -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path().to_path_buf());
        if let Some(text) = existing {
            std::fs::create_dir_all(super::super::catalogs_dir(&paths)).unwrap();
            std::fs::write(super::super::catalogs_dir(&paths).join(IMPORT_FILE), text).unwrap();
        }
        (dir, paths)
    }

    fn add_one(paths: &Paths, entry: &Entry, replace: bool) -> anyhow::Result<Plan> {
        add(paths, &[NewEntry { entry, document: "server.json" }], replace)
    }

    const EXISTING: &str = "# my servers\nservers:\n    notes:   # four spaces\n        command: [notes-mcp]\n\n    # the weather\n    weather:\n        command: [old-weather]\n        env: [{name: A, value: b}]\n# trailing comment\n";

    #[test]
    fn entries_are_appended_with_the_file_kept() {
        let (_dir, paths) = home(None);
        let plan = add_one(&paths, &entry("first", "first-mcp"), false).unwrap();
        assert!(
            plan.text.starts_with(
                "servers:\n  # imported by `latchkey catalog import` from server.json (io.github.user/first 1.0.0)\n  first:\n"
            ),
            "{}",
            plan.text
        );
        plan.write().unwrap();

        let (_dir, paths) = home(Some(EXISTING));
        let plan = add_one(&paths, &entry("fresh", "fresh-mcp"), false).unwrap();
        assert!(plan.text.starts_with(EXISTING), "the file's text and comments are kept:\n{}", plan.text);
        assert!(
            plan.text.contains("\n    fresh:\n      description: \"d\"\n      command: [\"npx\", \"-y\", \"fresh-mcp@1.0.0\"]\n"),
            "{}",
            plan.text
        );
        plan.write().unwrap();
        let written = std::fs::read_to_string(&plan.path).unwrap();
        let servers = parse::parse(&Source::File(plan.path.clone()), &written).servers;
        assert_eq!(servers.iter().map(|server| server.name.as_str()).collect::<Vec<_>>(), ["notes", "weather", "fresh"]);
    }

    #[test]
    fn an_entry_of_the_same_name_is_replaced_only_when_asked() {
        let (_dir, paths) = home(Some(EXISTING));
        let error = add_one(&paths, &entry("weather", "weather-mcp"), false).unwrap_err().to_string();
        assert!(error.contains("`weather` is already in") && error.contains(":7") && error.contains("--replace"), "{error}");
        let plan = add_one(&paths, &entry("weather", "weather-mcp"), true).unwrap();
        assert!(!plan.text.contains("old-weather") && plan.text.contains("weather-mcp@1.0.0"), "{}", plan.text);
        assert!(
            plan.text.contains("# my servers\n") && plan.text.contains("# trailing comment\n") && plan.text.contains("notes-mcp"),
            "{}",
            plan.text
        );
        assert_eq!(plan.replaced.len(), 1);
        // Replacing an imported entry again removes its comment line too.
        plan.write().unwrap();
        let again = add_one(&paths, &entry("weather", "weather-mcp"), true).unwrap();
        assert_eq!(again.text.matches("# imported by").count(), 1, "{}", again.text);
    }

    #[test]
    fn a_built_in_entry_is_overridden_only_when_asked() {
        let (_dir, paths) = home(None);
        let error = add_one(&paths, &entry("gmail", "gmail-mcp"), false).unwrap_err().to_string();
        assert!(error.contains("built-in catalog") && error.contains("--name") && error.contains("--replace"), "{error}");
        let plan = add_one(&paths, &entry("gmail", "gmail-mcp"), true).unwrap();
        assert_eq!(plan.replaced, ["the built-in catalog's `gmail`"]);
    }

    #[test]
    fn a_file_whose_servers_do_not_come_last_is_left_alone() {
        let (_dir, paths) = home(Some("servers:\n  a:\n    command: [a]\nregistrations:\n  slack: {client_id: \"1.2\"}\n"));
        let error = add_one(&paths, &entry("fresh", "fresh-mcp"), false).unwrap_err().to_string();
        assert!(error.contains("last top-level key is `registrations:`"), "{error}");
        let (_dir, paths) = home(Some("servers:\n  a: {command: [a]\n"));
        let error = add_one(&paths, &entry("fresh", "fresh-mcp"), false).unwrap_err().to_string();
        assert!(error.contains("fix") && error.contains("validate"), "{error}");
    }
}
