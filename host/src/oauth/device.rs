//! The device authorization grant (RFC 8628), for machines where no browser can come back to
//! latchkey: an SSH session, a container, a headless server. latchkey asks the device
//! authorization endpoint for a user code, the person enters it on any device with a browser, and
//! latchkey polls the token endpoint until the sign-in is done, declined or expired.
//!
//! Everything in the device authorization answer is untrusted: the codes are bounded and must be
//! printable (they are shown on a terminal), the verification URI must be an address a browser
//! may be sent to (https, http only on loopback), and the lifetimes are clamped. Polling follows
//! RFC 8628 §3.5: `authorization_pending` waits another interval, `slow_down` adds five seconds to
//! it for good, an unanswered request doubles it, and nothing is sent once the code has expired.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::exchange::{ExchangeError, TokenEndpoint};
use crate::plugins::{Params, TokenSet};

/// RFC 8628 §3.2: the interval when the server gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: what each `slow_down` adds.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest wait between polls, whatever the server asks or the backoff reaches.
const LONGEST_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a user code is waited for, whatever the server says.
const LONGEST_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The longest code accepted; real ones are a few dozen characters (device codes) or fewer.
const LONGEST_CODE: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the device authorization request failed: {0}")]
    Request(ExchangeError),
    #[error(
        "the device authorization endpoint answered HTTP {status}{}; check the client id and the server's \
         `device_authorization_endpoint`, and that the client is allowed the device grant",
        .code.as_ref().map(|code| format!(" ({code})")).unwrap_or_default()
    )]
    Refused { status: u16, code: Option<String> },
    #[error("the device authorization endpoint's answer is not usable: {0}")]
    BadAnswer(String),
    #[error(
        "the user code expired before the sign-in was finished (it was valid for {}{}); run the command again and enter the \
         new code sooner",
        super::lifecycle::human_duration(.lifetime.as_secs()),
        if *.slow_downs > 0 { format!(", and the server asked latchkey to slow down {} times", .slow_downs) } else { String::new() }
    )]
    Expired { lifetime: Duration, slow_downs: u32 },
    #[error("the sign-in was declined at the authorization server (access_denied); run the command again to retry")]
    Denied,
    #[error("the token endpoint refused the device code: {0}")]
    Token(ExchangeError),
}

/// What the person needs: where to go and the code to enter there.
#[derive(Clone, Debug)]
pub struct Verification {
    pub user_code: String,
    pub uri: String,
    /// The URI with the code in it, for a link or a QR code, when the server gives one.
    pub uri_complete: Option<String>,
    /// How long the code is valid.
    pub lifetime: Duration,
}

/// A device authorization waiting for the person: show [`Pending::verification`], then
/// [`Pending::wait`].
pub struct Pending {
    verification: Verification,
    device_code: SecretString,
    schedule: Schedule,
    scopes: Vec<String>,
    resource: Option<String>,
}

/// The answer of RFC 8628 §3.2. Google names the URI `verification_url`.
#[derive(Deserialize)]
struct Answer {
    device_code: Option<String>,
    user_code: Option<String>,
    #[serde(alias = "verification_url")]
    verification_uri: Option<String>,
    #[serde(alias = "verification_url_complete")]
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
}

