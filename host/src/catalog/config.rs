//! Docker's per-server configuration: settings a user gives a server, read by placeholders.
//!
//! An entry declares its settings as Docker does, with a JSON Schema object per name (usually the
//! server's own) under `config:`, and uses them as `{{<name>.<key>}}` in its `env` values and
//! `command` arguments:
//!
//! ```yaml
//! my-mcp:
//!   image: example/my-mcp:1
//!   env: [{name: MODE, value: "{{my-mcp.mode}}"}]
//!   config:
//!     - name: my-mcp
//!       type: object
//!       properties: {mode: {type: string, enum: [fast, safe]}}
//!       required: [mode]
//! ```
//!
//! `latchkey config set my-mcp.mode fast` stores a value ([`coerce`] checks it against the
//! schema: type, `enum`); when the server starts, [`resolve`] fills the placeholders from the
//! stored values, then the schema's `default`, then a placeholder's own `{{…|or:<default>}}`, and
//! a setting with none of them is empty, as in Docker. A `required` setting without a value
//! stops the start with the command that gives it one ([`missing`], which `catalog show` and
//! `/health` show too). Settings are plain configuration, stored in a file: secrets are declared
//! under `secrets:` and stored with `latchkey secret set`, and never read through a placeholder.
//!
//! Of Docker's placeholder functions only `or:` is supported; the others (`volume`, `into`…)
//! shape Docker's volume mounts, which latchkey does not make, and stop the start with that said.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Catalog;
use super::model::{ConfigObject, ConfigProperty, Kind, Server, ValueType};
use crate::paths::Paths;
use crate::store::Document;

/// Stored values by `<name>.<key>`.
pub type Values = BTreeMap<String, Value>;

/// The stored values: `<config dir>/config.json`, which holds no secret. Every change is made
/// under the file's lock and replaces the file atomically, so two `config set`s never lose one.
pub struct ValueFile(Document<Value>);

impl ValueFile {
    pub fn new(paths: &Paths) -> ValueFile {
        ValueFile(Document::new(paths.config_dir.join("config.json"), &paths.config_dir.join("locks")))
    }

    pub fn read(&self) -> anyhow::Result<Values> {
        self.0.entries_as()
    }

    /// Store `value` for `setting`, replacing an earlier one.
    pub fn set(&self, setting: &str, value: Value) -> anyhow::Result<()> {
        self.0.lock()?.change(|values| {
            values.insert(setting.to_string(), value);
            true
        })?;
        Ok(())
    }

    /// Forget `setting`; `false` when it had no value.
    pub fn remove(&self, setting: &str) -> anyhow::Result<bool> {
        self.0.lock()?.change(|values| values.remove(setting))
    }
}

/// A piece of an `env` value or `command` argument.
#[derive(Debug, PartialEq)]
pub enum Piece<'a> {
    Text(&'a str),
    Setting(Placeholder<'a>),
}

/// `{{<name>.<key>}}`, with the functions after `|`.
#[derive(Debug, PartialEq)]
pub struct Placeholder<'a> {
    /// As written between the braces, for messages.
    pub written: &'a str,
    pub name: &'a str,
    /// Empty when the placeholder names no key (`{{my-mcp}}`).
    pub key: &'a str,
    /// `or:<default>`.
    pub fallback: Option<&'a str>,
    /// The first function latchkey does not support.
    pub unsupported: Option<&'a str>,
}

impl Placeholder<'_> {
    /// `<name>.<key>`, as `config set` takes it.
    pub fn setting(&self) -> String {
        format!("{}.{}", self.name, self.key)
    }
}

/// `text` split into text and placeholders, as Docker does: `{{` up to the next `}}`; an
/// unterminated `{{` is text.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start + 2..].find("}}") else { break };
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        pieces.push(Piece::Setting(placeholder(&rest[start + 2..start + 2 + length])));
        rest = &rest[start + 2 + length + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

fn placeholder(written: &str) -> Placeholder<'_> {
    let mut parts = written.split('|');
    let path = parts.next().unwrap_or_default().trim();
    let (name, key) = path.split_once('.').map_or((path, ""), |(name, key)| (name.trim(), key.trim()));
    let mut fallback = None;
    let mut unsupported = None;
    for function in parts.map(str::trim) {
        match function.strip_prefix("or:") {
            Some(value) => fallback = fallback.or(Some(value)),
            None => unsupported = unsupported.or(Some(function)),
        }
    }
    Placeholder { written, name, key, fallback, unsupported }
}

