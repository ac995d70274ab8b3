//! Reports signed with a key whose certificate the cluster CA issued verify offline against
//! the CA alone; a tampered report, an edited signature, another CA's signer and an expired
//! certificate each fail, naming why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::time::Duration;

use bulwark_pki::CertificateAuthority;
use bulwark_posture::signing::{Trust, VerifyError, sign, verify};

fn signer(ca: &CertificateAuthority) -> (ring::signature::Ed25519KeyPair, String) {
    let issued = ca
        .issue_signing("bulwark-posture", Duration::from_secs(90 * 24 * 3600))
        .unwrap();
    let body: String = issued
        .key_pem
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    (
        ring::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap(),
        issued.cert_pem,
    )
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn the_ca_alone_verifies_a_signed_report_and_tampering_is_named() {
    let ca = CertificateAuthority::generate("bulwark-ca", Duration::from_secs(3650 * 24 * 3600))
        .unwrap();
    let (key, cert) = signer(&ca);
    let report = b"<html>posture</html>".to_vec();
    let sig = sign(&report, "html", &now(), &key, &cert);
    let subject = verify(&report, &sig, &Trust::Ca(ca.cert_pem())).unwrap();
    assert!(subject.contains("bulwark-posture"), "{subject}");

    let mut tampered = report.clone();
    tampered[7] = b'P';
    let err = verify(&tampered, &sig, &Trust::Ca(ca.cert_pem())).unwrap_err();
    assert!(matches!(err, VerifyError::ContentChanged { .. }));
    assert!(err.to_string().contains("changed after signing"), "{err}");

    // Another CA's signer, with the certificate swapped in: the chain check refuses it.
    let other =
        CertificateAuthority::generate("other-ca", Duration::from_secs(3650 * 24 * 3600)).unwrap();
    let (other_key, other_cert) = signer(&other);
    let forged = sign(&report, "html", &now(), &other_key, &other_cert);
    let err = verify(&report, &forged, &Trust::Ca(ca.cert_pem())).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedSigner(_)), "{err}");
    // The right certificate with another key's signature: refused too.
    let mut swapped = forged.clone();
    swapped.certificate = cert.clone();
    let err = verify(&report, &swapped, &Trust::Ca(ca.cert_pem())).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedSigner(_)), "{err}");

    // Signed at a time outside the certificate's validity.
    let late = sign(&report, "html", "2099-01-01T00:00:00Z", &key, &cert);
    let err = verify(&report, &late, &Trust::Ca(ca.cert_pem())).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateNotValid { .. }),
        "{err}"
    );
}
