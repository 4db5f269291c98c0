//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): the client proves who it is with a
//! short-lived JWT signed by its private key instead of sending a secret. The key is the user's,
//! stored with `latchkey secret set <server>.client_key` (a PEM read from stdin); only the host
//! reads it, to sign; no provider component ever sees it, and it never leaves this machine.
//!
//! Keys: RSA (signed RS256, as Entra's certificate credentials and Okta expect) or EC P-256
//! (ES256), in PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM.
//!
//! Certificate credentials (Entra ID, Salesforce): when the stored PEM also holds the key's
//! certificate (`CERTIFICATE`, as a `.pem` exported with its key does), the assertion's header
//! names it by its thumbprints, `x5t#S256` and `x5t` (RFC 7515 §4.1.8 and §4.1.7), which is how
//! Entra finds the certificate uploaded to the app registration.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

/// RFC 7523 §2.2's `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: long enough for one request, short enough to be useless later.
const LIFETIME_SECONDS: u64 = 300;

/// A stored value that is not a key latchkey can sign with. It never quotes the value.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} is not a private key latchkey can sign with ({why}): store an RSA or P-256 EC private key as PEM, `-----BEGIN PRIVATE \
     KEY-----` (PKCS#8), `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----`, with `latchkey secret set {name} < \
     key.pem`; a certificate or public key is not enough"
)]
pub struct KeyError {
    name: String,
    why: &'static str,
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    /// The key in `pem` (the secret called `name`, for messages).
    fn parse(name: &str, pem: &str) -> Result<Key, KeyError> {
        let refuse = |why| KeyError { name: name.to_string(), why };
        let der = PrivateKeyDer::from_pem_slice(pem.trim().as_bytes()).map_err(|_| refuse("no private key PEM block in it"))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
                .map(Key::Rsa)
                .or_else(|_| EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.secret_pkcs8_der()).map(Key::Ec)),
            PrivateKeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1.secret_pkcs1_der()).map(Key::Rsa),
            PrivateKeyDer::Sec1(sec1) => {
                EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, sec1.secret_sec1_der()).map(Key::Ec)
            }
            _ => return Err(refuse("an unknown kind of key")),
        };
        key.map_err(|_| refuse("not an RSA key of 2048 bits or more, nor a P-256 EC key"))
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature).expect("RSA signing with a valid key");
                signature
            }
            Key::Ec(key) => key.sign(&rng, message).expect("ECDSA signing with a valid key").as_ref().to_vec(),
        }
    }
}

/// The thumbprints of the first certificate in `pem`, if it holds one: `x5t#S256` and `x5t`.
fn thumbprints(name: &str, pem: &str) -> Result<Option<(String, String)>, KeyError> {
    let Some(first) = CertificateDer::pem_slice_iter(pem.trim().as_bytes()).next() else { return Ok(None) };
    let der = first.map_err(|_| KeyError { name: name.to_string(), why: "its CERTIFICATE block is not valid PEM" })?;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let sha256 = digest::digest(&digest::SHA256, der.as_ref());
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
    Ok(Some((encode(sha256.as_ref()), encode(sha1.as_ref()))))
}

/// Check that `value` (the secret `name`) is a key latchkey can sign with, and a certificate
/// beside it readable, before it is stored.
pub fn check(name: &str, value: &SecretString) -> Result<(), KeyError> {
    Key::parse(name, value.expose_secret())?;
    thumbprints(name, value.expose_secret()).map(|_| ())
}

/// A client assertion for `client_id` at `audience` (the endpoint it is sent to), signed with the
/// key stored as `name`.
pub fn assertion(name: &str, key: &SecretString, client_id: &str, audience: &str) -> Result<String, KeyError> {
    let certificate = thumbprints(name, key.expose_secret())?;
    let key = Key::parse(name, key.expose_secret())?;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let mut header = serde_json::json!({"alg": key.algorithm(), "typ": "JWT"});
    if let Some((sha256, sha1)) = certificate {
        header["x5t#S256"] = sha256.into();
        header["x5t"] = sha1.into();
    }
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": encode(&rand::random::<[u8; 16]>()),
        "iat": now,
        "exp": now + LIFETIME_SECONDS,
    });
    let signing_input = format!("{}.{}", encode(header.to_string().as_bytes()), encode(claims.to_string().as_bytes()));
    let signature = key.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", encode(&signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{KeyPair, UnparsedPublicKey};

    /// A P-256 key made for this test, as PKCS#8 PEM.
    fn ec_key() -> String {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    #[test]
    fn an_assertion_is_a_jwt_the_public_key_verifies() {
        let pem = ec_key();
        let jwt = assertion("app.client_key", &SecretString::from(pem.clone()), "app", "https://as.example/token").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("app"), Some("app")));
        assert_eq!(claims["aud"], "https://as.example/token");
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), LIFETIME_SECONDS);
        let Key::Ec(key) = Key::parse("k", &pem).unwrap() else { panic!("an EC key") };
        let public = key.public_key().as_ref().to_vec();
        let verifier = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public);
        verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &decode(parts[2])).expect("the signature verifies");
        assert!(header.get("x5t#S256").is_none() && header.get("x5t").is_none(), "no certificate, no thumbprint: {header}");
        let again = assertion("app.client_key", &SecretString::from(pem), "app", "https://as.example/token").unwrap();
        assert_ne!(again, jwt, "each assertion has its own jti");
    }

    #[test]
    fn a_certificate_beside_the_key_is_named_by_its_thumbprints() {
        let der = b"a certificate's DER bytes, as far as a thumbprint is concerned";
        let certificate = base64::engine::general_purpose::STANDARD.encode(der);
        let pem = format!("{}-----BEGIN CERTIFICATE-----\n{certificate}\n-----END CERTIFICATE-----\n", ec_key());
        let name = "mail.client_key";
        check(name, &SecretString::from(pem.clone())).unwrap();
        let jwt = assertion(name, &SecretString::from(pem), "app", "https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&decode(jwt.split('.').next().unwrap())).unwrap();
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(header["x5t#S256"], encode(<sha2::Sha256 as sha2::Digest>::digest(der).as_slice()), "{header}");
        assert_eq!(decode(header["x5t"].as_str().unwrap()).len(), 20, "a SHA-1 thumbprint: {header}");

        let broken = format!("{}-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", ec_key());
        let error = check(name, &SecretString::from(broken)).unwrap_err().to_string();
        assert!(error.contains("its CERTIFICATE block is not valid PEM"), "{error}");
    }

    #[test]
    fn what_is_not_a_private_key_is_refused_without_being_quoted() {
        let certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ2VuZXJhdGVk\n-----END CERTIFICATE-----\n";
        for value in ["not a key at all", certificate, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            let error = check("wiki.client_key", &SecretString::from(value.to_string())).unwrap_err().to_string();
            assert!(error.starts_with("wiki.client_key is not a private key latchkey can sign with"), "{error}");
            assert!(error.contains("latchkey secret set wiki.client_key < key.pem"), "{error}");
            assert!(!error.contains("MIIB") && !error.contains("AAAA"), "the value is never quoted: {error}");
        }
        check("wiki.client_key", &SecretString::from(ec_key())).unwrap();
    }
}