/// The property `<name>.<key>` of `objects`.
pub fn property<'a>(objects: &'a [ConfigObject], name: &str, key: &str) -> Option<(&'a ConfigObject, &'a ConfigProperty)> {
    objects.iter().filter(|object| object.name.as_str() == name).find_map(|object| object.properties.get(key).map(|p| (object, p)))
}

/// A setting that a catalog entry declares.
pub struct Declared<'a> {
    pub server: &'a Server,
    pub property: &'a ConfigProperty,
}

/// The setting `<name>.<key>` as the catalog declares it, or what is wrong with the name.
pub fn declared<'a>(catalog: &'a Catalog, setting: &str) -> Result<Declared<'a>, String> {
    if let Some(server) = catalog.servers().find(|server| server.secret(setting).is_some()) {
        return Err(format!(
            "`{setting}` is a secret of server `{}`, not a setting: store it with `latchkey secret set {setting}` (the value is read \
             from stdin), where it stays out of configuration files",
            server.name
        ));
    }
    let Some((name, key)) = setting.split_once('.').filter(|(name, key)| !name.is_empty() && !key.is_empty()) else {
        return Err(format!("`{setting}` is not a setting name; settings are named `<server>.<key>`, as `latchkey config ls` lists them"));
    };
    let declaring: Vec<&Server> = catalog.servers().filter(|server| server.config.iter().any(|object| *object.name == name)).collect();
    let Some(server) = declaring.first() else {
        let names: Vec<&str> = catalog.servers().flat_map(|server| &server.config).map(|object| object.name.as_str()).collect();
        return Err(match names.is_empty() {
            true => format!("no catalog entry declares settings (`config:`), so `{setting}` cannot be set"),
            false => format!(
                "no catalog entry declares settings named `{name}`{}; `latchkey config ls` lists them all",
                suggestion(name, &names)
            ),
        });
    };
    let Some((_, property)) = property(&server.config, name, key) else {
        let keys: Vec<&str> = server
            .config
            .iter()
            .filter(|object| *object.name == name)
            .flat_map(|object| object.properties.keys())
            .map(String::as_str)
            .collect();
        return Err(format!(
            "`{name}` has no setting `{key}`{}; its settings: {}",
            suggestion(key, &keys),
            keys.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ")
        ));
    };
    Ok(Declared { server, property })
}

fn suggestion(name: &str, known: &[&str]) -> String {
    super::keys::closest(name, known).map(|closest| format!(" (did you mean `{closest}`?)")).unwrap_or_default()
}

/// One declared setting, or one stored value that no entry declares any more.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub setting: String,
    /// The entry that declares it; none for a value left over.
    pub server: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `set`, `default`, `missing` (required, no value: the server does not start), `empty`
    /// (optional, no value), `undeclared` (a stored value no entry declares).
    pub status: &'static str,
}

/// Every setting of `servers` with its value, then the values no entry declares.
pub fn list<'a>(servers: impl Iterator<Item = &'a Server>, values: &Values) -> Vec<Listed> {
    let mut listed = Vec::new();
    for server in servers {
        for object in &server.config {
            for (key, property) in &object.properties {
                let setting = format!("{}.{key}", *object.name);
                let value = values.get(&setting).cloned();
                let required = object.is_required(key);
                let status = match (&value, &property.default, required) {
                    (Some(_), _, _) => "set",
                    (None, Some(_), _) => "default",
                    (None, None, true) => "missing",
                    (None, None, false) => "empty",
                };
                listed.push(Listed {
                    server: Some(server.name.clone()),
                    value_type: property.value_type,
                    required,
                    value,
                    default: property.default.clone(),
                    description: property.description.clone().or_else(|| object.description.clone()),
                    status,
                    setting,
                });
            }
        }
    }
    for (setting, value) in values {
        if !listed.iter().any(|listed| &listed.setting == setting) {
            listed.push(Listed {
                setting: setting.clone(),
                server: None,
                value_type: None,
                required: false,
                value: Some(value.clone()),
                default: None,
                description: None,
                status: "undeclared",
            });
        }
    }
    listed
}

