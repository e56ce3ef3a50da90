//! A webhook delivery's body, as received: split into alerts, checked all
//! or nothing, observables extracted, event times found. No panic, and
//! every evidence pointer Vigil derives resolves in the alert it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_orchestrator::{pipeline::ingest, pipeline::observables, pipeline::timeline};

fuzz_target!(|body: &[u8]| {
    let Ok(raws) = ingest::split_delivery(body) else {
        return;
    };
    if let Ok(checked) = ingest::check("auto", &raws) {
        assert_eq!(checked.len(), raws.len(), "all or nothing");
    }
    for raw in &raws {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
            continue;
        };
        for o in observables::extract(&v) {
            assert!(
                v.pointer(&o.pointer).is_some(),
                "observable pointer {} resolves nowhere",
                o.pointer
            );
        }
        for format in ["ocsf", "ecs", "crowdstrike", "graylog"] {
            if let Some((_, pointer)) = timeline::event_time(format, &v) {
                assert!(v.pointer(pointer).is_some(), "time pointer {pointer}");
            }
        }
    }
});
