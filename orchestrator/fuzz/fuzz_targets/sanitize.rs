//! The redaction applied to everything sent to a model: no panic on any
//! text, and a `password=` secret never survives it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_orchestrator::pipeline::drafts;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = drafts::sanitize(text);
    for word in out.split(' ') {
        if let Some(rest) = word.to_ascii_lowercase().strip_prefix("password=") {
            assert!(rest.is_empty() || rest == "[redacted]", "{word}");
        }
    }
});