/// A required setting of a server without a value: what it is and the command that sets it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Missing {
    pub setting: String,
    /// `latchkey config set <setting> <value>`, with the choices when there are some.
    pub fix: String,
}

/// The required settings of `server` that have no value and no default.
pub fn missing(server: &Server, values: &Values) -> Vec<Missing> {
    let mut missing = Vec::new();
    for object in &server.config {
        for required in &object.required {
            let setting = format!("{}.{}", *object.name, **required);
            let default = object.properties.get(required.as_str()).and_then(|property| property.default.as_ref());
            if values.contains_key(&setting) || default.is_some() {
                continue;
            }
            let value = match object.properties.get(required.as_str()).map(|property| &property.choices) {
                Some(choices) if !choices.is_empty() => choices.iter().map(text_of).collect::<Vec<_>>().join("|"),
                _ => "<value>".into(),
            };
            missing.push(Missing { fix: format!("latchkey config set {setting} {value}"), setting });
        }
    }
    missing
}

/// `server`'s `env` and `command` (of a local process or container) with their placeholders
/// filled from `values`, or why it cannot start.
#[derive(Debug, PartialEq)]
pub struct Resolved {
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
}

pub fn resolve(server: &Server, values: &Values) -> Result<Resolved, String> {
    let missing = missing(server, values);
    if !missing.is_empty() {
        let fixes = missing.iter().map(|missing| format!("`{}`", missing.fix)).collect::<Vec<_>>().join(", ");
        let settings = missing.iter().map(|missing| format!("`{}`", missing.setting)).collect::<Vec<_>>().join(", ");
        return Err(format!("it needs a value for its required setting{} {settings}: run {fixes}", plural(missing.len())));
    }
    let fill = |text: &str| -> Result<Vec<String>, String> {
        let pieces = pieces(text);
        // An argument that is one list-valued placeholder becomes one argument per item.
        if let [Piece::Setting(placeholder)] = pieces.as_slice()
            && let Some(Value::Array(items)) = value(server, values, placeholder)?
        {
            return Ok(items.iter().map(text_of).collect());
        }
        let mut filled = String::new();
        for piece in &pieces {
            match piece {
                Piece::Text(text) => filled.push_str(text),
                Piece::Setting(placeholder) => match value(server, values, placeholder)? {
                    Some(value) => filled.push_str(&text_of(&value)),
                    None => filled.push_str(placeholder.fallback.unwrap_or_default()),
                },
            }
        }
        Ok(vec![filled])
    };
    let command = match &server.kind {
        Kind::Image { command, .. } | Kind::Command { command, .. } => command,
        Kind::Remote { .. } | Kind::Poci { .. } => &Vec::new(),
    };
    let mut resolved = Resolved { env: Vec::new(), command: Vec::new() };
    for variable in &server.env {
        resolved.env.push((variable.name.to_string(), fill(&variable.value)?.join(",")));
    }
    for argument in command {
        resolved.command.extend(fill(argument)?);
    }
    Ok(resolved)
}

/// The value a placeholder stands for: stored, else the schema's default; `None` for neither.
fn value(server: &Server, values: &Values, placeholder: &Placeholder) -> Result<Option<Value>, String> {
    if let Some(function) = placeholder.unsupported {
        return Err(format!(
            "its placeholder `{{{{{}}}}}` uses `{function}`, one of Docker's functions for volume mounts, which latchkey does not \
             make; only `|or:<default>` is supported",
            placeholder.written
        ));
    }
    if let Some(value) = values.get(&placeholder.setting()) {
        return Ok(Some(value.clone()));
    }
    Ok(property(&server.config, placeholder.name, placeholder.key).and_then(|(_, property)| property.default.clone()))
}

/// A value as text: a string as it is, anything else as JSON; a list's items joined by commas.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `text`, as given to `config set`, read as a value of `property`'s type and checked against its
/// choices.
pub fn coerce(setting: &str, property: &ConfigProperty, text: &str) -> Result<Value, String> {
    let value = coerce_type(setting, property.value_type, property.items.as_deref(), text)?;
    if !property.choices.is_empty() && !property.choices.contains(&value) {
        let choices = property.choices.iter().map(text_of).collect::<Vec<_>>().join(", ");
        return Err(format!("`{setting}` must be one of {choices}; `{text}` is not"));
    }
    Ok(value)
}

