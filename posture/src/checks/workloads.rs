//! Workload checks (KSPM-WL-*), over every Pod and pod template, live or in manifests. One
//! outcome per workload and control; a failure names every offending container and field.

use serde_json::Value;

use super::{Ctx, is_system_namespace, not_evaluated};
use crate::outcome::{Outcome, Source};
use crate::workload::{Workload, is_kind, object_ref};

/// Volume types the restricted profile allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types baseline allows.
const SAFE_SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Names of environment variables and ConfigMap keys that look like credentials.
const CREDENTIAL_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIAL",
];

/// One violation: the dotted path and what was there.
type Violation = (String, String);

/// Runs `find` over every workload: pass when it finds nothing, fail naming what it found.
/// Without objects the control is not evaluated; with no workload it does not apply.
fn each_workload(
    ctx: &Ctx<'_>,
    expected: &str,
    pass: &str,
    fail: &str,
    find: impl Fn(&Workload<'_>) -> Vec<Violation>,
) -> Vec<Outcome> {
    if let Err(reason) = ctx.snapshot.objects.get() {
        return not_evaluated(super::config("objects"), expected, reason);
    }
    if ctx.workloads.is_empty() {
        return super::not_applicable(super::config("objects"), "no pod or workload exists");
    }
    ctx.workloads
        .iter()
        .map(|w| {
            let found = find(w);
            let source = Source::Object {
                object: w.reference.clone(),
                path: found
                    .first()
                    .map_or_else(|| w.spec_path.clone(), |(p, _)| p.clone()),
            };
            if found.is_empty() {
                Outcome::pass(source, "compliant", expected, pass)
            } else {
                let observed = found
                    .iter()
                    .map(|(p, v)| format!("{p}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Outcome::fail(source, observed, expected, fail)
            }
        })
        .collect()
}

/// A container's securityContext field.
fn sc<'v>(container: &'v Value, field: &str) -> Option<&'v Value> {
    container.get("securityContext").and_then(|s| s.get(field))
}

/// A field of the container's securityContext, or the pod's when the container's is unset.
fn effective<'v>(w: &Workload<'v>, container: &'v Value, field: &str) -> Option<&'v Value> {
    sc(container, field).or_else(|| w.spec.pointer(&format!("/securityContext/{field}")))
}

pub(super) fn privileged(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "privileged unset or false",
        "no container is privileged",
        "a container is privileged",
        |w| {
            w.containers()
                .into_iter()
                .filter(|(_, c)| sc(c, "privileged").and_then(Value::as_bool) == Some(true))
                .map(|(p, _)| (format!("{p}.securityContext.privileged"), "true".to_owned()))
                .collect()
        },
    )
}

pub(super) fn host_namespaces(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "hostPID, hostIPC, hostNetwork unset or false",
        "the pod uses its own namespaces",
        "the pod shares a host namespace",
        |w| {
            ["hostPID", "hostIPC", "hostNetwork"]
                .into_iter()
                .filter(|f| w.spec.get(*f).and_then(Value::as_bool) == Some(true))
                .map(|f| (w.path(f), "true".to_owned()))
                .collect()
        },
    )
}

pub(super) fn volumes(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "no hostPath; volume types configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",
        "only restricted volume types",
        "a volume reaches outside the pod (hostPath or a type restricted does not allow)",
        |w| {
            let mut out = Vec::new();
            for (i, v) in w
                .spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(map) = v.as_object() else { continue };
                for key in map.keys().filter(|k| *k != "name") {
                    if !RESTRICTED_VOLUMES.contains(&key.as_str()) {
                        let shown = match key.as_str() {
                            "hostPath" => format!(
                                "hostPath {}",
                                v.pointer("/hostPath/path")
                                    .and_then(Value::as_str)
                                    .unwrap_or("?")
                            ),
                            other => other.to_owned(),
                        };
                        out.push((w.path(&format!("volumes[{i}].{key}")), shown));
                    }
                }
            }
            out
        },
    )
}

pub(super) fn host_ports(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "hostPort unset or 0",
        "no host port",
        "a container binds a host port",
        |w| {
            let mut out = Vec::new();
            for (p, c) in w.containers() {
                for (i, port) in c
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(hp) = port
                        .get("hostPort")
                        .and_then(Value::as_i64)
                        .filter(|h| *h != 0)
                    {
                        out.push((format!("{p}.ports[{i}].hostPort"), hp.to_string()));
                    }
                }
            }
            out
        },
    )
}