/// Ask `device_endpoint` for a user code (RFC 8628 §3.1), as the client of `endpoint`.
pub async fn start(
    endpoint: &TokenEndpoint,
    device_endpoint: &str,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<Pending, DeviceError> {
    let mut form: Params = Vec::new();
    if !scopes.is_empty() {
        form.push(("scope".into(), scopes.join(&endpoint.flow.scope_separator)));
    }
    if let (true, Some(resource)) = (endpoint.flow.send_resource, resource) {
        form.push(("resource".into(), resource.into()));
    }
    let response = endpoint.send_with_client_auth(device_endpoint, &form).await.map_err(DeviceError::Request)?;
    let body: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    if !(200..300).contains(&response.status) {
        let code = body.as_ref().and_then(|body| body["error"].as_str()).map(printable_or_placeholder);
        return Err(DeviceError::Refused { status: response.status, code });
    }
    let answer: Answer = body
        .and_then(|body| serde_json::from_value(body).ok())
        .ok_or_else(|| DeviceError::BadAnswer("it is not a JSON object of RFC 8628 §3.2".into()))?;
    let (verification, device_code, interval) = read_answer(answer)?;
    Ok(Pending {
        schedule: Schedule::new(interval, verification.lifetime, Instant::now()),
        verification,
        device_code,
        scopes: scopes.to_vec(),
        resource: resource.map(str::to_string),
    })
}

fn read_answer(answer: Answer) -> Result<(Verification, SecretString, Duration), DeviceError> {
    let bad = |reason: &str| DeviceError::BadAnswer(reason.to_string());
    let device_code = answer.device_code.filter(|code| !code.is_empty()).ok_or_else(|| bad("it has no `device_code`"))?;
    if device_code.len() > LONGEST_CODE {
        return Err(bad("its `device_code` is longer than any real one"));
    }
    let user_code = answer.user_code.filter(|code| !code.is_empty()).ok_or_else(|| bad("it has no `user_code`"))?;
    if user_code.chars().count() > 64 || !is_printable(&user_code) {
        return Err(bad("its `user_code` is not a short printable code"));
    }
    let uri = answer.verification_uri.ok_or_else(|| bad("it has no `verification_uri`"))?;
    if !is_printable(&uri) || super::http::endpoint_url(&uri).is_err() {
        return Err(bad("its `verification_uri` is not an https address (http only on loopback)"));
    }
    // Only a convenience: one that is not a safe address is left out rather than refused.
    let uri_complete = answer
        .verification_uri_complete
        .filter(|uri| uri.len() <= LONGEST_CODE && is_printable(uri) && super::http::endpoint_url(uri).is_ok());
    let seconds = |value: Option<serde_json::Value>| value.and_then(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()));
    let lifetime = seconds(answer.expires_in).filter(|&seconds| seconds > 0).ok_or_else(|| bad("it has no positive `expires_in`"))?;
    let lifetime = Duration::from_secs(lifetime).min(LONGEST_LIFETIME);
    let interval = seconds(answer.interval).map_or(DEFAULT_INTERVAL, |seconds| Duration::from_secs(seconds.max(1)));
    Ok((Verification { user_code, uri, uri_complete, lifetime }, SecretString::from(device_code), interval.min(LONGEST_INTERVAL)))
}

/// Text that is safe to print on a terminal: no control characters (no escape sequences).
fn is_printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

fn printable_or_placeholder(text: &str) -> String {
    if is_printable(text) && text.len() <= 64 { text.to_string() } else { "an unprintable error code".to_string() }
}

impl Pending {
    pub fn verification(&self) -> &Verification {
        &self.verification
    }

    /// Poll the token endpoint until the person finishes, declines, or the code expires.
    pub async fn wait(mut self, endpoint: &TokenEndpoint) -> Result<TokenSet, DeviceError> {
        loop {
            let pause = self.schedule.next_poll(Instant::now())?;
            tokio::time::sleep(pause).await;
            match endpoint.device_code(self.device_code.expose_secret(), self.resource.as_deref(), &self.scopes).await {
                Ok(tokens) => return Ok(tokens),
                Err(error) => self.schedule.after(error)?,
            }
        }
    }
}

/// When to poll next (RFC 8628 §3.5), apart from the clock so that it can be tested.
#[derive(Debug)]
struct Schedule {
    interval: Duration,
    lifetime: Duration,
    expires: Instant,
    slow_downs: u32,
}

impl Schedule {
    fn new(interval: Duration, lifetime: Duration, now: Instant) -> Schedule {
        Schedule { interval, lifetime, expires: now + lifetime, slow_downs: 0 }
    }

    /// How long to wait before the next poll, or why there is none: a poll that would go out
    /// after the code expired is not sent.
    fn next_poll(&self, now: Instant) -> Result<Duration, DeviceError> {
        if now + self.interval >= self.expires {
            return Err(DeviceError::Expired { lifetime: self.lifetime, slow_downs: self.slow_downs });
        }
        Ok(self.interval)
    }

