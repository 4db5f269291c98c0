use crate::Params;

/// A provider's configuration for one server: the catalog's `config` entries, with the defaults
/// of [`crate::ProviderInfo::config_keys`] already filled in by the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    entries: Params,
}

impl Config {
    pub fn new(entries: Params) -> Config {
        Config { entries }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or `default` when it is not set.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// Whether `name` is set to a true value (`true`, `yes`, `1`, `on`).
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(false),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" | "" => Ok(false),
                other => Err(format!("config key `{name}` must be true or false, not `{other}`")),
            },
        }
    }

    pub fn entries(&self) -> &Params {
        &self.entries
    }
}
