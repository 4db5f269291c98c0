//! Checks of single values: URLs, names, container limits. Each returns the advice to show when the
//! value is wrong; the caller adds the file and line.

use std::borrow::Cow;
use std::net::IpAddr;

use url::{Host, Url};

use crate::plugins::provider::check_id;

/// An endpoint latchkey will send requests (and tokens) to: https, or http to a loopback address
/// (a local test server, RFC 8252's native-app case). No credentials in the URL, no fragment.
pub fn endpoint(url: &str) -> Result<(), String> {
    let parsed =
        Url::parse(url).map_err(|error| format!("`{}` is not a URL ({error}); write an absolute https:// URL", without_userinfo(url)))?;
    // Checked first, so that no message below repeats the password.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let mut shown = parsed.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(format!(
            "`{shown}` carries a user name or password (not repeated here); remove them from the URL and declare the \
             credential under `secrets:` instead"
        ));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(format!(
                "`{url}` is not https: tokens would cross the network in clear text; use https:// \
                 (plain http is accepted only for loopback addresses such as http://127.0.0.1:8080)"
            ));
        }
        // A URL without `//` has no user name to the parser, but may still have been meant to.
        scheme => return Err(format!("`{}` has scheme `{scheme}`; write an https:// URL", without_userinfo(url))),
    }
    if parsed.fragment().is_some() {
        return Err(format!("`{url}` has a fragment (`#…`), which an endpoint may not have; remove it"));
    }
    Ok(())
}

/// An RFC 8414 issuer: an endpoint without query or fragment, compared as written.
pub fn issuer(url: &str) -> Result<(), String> {
    endpoint(url)?;
    if url.contains('?') {
        return Err(format!("issuer `{url}` has a query (`?…`), which RFC 8414 forbids; remove it"));
    }
    Ok(())
}

/// `url` as a message may quote it when the parser could not say which part is the password: what
/// stands before the last `@` of its authority (`https://user:password@host`) becomes `…`.
fn without_userinfo(url: &str) -> Cow<'_, str> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic()) && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let after_scheme = scheme.map_or(0, |scheme| scheme.len() + 1);
    let start = url.len() - url[after_scheme..].trim_start_matches(['/', '\\']).len();
    let authority = url[start..].split(['/', '\\', '?', '#']).next().unwrap_or_default();
    match authority.rfind('@') {
        Some(at) => Cow::Owned(format!("{}…{}", &url[..start], &url[start + at..])),
        None => Cow::Borrowed(url),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The gateway's default separator between server and tool names (`gmail__search`).
pub const GATEWAY_SEPARATOR: &str = "__";

/// A server name becomes part of secret names (`gmail.client_secret`) and of command lines, so it
/// has no dots, spaces or shell characters; and the prefix of the gateway's tool names, so it does
/// not contain the gateway's separator (servers `a` and `a__b` would each own `a__b__tool`).
pub fn server_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "server name `{name}` must be 1-64 letters, digits, `-` or `_`, starting with a letter or digit \
             (it becomes part of secret names such as `{name}.client_secret`)"
        ));
    }
    if name.contains(GATEWAY_SEPARATOR) {
        let suggestion = name.split(GATEWAY_SEPARATOR).filter(|part| !part.is_empty()).collect::<Vec<_>>().join("-");
        return Err(format!(
            "server name `{name}` contains `{GATEWAY_SEPARATOR}`, which the gateway puts between server and tool names \
             (`{name}{GATEWAY_SEPARATOR}<tool>` would be ambiguous); rename the server, for example to `{suggestion}`"
        ));
    }
    Ok(())
}

/// Secret names are keys in the secret store: `gmail.access_token`.
pub fn secret_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!("secret name `{name}` must be 1-128 letters, digits, `.`, `-` or `_`, such as `gmail.access_token`"))
    }
}

/// A POSIX environment variable name.
pub fn env_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not an environment variable name: use letters, digits and `_`, not starting with a digit"))
    }
}

/// The rule the provider registry applies to plugin ids ([`check_id`]), with catalog advice.
pub fn provider_id(id: &str) -> Result<(), String> {
    check_id(id).map_err(|_| {
        format!("provider `{id}` is not a provider id: ids are 1-40 characters of a-z, 0-9 and `-` (see `latchkey provider ls`)")
    })
}

/// `none`, `bridge` or a Docker network name. `host` (and `container:<id>`) would let the server
/// reach everything on 127.0.0.1, the gateway's own front door included.
pub fn network(network: &str) -> Result<(), String> {
    if network == "host" || network.contains(':') {
        return Err(format!(
            "network `{network}` would share another network namespace, reaching every service on 127.0.0.1; \
             use `bridge` (or a Docker network of your own) for a server that needs the network"
        ));
    }
    let ok = network.starts_with(|c: char| c.is_ascii_alphanumeric())
        && network.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!("network `{network}` is not a Docker network name; use `none` (the default), `bridge` or a network's name"))
    }
}

