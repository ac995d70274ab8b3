//! The conformance suite every [`KeyService`] passes (the local keyring and a KMS v2 plugin
//! over gRPC): a healthy status with a key id, a wrap that round-trips, distinct wraps of one
//! seed, refusal of tampered or foreign wrapped keys, and validity of what it answers.

use super::{KeyService, KmsError, Wrapped, validate_wrapped};

/// Runs every check against `service`; the first failure is returned with what failed.
pub async fn run(service: &dyn KeyService) -> Result<(), String> {
    let status = service.status().await.map_err(|e| format!("status: {e}"))?;
    if status.healthz != "ok" {
        return Err(format!("status: healthz {:?}", status.healthz));
    }
    if status.version != "v2" {
        return Err(format!("status: version {:?}", status.version));
    }
    if status.key_id.is_empty() {
        return Err("status: no key id".into());
    }
    let seed = [7u8; 32];
    let wrapped = service
        .encrypt("conformance-1", &seed)
        .await
        .map_err(|e| format!("encrypt: {e}"))?;
    validate_wrapped(&wrapped).map_err(|e| format!("encrypt: {e}"))?;
    if wrapped.key_id != status.key_id {
        return Err(format!(
            "encrypt used key {:?}, status names {:?}",
            wrapped.key_id, status.key_id
        ));
    }
    if wrapped.ciphertext.windows(seed.len()).any(|w| w == seed) {
        return Err("encrypt: the ciphertext contains the plaintext".into());
    }
    let again = service
        .encrypt("conformance-2", &seed)
        .await
        .map_err(|e| format!("encrypt: {e}"))?;
    if again.ciphertext == wrapped.ciphertext {
        return Err("encrypt: two wraps of one seed are identical".into());
    }
    let plain = service
        .decrypt("conformance-3", &wrapped)
        .await
        .map_err(|e| format!("decrypt: {e}"))?;
    if plain != seed {
        return Err("decrypt: not the seed that was wrapped".into());
    }
    let mut tampered = wrapped.clone();
    if let Some(b) = tampered.ciphertext.last_mut() {
        *b ^= 1;
    }
    expect_refusal(
        service.decrypt("conformance-4", &tampered).await,
        "a tampered wrap",
    )?;
    let foreign = Wrapped {
        key_id: "no-such-key".into(),
        ..wrapped.clone()
    };
    expect_refusal(
        service.decrypt("conformance-5", &foreign).await,
        "an unknown key id",
    )?;
    Ok(())
}

fn expect_refusal(answer: Result<Vec<u8>, KmsError>, what: &str) -> Result<(), String> {
    match answer {
        Ok(_) => Err(format!("decrypt accepted {what}")),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_local_keyring_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let ring = crate::local::LocalKeyring::open_or_create(dir.path()).unwrap();
        super::run(&ring).await.unwrap();
    }
}
