//! Cedar policy text as CedarPolicy objects carry it: parsed and strictly validated against
//! the schema, as authorization and as admission policies.
#![no_main]
use bulwark_policies::CompiledPolicies;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = CompiledPolicies::compile("fuzz", None, text);
    let _ = CompiledPolicies::compile("fuzz", Some("team-a"), text);
    let _ = bulwark_policies::policy_text::parse("fuzz", text);
});