fn coerce_type(setting: &str, value_type: Option<ValueType>, items: Option<&ConfigProperty>, text: &str) -> Result<Value, String> {
    let wrong = |example: &str| {
        let (article, name) = match value_type {
            Some(ValueType::Integer) => ("an", "integer".to_string()),
            Some(other) => ("a", other.to_string()),
            None => ("a", "string".to_string()),
        };
        format!("`{setting}` is {article} {name}, such as {example}; `{text}` is not")
    };
    Ok(match value_type {
        None | Some(ValueType::String) => Value::String(text.to_string()),
        Some(ValueType::Integer) => Value::from(text.trim().parse::<i64>().map_err(|_| wrong("8080"))?),
        Some(ValueType::Number) => {
            text.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).ok_or_else(|| wrong("0.5"))?
        }
        Some(ValueType::Boolean) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        // A JSON list, or items separated by commas.
        Some(ValueType::Array) => {
            let items_type = items.and_then(|items| items.value_type);
            let texts: Vec<String> = if text.trim_start().starts_with('[') {
                let list: Vec<Value> = serde_json::from_str(text).map_err(|_| wrong("[\"a\", \"b\"] or a,b"))?;
                list.iter().map(text_of).collect()
            } else {
                text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect()
            };
            let items = texts.iter().map(|item| coerce_type(setting, items_type, None, item)).collect::<Result<Vec<_>, _>>()?;
            Value::Array(items)
        }
        Some(ValueType::Object) => {
            let object: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|_| wrong("{\"key\": \"value\"}"))?;
            Value::Object(object)
        }
    })
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_split_as_docker_splits_them() {
        assert_eq!(
            pieces("--mode={{ s.mode | or:fast }}!{{s}}{{unterminated"),
            [
                Piece::Text("--mode="),
                Piece::Setting(Placeholder {
                    written: " s.mode | or:fast ",
                    name: "s",
                    key: "mode",
                    fallback: Some("fast"),
                    unsupported: None
                }),
                Piece::Text("!"),
                Piece::Setting(Placeholder { written: "s", name: "s", key: "", fallback: None, unsupported: None }),
                Piece::Text("{{unterminated"),
            ]
        );
        let volume = pieces("{{s.paths|volume|into}}");
        assert!(matches!(volume.as_slice(), [Piece::Setting(placeholder)] if placeholder.unsupported == Some("volume")), "{volume:?}");
    }

    fn property(value_type: Option<ValueType>, choices: &[Value]) -> ConfigProperty {
        ConfigProperty { value_type, description: None, choices: choices.to_vec(), default: None, items: None }
    }

    #[test]
    fn values_are_read_as_their_type_and_checked_against_choices() {
        let string = property(Some(ValueType::String), &[]);
        assert_eq!(coerce("s.k", &string, "42"), Ok(Value::from("42")));
        assert_eq!(coerce("s.k", &property(Some(ValueType::Integer), &[]), " 8080 "), Ok(Value::from(8080)));
        let error = coerce("s.k", &property(Some(ValueType::Integer), &[]), "eighty").unwrap_err();
        assert_eq!(error, "`s.k` is an integer, such as 8080; `eighty` is not");
        assert_eq!(coerce("s.k", &property(Some(ValueType::Boolean), &[]), "True"), Ok(Value::Bool(true)));
        assert!(coerce("s.k", &property(Some(ValueType::Number), &[]), "NaN").is_err());
        let list = property(Some(ValueType::Array), &[]);
        assert_eq!(coerce("s.k", &list, "a, b,,c"), Ok(serde_json::json!(["a", "b", "c"])));
        assert_eq!(coerce("s.k", &list, r#"["a,b", "c"]"#), Ok(serde_json::json!(["a,b", "c"])));
        let choice = property(None, &[Value::from("fast"), Value::from("safe")]);
        assert_eq!(coerce("s.mode", &choice, "fast"), Ok(Value::from("fast")));
        assert_eq!(coerce("s.mode", &choice, "quick").unwrap_err(), "`s.mode` must be one of fast, safe; `quick` is not");
    }
}
