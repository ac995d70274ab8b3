//! `EncryptionConfiguration` files (operator input, YAML): loading one is a configuration or
//! an error naming the problem, never a panic, and an error never echoes a key.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // KMS providers build their gRPC channel on the runtime the server runs.
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let _entered = runtime.enter();
    if let Err(e) = bulwark_encryption::config::load(text) {
        let _ = e.to_string();
    }
});
