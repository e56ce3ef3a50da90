//! The OpenAPI 3.1 document at `GET /api/openapi.json`, generated from the
//! route table ([`crate::web::routes`]): every route with its method, its
//! path parameters, its access rule (`x-vigil-access`) and the security
//! that rule admits (an API token, or a session cookie with `X-CSRF-Token`
//! on writes; `TenantPerson` and platform routes take a session only);
//! request bodies from the handlers' own types (utoipa `ToSchema`, their
//! serde attributes respected: `deny_unknown_fields` is
//! `additionalProperties: false`); every refusal in the error shape with
//! its codes per status. Pages are documented as `text/html`. Served to
//! anyone: it holds no tenant data.
//!
//! Success bodies from the handlers' own response types (`ToSchema`),
//! lists as `{items, total}`, 204s without a body.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::web::auth::{Access, RouteTable};
use crate::web::routes::{self, Answer, Body, Query};

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        build(
            &routes::routes().1,
            &routes::bodies(),
            &routes::queries(),
            &routes::answers(),
        )
    })
}

pub async fn serve() -> Response {
    axum::Json(document().clone()).into_response()
}

/// The access rule as the document states it (`x-vigil-access`).
pub fn access_label(a: Access) -> String {
    match a {
        Access::Public => "public".into(),
        Access::SignedIn => "signed_in".into(),
        Access::Platform(o, act) => format!("platform:{o}:{act}"),
        Access::Tenant(o, act) => format!("tenant:{o}:{act}"),
        Access::TenantPerson(o, act) => format!("tenant_person:{o}:{act}"),
    }
}

/// The error codes a route may answer with, per status.
fn errors(
    access: Access,
    api: bool,
    has_params: bool,
    has_body: bool,
    write: bool,
) -> Vec<(u16, Vec<&'static str>)> {
    let mut out: Vec<(u16, Vec<&'static str>)> = vec![(400, vec!["bad_request"])];
    if !matches!(access, Access::Public) {
        out.push((401, vec!["unauthenticated"]));
        // A session of an MFA role not yet verified; a session's write
        // without its CSRF token.
        let mut forbidden = vec!["forbidden", "mfa_required"];
        if write {
            forbidden.push("csrf");
        }
        out.push((403, forbidden));
    }
    // A path id, or an id in the body (a case to purge), that names nothing.
    if has_params || has_body || !api {
        out.push((404, vec!["not_found"]));
    }
    if write {
        out.push((409, vec!["conflict"]));
        out.push((413, vec!["too_large"]));
        out.push((422, vec!["invalid"]));
        out.push((423, vec!["kill_switch"]));
    } else if has_body || has_params {
        out.push((422, vec!["invalid"]));
    }
    if has_body {
        out.push((415, vec!["unsupported_media_type"]));
    }
    out.push((429, vec!["rate_limited"]));
    out.push((503, vec!["busy", "not_ready"]));
    out
}

/// The media type of a static file by its name.
fn asset(path: &str) -> Option<&'static str> {
    if !path.starts_with("/static/") {
        None
    } else if path.ends_with(".css") {
        Some("text/css")
    } else {
        Some("text/javascript")
    }
}

fn params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match name {
                "id" | "user_id" => json!({"type": "string", "format": "uuid"}),
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.push_str(
            &seg.trim_matches(|c| c == '{' || c == '}')
                .replace(['-', '.'], "_"),
        );
    }
    id
}

