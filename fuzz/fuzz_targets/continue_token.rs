//! `?continue=` tokens: a token that decodes belongs to the list it is given to (its start
//! key is inside the prefix), names a revision, and survives a round trip.
#![no_main]
use bulwark_store::continue_token::ContinueToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let prefix = "/registry/configmaps/default/";
    if let Ok(token) = ContinueToken::decode(text, prefix) {
        assert!(token.start.starts_with(prefix), "a token outside its list");
        assert!(token.revision > 0);
        assert_eq!(
            ContinueToken::decode(&token.encode(), prefix).ok(),
            Some(token)
        );
    }
});
