//! Observable normalization: no panic on any text, and normalizing a
//! normalized value changes nothing (the correlation index and IOC lists
//! compare normalized forms).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_orchestrator::pipeline::observables::{self, Kind};

const KINDS: [&str; 8] = [
    "host",
    "user",
    "ip",
    "domain",
    "url",
    "file_hash",
    "process",
    "email",
];

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(kind) = KINDS[usize::from(k) % KINDS.len()].parse::<Kind>() else {
        return;
    };
    if let Some(n) = observables::normalize(kind, text) {
        assert_eq!(
            observables::normalize(kind, &n).as_deref(),
            Some(n.as_str()),
            "normalize is not idempotent for {kind:?}"
        );
    }
    let _ = observables::refang(text);
});
