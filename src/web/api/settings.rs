//! Tenant settings: session limits, gate quorum, correlation, assessment, and the tenant and
//! platform kill switches.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use vigil_orchestrator::engine::state::GateKind;
use vigil_orchestrator::engine::{gates, kill};
use vigil_orchestrator::{Role, identity::auth};

use crate::web::api::{ApiResult, ip};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct KillSwitch {
    engaged: bool,
}

/// Whether a kill switch holds this tenant: its own, the platform's, or
/// both (each with who engaged it and when).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KillView {
    pub engaged: bool,
    pub tenant: Option<kill::Engagement>,
    pub platform: Option<kill::Engagement>,
}

impl From<kill::KillState> for KillView {
    fn from(k: kill::KillState) -> Self {
        Self {
            engaged: k.engaged(),
            tenant: k.tenant,
            platform: k.platform,
        }
    }
}

/// The platform's kill switch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformKillView {
    pub engaged: bool,
    pub platform: Option<kill::Engagement>,
}

/// How many different people must approve each gate kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Quorum {
    pub escalate_critical: u32,
    pub ticket_write: u32,
    pub close_case: u32,
    pub contain_host: u32,
}

/// A session's limits, in minutes (`custom`: the tenant's own, not the
/// defaults).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub idle_minutes: i64,
    pub absolute_minutes: i64,
    pub custom: bool,
}

/// A window's bounds, in days.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

/// The retention windows, with each one's bounds (on reading).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    pub windows: vigil_orchestrator::pipeline::retention::Windows,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounds: Option<std::collections::BTreeMap<String, Bounds>>,
}

/// What a purge deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurgeView {
    pub deleted: vigil_orchestrator::pipeline::purge::Purged,
}

pub async fn get_kill_switch(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let k = kill::state(&tx).await?;
    tx.commit().await?;
    Ok(Json(KillView::from(k)).into_response())
}

/// Engage: tenant admin or security engineer. Release: only a tenant admin,
/// in an MFA-verified session (never a token).
pub async fn set_kill_switch(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<KillSwitch>,
) -> ApiResult {
    if !b.engaged {
        let person_with_mfa = matches!(&p, Principal::Session { info, .. } if info.mfa_verified);
        if !s.authz.allows(ctx.role, "kill_switch", "release") || !person_with_mfa {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only a tenant admin, signed in with MFA, may release the kill switch",
            ));
        }
    }
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let k = kill::set_tenant(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        b.engaged,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(KillView::from(k)).into_response())
}

pub async fn set_platform_kill_switch(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<KillSwitch>,
) -> ApiResult {
    let tx = s.store.begin_platform().await?;
    let e = kill::set_platform(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(Role::PlatformAdmin), Some(c.0.ip().to_string())),
        b.engaged,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PlatformKillView {
        engaged: e.is_some(),
        platform: e,
    })
    .into_response())
}

fn quorum_json(q: &[(GateKind, u32)]) -> Quorum {
    let of = |k: GateKind| q.iter().find(|(x, _)| *x == k).map_or(1, |(_, n)| *n);
    Quorum {
        escalate_critical: of(GateKind::EscalateCritical),
        ticket_write: of(GateKind::TicketWrite),
        close_case: of(GateKind::CloseCase),
        contain_host: of(GateKind::ContainHost),
    }
}

