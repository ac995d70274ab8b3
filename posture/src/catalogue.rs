//! The control catalogue: what is checked, why, how to fix it, and which clauses of which
//! frameworks each control answers. It is data — one YAML file per control family under
//! `posture/catalogue/`, compiled into the binary — so that security teams review the
//! controls and their mappings as text, and tests check every entry (remediation, at least one
//! mapping, a passing and a failing fixture).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::PostureError;

/// The catalogue files, in family order: (file name, contents).
const FILES: &[(&str, &str)] = &[
    ("api.yaml", include_str!("../catalogue/api.yaml")),
    ("storage.yaml", include_str!("../catalogue/storage.yaml")),
    ("pki.yaml", include_str!("../catalogue/pki.yaml")),
    ("auth.yaml", include_str!("../catalogue/auth.yaml")),
    (
        "admission.yaml",
        include_str!("../catalogue/admission.yaml"),
    ),
    (
        "workloads.yaml",
        include_str!("../catalogue/workloads.yaml"),
    ),
    ("network.yaml", include_str!("../catalogue/network.yaml")),
    ("audit.yaml", include_str!("../catalogue/audit.yaml")),
    ("node.yaml", include_str!("../catalogue/node.yaml")),
];

/// How bad a failure of a control is; `--fail-on` and the SARIF level follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hygiene; fix when convenient.
    Low,
    /// Weakens a defence.
    Medium,
    /// Opens a path to compromise.
    High,
    /// Compromise of the cluster with little effort.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The lowercase name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses `low|medium|high|critical`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A framework a control maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// CIS Kubernetes Benchmark v1.12.
    Cis,
    /// NSA/CISA Kubernetes Hardening Guidance v1.2.
    Nsa,
    /// Kubernetes Pod Security Standards.
    Pss,
    /// MITRE ATT&CK for Containers (technique ids).
    Mitre,
    /// SOC 2 Trust Services Criteria.
    Soc2,
    /// NIST SP 800-53 rev. 5.
    Nist,
    /// PCI DSS v4.0.
    Pci,
}

impl Framework {
    /// Every framework, in report order.
    pub const ALL: [Framework; 7] = [
        Framework::Cis,
        Framework::Nsa,
        Framework::Pss,
        Framework::Mitre,
        Framework::Soc2,
        Framework::Nist,
        Framework::Pci,
    ];

    /// The short name used on the command line and in the API (`cis`).
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Cis => "cis",
            Framework::Nsa => "nsa",
            Framework::Pss => "pss",
            Framework::Mitre => "mitre",
            Framework::Soc2 => "soc2",
            Framework::Nist => "nist",
            Framework::Pci => "pci",
        }
    }

    /// The framework's full name and version, as reports print it.
    pub fn title(self) -> &'static str {
        match self {
            Framework::Cis => "CIS Kubernetes Benchmark v1.12",
            Framework::Nsa => "NSA/CISA Kubernetes Hardening Guidance v1.2",
            Framework::Pss => "Kubernetes Pod Security Standards",
            Framework::Mitre => "MITRE ATT&CK for Containers",
            Framework::Soc2 => "SOC 2 Trust Services Criteria",
            Framework::Nist => "NIST SP 800-53 rev. 5",
            Framework::Pci => "PCI DSS v4.0",
        }
    }

    /// Parses a short name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One control of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Stable id (`KSPM-WL-01`); SARIF's `ruleId`.
    pub id: String,
    /// One line saying what must hold.
    pub title: String,
    /// How bad a failure is.
    pub severity: Severity,
    /// Judged on manifests too (offline `bulwark posture scan`): the workload controls, and
    /// those about objects a manifest may hold (RBAC roles, webhooks, service accounts).
    #[serde(default)]
    pub manifests: bool,
    /// Why it matters.
    pub rationale: String,
    /// How to make it pass.
    pub remediation: String,
    /// The clauses of each framework it answers.
    #[serde(default)]
    pub mappings: BTreeMap<Framework, Vec<String>>,
    /// The matching checks of other scanners (Kubescape C-xxxx, Trivy KCV/KSV), for
    /// side-by-side comparison.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The family this control belongs to (filled in from its file).
    #[serde(skip_deserializing, default)]
    pub family: String,
}

