//! Arbitrary bytes as a manifest's signature file and the manifest beside it
//! (both served by the NFS master to a node holding keys) → `trust::open`:
//! refused with an error, never a panic. The first two bytes (big-endian)
//! are the signature's length; the seed is a real signed manifest.
#![no_main]

use init_agent::sync::trust;
use libfuzzer_sys::fuzz_target;

/// The seed's public key (minisign format): mutations of its signature and
/// manifest explore the parser and every refusal past it.
const KEY: &str = "RWStgbsKr1NrkWHtvsAQStb59Qccauo7a8uKAWLCgJfTabdI0fboboVQ";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = trust::Key::parse(KEY, "fuzz") else {
        return;
    };
    let (len, rest) = data.split_at(data.len().min(2));
    let len = len.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
    let (sig, manifest) = rest.split_at(len.min(rest.len()));
    let _ = trust::open("fuzz", Some(manifest), Some(sig), std::slice::from_ref(&key));
    let text = String::from_utf8_lossy(sig);
    let _ = trust::parse_comment(&text);
    let _ = trust::Key::parse(&text, "fuzz");
});
