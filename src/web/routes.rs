//! The route table: every route of the app with its access rule, declared
//! in one place. The guard ([`crate::web::auth::guard`]) enforces the rule
//! before a handler runs; the OpenAPI document and the tests read the same
//! table.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post, put};

use crate::web::auth::{Access, RouteTable};
use crate::web::{AppState, api, pages};

/// Builds the routes and, beside them, the table of what each requires
/// and the JSON body types the API's handlers take (for the OpenAPI
/// document).
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    table: RouteTable,
    bodies: Vec<Body>,
    queries: Vec<Query>,
    answers: Vec<Answer>,
}

/// What a route answers on success: its JSON body's schema (from the
/// handler's own response type) with the schemas it refers to, or nothing
/// (204).
#[derive(Debug, Clone)]
pub struct Answer {
    pub method: Method,
    pub path: &'static str,
    /// None: 204, no body.
    pub schema: Option<serde_json::Value>,
    pub schemas: Vec<(String, serde_json::Value)>,
}

/// A route's query parameters, from the handler's own query type.
#[derive(Debug, Clone)]
pub struct Query {
    pub method: Method,
    pub path: &'static str,
    /// OpenAPI parameter objects.
    pub params: Vec<serde_json::Value>,
}

/// A route's JSON request body: its schema (from the handler's own type),
/// with the schemas it refers to.
#[derive(Debug, Clone)]
pub struct Body {
    pub method: Method,
    pub path: &'static str,
    pub name: String,
    /// Whether a request must carry it.
    pub required: bool,
    /// JSON Schemas by name: the body's and those it refers to.
    pub schemas: Vec<(String, serde_json::Value)>,
}

impl Routes {
    fn route(
        mut self,
        path: &'static str,
        access: &[(Method, Access)],
        handler: MethodRouter<AppState>,
    ) -> Self {
        for (m, a) in access {
            self.table.insert((m.clone(), path), *a);
        }
        self.router = self.router.route(path, handler);
        self
    }

    /// The JSON body `T` the handler of `method path` takes.
    fn body<T: utoipa::ToSchema>(self, method: Method, path: &'static str) -> Self {
        self.body_of::<T>(method, path, true)
    }

    /// The query type `T` the handler of `GET path` reads.
    fn query<T: utoipa::IntoParams>(mut self, path: &'static str) -> Self {
        let params = T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
            .into_iter()
            .map(|p| serde_json::to_value(p).unwrap_or_default())
            .collect();
        self.queries.push(Query {
            method: Method::GET,
            path,
            params,
        });
        self
    }

    /// The handler of `method path` answers one `T`.
    fn answers<T: utoipa::ToSchema>(mut self, method: Method, path: &'static str) -> Self {
        let (r, schemas) = schema_of::<T>();
        self.answers.push(Answer {
            method,
            path,
            schema: Some(r),
            schemas,
        });
        self
    }

    /// The handler of `GET path` answers a page of `T`: `{items, total}`.
    fn lists<T: utoipa::ToSchema>(mut self, path: &'static str) -> Self {
        let (r, schemas) = schema_of::<T>();
        self.answers.push(Answer {
            method: Method::GET,
            path,
            schema: Some(serde_json::json!({
                "type": "object",
                "required": ["items", "total"],
                "properties": {
                    "items": {"type": "array", "items": r},
                    "total": {"type": "integer", "minimum": 0}
                }
            })),
            schemas,
        });
        self
    }

    /// The handler of `method path` answers 204 with no body.
    fn answers_nothing(mut self, method: Method, path: &'static str) -> Self {
        self.answers.push(Answer {
            method,
            path,
            schema: None,
            schemas: Vec::new(),
        });
        self
    }

    fn body_of<T: utoipa::ToSchema>(mut self, method: Method, path: &'static str, required: bool) -> Self {
        let (_, schemas) = schema_of::<T>();
        let name = T::name().into_owned();
        self.bodies.push(Body {
            method,
            path,
            name,
            required,
            schemas,
        });
        self
    }
}

/// `T`'s schema as a reference, and the schemas it needs by name.
fn schema_of<T: utoipa::ToSchema>() -> (serde_json::Value, Vec<(String, serde_json::Value)>) {
    let mut found = Vec::new();
    T::schemas(&mut found);
    let name = T::name().into_owned();
    found.push((name.clone(), T::schema()));
    let schemas = found
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or_default()))
        .collect();
    (
        serde_json::json!({"$ref": format!("#/components/schemas/{name}")}),
        schemas,
    )
}

