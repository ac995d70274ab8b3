//! Label selectors from `?labelSelector=`: parse, then match against a few label sets.
#![no_main]
use bulwark_api::LabelSelector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(selector) = LabelSelector::parse(text) {
        let labels = serde_json::json!({"app": "web", "tier": "front", "a.b/c": "d"});
        let _ = selector.matches(labels.as_object());
        let _ = selector.matches(None);
    }
});
