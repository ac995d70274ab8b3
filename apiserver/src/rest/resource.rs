//! Handlers for one object: get, create, update (PUT), patch and delete, with optimistic
//! concurrency, dry runs, field validation, admission and upstream's deletion rules
//! (finalizers, graceful pod deletion, propagation policy finalizers, terminating namespaces).

use axum::response::Response;
use bulwark_api::{Status, StatusReason};
use bulwark_store::{KeyValue, Revision, StoreError};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::admission::AdmissionRequest;
use crate::authn::UserInfo;
use crate::codec::table::IncludeObject;
use crate::http::error::{ApiError, from_store};
use crate::http::negotiate::{self, FieldValidation, Format, Query};
use crate::http::request_info::{ResourceRequest, Verb};
use crate::http::respond;
use crate::registry::typed;
use crate::registry::{ResourceDef, Subresource};
use crate::rest::fieldmanager::{self, FieldManager};
use crate::rest::object::{self, UpdateKind, meta_str};
use crate::rest::patch::{self, PatchType};
use crate::state::ApiState;
use crate::storage;

/// How often an update retries after losing a race it did not ask to detect.
const MAX_RETRIES: usize = 16;

/// One request's context.
pub struct Ctx<'a> {
    /// Shared state.
    pub state: &'a ApiState,
    /// The resources served, as of the request's start.
    pub resources: &'a crate::registry::ResourceTable,
    /// What is addressed.
    pub req: &'a ResourceRequest,
    /// Query parameters.
    pub query: &'a Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The caller.
    pub user: &'a UserInfo,
    /// The caller's address.
    pub source: std::net::IpAddr,
    /// The negotiated representation.
    pub format: Format,
}