    /// What a failed poll means: keep polling (with the interval this leaves), or stop.
    fn after(&mut self, error: ExchangeError) -> Result<(), DeviceError> {
        match error.failure().map(|failure| failure.code.as_str()) {
            Some("authorization_pending") => Ok(()),
            Some("slow_down") => {
                self.slow_downs += 1;
                self.interval = (self.interval + SLOW_DOWN_STEP).min(LONGEST_INTERVAL);
                Ok(())
            }
            Some("expired_token") => Err(DeviceError::Expired { lifetime: self.lifetime, slow_downs: self.slow_downs }),
            Some("access_denied") => Err(DeviceError::Denied),
            // RFC 8628 §3.5: a request that got no answer is retried with exponential backoff.
            None if matches!(error, ExchangeError::Send(_)) => {
                self.interval = (self.interval * 2).min(LONGEST_INTERVAL);
                Ok(())
            }
            _ => Err(DeviceError::Token(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::http::SendError;
    use crate::plugins::{Failure, FailureKind};

    fn failed(code: &str) -> ExchangeError {
        let failure = Failure { kind: FailureKind::Other, code: code.into(), message: code.into(), retry_after: None };
        ExchangeError::Failed { endpoint: "https://as.example/token".into(), failure }
    }

    fn unanswered() -> ExchangeError {
        ExchangeError::Send(SendError { method: "POST".into(), origin: "https://as.example".into(), reason: "timed out".into() })
    }

    #[test]
    fn polling_waits_longer_after_slow_down_and_no_answer_and_stops_at_expiry() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Duration::from_secs(5), Duration::from_secs(60), start);
        assert_eq!(schedule.next_poll(start).unwrap(), Duration::from_secs(5));
        schedule.after(failed("authorization_pending")).unwrap();
        assert_eq!(schedule.next_poll(start).unwrap(), Duration::from_secs(5), "pending keeps the interval");
        schedule.after(failed("slow_down")).unwrap();
        schedule.after(failed("slow_down")).unwrap();
        assert_eq!(schedule.next_poll(start).unwrap(), Duration::from_secs(15), "each slow_down adds five seconds");
        schedule.after(unanswered()).unwrap();
        assert_eq!(schedule.next_poll(start).unwrap(), Duration::from_secs(30), "no answer doubles it");
        let late = start + Duration::from_secs(31);
        let error = schedule.next_poll(late).unwrap_err().to_string();
        assert!(error.contains("expired") && error.contains("slow down 2 times"), "{error}");
    }

    #[test]
    fn a_storm_of_slow_downs_never_polls_faster_than_once_a_minute() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Duration::from_secs(1), LONGEST_LIFETIME, start);
        for _ in 0..100 {
            schedule.after(failed("slow_down")).unwrap();
        }
        assert_eq!(schedule.next_poll(start).unwrap(), LONGEST_INTERVAL);
    }

    #[test]
    fn denial_expiry_and_other_errors_end_the_polling() {
        let mut schedule = Schedule::new(DEFAULT_INTERVAL, Duration::from_secs(600), Instant::now());
        assert!(matches!(schedule.after(failed("access_denied")), Err(DeviceError::Denied)));
        assert!(matches!(schedule.after(failed("expired_token")), Err(DeviceError::Expired { .. })));
        let error = schedule.after(failed("invalid_client")).unwrap_err().to_string();
        assert!(error.contains("refused the device code") && error.contains("invalid_client"), "{error}");
    }

    fn answer(json: serde_json::Value) -> Result<(Verification, SecretString, Duration), DeviceError> {
        read_answer(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn answers_are_read_with_google_names_and_clamped() {
        let (verification, code, interval) = answer(serde_json::json!({
            "device_code": "dc", "user_code": "ABCD-EFGH", "verification_url": "https://www.google.com/device",
            "expires_in": "1800", "interval": 0
        }))
        .unwrap();
        assert_eq!((verification.user_code.as_str(), verification.uri.as_str()), ("ABCD-EFGH", "https://www.google.com/device"));
        assert_eq!(code.expose_secret(), "dc");
        assert_eq!(verification.lifetime, Duration::from_secs(1800));
        assert_eq!(interval, Duration::from_secs(1), "never faster than once a second");
        let (verification, _, interval) = answer(serde_json::json!({
            "device_code": "dc", "user_code": "WDJB-MJHT", "verification_uri": "https://example.com/device",
            "verification_uri_complete": "javascript:alert(1)", "expires_in": 86400000
        }))
        .unwrap();
        assert_eq!(verification.uri_complete, None, "an address a browser must not be sent to is left out");
        assert_eq!(verification.lifetime, LONGEST_LIFETIME);
        assert_eq!(interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn unusable_answers_name_what_is_wrong() {
        let base = serde_json::json!({
            "device_code": "dc", "user_code": "ABCD", "verification_uri": "https://example.com/device", "expires_in": 600
        });
        let broken = |field: &str, value: serde_json::Value| {
            let mut json = base.clone();
            json[field] = value;
            answer(json).unwrap_err().to_string()
        };
        assert!(broken("user_code", "\u{1b}[2Jcode".into()).contains("`user_code` is not a short printable code"));
        assert!(broken("verification_uri", "http://evil.example/device".into()).contains("`verification_uri` is not an https address"));
        assert!(broken("device_code", "".into()).contains("no `device_code`"));
        assert!(broken("expires_in", 0.into()).contains("no positive `expires_in`"));
        assert!(answer(base).is_ok());
    }
}
