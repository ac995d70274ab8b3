//! Client certificates as authentication reads them: the identity (subject CN and O) and
//! validity of arbitrary DER, and of PEM around it.
#![no_main]
use bulwark_pki::{CertIdentity, CertValidity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let _ = CertIdentity::from_der(der);
    if let Ok(text) = std::str::from_utf8(der) {
        let _ = CertIdentity::from_pem(text);
        let _ = CertValidity::from_pem(text);
    }
});
