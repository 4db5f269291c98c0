//! The provider components embedded in the binary, built by `host/build.rs`.

/// A built-in provider component.
pub struct BuiltInComponent {
    /// The provider's id, which its `info()` must declare.
    pub name: &'static str,
    /// Lower-case hex SHA-256 of `bytes`, computed when the binary was built.
    pub sha256: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_providers.rs"));

#[cfg(test)]
mod tests {
    use super::BUILT_IN;

    #[test]
    fn each_digest_is_the_digest_of_its_bytes() {
        assert!(!BUILT_IN.is_empty());
        for component in BUILT_IN {
            assert_eq!(component.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(component.bytes)), "{}", component.name);
        }
    }
}
