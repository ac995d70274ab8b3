//! Events for tests: the `i`th of a run of alice's GETs of ConfigMaps, with a unique auditID.

use bulwark_audit::event::{Event, Level, Stage, UserInfo};

/// Alice's GET of ConfigMap `c{i}`, with auditID `id-{i}`.
pub fn event(i: usize) -> Event {
    Event::new(
        format!("id-{i}"),
        Stage::ResponseComplete,
        Level::Metadata,
        "get",
        format!("/api/v1/namespaces/default/configmaps/c{i}"),
        UserInfo {
            username: "alice".into(),
            groups: vec![],
        },
    )
}