impl Ctx<'_> {
    /// The resource definition.
    pub fn def(&self) -> &ResourceDef {
        &self.req.def
    }

    /// The resource definition, shared (for what outlives the request: a watch).
    pub fn shared_def(&self) -> std::sync::Arc<ResourceDef> {
        std::sync::Arc::clone(&self.req.def)
    }

    /// The namespace, if the kind is namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.req
            .namespace
            .as_deref()
            .filter(|_| self.def().namespaced())
    }

    fn name(&self) -> &str {
        self.req.name.as_deref().unwrap_or_default()
    }

    /// Who is writing, for `managedFields`: the `fieldManager` option, else the User-Agent's
    /// product.
    fn manager(&self) -> Result<String, ApiError> {
        match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(name) => {
                fieldmanager::check_manager(name)?;
                Ok(name.to_owned())
            }
            None => Ok(fieldmanager::manager_from_user_agent(self.headers)),
        }
    }

    fn field_manager(&self) -> Result<FieldManager, ApiError> {
        FieldManager::new(self.def(), self.req.subresource)
    }

    /// Authorizes `verb` on the addressed object as well (403 otherwise): for requests that
    /// do more than their own verb says, such as an apply that creates.
    fn authorize_also(&self, verb: &str) -> Result<(), ApiError> {
        let def = self.def();
        let namespace = self.namespace();
        let labels = namespace.map(|ns| self.state.namespace_labels.get(ns));
        let attributes = crate::authz::RequestAttributes {
            verb,
            target: bulwark_policies::Target::Resource {
                api_group: def.group(),
                resource: def.plural(),
                subresource: None,
                namespace,
                name: Some(self.name()),
                namespace_labels: labels.as_deref().unwrap_or_default(),
            },
        };
        let decision = self
            .state
            .authorizer
            .authorize(self.user, &attributes, self.source);
        if decision.allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusReason::Forbidden,
                crate::authz::forbidden_message(self.user, &attributes, &decision),
            ))
        }
    }

    fn key(&self) -> String {
        storage::object_key(self.def(), self.namespace(), self.name())
    }

    fn include(&self) -> IncludeObject {
        IncludeObject::parse(self.query.get("includeObject"))
    }

    fn store_err(&self, e: StoreError) -> ApiError {
        from_store(e, self.def().group(), self.def().plural(), self.name())
    }

    fn not_found(&self) -> ApiError {
        Status::not_found(self.def().group(), self.def().plural(), self.name()).into()
    }

    /// Writes `new` over the addressed object if it is still at `expected`; `None` when a
    /// concurrent write won the race (the caller re-reads and retries).
    async fn cas_update(&self, new: &Value, expected: Revision) -> Result<Option<Value>, ApiError> {
        match self
            .state
            .objects
            .update(
                &self.key(),
                storage::encode(self.def(), new)?,
                Some(expected),
            )
            .await
        {
            Ok(kv) => Ok(Some(storage::decode(self.def(), &kv)?)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(self.store_err(e)),
        }
    }

    /// Deletes the addressed object if it is still at `expected`; `false` when a concurrent
    /// write won the race.
    async fn cas_delete(&self, expected: Revision) -> Result<bool, ApiError> {
        match self.state.objects.delete(&self.key(), Some(expected)).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(self.store_err(e)),
        }
    }

    /// Reads the addressed object (404 if absent).
    pub async fn current(&self) -> Result<(KeyValue, Value), ApiError> {
        let kv = self.current_stored().await?;
        let obj = storage::decode(self.def(), &kv)?;
        Ok((kv, obj))
    }

    /// The stored object (404 if there is none).
    async fn current_stored(&self) -> Result<KeyValue, ApiError> {
        self.state
            .objects
            .get(&self.key())
            .await
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| self.not_found())
    }

    fn respond(&self, code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
        respond::object(self.def(), self.format, self.include(), code, obj, warnings)
    }

    /// Runs admission plugins (dry run as the query says); returns their warnings.
    pub async fn admit(
        &self,
        verb: Verb,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        self.admit_with(verb, object, old, self.query.dry_run()?)
            .await
    }

    /// Runs admission plugins, telling them whether this is a dry run (a deletion's dry run
    /// may come in its body); returns their warnings.
    pub async fn admit_with(
        &self,
        verb: Verb,
        object: Option<&Value>,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<Vec<String>, ApiError> {
        let namespace_object = if self.def().namespaced() && verb == Verb::Create {
            let ns_def = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
                "",
                "v1",
                "namespaces",
            ));
            match (ns_def, self.namespace()) {
                (Some(ns_def), Some(ns)) => {
                    let key = storage::object_key(&ns_def, None, ns);
                    match self
                        .state
                        .objects
                        .get(&key)
                        .await
                        .map_err(|e| self.store_err(e))?
                    {
                        Some(kv) => Some(storage::decode(&ns_def, &kv)?),
                        None => None,
                    }
                }
                _ => None,
            }
        } else {
            None
        };
        let name = object
            .or(old)
            .and_then(|o| meta_str(o, "name"))
            .unwrap_or(self.name())
            .to_owned();
        let request = AdmissionRequest {
            resources: self.resources,
            def: self.def(),
            verb,
            user: self.user,
            source: self.source,
            subresource: self.req.subresource,
            namespace: self.namespace(),
            namespace_object: namespace_object.as_ref(),
            name: &name,
            object,
            old_object: old,
            dry_run,
        };
        if let Some(object) = object {
            crate::http::limits::check_container_count(
                self.def(),
                object,
                &self.state.limits.request,
            )?;
        }
        // Admission is CPU work that grows with the object: it runs in a bounded number at a
        // time, each off the async workers, so that heavy writes queue behind each other
        // instead of stalling every other request on the server.
        let _turn = self.state.admission_gate.turn().await?;
        let run = || {
            let mut warnings = Vec::new();
            for plugin in &self.state.admission {
                warnings.extend(plugin.admit(&request)?);
            }
            Ok(warnings)
        };
        crate::admission::gate::off_the_workers(run)
    }
}

/// Decodes through the upstream type and applies `fieldValidation`; returns the pruned object
/// and warnings.
pub fn validate_fields(
    def: &ResourceDef,
    obj: &Value,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let decoded = typed::decode(def, obj)?;
    let messages: Vec<String> = decoded
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok((decoded.object, messages)),
        _ => Ok((decoded.object, Vec::new())),
    }
}

/// GET one object (or its status).
pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    // An object served as it is stored goes out from its stored bytes, its tree never built.
    if ctx.req.subresource.is_none()
        && ctx.format == Format::Json
        && crate::registry::convert::is_identity(ctx.def())
    {
        let kv = ctx.current_stored().await?;
        let raw = storage::decode_raw(&kv, false)?;
        return Ok(respond::json_bytes(StatusCode::OK, raw.bytes));
    }
    let (_, obj) = ctx.current().await?;
    if ctx.req.subresource == Some(Subresource::Scale) {
        return Ok(respond::json(
            StatusCode::OK,
            &crate::rest::subresource::scale_of(&obj),
            &[],
        ));
    }
    Ok(ctx.respond(StatusCode::OK, &obj, &[]))
}

