//! Field selectors from `?fieldSelector=`: parse, then match.
#![no_main]
use bulwark_api::FieldSelector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(selector) = FieldSelector::parse(text) {
        let _ = selector.matches(|field| format!("{field}-value"));
        let _ = selector.fields().count();
    }
});
