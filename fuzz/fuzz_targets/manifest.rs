//! Arbitrary bytes as a manifest file (read from the NFS standard root at
//! every sync boot) → `manifest::decode`: an error, never a panic and never an
//! allocation the input's size does not justify; what decodes re-encodes.
#![no_main]

use init_agent::sync::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = manifest::decode(data, "fuzz") {
        let again = manifest::encode(&m);
        assert!(manifest::decode(&again, "fuzz").is_ok());
    }
});