/// POST: create.
pub async fn create(ctx: &Ctx<'_>, mut obj: Value) -> Result<Response, ApiError> {
    object::check_kind(ctx.def(), &mut obj)?;
    let (mut obj, mut warnings) = validate_fields(ctx.def(), &obj, ctx.query.field_validation()?)?;
    object::prepare_create(ctx.def(), &mut obj, ctx.namespace())?;
    ctx.field_manager()?
        .update(None, &mut obj, &ctx.manager()?, None)?;
    let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
    crate::audit::record::note_created_name(&name);
    warnings.extend(ctx.admit(Verb::Create, Some(&obj), None).await?);
    if ctx.query.dry_run()? {
        return Ok(ctx.respond(StatusCode::CREATED, &obj, &warnings));
    }
    let key = storage::object_key(ctx.def(), ctx.namespace(), &name);
    let kv = ctx
        .state
        .objects
        .create(&key, storage::encode(ctx.def(), &obj)?)
        .await
        .map_err(|e| from_store(e, ctx.def().group(), ctx.def().plural(), &name))?;
    let created = storage::decode(ctx.def(), &kv)?;
    Ok(ctx.respond(StatusCode::CREATED, &created, &warnings))
}

/// What a read-modify-write produced.
pub struct Written {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Value,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// Reads the object, lets `mutate` produce the new version, runs admission and writes it with
/// compare-and-swap. A race is retried unless the caller pinned a resourceVersion (409).
/// Objects whose deletion is pending and whose last finalizer goes away are deleted.
/// The writer gets the fields it changed in `managedFields`.
pub async fn read_modify_write<F>(ctx: &Ctx<'_>, verb: Verb, mutate: F) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<(Value, Vec<String>), ApiError>,
{
    modify(ctx, verb, Ownership::Changed, mutate).await
}

/// How a write's `managedFields` come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    /// The writer takes what it changed (create, update, patch, subresources).
    Changed,
    /// The mutation set them (server-side apply).
    Set,
}

async fn modify<F>(
    ctx: &Ctx<'_>,
    verb: Verb,
    ownership: Ownership,
    mut mutate: F,
) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<(Value, Vec<String>), ApiError>,
{
    let dry_run = ctx.query.dry_run()?;
    let field_manager = ctx.field_manager()?;
    let manager = ctx.manager()?;
    for _ in 0..MAX_RETRIES {
        let (old_kv, old) = ctx.current().await?;
        let (mut new, mut warnings) = mutate(&old)?;
        if ownership == Ownership::Changed {
            let sent = new.pointer("/metadata/managedFields").cloned();
            let sent = sent.filter(|s| Some(s) != old.pointer("/metadata/managedFields"));
            field_manager.update(Some(&old), &mut new, &manager, sent.as_ref())?;
        }
        let current_rv = old_kv.mod_revision.to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != current_rv
        {
            return Err(Status::conflict(
                ctx.def().group(),
                ctx.def().plural(),
                ctx.name(),
                "the object has been modified; please apply your changes to the latest version and try again",
            )
            .into());
        }
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(current_rv));
        }
        warnings.extend(ctx.admit(verb, Some(&new), Some(&old)).await?);
        if new == old || dry_run {
            return Ok(Written {
                object: new,
                warnings,
            });
        }
        if deletion_complete(ctx.def(), &new) {
            if ctx.cas_delete(old_kv.mod_revision).await? {
                return Ok(Written {
                    object: new,
                    warnings,
                });
            }
            continue;
        }
        if let Some(object) = ctx.cas_update(&new, old_kv.mod_revision).await? {
            return Ok(Written { object, warnings });
        }
    }
    Err(too_many_writers())
}