fn build(table: &RouteTable, bodies: &[Body], queries: &[Query], answers: &[Answer]) -> Value {
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut schemas = serde_json::Map::new();
    for b in bodies {
        for (name, s) in &b.schemas {
            schemas.insert(name.clone(), s.clone());
        }
    }
    for a in answers {
        for (name, s) in &a.schemas {
            schemas.insert(name.clone(), s.clone());
        }
    }
    let mut entries: Vec<(&(Method, &'static str), &Access)> = table.iter().collect();
    entries.sort_by_key(|((m, p), _)| (*p, m.as_str().to_owned()));
    for ((method, path), access) in entries {
        // The JSON interface: the API and the health probes.
        let api = path.starts_with("/api/") || *path == "/healthz" || *path == "/readyz";
        let write = !matches!(*method, Method::GET | Method::HEAD);
        let body = bodies.iter().find(|b| b.method == *method && b.path == *path);
        let mut ps = params(path);
        if let Some(q) = queries.iter().find(|q| q.method == *method && q.path == *path) {
            ps.extend(q.params.iter().cloned());
        }
        let mut op = serde_json::Map::new();
        op.insert("operationId".into(), json!(operation_id(method, path)));
        op.insert("x-vigil-access".into(), json!(access_label(*access)));
        if !ps.is_empty() {
            op.insert("parameters".into(), json!(ps));
        }
        op.insert(
            "security".into(),
            match access {
                Access::Public => json!([]),
                Access::TenantPerson(..) | Access::Platform(..) => {
                    if write {
                        json!([{"session": [], "csrf": []}])
                    } else {
                        json!([{"session": []}])
                    }
                }
                Access::SignedIn | Access::Tenant(..) => {
                    if write {
                        json!([{"bearer": []}, {"session": [], "csrf": []}])
                    } else {
                        json!([{"bearer": []}, {"session": []}])
                    }
                }
            },
        );
        if let Some(b) = body {
            op.insert(
                "requestBody".into(),
                json!({"required": b.required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", b.name)}}}}),
            );
        } else if write && !api {
            op.insert(
                "requestBody".into(),
                json!({"required": false, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}),
            );
        }
        let mut responses = serde_json::Map::new();
        let answer = answers.iter().find(|a| a.method == *method && a.path == *path);
        let ok = if let Some(kind) = asset(path) {
            json!({"description": "a static file", "content": {kind: {"schema": {"type": "string"}}}})
        } else if !api {
            json!({"description": "a page (or a redirect after a form)", "content": {"text/html": {"schema": {"type": "string"}}}})
        } else if *path == "/api/v1/audit/export" {
            json!({"description": "the audit log, streamed (JSON Lines or CSV)", "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}})
        } else if *path == "/api/openapi.json" {
            json!({"description": "this document", "content": {"application/json": {"schema": {"type": "object"}}}})
        } else if let Some(a) = answer {
            match &a.schema {
                Some(schema) => {
                    json!({"description": "success", "content": {"application/json": {"schema": schema}}})
                }
                None => json!({"description": "done: no content"}),
            }
        } else {
            json!({"description": "success", "content": {"application/json": {"schema": {}}}})
        };
        responses.insert("2XX".into(), ok);
        if !api {
            responses.insert(
                "3XX".into(),
                json!({"description": "a redirect (after a form, or to sign in)"}),
            );
        }
        let takes_body = body.is_some() || (write && !api);
        let mut errs = errors(*access, api, !ps.is_empty(), takes_body, write);
        if path.contains("{token}") {
            // A one-time link used, expired or unknown.
            errs.push((410, vec!["gone"]));
        }
        for (status, codes) in errs {
            if !api {
                // A page's refusal is a page that says why.
                responses.insert(
                    status.to_string(),
                    json!({"description": codes.join(", "), "content": {"text/html": {"schema": {"type": "string"}}}}),
                );
                continue;
            }
            responses.insert(
                status.to_string(),
                json!({
                    "description": codes.join(", "),
                    "content": {"application/json": {"schema": {
                        "allOf": [{"$ref": "#/components/schemas/Error"}],
                        "properties": {"error": {"properties": {"code": {"enum": codes}}}}
                    }}}
                }),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        paths
            .entry(path)
            .or_default()
            .insert(method.as_str().to_lowercase(), Value::Object(op));
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        "bad_request", "unauthenticated", "forbidden", "not_found", "method_not_allowed",
                        "conflict", "too_large", "unsupported_media_type", "invalid", "kill_switch",
                        "rate_limited", "headers_too_large", "busy", "not_ready", "timeout", "internal",
                        "tls_required", "csrf", "mfa_required"
                    ]},
                    "message": {"type": "string"}
                }
            }}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The security investigation orchestrator's HTTP interface: the JSON API under /api/v1 and the pages people use. Every refusal is {\"error\": {\"code\", \"message\"}}."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (vigil admin create-token, or POST /api/v1/tokens)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "vigil_session", "description": "a person's session, from signing in"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token", "description": "with a session, on every write"}
            }
        }
    })
}
