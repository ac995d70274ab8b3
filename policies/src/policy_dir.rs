//! Policies on disk: `<data-dir>/policies/guardrails.cedar` and `grants.cedar`. The first
//! start installs the shipped defaults; the operator edits the files and reloads (SIGHUP)
//! until policies become API objects. A file that fails validation is refused as a whole and
//! the policies in force stay.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::PolicyError;
use crate::engine::DEFAULT_GRANTS;

const GUARDRAILS_HEADER: &str = "// Guardrails: forbid policies only. A matching forbid denies, even for grants;\n// a forbid that fails to evaluate denies too. Each policy needs a unique @id.\n";

/// The two policy files of a data directory.
#[derive(Debug, Clone)]
pub struct PolicyDir {
    dir: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> PolicyError {
    PolicyError::Request(format!("{}: {e}", path.display()))
}

/// The texts of both tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTexts {
    /// The guardrail tier.
    pub guardrails: String,
    /// The grant tier.
    pub grants: String,
}

impl PolicyDir {
    /// `<data_dir>/policies`, created `0700` with the default files if missing.
    pub fn open(data_dir: &Path) -> Result<Self, PolicyError> {
        let dir = data_dir.join("policies");
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| io(&dir, e))?;
        for (name, text) in [
            ("guardrails.cedar", GUARDRAILS_HEADER),
            ("grants.cedar", DEFAULT_GRANTS),
        ] {
            let path = dir.join(name);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => f
                    .write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io(&path, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        Ok(Self { dir })
    }

    /// Reads both files.
    pub fn read(&self) -> Result<TierTexts, PolicyError> {
        let read = |name: &str| {
            let path = self.dir.join(name);
            fs::read_to_string(&path).map_err(|e| io(&path, e))
        };
        Ok(TierTexts {
            guardrails: read("guardrails.cedar")?,
            grants: read("grants.cedar")?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_defaults_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PolicyDir::open(tmp.path()).unwrap();
        let texts = dir.read().unwrap();
        assert_eq!(texts.grants, DEFAULT_GRANTS);
        assert!(crate::PolicyEngine::new(&texts.guardrails, &texts.grants).is_ok());
        fs::write(dir.path().join("grants.cedar"), "// mine\n").unwrap();
        let again = PolicyDir::open(tmp.path()).unwrap();
        assert_eq!(again.read().unwrap().grants, "// mine\n");
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