/// Every retry lost a race: the object is under heavy concurrent writes.
fn too_many_writers() -> ApiError {
    ApiError::new(
        StatusReason::Conflict,
        "too many concurrent writers on this object; try again",
    )
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A pending deletion whose finalizers are all gone, and that its kind does not hold back.
fn deletion_complete(def: &ResourceDef, obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
        && finalizers(obj).is_empty()
        && !def.strategy().deletion_waits(obj)
}

fn update_kind(req: &ResourceRequest) -> UpdateKind {
    match req.subresource {
        Some(Subresource::Status) => UpdateKind::Status,
        _ => UpdateKind::Main,
    }
}

/// Turns a client's new version of `old` (a PUT body or a patched object) into what is
/// written: kind checked, decoded through the upstream type, server-owned fields kept. Its
/// `resourceVersion`, if any, is the client's precondition, checked by [`read_modify_write`].
fn prepared_update(
    def: &ResourceDef,
    mut candidate: Value,
    old: &Value,
    kind: UpdateKind,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    object::check_kind(def, &mut candidate)?;
    let (mut new, warnings) = validate_fields(def, &candidate, mode)?;
    crate::registry::defaults::apply(def, &mut new);
    object::prepare_update(def, &mut new, old, kind)?;
    Ok((new, warnings))
}

/// PUT: replace (main resource or status).
pub async fn update(ctx: &Ctx<'_>, submitted: Value) -> Result<Response, ApiError> {
    match ctx.req.subresource {
        Some(Subresource::Scale) => {
            return crate::rest::subresource::write_scale(ctx, |_| Ok(submitted.clone())).await;
        }
        Some(Subresource::Approval) => {
            return crate::rest::subresource::write_approval(ctx, &submitted).await;
        }
        _ => {}
    }
    let mode = ctx.query.field_validation()?;
    let kind = update_kind(ctx.req);
    let written = read_modify_write(ctx, Verb::Update, |old| {
        prepared_update(ctx.def(), submitted.clone(), old, kind, mode)
    })
    .await?;
    Ok(ctx.respond(StatusCode::OK, &written.object, &written.warnings))
}

/// The media type of server-side apply patches.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// PATCH: JSON, merge or strategic merge patch (main resource, status or scale), or
/// server-side apply.
pub async fn patch(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let content_type = negotiate::content_type(ctx.headers);
    if content_type == APPLY_PATCH {
        return apply(ctx, body).await;
    }
    if ctx.query.get("force").is_some() {
        return Err(ApiError::bad_request(
            "force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    let Some(patch_type) = PatchType::from_content_type(&content_type) else {
        return Err(ApiError::new(
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        ));
    };
    let budget = patch::PatchBudget::from_limits(&ctx.state.limits.request);
    match ctx.req.subresource {
        Some(Subresource::Scale) => {
            return crate::rest::subresource::write_scale(ctx, |scale| {
                patch::apply(patch_type, scale, body, &budget)
            })
            .await;
        }
        Some(Subresource::Approval) => {
            let (_, current) = ctx.current().await?;
            let patched = patch::apply(patch_type, &current, body, &budget)?;
            return crate::rest::subresource::write_approval(ctx, &patched).await;
        }
        _ => {}
    }
    let mode = ctx.query.field_validation()?;
    let kind = update_kind(ctx.req);
    let written = read_modify_write(ctx, Verb::Patch, |old| {
        prepared_update(
            ctx.def(),
            patch::apply(patch_type, old, body, &budget)?,
            old,
            kind,
            mode,
        )
    })
    .await?;
    Ok(ctx.respond(StatusCode::OK, &written.object, &written.warnings))
}

/// PATCH with `application/apply-patch+yaml`: server-side apply of a (partial) configuration
/// by `fieldManager`, creating the object if it does not exist (which needs `create`
/// permission too: a grant to patch is not a grant to create).
async fn apply(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let def = ctx.def();
    if matches!(
        ctx.req.subresource,
        Some(Subresource::Scale | Subresource::Approval)
    ) {
        return Err(ApiError::new(
            StatusReason::UnsupportedMediaType,
            "server-side apply is served for objects and their status only",
        ));
    }
    let manager = ctx
        .query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            Status::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![bulwark_api::StatusCause::required("fieldManager")],
            )
        })?
        .to_owned();
    fieldmanager::check_manager(&manager)?;
    let force = match ctx.query.get("force") {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?}: must be true or false"
            )));
        }
    };
    let mode = ctx.query.field_validation()?;
    let mut config = crate::codec::request::parse_yaml(body)?;
    object::check_kind(def, &mut config)?;
    match meta_str(&config, "name") {
        Some(name) if name == ctx.name() => {}
        Some(name) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                ctx.name()
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "the apply configuration needs metadata.name",
            ));
        }
    }
    // Typed once to refuse wrong types and find unknown fields; the configuration itself
    // stays partial (the type would fill in required fields it does not set).
    let decoded = typed::decode(def, &config)?;
    let mut warnings = match mode {
        FieldValidation::Strict if !decoded.unknown_fields.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                decoded
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        FieldValidation::Warn => decoded
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect(),
        _ => Vec::new(),
    };
    let config = typed::prune_unknown(&config, &decoded.object);
    let field_manager = ctx.field_manager()?;
    let kind = update_kind(ctx.req);
    match ctx.current().await {
        Ok(_) => {}
        Err(e) if e.code() == 404 && ctx.req.subresource.is_none() => {
            ctx.authorize_also("create")?;
            let obj = field_manager.apply(None, &config, &manager, force)?;
            let managed = obj.pointer("/metadata/managedFields").cloned();
            let (mut obj, more) = validate_fields(def, &obj, mode)?;
            let mut created_warnings = warnings.clone();
            created_warnings.extend(more);
            object::prepare_create(def, &mut obj, ctx.namespace())?;
            if let (Some(managed), Some(meta)) = (
                managed,
                obj.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                meta.insert("managedFields".into(), managed);
            }
            crate::audit::record::note_created_name(ctx.name());
            created_warnings.extend(ctx.admit(Verb::Create, Some(&obj), None).await?);
            if ctx.query.dry_run()? {
                return Ok(ctx.respond(StatusCode::CREATED, &obj, &created_warnings));
            }
            match ctx
                .state
                .objects
                .create(&ctx.key(), storage::encode(def, &obj)?)
                .await
            {
                Ok(kv) => {
                    let created = storage::decode(def, &kv)?;
                    return Ok(ctx.respond(StatusCode::CREATED, &created, &created_warnings));
                }
                // Another writer created it meanwhile: apply onto theirs, below.
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(ctx.store_err(e)),
            }
        }
        Err(e) => return Err(e),
    }
    let written = modify(ctx, Verb::Patch, Ownership::Set, |old| {
        let merged = field_manager.apply(Some(old), &config, &manager, force)?;
        let managed = merged.pointer("/metadata/managedFields").cloned();
        let (mut new, more) = prepared_update(def, merged, old, kind, mode)?;
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            match managed {
                Some(managed) => meta.insert("managedFields".into(), managed),
                None => meta.remove("managedFields"),
            };
        }
        Ok((new, more))
    })
    .await?;
    warnings.extend(written.warnings);
    Ok(ctx.respond(StatusCode::OK, &written.object, &warnings))
}