/// How many distinct people must approve each gate kind.
pub async fn get_quorum(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let mut q = Vec::new();
    for k in GateKind::ALL {
        q.push((*k, gates::quorum(&tx, *k).await?));
    }
    tx.commit().await?;
    Ok(Json(quorum_json(&q)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct SetQuorum {
    kind: String,
    quorum: u32,
}

pub async fn set_quorum(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<SetQuorum>,
) -> ApiResult {
    let kind: GateKind = b.kind.parse()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    gates::set_quorum(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        kind,
        b.quorum,
    )
    .await?;
    let mut q = Vec::new();
    for k in GateKind::ALL {
        q.push((*k, gates::quorum(&tx, *k).await?));
    }
    tx.commit().await?;
    Ok(Json(quorum_json(&q)).into_response())
}

/// The tenant's correlation settings (window, weights, threshold, ignore list).
pub async fn get_correlation(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::correlate::settings(&tx).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

pub async fn set_correlation(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<vigil_orchestrator::pipeline::correlate::Settings>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::correlate::set_settings(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        b,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

/// The tenant's assessment settings (signal weights, thresholds,
/// known-benign detection names).
pub async fn get_assessment(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::assess::settings(&tx).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

pub async fn set_assessment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<vigil_orchestrator::pipeline::assess::Settings>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::assess::set_settings(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        b,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct SessionSettings {
    idle_minutes: i64,
    absolute_minutes: i64,
}

fn session_settings_json(l: &auth::SessionLimits) -> SessionView {
    SessionView {
        idle_minutes: l.idle.num_minutes(),
        absolute_minutes: l.absolute.num_minutes(),
        custom: l.custom,
    }
}

pub async fn get_session_settings(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
) -> ApiResult {
    let limits = auth::session_limits(s.store.conn(), Some(ctx.tenant)).await?;
    Ok(Json(session_settings_json(&limits)).into_response())
}

pub async fn put_session_settings(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<SessionSettings>,
) -> ApiResult {
    // An absurd number is refused, never a panic (Duration::minutes would).
    let minutes = |m: i64, what: &str| {
        chrono::Duration::try_minutes(m)
            .ok_or_else(|| vigil_orchestrator::Error::Invalid(format!("{what} is out of range")))
    };
    let limits = auth::SessionLimits::new(
        minutes(b.idle_minutes, "idle_minutes")?,
        minutes(b.absolute_minutes, "absolute_minutes")?,
    )?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    auth::set_session_limits(&tx, s.clock.as_ref(), &p.actor(Some(ctx.role), ip(&c)), limits).await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(Json(session_settings_json(&limits)).into_response())
}

/// The tenant's retention windows (days), with their bounds.
pub async fn get_retention(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    use vigil_orchestrator::pipeline::retention;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let w = retention::windows(&tx).await?;
    tx.commit().await?;
    let bounds = retention::BOUNDS
        .iter()
        .map(|(k, lo, hi)| ((*k).to_owned(), Bounds { min: *lo, max: *hi }))
        .collect();
    Ok(Json(RetentionView {
        windows: w,
        bounds: Some(bounds),
    })
    .into_response())
}

pub async fn set_retention(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<vigil_orchestrator::pipeline::retention::Windows>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let w = vigil_orchestrator::pipeline::retention::set_windows(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        b,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(RetentionView {
        windows: w,
        bounds: None,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct PurgeRequest {
    /// One case with everything derived from it.
    case_id: Option<uuid::Uuid>,
    /// All telemetry received before this time (RFC 3339).
    telemetry_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Everything mentioning one entity: `{kind, value}`.
    entity: Option<PurgeEntity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct PurgeEntity {
    kind: String,
    value: String,
}

/// `POST /api/v1/purge`: exactly one of `case_id`, `telemetry_before`,
/// `entity`; answers what was deleted.
pub async fn purge(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<PurgeRequest>,
) -> ApiResult {
    use vigil_orchestrator::pipeline::purge::{self, Target};
    let target = match (b.case_id, b.telemetry_before, b.entity) {
        (Some(id), None, None) => Target::Case(id),
        (None, Some(t), None) => Target::TelemetryBefore(t),
        (None, None, Some(e)) => Target::Entity {
            kind: e.kind.parse()?,
            value: e.value,
        },
        _ => {
            return Err(vigil_orchestrator::Error::Invalid(
                "give exactly one of case_id, telemetry_before, entity".into(),
            )
            .into());
        }
    };
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let out = purge::purge(&tx, s.clock.as_ref(), &p.actor(Some(ctx.role), ip(&c)), target).await?;
    tx.commit().await?;
    Ok(Json(PurgeView { deleted: out }).into_response())
}