/// What the API's routes answer on success.
pub fn answers() -> Vec<Answer> {
    build().answers
}

/// Every route of the app with its access rule.
pub fn routes() -> (Router<AppState>, RouteTable) {
    let r = build();
    (r.router, r.table)
}

/// The JSON request bodies of the API's routes.
pub fn bodies() -> Vec<Body> {
    build().bodies
}

/// The query parameters of the API's routes.
pub fn queries() -> Vec<Query> {
    build().queries
}

fn build() -> Routes {
    use Access::*;
    use Method as M;
    let r = Routes::default()
        // Public
        .route("/healthz", &[(M::GET, Public)], get(api::health::healthz))
        .route("/readyz", &[(M::GET, Public)], get(api::health::readyz))
        .route("/static/vigil.css", &[(M::GET, Public)], get(pages::assets::css))
        .route(
            "/static/htmx.min.js",
            &[(M::GET, Public)],
            get(pages::assets::htmx),
        )
        .route(
            "/static/vigil.js",
            &[(M::GET, Public)],
            get(pages::assets::script),
        )
        .route(
            "/cases",
            &[(M::GET, Tenant("case", "read"))],
            get(pages::cases::queue),
        )
        .route(
            "/cases/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(pages::cases::case_page),
        )
        .route(
            "/cases/{id}/investigate",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::investigate),
        )
        .route(
            "/cases/views",
            &[(M::POST, Tenant("case", "read"))],
            post(pages::cases::save_view),
        )
        .route(
            "/cases/views/{id}/delete",
            &[(M::POST, Tenant("case", "read"))],
            post(pages::cases::delete_view),
        )
        .route(
            "/cases/bulk",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::bulk),
        )
        .route(
            "/cases/{id}/assign",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::assign),
        )
        .route(
            "/cases/{id}/comments",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::comment),
        )
        .route(
            "/cases/{id}/merge",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::merge),
        )
        .route(
            "/cases/{id}/split",
            &[(M::POST, Tenant("case", "write"))],
            post(pages::cases::split),
        )
        .route(
            "/alerts/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(pages::cases::alert_page),
        )
        .route(
            "/evidence/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(pages::cases::evidence_page),
        )
        .route(
            "/drafts/{id}/approve",
            &[(M::POST, Tenant("draft", "decide"))],
            post(pages::cases::approve_draft),
        )
        .route(
            "/drafts/{id}/edit",
            &[(M::POST, Tenant("draft", "decide"))],
            post(pages::cases::edit_draft),
        )
        .route(
            "/drafts/{id}/reject",
            &[(M::POST, Tenant("draft", "decide"))],
            post(pages::cases::reject_draft),
        )
        .route(
            "/members",
            &[
                (M::GET, Tenant("member", "list")),
                (M::POST, Tenant("member", "invite")),
            ],
            get(pages::members::list).post(pages::members::invite),
        )
        .route(
            "/single-sign-on",
            &[
                (M::GET, Tenant("sso", "configure")),
                (M::POST, TenantPerson("sso", "configure")),
            ],
            get(pages::sso_admin::show).post(pages::sso_admin::create_provider),
        )
        .route(
            "/single-sign-on/{id}/test",
            &[(M::POST, Tenant("sso", "configure"))],
            post(pages::sso_admin::test_provider),
        )
        .route(
            "/single-sign-on/{id}/enabled",
            &[(M::POST, TenantPerson("sso", "configure"))],
            post(pages::sso_admin::set_enabled),
        )
        .route(
            "/single-sign-on/{id}/delete",
            &[(M::POST, TenantPerson("sso", "configure"))],
            post(pages::sso_admin::delete_provider),
        )
        .route(
            "/tuning",
            &[(M::GET, Tenant("correlation", "configure"))],
            get(pages::tuning::show),
        )
        .route(
            "/tuning/correlation",
            &[(M::POST, Tenant("correlation", "configure"))],
            post(pages::tuning::set_correlation),
        )
        .route(
            "/tuning/assessment",
            &[(M::POST, Tenant("assessment", "configure"))],
            post(pages::tuning::set_assessment),
        )
        .route(
            "/tuning/iocs",
            &[(M::POST, Tenant("ioc_list", "manage"))],
            post(pages::tuning::import_iocs),
        )
        .route(
            "/settings",
            &[(M::GET, Tenant("session_settings", "read"))],
            get(pages::settings::show),
        )
        .route(
            "/settings/tokens",
            &[(M::POST, TenantPerson("api_token", "issue"))],
            post(pages::settings::issue_token),
        )
        .route(
            "/settings/tokens/{id}/revoke",
            &[(M::POST, Tenant("api_token", "revoke"))],
            post(pages::settings::revoke_token),
        )
        .route(
            "/settings/sessions",
            &[(M::POST, TenantPerson("session_settings", "set"))],
            post(pages::settings::set_sessions),
        )
        .route(
            "/settings/quorum",
            &[(M::POST, Tenant("gate_policy", "configure"))],
            post(pages::settings::set_quorum),
        )
        .route(
            "/members/{user}/role",
            &[(M::POST, TenantPerson("member", "change_role"))],
            post(pages::members::set_role),
        )
        .route(
            "/audit",
            &[(M::GET, Tenant("audit", "read"))],
            get(pages::audit::list),
        )
        .route(
            "/audit/purge",
            &[(M::POST, TenantPerson("tenant_data", "purge"))],
            post(pages::audit::purge),
        )
        .route(
            "/audit/retention",
            &[(M::POST, TenantPerson("retention", "configure"))],
            post(pages::audit::set_retention),
        )
        .route(
            "/audit/verify",
            &[(M::POST, Tenant("audit", "read"))],
            post(pages::audit::verify),
        )
        .route(
            "/kill-switch",
            &[
                (M::GET, Tenant("kill_switch", "engage")),
                (M::POST, Tenant("kill_switch", "engage")),
            ],
            get(pages::controls::kill_page).post(pages::controls::set_kill),
        )
        .route(
            "/tenants",
            &[
                (M::GET, Platform("tenant", "list")),
                (M::POST, Platform("tenant", "create")),
            ],
            get(pages::controls::tenants).post(pages::controls::create_tenant),
        )
        .route(
            "/tenants/{id}/deletion",
            &[(M::POST, Platform("tenant", "delete"))],
            post(pages::controls::tenant_deletion),
        )
        .route(
            "/platform/kill-switch",
            &[(M::POST, Platform("platform_kill_switch", "set"))],
            post(pages::controls::set_platform_kill),
        )
        .route(
            "/dashboard",
            &[(M::GET, Tenant("dashboard", "read"))],
            get(pages::dashboard::dashboard),
        )
        .route(
            "/briefs",
            &[(M::GET, Tenant("brief", "read_approved"))],
            get(pages::briefs::list),
        )
        .route(
            "/briefs/{id}",
            &[(M::GET, Tenant("brief", "read_approved"))],
            get(pages::briefs::one),
        )
        .route(
            "/gates",
            &[(M::GET, Tenant("gate", "read"))],
            get(pages::gates::inbox),
        )
        .route(
            "/gates/{id}/approve",
            &[(M::POST, Tenant("gate", "decide"))],
            post(pages::gates::approve),
        )
        .route(
            "/gates/{id}/reject",
            &[(M::POST, Tenant("gate", "decide"))],
            post(pages::gates::reject),
        )
        .route(
            "/integrations",
            &[(M::GET, Tenant("integration", "read"))],
            get(pages::integrations::list),
        )
        .route(
            "/integrations/{id}/credential",
            &[(M::POST, Tenant("credential", "set"))],
            post(pages::integrations::set_credential),
        )
        .route(
            "/integrations/{id}/credential/revoke",
            &[(M::POST, Tenant("credential", "revoke"))],
            post(pages::integrations::revoke_credential),
        )
        .route(
            "/integrations/{id}/scopes/{scope}",
            &[(M::POST, TenantPerson("integration_scope", "set"))],
            post(pages::integrations::set_scope),
        )
        .route("/", &[(M::GET, Public)], get(pages::home::index))
        .route(
            "/setup/bootstrap/{token}",
            &[(M::GET, Public), (M::POST, Public)],
            get(pages::setup::bootstrap_form).post(pages::setup::bootstrap_submit),
        )
        .route(
            "/setup/password/{token}",
            &[(M::GET, Public), (M::POST, Public)],
            get(pages::setup::password_form).post(pages::setup::password_submit),
        )
        .route(
            "/login",
            &[(M::GET, Public), (M::POST, Public)],
            get(pages::session::login_form).post(pages::session::login_submit),
        )
        .route(
            "/login/sso",
            &[(M::GET, Public)],
            get(pages::session::sso_discovery),
        )
        .route("/sso/{id}/login", &[(M::GET, Public)], get(pages::sso::login))
        .route(
            "/sso/{id}/callback",
            &[(M::GET, Public)],
            get(pages::sso::callback),
        )
        .route("/sso/{id}/acs", &[(M::POST, Public)], post(pages::sso::saml_acs))
        .route(
            "/sso/{id}/metadata",
            &[(M::GET, Public)],
            get(pages::sso::saml_sp_metadata),
        )
        // Any signed-in principal, MFA pending included
        .route("/logout", &[(M::POST, SignedIn)], post(pages::session::logout))
        .route(
            "/mfa",
            &[(M::GET, SignedIn), (M::POST, SignedIn)],
            get(pages::session::mfa_form).post(pages::session::mfa_verify),
        )
        .route(
            "/mfa/recovery-codes",
            &[(M::POST, SignedIn)],
            post(pages::session::regenerate_recovery_codes),
        )
        .route(
            "/mfa/enroll",
            &[(M::POST, SignedIn)],
            post(pages::session::mfa_enroll),
        )
        .route(
            "/tenant",
            &[(M::POST, SignedIn)],
            post(pages::session::switch_tenant),
        )
        .route("/api/v1/me", &[(M::GET, SignedIn)], get(api::members::me))
        // Platform
        .route(
            "/api/v1/tenants",
            &[
                (M::GET, Platform("tenant", "list")),
                (M::POST, Platform("tenant", "create")),
            ],
            get(api::tenants::list_tenants).post(api::tenants::create_tenant),
        )
        .route(
            "/api/v1/tenants/{id}/deletion",
            &[
                (M::POST, Platform("tenant", "delete")),
                (M::DELETE, Platform("tenant", "delete")),
            ],
            post(api::tenants::schedule_deletion).delete(api::tenants::cancel_deletion),
        )
        // Tenant
        .route(
            "/api/v1/settings/sessions",
            &[
                (M::GET, Tenant("session_settings", "read")),
                (M::PUT, TenantPerson("session_settings", "set")),
            ],
            get(api::settings::get_session_settings).put(api::settings::put_session_settings),
        )
        .route(
            "/api/v1/sso/providers",
            &[
                (M::GET, Tenant("sso", "configure")),
                (M::POST, TenantPerson("sso", "configure")),
            ],
            get(api::sso::list_providers).post(api::sso::create_provider),
        )
        .route(
            "/api/v1/sso/providers/{id}",
            &[
                (M::PUT, TenantPerson("sso", "configure")),
                (M::DELETE, TenantPerson("sso", "configure")),
            ],
            put(api::sso::update_provider).delete(api::sso::delete_provider),
        )
        .route(
            "/api/v1/sso/providers/{id}/test",
            &[(M::POST, Tenant("sso", "configure"))],
            post(api::sso::test_provider),
        )
        .route(
            "/static/autopost.js",
            &[(M::GET, Public)],
            get(pages::assets::autopost),
        )
        .route(
            "/api/v1/members",
            &[
                (M::GET, Tenant("member", "list")),
                (M::POST, Tenant("member", "invite")),
            ],
            get(api::members::list_members).post(api::members::invite_member),
        )
        .route(
            "/api/v1/members/{user_id}",
            &[
                (M::PUT, TenantPerson("member", "change_role")),
                (M::DELETE, TenantPerson("member", "change_role")),
            ],
            put(api::members::change_member_role).delete(api::members::remove_member),
        )
        .route(
            "/api/v1/tokens",
            &[
                (M::GET, Tenant("api_token", "list")),
                (M::POST, TenantPerson("api_token", "issue")),
            ],
            get(api::tokens::list_tokens).post(api::tokens::issue_token),
        )
        .route(
            "/api/v1/tokens/{id}/revoke",
            &[(M::POST, Tenant("api_token", "revoke"))],
            post(api::tokens::revoke_token),
        )
        .route(
            "/api/v1/audit",
            &[(M::GET, Tenant("audit", "read"))],
            get(api::audit::list_audit),
        )
        .route(
            "/api/v1/requests",
            &[(M::GET, Tenant("audit", "read"))],
            get(api::audit::list_requests),
        )
        .route(
            "/api/v1/audit/export",
            &[(M::GET, Tenant("audit", "export"))],
            get(api::audit::export_audit),
        )
        // Engine
        .route(
            "/api/v1/cases",
            &[
                (M::GET, Tenant("case", "read")),
                (M::POST, Tenant("case", "write")),
            ],
            get(api::cases::list_cases).post(api::cases::open_case),
        )
        .route(
            "/api/v1/cases/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(api::cases::get_case),
        )
        .route(
            "/api/v1/cases/{id}/merge",
            &[(M::POST, Tenant("case", "write"))],
            post(api::cases::merge_case),
        )
        .route(
            "/api/v1/cases/{id}/split",
            &[(M::POST, Tenant("case", "write"))],
            post(api::cases::split_case),
        )
        .route(
            "/api/v1/cases/{id}/assignee",
            &[(M::PUT, Tenant("case", "write"))],
            put(api::cases::assign_case),
        )
        .route(
            "/api/v1/cases/{id}/comments",
            &[
                (M::GET, Tenant("case", "read")),
                (M::POST, Tenant("case", "write")),
            ],
            get(api::cases::list_comments).post(api::cases::add_comment),
        )
        .route(
            "/api/v1/cases/{id}/signals",
            &[(M::GET, Tenant("case", "read"))],
            get(api::cases::case_signals),
        )
        .route(
            "/api/v1/cases/{id}/investigate",
            &[(M::POST, Tenant("case", "write"))],
            post(api::cases::investigate),
        )
        .route(
            "/api/v1/cases/{id}/correlation",
            &[(M::GET, Tenant("case", "read"))],
            get(api::cases::case_correlation),
        )
        .route(
            "/api/v1/iocs",
            &[(M::GET, Tenant("case", "read"))],
            get(api::iocs::list_iocs),
        )
        .route(
            "/api/v1/iocs/import",
            &[(M::POST, Tenant("ioc_list", "manage"))],
            post(api::iocs::import_iocs),
        )
        .route(
            "/api/v1/cases/{id}/drafts",
            &[
                (M::GET, Tenant("draft", "read")),
                (M::POST, Tenant("case", "write")),
            ],
            get(api::drafts::list_drafts).post(api::drafts::generate_draft),
        )
        .route(
            "/api/v1/cases/{id}/briefs",
            &[(M::GET, Tenant("brief", "read_approved"))],
            get(api::drafts::approved_briefs),
        )
        .route(
            "/api/v1/drafts/{id}/approve",
            &[(M::POST, Tenant("draft", "decide"))],
            post(api::drafts::approve_draft),
        )
        .route(
            "/api/v1/drafts/{id}/edit",
            &[(M::POST, Tenant("draft", "decide"))],
            post(api::drafts::edit_draft),
        )
        .route(
            "/api/v1/drafts/{id}/reject",
            &[(M::POST, Tenant("draft", "decide"))],
            post(api::drafts::reject_draft),
        )
        .route(
            "/api/v1/cases/{id}/timeline",
            &[(M::GET, Tenant("case", "read"))],
            get(api::cases::case_timeline),
        )
        .route(
            "/api/v1/cases/{id}/gates",
            &[(M::POST, Tenant("gate", "request"))],
            post(api::gates::request_gate),
        )
        .route(
            "/api/v1/gates",
            &[(M::GET, Tenant("gate", "read"))],
            get(api::gates::list_gates),
        )
        .route(
            "/api/v1/gates/{id}",
            &[(M::GET, Tenant("gate", "read"))],
            get(api::gates::get_gate),
        )
        .route(
            "/api/v1/gates/{id}/approve",
            &[(M::POST, Tenant("gate", "decide"))],
            post(api::gates::approve_gate),
        )
        .route(
            "/api/v1/gates/{id}/reject",
            &[(M::POST, Tenant("gate", "decide"))],
            post(api::gates::reject_gate),
        )
        .route(
            "/api/v1/gates/{id}/edit",
            &[(M::POST, Tenant("gate", "decide"))],
            post(api::gates::edit_gate),
        )
        .route(
            "/api/v1/kill-switch",
            &[
                (M::GET, Tenant("kill_switch", "read")),
                (M::PUT, Tenant("kill_switch", "engage")),
            ],
            get(api::settings::get_kill_switch).put(api::settings::set_kill_switch),
        )
        .route(
            "/api/v1/ingest/{id}",
            &[(M::POST, Public)],
            post(api::ingest::receive).layer(axum::extract::DefaultBodyLimit::max(api::ingest::BODY_LIMIT)),
        )
        .route(
            "/api/v1/alerts",
            &[(M::GET, Tenant("case", "read"))],
            get(api::ingest::list),
        )
        .route(
            "/api/v1/alerts/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(api::ingest::get),
        )
        .route(
            "/api/v1/evidence/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(api::evidence::get),
        )
        .route(
            "/api/v1/integrations",
            &[
                (M::GET, Tenant("integration", "read")),
                (M::POST, Tenant("integration", "configure")),
            ],
            get(api::integrations::list).post(api::integrations::create),
        )
        .route(
            "/api/v1/integrations/{id}",
            &[(M::GET, Tenant("integration", "read"))],
            get(api::integrations::get),
        )
        .route(
            "/api/v1/integrations/{id}/credentials",
            &[(M::POST, Tenant("credential", "set"))],
            post(api::integrations::set_credential),
        )
        .route(
            "/api/v1/integrations/{id}/credentials/revoke",
            &[(M::POST, Tenant("credential", "revoke"))],
            post(api::integrations::revoke_credential),
        )
        .route(
            "/api/v1/data-key/rotate",
            &[(M::POST, TenantPerson("data_key", "rotate"))],
            post(api::integrations::rotate_data_key),
        )
        .route(
            "/api/v1/integrations/{id}/scopes/{scope}",
            &[(M::PUT, TenantPerson("integration_scope", "set"))],
            axum::routing::put(api::integrations::set_scope),
        )
        .route(
            "/api/v1/settings/gate-quorum",
            &[
                (M::GET, Tenant("gate_policy", "read")),
                (M::PUT, Tenant("gate_policy", "configure")),
            ],
            get(api::settings::get_quorum).put(api::settings::set_quorum),
        )
        .route(
            "/api/v1/purge",
            &[(M::POST, TenantPerson("tenant_data", "purge"))],
            post(api::settings::purge),
        )
        .route(
            "/api/v1/settings/retention",
            &[
                (M::GET, Tenant("retention", "configure")),
                (M::PUT, TenantPerson("retention", "configure")),
            ],
            get(api::settings::get_retention).put(api::settings::set_retention),
        )
        .route(
            "/api/v1/settings/correlation",
            &[
                (M::GET, Tenant("case", "read")),
                (M::PUT, Tenant("correlation", "configure")),
            ],
            get(api::settings::get_correlation).put(api::settings::set_correlation),
        )
        .route(
            "/api/v1/settings/assessment",
            &[
                (M::GET, Tenant("case", "read")),
                (M::PUT, Tenant("assessment", "configure")),
            ],
            get(api::settings::get_assessment).put(api::settings::set_assessment),
        )
        .route(
            "/api/v1/steps",
            &[(M::GET, Tenant("case", "read"))],
            get(api::steps::list_steps),
        )
        .route(
            "/api/v1/steps/{id}/retry",
            &[(M::POST, Tenant("step", "retry"))],
            post(api::steps::retry_step),
        )
        .route(
            "/api/v1/platform/kill-switch",
            &[(M::PUT, Platform("platform_kill_switch", "set"))],
            axum::routing::put(api::settings::set_platform_kill_switch),
        )
        .route(
            "/api/openapi.json",
            &[(M::GET, Public)],
            get(crate::web::openapi::serve),
        );
    with_bodies(r)
}

