use crate::{ConfigKey, Params};

/// A [`ConfigKey`] for [`crate::ProviderInfo::config_keys`]; `default: None` makes it optional.
pub fn config_key(name: &str, description: &str, default: Option<&str>) -> ConfigKey {
    ConfigKey { name: name.into(), description: description.into(), default: default.map(Into::into) }
}

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

    /// The value of a key the provider cannot work without; `what` says what to set it to.
    pub fn required(&self, name: &str, what: &str) -> Result<&str, String> {
        self.get(name).filter(|value| !value.trim().is_empty()).ok_or_else(|| format!("config key `{name}` is required: set it to {what}"))
    }

    /// A host name such as `dev-123.okta.com`, required. A pasted `https://…/` around it is
    /// forgiven; anything with a path, port or odd characters is refused, since it would end up in
    /// every endpoint URL.
    pub fn host(&self, name: &str, what: &str) -> Result<String, String> {
        let value = self.required(name, what)?;
        let host = value.trim().trim_start_matches("https://").trim_end_matches('/').to_ascii_lowercase();
        let valid = !host.is_empty()
            && host.split('.').all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if valid { Ok(host) } else { Err(format!("config key `{name}` must be a host name such as {what}, not `{value}`")) }
    }

    /// An https base URL without a trailing slash (`http://` only on loopback, for testing), or
    /// `default` when the key is not set.
    pub fn base_url(&self, name: &str, default: &str) -> Result<String, String> {
        let value = self.get_or(name, default).trim();
        let (secure, rest) = match (value.strip_prefix("https://"), value.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => (false, ""),
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        if !authority.is_empty() && (secure || loopback) && !rest.contains(['?', '#', ' ']) {
            Ok(value.trim_end_matches('/').to_string())
        } else {
            Err(format!("config key `{name}` must be an https URL such as {default}, not `{value}`"))
        }
    }

    /// A TCP port number, or `default` when the key is not set.
    pub fn port(&self, name: &str, default: &str) -> Result<u16, String> {
        let value = self.get_or(name, default);
        value
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("config key `{name}` must be a port number (1-65535), not `{value}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, value: &str) -> Config {
        Config::new(vec![(name.to_string(), value.to_string())])
    }

    #[test]
    fn base_urls_must_be_https_except_on_loopback() {
        let url = |value: &str| config("base_url", value).base_url("base_url", "https://gitlab.com");
        assert_eq!(url("https://gitlab.example.com/").unwrap(), "https://gitlab.example.com");
        assert_eq!(url("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(Config::default().base_url("base_url", "https://gitlab.com").unwrap(), "https://gitlab.com");
        for refused in ["http://gitlab.example.com", "http://127.0.0.1.example.com/", "gitlab.example.com", "https://", "https://a/?x=1"] {
            let error = url(refused).unwrap_err();
            assert!(error.contains("must be an https URL"), "{refused}: {error}");
        }
    }

    #[test]
    fn hosts_forgive_a_pasted_scheme_but_not_a_path() {
        let host = |value: &str| config("domain", value).host("domain", "dev-1.okta.com");
        assert_eq!(host("https://Dev-1.Okta.com/").unwrap(), "dev-1.okta.com");
        assert!(host("dev-1.okta.com/oauth2").unwrap_err().contains("must be a host name"));
        assert!(host("dev-1..okta.com").is_err());
        assert!(Config::default().host("domain", "dev-1.okta.com").unwrap_err().contains("config key `domain` is required"));
    }

    #[test]
    fn ports_default_and_refuse_zero_and_words() {
        assert_eq!(Config::default().port("redirect_port", "53682").unwrap(), 53682);
        assert_eq!(config("redirect_port", " 8765 ").port("redirect_port", "53682").unwrap(), 8765);
        for refused in ["0", "70000", "http"] {
            assert!(config("redirect_port", refused).port("redirect_port", "53682").is_err(), "{refused}");
        }
    }
}
