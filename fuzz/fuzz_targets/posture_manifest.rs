//! Manifests for `bulwark posture scan` (untrusted CI input, YAML or JSON): reading one is
//! objects or an error naming the file and document, and scanning what was read never
//! panics; a report signature file is verified or refused, never a panic.
#![no_main]
use std::sync::OnceLock;

use bulwark_posture::EvidenceSource as _;
use bulwark_posture::manifest::{Limits, ManifestSource, Manifests, parse_into};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static CATALOGUE: OnceLock<bulwark_posture::Catalogue> = OnceLock::new();
    let catalogue = CATALOGUE.get_or_init(|| bulwark_posture::Catalogue::builtin().unwrap());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for path in ["fuzz.yaml", "fuzz.json"] {
        let mut objects = Vec::new();
        match parse_into(text, path, &Limits::default(), &mut objects) {
            Err(e) => {
                assert!(e.to_string().contains(path));
            }
            Ok(()) => {
                let source = ManifestSource::new(Manifests {
                    objects,
                    ..Manifests::default()
                });
                let report = bulwark_posture::scan(
                    &source.snapshot(0),
                    &bulwark_posture::ScanOptions {
                        catalogue,
                        exceptions: &[],
                        manifests_only: true,
                        framework: None,
                        name: "fuzz",
                        source: "fuzz",
                    },
                );
                let _ = bulwark_posture::export::render(
                    &report,
                    bulwark_posture::export::Format::Sarif,
                    &[],
                );
            }
        }
    }
    if let Ok(signature) = serde_json::from_str::<bulwark_posture::signing::ReportSignature>(text) {
        let _ = bulwark_posture::signing::verify(
            data,
            &signature,
            &bulwark_posture::signing::Trust::PublicKey(&[0; 32]),
        );
    }
});
