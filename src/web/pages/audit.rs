//! The tenant admin's audit log: every event with its place in the chain,
//! who did it (as a person reads it) and the request it came from; where
//! the chain stands (head, last signed checkpoint); verify it now with the
//! installation's checkpoint key; export it (JSON Lines, CSV; a range).

use askama::Template;
use askama_web::WebTemplate;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil_orchestrator::Error;
use vigil_orchestrator::audit::{self, chain};
use vigil_orchestrator::pipeline::retention;

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::page_error;
use crate::web::pages::people::People;

const PER_PAGE: u64 = 50;

pub struct Row {
    seq: String,
    at: String,
    who: String,
    role: String,
    action: String,
    target: String,
    summary: String,
    source_ip: String,
    request_id: String,
    hash: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    rows: Vec<Row>,
    total: u64,
    page: u64,
    pages: u64,
    head: String,
    checkpoint: String,
    key_id: String,
    csrf: String,
    /// After "Verify now": (ok, what was found).
    verified: Option<(bool, String)>,
    /// Retention windows: (field, label, value, min, max).
    retention: Vec<(&'static str, &'static str, u32, u32, u32)>,
    may_set_retention: bool,
    /// After saving the windows: (ok, message).
    retention_result: Option<(bool, String)>,
    may_purge: bool,
    /// After a purge: (ok, message).
    purge_result: Option<(bool, String)>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<u64>,
}

fn short(h: &Option<String>) -> String {
    h.as_deref()
        .map(|h| h.chars().take(12).collect())
        .unwrap_or_default()
}

async fn render(
    s: &AppState,
    p: &Principal,
    ctx: TenantCtx,
    page: u64,
    verified: Option<(bool, String)>,
) -> Result<AuditPage, Error> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let people = People::load(&tx).await?;
    let w = retention::windows(&tx).await?;
    let st = chain::status(&*tx, &chain::chain_of(Some(ctx.tenant))).await?;
    let (events, total) = audit::list(&tx, PER_PAGE, (page - 1) * PER_PAGE).await?;
    tx.commit().await?;
    let rows = events
        .into_iter()
        .map(|e| {
            let summary = vigil_orchestrator::canonical::canonical_json(&e.summary);
            Row {
                seq: e.seq.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
                at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                who: people.name(&e.actor),
                role: e.actor_role.unwrap_or_default(),
                action: e.action,
                target: e.target,
                summary: vigil_orchestrator::text::title(&summary, 160, ""),
                source_ip: e.source_ip.unwrap_or_default(),
                request_id: e.request_id.unwrap_or_default(),
                hash: short(&e.hash),
            }
        })
        .collect();
    let head = match st.head_seq {
        Some(seq) => format!("seq {seq} (hash {}…)", short(&st.head_hash)),
        None => "no events yet".into(),
    };
    let checkpoint = match &st.last_checkpoint {
        Some(c) => format!(
            "seq {} signed {} by key {}",
            c.seq,
            c.at.format("%Y-%m-%d %H:%M UTC"),
            c.key_id
        ),
        None => "none yet (the server signs every 1,000 events or 10 minutes)".into(),
    };
    Ok(AuditPage {
        rows,
        total,
        page,
        pages: total.div_ceil(PER_PAGE).max(1),
        head,
        checkpoint,
        key_id: s.audit_key.as_ref().map(|k| k.key_id()).unwrap_or_default(),
        csrf: match p {
            Principal::Session { info, .. } => info.csrf.clone(),
            _ => String::new(),
        },
        verified,
        retention: retention::BOUNDS
            .iter()
            .zip([
                ("Raw telemetry (alerts), days", w.telemetry_days),
                ("Narratives (drafts never approved), days", w.narratives_days),
                ("Approved briefs, days", w.briefs_days),
                ("Audit log, days", w.audit_days),
            ])
            .map(|((field, lo, hi), (label, v))| (*field, label, v, *lo, *hi))
            .collect(),
        may_set_retention: matches!(p, Principal::Session { info, .. } if info.mfa_verified)
            && s.authz.allows(ctx.role, "retention", "configure"),
        retention_result: None,
        may_purge: matches!(p, Principal::Session { info, .. } if info.mfa_verified)
            && s.authz.allows(ctx.role, "tenant_data", "purge"),
        purge_result: None,
    })
}

pub async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    match render(&s, &p, ctx, page, None).await {
        Ok(pg) => pg.into_response(),
        Err(e) => page_error(e),
    }
}