pub(super) fn capabilities(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "drop [ALL]; add at most [NET_BIND_SERVICE]",
        "every container drops ALL and adds at most NET_BIND_SERVICE",
        "a container keeps or adds capabilities",
        |w| {
            let mut out = Vec::new();
            for (p, c) in w.containers() {
                let caps = sc(c, "capabilities");
                let names = |field: &str| -> Vec<String> {
                    caps.and_then(|k| k.get(field))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                };
                let drop = names("drop");
                if !drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
                    out.push((
                        format!("{p}.securityContext.capabilities.drop"),
                        if drop.is_empty() {
                            "unset".to_owned()
                        } else {
                            drop.join(",")
                        },
                    ));
                }
                let extra: Vec<String> = names("add")
                    .into_iter()
                    .filter(|a| a != "NET_BIND_SERVICE" && a != "CAP_NET_BIND_SERVICE")
                    .collect();
                if !extra.is_empty() {
                    out.push((
                        format!("{p}.securityContext.capabilities.add"),
                        extra.join(","),
                    ));
                }
            }
            out
        },
    )
}

pub(super) fn privilege_escalation(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "allowPrivilegeEscalation: false",
        "no container may escalate privileges",
        "a container may escalate privileges",
        |w| {
            w.containers()
                .into_iter()
                .filter(|(_, c)| {
                    sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
                })
                .map(|(p, c)| {
                    let v = sc(c, "allowPrivilegeEscalation")
                        .and_then(Value::as_bool)
                        .map_or_else(|| "unset".to_owned(), |b| b.to_string());
                    (format!("{p}.securityContext.allowPrivilegeEscalation"), v)
                })
                .collect()
        },
    )
}

pub(super) fn non_root(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "runAsNonRoot: true and runAsUser not 0 (pod or container)",
        "every container runs as non-root",
        "a container may run as root",
        |w| {
            let mut out = Vec::new();
            for (p, c) in w.containers() {
                if effective(w, c, "runAsNonRoot").and_then(Value::as_bool) != Some(true) {
                    out.push((
                        format!("{p}.securityContext.runAsNonRoot"),
                        "not true".to_owned(),
                    ));
                }
                if effective(w, c, "runAsUser").and_then(Value::as_i64) == Some(0) {
                    out.push((format!("{p}.securityContext.runAsUser"), "0".to_owned()));
                }
            }
            out
        },
    )
}

pub(super) fn seccomp(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "seccompProfile.type RuntimeDefault or Localhost",
        "every container runs under a seccomp profile",
        "a container runs without a seccomp profile",
        |w| {
            w.containers()
                .into_iter()
                .filter_map(|(p, c)| {
                    let kind = effective(w, c, "seccompProfile")
                        .and_then(|s| s.get("type"))
                        .and_then(Value::as_str);
                    match kind {
                        Some("RuntimeDefault" | "Localhost") => None,
                        other => Some((
                            format!("{p}.securityContext.seccompProfile.type"),
                            other.unwrap_or("unset").to_owned(),
                        )),
                    }
                })
                .collect()
        },
    )
}

pub(super) fn lsm_proc_sysctls(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "AppArmor not Unconfined; SELinux container_* type without user or role; procMount Default; safe sysctls",
        "AppArmor, SELinux, /proc and sysctls are at their defaults",
        "a kernel isolation layer is weakened",
        |w| {
            let mut out = Vec::new();
            let pod_apparmor = w
                .spec
                .pointer("/securityContext/appArmorProfile/type")
                .and_then(Value::as_str);
            if pod_apparmor == Some("Unconfined") {
                out.push((
                    w.path("securityContext.appArmorProfile.type"),
                    "Unconfined".to_owned(),
                ));
            }
            let selinux = |path: String, options: Option<&Value>, out: &mut Vec<Violation>| {
                let Some(o) = options else { return };
                let t = o.get("type").and_then(Value::as_str).unwrap_or_default();
                if !SAFE_SELINUX_TYPES.contains(&t) {
                    out.push((format!("{path}.type"), t.to_owned()));
                }
                for f in ["user", "role"] {
                    if let Some(v) = o.get(f).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                        out.push((format!("{path}.{f}"), v.to_owned()));
                    }
                }
            };
            selinux(
                w.path("securityContext.seLinuxOptions"),
                w.spec.pointer("/securityContext/seLinuxOptions"),
                &mut out,
            );
            for (p, c) in w.containers() {
                let c = bulwark_admission::workload::container_with_annotations(w.metadata, c);
                let profile = c
                    .pointer("/securityContext/appArmorProfile/type")
                    .and_then(Value::as_str);
                if profile.is_some_and(|t| t != "RuntimeDefault" && t != "Localhost") {
                    out.push((
                        format!("{p}.securityContext.appArmorProfile.type"),
                        profile.unwrap_or_default().to_owned(),
                    ));
                }
                selinux(
                    format!("{p}.securityContext.seLinuxOptions"),
                    c.pointer("/securityContext/seLinuxOptions"),
                    &mut out,
                );
                if let Some(m) = c
                    .pointer("/securityContext/procMount")
                    .and_then(Value::as_str)
                    .filter(|m| *m != "Default")
                {
                    out.push((format!("{p}.securityContext.procMount"), m.to_owned()));
                }
            }
            for (i, s) in w
                .spec
                .pointer("/securityContext/sysctls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                if !SAFE_SYSCTLS.contains(&name) {
                    out.push((
                        w.path(&format!("securityContext.sysctls[{i}]")),
                        name.to_owned(),
                    ));
                }
            }
            out
        },
    )
}

