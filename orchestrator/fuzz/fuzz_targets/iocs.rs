//! IOC list imports (CSV and STIX 2.1 bundles): no panic on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_orchestrator::pipeline::iocs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = iocs::parse_csv(text);
    let _ = iocs::parse_stix(text);
});
