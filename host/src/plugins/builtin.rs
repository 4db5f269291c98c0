//! The provider components embedded in the binary, built by `host/build.rs`.

include!(concat!(env!("OUT_DIR"), "/builtin_providers.rs"));