/// The body types, beside the routes above (a test checks each names a
/// route of the table).
fn with_bodies(r: Routes) -> Routes {
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const GET: Method = Method::GET;
    const DELETE: Method = Method::DELETE;
    use api::{cases, drafts, gates, integrations, iocs, members, settings, sso, tenants, tokens};
    use vigil_orchestrator::engine;
    use vigil_orchestrator::pipeline::{assess, correlate, retention};
    r.body::<tenants::NewTenant>(POST, "/api/v1/tenants")
        .body_of::<tenants::Deletion>(POST, "/api/v1/tenants/{id}/deletion", false)
        .body::<settings::SessionSettings>(PUT, "/api/v1/settings/sessions")
        .body::<sso::NewProviderBody>(POST, "/api/v1/sso/providers")
        .body::<sso::UpdateProviderBody>(PUT, "/api/v1/sso/providers/{id}")
        .body::<members::NewMember>(POST, "/api/v1/members")
        .body::<members::RoleChange>(PUT, "/api/v1/members/{user_id}")
        .body::<tokens::NewToken>(POST, "/api/v1/tokens")
        .body::<cases::NewCase>(POST, "/api/v1/cases")
        .body::<cases::MergeCase>(POST, "/api/v1/cases/{id}/merge")
        .body::<cases::SplitCase>(POST, "/api/v1/cases/{id}/split")
        .body::<cases::Assignment>(PUT, "/api/v1/cases/{id}/assignee")
        .body::<cases::NewComment>(POST, "/api/v1/cases/{id}/comments")
        .body::<iocs::IocImport>(POST, "/api/v1/iocs/import")
        .body::<drafts::DraftEdit>(POST, "/api/v1/drafts/{id}/edit")
        .body::<drafts::DraftDecision>(POST, "/api/v1/drafts/{id}/reject")
        .body::<gates::NewGate>(POST, "/api/v1/cases/{id}/gates")
        .body::<gates::Decision>(POST, "/api/v1/gates/{id}/approve")
        .body::<gates::Decision>(POST, "/api/v1/gates/{id}/reject")
        .body::<gates::Decision>(POST, "/api/v1/gates/{id}/edit")
        .body::<settings::KillSwitch>(PUT, "/api/v1/kill-switch")
        .body::<integrations::NewIntegration>(POST, "/api/v1/integrations")
        .body::<integrations::NewCredential>(POST, "/api/v1/integrations/{id}/credentials")
        .body::<integrations::ScopeChange>(PUT, "/api/v1/integrations/{id}/scopes/{scope}")
        .body::<settings::SetQuorum>(PUT, "/api/v1/settings/gate-quorum")
        .body::<settings::PurgeRequest>(POST, "/api/v1/purge")
        .body::<retention::Windows>(PUT, "/api/v1/settings/retention")
        .body::<correlate::Settings>(PUT, "/api/v1/settings/correlation")
        .body::<assess::Settings>(PUT, "/api/v1/settings/assessment")
        .body::<settings::KillSwitch>(PUT, "/api/v1/platform/kill-switch")
        .query::<api::Page>("/api/v1/audit")
        .query::<api::Page>("/api/v1/requests")
        .query::<api::audit::ExportQuery>("/api/v1/audit/export")
        .query::<cases::CaseQuery>("/api/v1/cases")
        .query::<api::Page>("/api/v1/cases/{id}/comments")
        .query::<gates::GateQuery>("/api/v1/gates")
        .query::<api::ingest::AlertQuery>("/api/v1/alerts")
        .query::<api::steps::StepQuery>("/api/v1/steps")
        // What each API route answers on success.
        .answers::<engine::cases::Case>(POST, "/api/v1/cases")
        .lists::<engine::cases::Case>("/api/v1/cases")
        .answers::<cases::CaseDetail>(GET, "/api/v1/cases/{id}")
        .answers::<engine::cases::Case>(POST, "/api/v1/cases/{id}/merge")
        .answers::<engine::cases::Case>(POST, "/api/v1/cases/{id}/split")
        .answers::<engine::cases::Case>(PUT, "/api/v1/cases/{id}/assignee")
        .lists::<engine::cases::Comment>("/api/v1/cases/{id}/comments")
        .answers::<engine::cases::Comment>(POST, "/api/v1/cases/{id}/comments")
        .answers::<cases::Signals>(GET, "/api/v1/cases/{id}/signals")
        .answers::<cases::Investigating>(POST, "/api/v1/cases/{id}/investigate")
        .answers::<correlate::Explanation>(GET, "/api/v1/cases/{id}/correlation")
        .answers::<cases::Timeline>(GET, "/api/v1/cases/{id}/timeline")
        .answers::<api::health::Health>(GET, "/healthz")
        .answers::<api::health::Health>(GET, "/readyz")
        .answers::<members::Me>(GET, "/api/v1/me")
        .lists::<tenants::TenantView>("/api/v1/tenants")
        .answers::<tenants::TenantView>(POST, "/api/v1/tenants")
        .answers::<tenants::DeletionView>(POST, "/api/v1/tenants/{id}/deletion")
        .answers::<tenants::DeletionView>(DELETE, "/api/v1/tenants/{id}/deletion")
        .answers::<settings::SessionView>(GET, "/api/v1/settings/sessions")
        .answers::<settings::SessionView>(PUT, "/api/v1/settings/sessions")
        .lists::<vigil_orchestrator::identity::sso::ProviderInfo>("/api/v1/sso/providers")
        .answers::<sso::ProviderView>(POST, "/api/v1/sso/providers")
        .answers::<sso::ProviderView>(PUT, "/api/v1/sso/providers/{id}")
        .answers_nothing(DELETE, "/api/v1/sso/providers/{id}")
        .answers::<sso::ProviderCheck>(POST, "/api/v1/sso/providers/{id}/test")
        .lists::<members::MemberView>("/api/v1/members")
        .answers::<members::Invited>(POST, "/api/v1/members")
        .answers::<members::RoleNow>(PUT, "/api/v1/members/{user_id}")
        .answers_nothing(DELETE, "/api/v1/members/{user_id}")
        .lists::<vigil_orchestrator::identity::ApiTokenInfo>("/api/v1/tokens")
        .answers::<tokens::IssuedToken>(POST, "/api/v1/tokens")
        .answers_nothing(POST, "/api/v1/tokens/{id}/revoke")
        .lists::<vigil_orchestrator::audit::Recorded>("/api/v1/audit")
        .lists::<vigil_orchestrator::audit::requests::Request>("/api/v1/requests")
        .lists::<iocs::Indicator>("/api/v1/iocs")
        .answers::<vigil_orchestrator::pipeline::iocs::Imported>(POST, "/api/v1/iocs/import")
        .lists::<vigil_orchestrator::pipeline::drafts::Draft>("/api/v1/cases/{id}/drafts")
        .answers::<vigil_orchestrator::pipeline::drafts::Draft>(POST, "/api/v1/cases/{id}/drafts")
        .lists::<vigil_orchestrator::pipeline::drafts::Draft>("/api/v1/cases/{id}/briefs")
        .answers::<vigil_orchestrator::pipeline::drafts::Draft>(POST, "/api/v1/drafts/{id}/approve")
        .answers::<vigil_orchestrator::pipeline::drafts::Draft>(POST, "/api/v1/drafts/{id}/edit")
        .answers::<vigil_orchestrator::pipeline::drafts::Draft>(POST, "/api/v1/drafts/{id}/reject")
        .answers::<gates::GateView>(POST, "/api/v1/cases/{id}/gates")
        .lists::<gates::GateView>("/api/v1/gates")
        .answers::<gates::GateView>(GET, "/api/v1/gates/{id}")
        .answers::<gates::GateView>(POST, "/api/v1/gates/{id}/approve")
        .answers::<gates::GateView>(POST, "/api/v1/gates/{id}/reject")
        .answers::<gates::GateView>(POST, "/api/v1/gates/{id}/edit")
        .answers::<settings::KillView>(GET, "/api/v1/kill-switch")
        .answers::<settings::KillView>(PUT, "/api/v1/kill-switch")
        .answers::<settings::PlatformKillView>(PUT, "/api/v1/platform/kill-switch")
        .answers::<vigil_orchestrator::pipeline::ingest::Accepted>(POST, "/api/v1/ingest/{id}")
        .answers::<api::ingest::AlertPage>(GET, "/api/v1/alerts")
        .answers::<api::ingest::AlertView>(GET, "/api/v1/alerts/{id}")
        .answers::<vigil_orchestrator::pipeline::evidence::Item>(GET, "/api/v1/evidence/{id}")
        .lists::<vigil_orchestrator::connect::integrations::Integration>("/api/v1/integrations")
        .answers::<integrations::CreatedIntegration>(POST, "/api/v1/integrations")
        .answers::<integrations::IntegrationDetail>(GET, "/api/v1/integrations/{id}")
        .answers::<vigil_orchestrator::secrets::vault::CredentialInfo>(
            POST,
            "/api/v1/integrations/{id}/credentials",
        )
        .answers_nothing(POST, "/api/v1/integrations/{id}/credentials/revoke")
        .answers::<integrations::Resealed>(POST, "/api/v1/data-key/rotate")
        .answers::<vigil_orchestrator::connect::integrations::Integration>(
            PUT,
            "/api/v1/integrations/{id}/scopes/{scope}",
        )
        .answers::<settings::Quorum>(GET, "/api/v1/settings/gate-quorum")
        .answers::<settings::Quorum>(PUT, "/api/v1/settings/gate-quorum")
        .answers::<settings::PurgeView>(POST, "/api/v1/purge")
        .answers::<settings::RetentionView>(GET, "/api/v1/settings/retention")
        .answers::<settings::RetentionView>(PUT, "/api/v1/settings/retention")
        .answers::<correlate::Settings>(GET, "/api/v1/settings/correlation")
        .answers::<correlate::Settings>(PUT, "/api/v1/settings/correlation")
        .answers::<assess::Settings>(GET, "/api/v1/settings/assessment")
        .answers::<assess::Settings>(PUT, "/api/v1/settings/assessment")
        .lists::<engine::steps::StepView>("/api/v1/steps")
        .answers::<engine::steps::StepView>(POST, "/api/v1/steps/{id}/retry")
}