pub(super) fn read_only_root(ctx: &Ctx<'_>) -> Vec<Outcome> {
    each_workload(
        ctx,
        "readOnlyRootFilesystem: true",
        "every container's root filesystem is read-only",
        "a container's root filesystem is writable",
        |w| {
            w.containers()
                .into_iter()
                .filter(|(_, c)| {
                    sc(c, "readOnlyRootFilesystem").and_then(Value::as_bool) != Some(true)
                })
                .map(|(p, _)| {
                    (
                        format!("{p}.securityContext.readOnlyRootFilesystem"),
                        "not true".to_owned(),
                    )
                })
                .collect()
        },
    )
}

pub(super) fn resources(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = each_workload(
        ctx,
        "requests and limits for cpu and memory",
        "every container has cpu and memory requests and limits",
        "a container has no request or limit",
        |w| {
            let mut out = Vec::new();
            for (p, c) in w.containers() {
                // Ephemeral containers take no resources.
                if p.contains(".ephemeralContainers[") {
                    continue;
                }
                for kind in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        let set = c
                            .get("resources")
                            .and_then(|r| r.get(kind))
                            .and_then(|r| r.get(resource))
                            .is_some();
                        if !set {
                            out.push((
                                format!("{p}.resources.{kind}.{resource}"),
                                "unset".to_owned(),
                            ));
                        }
                    }
                }
            }
            out
        },
    );
    // Namespaces that run workloads: only where the scan holds Namespace objects (live
    // scans, or manifests that include them).
    for (name, ns) in &ctx.namespaces {
        if is_system_namespace(name) || !ctx.workloads.iter().any(|w| w.namespace() == *name) {
            continue;
        }
        let has = |kind: &str| {
            ctx.objects.iter().any(|o| {
                is_kind(o, "", kind)
                    && o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(name)
            })
        };
        let missing: Vec<&str> = ["LimitRange", "ResourceQuota"]
            .into_iter()
            .filter(|k| !has(k))
            .collect();
        out.push(Outcome::check(
            missing.is_empty(),
            Source::Object {
                object: object_ref(ns),
                path: String::new(),
            },
            if missing.is_empty() {
                "LimitRange, ResourceQuota".to_owned()
            } else {
                format!("no {}", missing.join(", no "))
            },
            "a LimitRange and a ResourceQuota",
            format!("namespace {name} has a LimitRange and a ResourceQuota"),
            format!("namespace {name} lacks {}", missing.join(" and ")),
        ));
    }
    out
}

/// Whether a name looks like it holds a credential.
fn credential_like(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace(['-', '.'], "_");
    CREDENTIAL_WORDS.iter().any(|w| upper.contains(w))
}

pub(super) fn secrets_in_env(ctx: &Ctx<'_>) -> Vec<Outcome> {
    let mut out = each_workload(
        ctx,
        "Secrets as volumes; no credential values in env",
        "no Secret or credential reaches an environment variable",
        "a Secret or credential is passed in the environment",
        |w| {
            let mut out = Vec::new();
            for (p, c) in w.containers() {
                for (i, env) in c
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let name = env.get("name").and_then(Value::as_str).unwrap_or_default();
                    if let Some(secret) = env
                        .pointer("/valueFrom/secretKeyRef/name")
                        .and_then(Value::as_str)
                    {
                        out.push((
                            format!("{p}.env[{i}].valueFrom.secretKeyRef"),
                            format!("{name} from Secret {secret}"),
                        ));
                    } else if credential_like(name)
                        && env
                            .get("value")
                            .and_then(Value::as_str)
                            .is_some_and(|v| !v.is_empty())
                    {
                        out.push((
                            format!("{p}.env[{i}].value"),
                            format!("{name} holds a literal value"),
                        ));
                    }
                }
                for (i, from) in c
                    .get("envFrom")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(secret) = from.pointer("/secretRef/name").and_then(Value::as_str) {
                        out.push((
                            format!("{p}.envFrom[{i}].secretRef"),
                            format!("Secret {secret}"),
                        ));
                    }
                }
            }
            out
        },
    );
    if ctx.snapshot.objects.get().is_ok() {
        for cm in ctx.of_kind("", "ConfigMap") {
            let keys: Vec<&str> = cm
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|d| d.keys())
                .map(String::as_str)
                .filter(|k| credential_like(k))
                .collect();
            if !keys.is_empty() {
                out.push(Outcome::fail(
                    Source::Object {
                        object: object_ref(cm),
                        path: format!("data.{}", keys.first().copied().unwrap_or_default()),
                    },
                    keys.join(", "),
                    "no credential-looking keys",
                    "a ConfigMap holds credential-looking keys (move them into a Secret)",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::credential_like;

    #[test]
    fn credential_names() {
        assert!(credential_like("DB_PASSWORD"));
        assert!(credential_like("api-key"));
        assert!(credential_like("github.token"));
        assert!(!credential_like("LOG_LEVEL"));
    }
}