/// Memory as Docker writes it: `512m`, `2Gb`, `1g`, or a number of bytes.
pub fn memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let without_b = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit): (&str, u64) = match without_b.chars().last() {
        Some('k') => (&without_b[..without_b.len() - 1], 1 << 10),
        Some('m') => (&without_b[..without_b.len() - 1], 1 << 20),
        Some('g') => (&without_b[..without_b.len() - 1], 1 << 30),
        _ => (without_b, 1),
    };
    let bytes = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).filter(|bytes| *bytes > 0);
    bytes.ok_or_else(|| format!("memory `{text}` is not a size; write a number with an optional unit, such as `512m` or `2g`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        assert!(endpoint("https://oauth2.googleapis.com/token").is_ok());
        assert!(endpoint("http://127.0.0.1:8080/token").is_ok());
        assert!(endpoint("http://127.3.4.5/token").is_ok());
        assert!(endpoint("http://[::1]:9000/token").is_ok());
        assert!(endpoint("http://localhost/token").is_ok());
        let plain = endpoint("http://example.com/token").unwrap_err();
        assert!(plain.contains("not https"), "{plain}");
        assert!(endpoint("http://10.0.0.1/token").is_err());
        assert!(endpoint("http://localhost.example.com/token").is_err());
        assert!(endpoint("ftp://example.com/token").unwrap_err().contains("scheme `ftp`"));
        assert!(endpoint("example.com/token").unwrap_err().contains("not a URL"));
        let credentials = endpoint("https://user:pw@example.com/token").unwrap_err();
        assert!(credentials.contains("`https://example.com/token` carries a user name or password"), "{credentials}");
        let plain_with_password = endpoint("http://user:pw@example.com/token").unwrap_err();
        assert!(!plain_with_password.contains("pw") && plain_with_password.contains("password"), "{plain_with_password}");
        assert!(endpoint("https://example.com/token#x").unwrap_err().contains("fragment"));
    }

    #[test]
    fn a_password_in_a_url_the_parser_refuses_is_not_repeated() {
        for (url, shown) in [
            ("https://alice:hunter2@exa mple.com/token", "`https://…@exa mple.com/token` is not a URL"),
            ("https:alice:hunter2@exa mple.com", "`https:…@exa mple.com` is not a URL"),
            ("https://alice:hunter2@@ho st/a@b", "`https://…@ho st/a@b` is not a URL"),
            ("alice:hunter2@example.com/token", "`alice:…@example.com/token` has scheme `alice`"),
        ] {
            let message = endpoint(url).unwrap_err();
            assert!(message.contains(shown) && !message.contains("hunter2"), "{url}: {message}");
        }
        // Without an `@` in the authority, the URL is quoted whole, an `@` in its path included.
        let message = endpoint("https://exa mple.com/@alice").unwrap_err();
        assert!(message.contains("`https://exa mple.com/@alice` is not a URL"), "{message}");
    }

    #[test]
    fn issuers_have_no_query() {
        assert!(issuer("https://accounts.google.com").is_ok());
        assert!(issuer("https://login.microsoftonline.com/common/v2.0").is_ok());
        assert!(issuer("https://example.com/?tenant=a").unwrap_err().contains("query"));
    }

    #[test]
    fn names() {
        assert!(server_name("google-calendar").is_ok());
        assert!(server_name("a.b").is_err());
        assert!(server_name("-x").is_err());
        assert!(server_name("").is_err());
        assert!(server_name("my_server").is_ok());
        let error = server_name("team__notes").unwrap_err();
        assert!(error.contains("`team__notes` contains `__`") && error.contains("for example to `team-notes`"), "{error}");
        assert!(secret_name("gmail.access_token").is_ok());
        assert!(secret_name("gmail token").is_err());
        assert!(env_name("GMAIL_TOKEN").is_ok());
        assert!(env_name("1TOKEN").is_err());
        assert!(env_name("A-B").is_err());
        assert!(provider_id("microsoft").is_ok());
        assert!(provider_id("Microsoft").is_err());
    }

    #[test]
    fn networks() {
        assert!(network("none").is_ok());
        assert!(network("bridge").is_ok());
        assert!(network("my_net-1").is_ok());
        assert!(network("host").unwrap_err().contains("127.0.0.1"));
        assert!(network("container:abc").is_err());
        assert!(network("a b").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(memory("512m"), Ok(512 << 20));
        assert_eq!(memory("2Gb"), Ok(2 << 30));
        assert_eq!(memory("64K"), Ok(64 << 10));
        assert_eq!(memory("1048576"), Ok(1_048_576));
        assert!(memory("lots").is_err());
        assert!(memory("0m").is_err());
        assert!(memory("g").is_err());
        assert!(memory("99999999999999999g").is_err());
    }
}