/// "Verify now": the tenant's whole chain, page by page, against the
/// installation's checkpoint key.
pub async fn verify(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    let report = chain::verify(
        &s.store,
        chain::Scope::Tenant(ctx.tenant),
        s.audit_key.clone(),
        s.clock.as_ref(),
        chain::Policy::default(),
        &mut |_, _| {},
    )
    .await;
    let verified = match report {
        Ok(r) => Some(match &r.broken {
            None => (
                true,
                format!(
                    "The chain verifies: {} events{}, {} signed checkpoints checked{}.",
                    r.events,
                    r.last_seq.map(|l| format!(" (seq 1..{l})")).unwrap_or_default(),
                    r.checkpoints,
                    if r.key_checked {
                        ""
                    } else {
                        " (no key: signatures not checked)"
                    }
                ),
            ),
            Some(b) => (false, format!("The chain is broken at {b}.")),
        }),
        Err(e) => return page_error(e),
    };
    match render(&s, &p, ctx, 1, verified).await {
        Ok(pg) => pg.into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RetentionForm {
    telemetry_days: String,
    narratives_days: String,
    briefs_days: String,
    audit_days: String,
}

fn days(name: &str, v: &str) -> Result<u32, Error> {
    v.trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("{name} must be a whole number of days")))
}

/// Saves the retention windows (an MFA-verified tenant admin); a window
/// out of bounds is refused beside the form.
pub async fn set_retention(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<RetentionForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let saved = async {
        let w = retention::Windows {
            telemetry_days: days("telemetry_days", &f.telemetry_days)?,
            narratives_days: days("narratives_days", &f.narratives_days)?,
            briefs_days: days("briefs_days", &f.briefs_days)?,
            audit_days: days("audit_days", &f.audit_days)?,
        };
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        retention::set_windows(&tx, s.clock.as_ref(), &actor, w).await?;
        tx.commit().await
    }
    .await;
    let (status, result) = match saved {
        Ok(()) => (
            axum::http::StatusCode::OK,
            (
                true,
                "Saved. The next retention run (hourly) applies it.".to_owned(),
            ),
        ),
        Err(e @ Error::Invalid(_)) => {
            let api = crate::web::ApiError::from(e);
            (api.status, (false, api.message))
        }
        Err(e) => return page_error(e),
    };
    match render(&s, &p, ctx, 1, None).await {
        Ok(mut pg) => {
            pg.retention_result = Some(result);
            (status, pg).into_response()
        }
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PurgeForm {
    /// `entity`, `case` or `before`.
    what: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
}

/// Erasure from the page (an MFA-verified tenant admin, confirmed in the
/// browser): everything mentioning an entity, one case, or all telemetry
/// before a date. The counts are shown; the purge is audited.
pub async fn purge(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<PurgeForm>,
) -> Response {
    use vigil_orchestrator::pipeline::purge::{self, Target};
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let done = async {
        let v = f.value.trim();
        let target = match f.what.as_str() {
            "entity" => Target::Entity {
                kind: f.kind.parse()?,
                value: v.to_owned(),
            },
            "case" => Target::Case(
                uuid::Uuid::parse_str(v).map_err(|_| Error::Invalid("a case id is a UUID".into()))?,
            ),
            "before" => Target::TelemetryBefore(
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
                    .ok_or_else(|| Error::Invalid("a date is YYYY-MM-DD".into()))?,
            ),
            _ => return Err(Error::Invalid("choose what to erase".into())),
        };
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let out = purge::purge(&tx, s.clock.as_ref(), &actor, target).await?;
        tx.commit().await?;
        Ok::<_, Error>(out)
    }
    .await;
    let (status, result) = match done {
        Ok(d) => (
            axum::http::StatusCode::OK,
            (
                true,
                format!(
                    "Erased: {} alerts, {} observables, {} cases, {} drafts, {} gates, {} entity sightings, {} IOC entries.",
                    d.alerts, d.observables, d.cases, d.drafts, d.gates, d.sightings, d.iocs
                ),
            ),
        ),
        Err(e @ (Error::Invalid(_) | Error::NotFound(_))) => {
            let api = crate::web::ApiError::from(e);
            (api.status, (false, api.message))
        }
        Err(e) => return page_error(e),
    };
    match render(&s, &p, ctx, 1, None).await {
        Ok(mut pg) => {
            pg.purge_result = Some(result);
            (status, pg).into_response()
        }
        Err(e) => page_error(e),
    }
}