impl Control {
    /// Whether this control maps to `framework`.
    pub fn maps_to(&self, framework: Framework) -> bool {
        self.mappings.get(&framework).is_some_and(|m| !m.is_empty())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyFile {
    family: String,
    title: String,
    controls: Vec<Control>,
}

/// A family of controls (one catalogue file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Family {
    /// Short name (`workloads`).
    pub name: String,
    /// Heading.
    pub title: String,
}

/// The whole catalogue, with a version that changes whenever any control's text or mapping
/// does, so every result says which catalogue judged it.
#[derive(Debug, Clone)]
pub struct Catalogue {
    version: String,
    families: Vec<Family>,
    controls: Vec<Control>,
}

impl Catalogue {
    /// The catalogue compiled into this binary.
    pub fn builtin() -> Result<Self, PostureError> {
        Self::from_files(FILES)
    }

    /// A catalogue from `(file name, YAML)` pairs (the built-in files, or test variants).
    pub fn from_files(files: &[(&str, &str)]) -> Result<Self, PostureError> {
        let mut families = Vec::new();
        let mut controls: Vec<Control> = Vec::new();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for (name, text) in files {
            digest.update(text.as_bytes());
            let file: FamilyFile =
                serde_yaml_ng::from_str(text).map_err(|e| PostureError::Catalogue {
                    file: (*name).to_owned(),
                    reason: e.to_string(),
                })?;
            for mut control in file.controls {
                if controls.iter().any(|c| c.id == control.id) {
                    return Err(PostureError::Catalogue {
                        file: (*name).to_owned(),
                        reason: format!("control {} is defined twice", control.id),
                    });
                }
                control.family.clone_from(&file.family);
                controls.push(control);
            }
            families.push(Family {
                name: file.family,
                title: file.title,
            });
        }
        let hash = digest.finish();
        let short: String = hash
            .as_ref()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            version: format!("{}+{short}", env!("CARGO_PKG_VERSION")),
            families,
            controls,
        })
    }

    /// The catalogue version every result carries (`0.1.0+<digest of the files>`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every control, in family order.
    pub fn controls(&self) -> &[Control] {
        &self.controls
    }

    /// The families, in order.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The control with `id`.
    pub fn control(&self, id: &str) -> Option<&Control> {
        self.controls.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_ships_the_core_controls_each_with_remediation_and_a_mapping() {
        let catalogue = Catalogue::builtin().unwrap();
        assert_eq!(catalogue.controls().len(), 59);
        for control in catalogue.controls() {
            assert!(
                control.remediation.trim().len() > 20,
                "{} has no remediation",
                control.id
            );
            assert!(!control.rationale.trim().is_empty(), "{}", control.id);
            assert!(
                control.mappings.values().any(|m| !m.is_empty()),
                "{} maps to nothing",
                control.id
            );
            assert!(control.id.starts_with("KSPM-"), "{}", control.id);
        }
        // The informational controls of the starting catalogue are not in the core set.
        for id in ["KSPM-API-09", "KSPM-STO-06", "KSPM-WL-10", "KSPM-NODE-11"] {
            assert!(catalogue.control(id).is_none(), "{id}");
        }
        assert!(catalogue.version().starts_with(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn every_framework_has_controls_and_pod_security_maps_only_workload_and_admission_controls() {
        let catalogue = Catalogue::builtin().unwrap();
        for framework in Framework::ALL {
            assert!(
                catalogue.controls().iter().any(|c| c.maps_to(framework)),
                "{framework}"
            );
        }
        for control in catalogue
            .controls()
            .iter()
            .filter(|c| c.maps_to(Framework::Pss))
        {
            assert!(
                control.family == "workloads" || control.family == "admission",
                "{}",
                control.id
            );
        }
    }

    #[test]
    fn a_duplicate_id_or_an_unknown_field_is_refused_naming_the_file() {
        let one = "family: a\ntitle: A\ncontrols:\n  - id: X\n    title: t\n    severity: low\n    rationale: r\n    remediation: fix it\n";
        let err = Catalogue::from_files(&[("a.yaml", one), ("b.yaml", one)]).unwrap_err();
        assert!(err.to_string().contains("b.yaml"), "{err}");
        let typo = "family: a\ntitle: A\ncontrols:\n  - id: X\n    title: t\n    severity: low\n    rationale: r\n    remedation: fix\n";
        let err = Catalogue::from_files(&[("c.yaml", typo)]).unwrap_err();
        assert!(err.to_string().contains("c.yaml"), "{err}");
    }

    #[test]
    fn the_version_changes_with_the_text() {
        let a = "family: a\ntitle: A\ncontrols: []\n";
        let b = "family: a\ntitle: B\ncontrols: []\n";
        let va = Catalogue::from_files(&[("a.yaml", a)]).unwrap();
        let vb = Catalogue::from_files(&[("a.yaml", b)]).unwrap();
        assert_ne!(va.version(), vb.version());
    }
}
