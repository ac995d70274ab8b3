//! The fake evidence source: every area given as data (YAML or JSON), for tests and the
//! per-control fixtures. Its serialized form is also how a live snapshot is written down.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    EncryptionState, EvidenceSource, NodeReport, Objects, Observed, PkiState, PolicyState,
    ServerConfig,
};

/// Evidence given as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FakeSource {
    /// Its name.
    pub name: String,
    /// Server configuration.
    pub server: Observed<ServerConfig>,
    /// PKI.
    pub pki: Observed<PkiState>,
    /// Encryption.
    pub encryption: Observed<EncryptionState>,
    /// Policies and probe answers.
    pub policies: Observed<PolicyState>,
    /// Objects.
    pub objects: Observed<Vec<Value>>,
    /// Node reports.
    pub nodes: Observed<Vec<NodeReport>>,
}

impl FakeSource {
    /// From its JSON form.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

impl EvidenceSource for FakeSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn server(&self) -> Observed<ServerConfig> {
        self.server.clone()
    }
    fn pki(&self) -> Observed<PkiState> {
        self.pki.clone()
    }
    fn encryption(&self) -> Observed<EncryptionState> {
        self.encryption.clone()
    }
    fn policies(&self) -> Observed<PolicyState> {
        self.policies.clone()
    }
    fn objects(&self) -> Observed<Arc<Objects>> {
        match &self.objects {
            Observed::Available(items) => Observed::Available(Arc::new(Objects {
                items: items.iter().cloned().map(Arc::new).collect(),
            })),
            Observed::Unavailable { reason } => Observed::unavailable(reason.clone()),
        }
    }
    fn nodes(&self) -> Observed<Vec<NodeReport>> {
        self.nodes.clone()
    }
}