/// `DeleteOptions`, from the body and the query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// Seconds before a graceful deletion completes.
    pub grace_period: Option<i64>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// Required uid.
    pub uid: Option<String>,
    /// Required resourceVersion.
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]`, in the body or the query: nothing is deleted.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Parses options from an optional body and the query.
    pub fn parse(body: Option<&Value>, query: &Query) -> Result<Self, ApiError> {
        let mut opts = Self::default();
        if let Some(v) = body {
            if !v.is_object() {
                return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
            }
            opts.grace_period = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            opts.propagation = v
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned);
            opts.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            opts.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match v.get("dryRun") {
                None | Some(Value::Null) => {}
                Some(Value::Array(dry)) => {
                    if dry.iter().any(|d| d.as_str() != Some("All")) {
                        return Err(ApiError::bad_request(
                            "invalid dry run option; the only supported value is All",
                        ));
                    }
                    opts.dry_run = !dry.is_empty();
                }
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "DeleteOptions.dryRun must be a list of strings",
                    ));
                }
            }
        }
        opts.dry_run |= query.dry_run()?;
        if let Some(g) = query.get("gracePeriodSeconds") {
            opts.grace_period =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        if let Some(p) = query.get("propagationPolicy") {
            opts.propagation = Some(p.to_owned());
        }
        if let Some(p) = &opts.propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(Status::invalid("", "DeleteOptions", "", vec![bulwark_api::StatusCause::invalid(
                "propagationPolicy",
                format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
            )])
            .into());
        }
        if opts.grace_period.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must be non-negative",
            ));
        }
        Ok(opts)
    }
}

/// What deleting one object did.
pub enum Deleted {
    /// Removed from the store; the last state.
    Removed(Value),
    /// Marked for deletion (finalizers or grace period); the new state.
    Pending(Value),
}

/// Deletes one object following upstream's rules.
pub async fn delete_one(ctx: &Ctx<'_>, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
    let dry_run = opts.dry_run;
    for _ in 0..MAX_RETRIES {
        let (kv, old) = ctx.current().await?;
        if let Some(uid) = &opts.uid
            && meta_str(&old, "uid") != Some(uid.as_str())
        {
            return Err(Status::conflict(
                ctx.def().group(),
                ctx.def().plural(),
                ctx.name(),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            )
            .into());
        }
        if let Some(rv) = &opts.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(Status::conflict(ctx.def().group(), ctx.def().plural(), ctx.name(), &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", kv.mod_revision
            )).into());
        }
        ctx.admit_with(Verb::Delete, None, Some(&old), dry_run)
            .await?;
        let mut pending_finalizers = finalizers(&old);
        match opts.propagation.as_deref() {
            Some("Foreground") => pending_finalizers.push("foregroundDeletion".into()),
            Some("Orphan") => pending_finalizers.push("orphan".into()),
            _ => {}
        }
        let terminating = ctx.def().strategy().terminating_status();
        let grace = opts
            .grace_period
            .or_else(|| {
                old.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        let graceful = ctx.def().strategy().graceful_delete(&old) && grace > 0;
        if pending_finalizers.is_empty() && !graceful && terminating.is_none() {
            if dry_run {
                return Ok(Deleted::Removed(old));
            }
            if ctx.cas_delete(kv.mod_revision).await? {
                return Ok(Deleted::Removed(old));
            }
            continue;
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Deleted::Pending(old));
        }
        let mut new = old.clone();
        let when = if graceful {
            object::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(grace))
        } else {
            object::now_rfc3339()
        };
        let meta = object::meta_mut(&mut new)?;
        meta.insert("deletionTimestamp".into(), json!(when));
        meta.insert(
            "deletionGracePeriodSeconds".into(),
            json!(if graceful { grace } else { 0 }),
        );
        object::bump_generation(meta);
        if !pending_finalizers.is_empty() {
            pending_finalizers.dedup();
            meta.insert("finalizers".into(), json!(pending_finalizers));
        }
        if let (Some(status), Some(root)) = (terminating, new.as_object_mut()) {
            root.insert("status".into(), status);
        }
        if dry_run {
            return Ok(Deleted::Pending(new));
        }
        if let Some(stored) = ctx.cas_update(&new, kv.mod_revision).await? {
            return Ok(Deleted::Pending(stored));
        }
    }
    Err(too_many_writers())
}

/// DELETE one object.
pub async fn delete(ctx: &Ctx<'_>, body: Option<&Value>) -> Result<Response, ApiError> {
    let opts = DeleteOptions::parse(body, ctx.query)?;
    match delete_one(ctx, &opts).await? {
        Deleted::Pending(obj) => Ok(ctx.respond(StatusCode::OK, &obj, &[])),
        Deleted::Removed(obj) if ctx.def().strategy().delete_returns_object() => {
            Ok(ctx.respond(StatusCode::OK, &obj, &[]))
        }
        Deleted::Removed(obj) => {
            let mut details = bulwark_api::status::StatusDetails {
                name: ctx.name().to_owned(),
                group: ctx.def().group().to_owned(),
                kind: ctx.def().plural().to_owned(),
                ..Default::default()
            };
            details.uid = meta_str(&obj, "uid").unwrap_or_default().to_owned();
            Ok(respond::json(
                StatusCode::OK,
                &serde_json::to_value(Status::success(Some(details))).unwrap_or_default(),
                &[],
            ))
        }
    }
}

/// The revision a resourceVersion string names (400 if malformed).
pub fn parse_rv(text: &str) -> Result<Revision, ApiError> {
    text.parse::<u64>().map(Revision).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {text:?}: must be a decimal integer"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deletion rules are the kinds' own: a custom kind called `Pod` or `Namespace`
    /// gets none of the core kinds' (its strategy is its own).
    #[test]
    fn deletion_rules_are_the_kinds() {
        let core_pod =
            crate::registry::lookup(&bulwark_api::GroupVersionResource::new("", "v1", "pods"))
                .unwrap();
        let lease = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
            "coordination.k8s.io",
            "v1",
            "leases",
        ))
        .unwrap();
        let bound = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n1"}});
        assert!(core_pod.strategy().graceful_delete(&bound));
        assert!(!lease.strategy().graceful_delete(&bound));
        assert!(!deletion_complete(&core_pod, &bound));
        assert!(deletion_complete(&lease, &bound));
        let terminating = json!({"metadata": {"name": "n", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(deletion_complete(&lease, &terminating));
        let core_namespace = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
            "",
            "v1",
            "namespaces",
        ))
        .unwrap();
        assert!(!deletion_complete(&core_namespace, &terminating));
    }
}
