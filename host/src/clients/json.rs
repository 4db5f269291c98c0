//! JSON and JSONC client files, edited through jsonc-parser's concrete syntax tree: comments,
//! spacing, key order and trailing commas all survive, and a new entry takes the file's indent.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstNode, CstObject, CstRootNode};

use super::{Dialect, ENTRY, Edit, Launch, Problem, Shape};

pub(super) struct Json {
    pub key: &'static str,
    pub shape: Shape,
    pub dialect: Dialect,
}

impl Json {
    /// What the client itself accepts: nothing allows JSON5's extras (single quotes, bare keys,
    /// hexadecimal), which the clients reject.
    fn parse(&self, text: &str) -> Result<CstRootNode, Problem> {
        let (comments, trailing_commas, dialect) = match self.dialect {
            Dialect::Strict => (false, false, "the client reads strict JSON: no comments, no trailing commas"),
            Dialect::Comments => (true, false, "the client reads JSON with comments, without trailing commas"),
            Dialect::Jsonc => (true, true, "the client reads JSON with comments"),
        };
        let options = ParseOptions {
            allow_comments: comments,
            allow_trailing_commas: trailing_commas,
            allow_loose_object_property_names: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            allow_bare_decimal_point_numbers: false,
            allow_non_finite_numbers: false,
            allow_extended_string_escapes: false,
        };
        let problem = |error: jsonc_parser::errors::ParseError| Problem {
            line: error.line_display(),
            column: error.column_display(),
            message: format!("{} ({dialect})", error.kind()),
        };
        // The syntax tree keeps comments as tokens whatever the options say: the plain parse
        // enforces them.
        jsonc_parser::parse_to_ast(text, &Default::default(), &options).map_err(problem)?;
        CstRootNode::parse(text, &options).map_err(problem)
    }

    /// The top-level object; a file with nothing in it gets one.
    fn top(&self, root: &CstRootNode, text: &str) -> Result<CstObject, Problem> {
        match root.value() {
            None => Ok(root.object_value_or_set()),
            Some(value) => value.as_object().ok_or_else(|| problem_at(text, value, "the file must hold a JSON object ({ ... })")),
        }
    }

    /// The object of servers, if the file has one; an error if `key` holds something else.
    fn servers(&self, top: &CstObject, text: &str) -> Result<Option<CstObject>, Problem> {
        let Some(prop) = top.get(self.key) else { return Ok(None) };
        match prop.object_value() {
            Some(servers) => Ok(Some(servers)),
            None => Err(problem_at(
                text,
                prop.into(),
                format!("`{}` must be an object of servers by name ({{ \"name\": {{ ... }} }})", self.key),
            )),
        }
    }

    /// latchkey's entry as this client spells it, field by field.
    fn fields(&self, launch: &Launch) -> Vec<(&'static str, CstInputValue)> {
        let strings = |items: &[String]| CstInputValue::Array(items.iter().cloned().map(CstInputValue::String).collect());
        let program = CstInputValue::String(launch.program.clone());
        match self.shape {
            Shape::Plain => vec![("command", program), ("args", strings(&launch.args))],
            Shape::Typed(kind) => vec![("type", CstInputValue::String(kind.into())), ("command", program), ("args", strings(&launch.args))],
            Shape::OpenCode => {
                let command: Vec<String> = std::iter::once(launch.program.clone()).chain(launch.args.iter().cloned()).collect();
                vec![("type", CstInputValue::String("local".into())), ("command", strings(&command))]
            }
        }
    }
}

impl Edit for Json {
    fn read(&self, text: &str) -> Result<Option<Launch>, Problem> {
        let root = self.parse(text)?;
        if root.value().is_none() {
            return Ok(None);
        }
        let top = self.top(&root, text)?;
        let Some(entry) = self.servers(&top, text)?.and_then(|servers| servers.get(ENTRY)) else { return Ok(None) };
        // An entry latchkey cannot read (edited by hand) reads as an empty launch, which `connect`
        // then sets right.
        let Some(entry) = entry.object_value() else { return Ok(Some(Launch { program: String::new(), args: Vec::new() })) };
        let string = |node: Option<CstNode>| node.and_then(|node| node.as_string_lit()).and_then(|lit| lit.decoded_value().ok());
        let strings = |name: &str| -> Vec<String> {
            entry
                .get(name)
                .and_then(|prop| prop.array_value())
                .map(|array| array.elements().into_iter().map(|element| string(Some(element)).unwrap_or_default()).collect())
                .unwrap_or_default()
        };
        let launch = match self.shape {
            Shape::OpenCode => {
                let mut command = strings("command").into_iter();
                Launch { program: command.next().unwrap_or_default(), args: command.collect() }
            }
            Shape::Plain | Shape::Typed(_) => {
                Launch { program: string(entry.get("command").and_then(|prop| prop.value())).unwrap_or_default(), args: strings("args") }
            }
        };
        Ok(Some(launch))
    }

    fn connect(&self, text: &str, launch: &Launch) -> Result<String, Problem> {
        let root = self.parse(text)?;
        let top = self.top(&root, text)?;
        let servers = match self.servers(&top, text)? {
            Some(servers) => servers,
            None => top.object_value_or_set(self.key),
        };
        let fields = self.fields(launch);
        match servers.get(ENTRY).map(|prop| (prop.object_value(), prop)) {
            // Set latchkey's fields, keep any the user added (env, disabled, timeout...).
            Some((Some(entry), _)) => {
                for (name, value) in fields {
                    match entry.get(name) {
                        Some(prop) => prop.set_value(value),
                        None => drop(entry.append(name, value)),
                    }
                }
            }
            Some((None, prop)) => prop.set_value(CstInputValue::Object(owned(fields))),
            None => drop(servers.append(ENTRY, CstInputValue::Object(owned(fields)))),
        }
        Ok(with_final_newline(text, root.to_string()))
    }

    fn disconnect(&self, text: &str) -> Result<Option<String>, Problem> {
        let root = self.parse(text)?;
        let top = self.top(&root, text)?;
        if let Some(servers) = self.servers(&top, text)?
            && let Some(entry) = servers.get(ENTRY)
        {
            entry.remove();
            // The object was latchkey's alone: `connect` added it.
            if servers.properties().is_empty()
                && let Some(prop) = top.get(self.key)
            {
                prop.remove();
            }
        }
        Ok(Some(root.to_string()))
    }
}

fn owned(fields: Vec<(&'static str, CstInputValue)>) -> Vec<(String, CstInputValue)> {
    fields.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// A file latchkey creates ends with a newline, as editors write them.
fn with_final_newline(original: &str, mut text: String) -> String {
    if original.trim().is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A problem at `node`: its offset is the length of everything before it in the tree.
fn problem_at(text: &str, node: CstNode, message: impl Into<String>) -> Problem {
    let mut offset = 0;
    let mut current = node;
    loop {
        offset += current.previous_siblings().map(|sibling| sibling.to_string().len()).sum::<usize>();
        match current.parent() {
            Some(parent) => current = parent.into(),
            None => break,
        }
    }
    Problem::at(text, offset, message)
}
