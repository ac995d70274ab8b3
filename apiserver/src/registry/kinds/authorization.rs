//! `authorization.k8s.io/v1` access reviews: answered by `authz::access_review`, never
//! stored.

use k8s_openapi::api::authorization::v1 as api;

use crate::registry::strategy::plain_kind;

plain_kind!(
    /// SelfSubjectAccessReviews (`kubectl auth can-i`).
    SelfSubjectAccessReviews,
    api::SelfSubjectAccessReview
);

plain_kind!(
    /// SelfSubjectRulesReviews (`kubectl auth can-i --list`).
    SelfSubjectRulesReviews,
    api::SelfSubjectRulesReview
);

plain_kind!(
    /// SubjectAccessReviews.
    SubjectAccessReviews,
    api::SubjectAccessReview
);

plain_kind!(
    /// LocalSubjectAccessReviews.
    LocalSubjectAccessReviews,
    api::LocalSubjectAccessReview
);
