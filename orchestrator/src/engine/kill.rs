//! Kill switches: per tenant (engaged by a Tenant Admin or Security
//! Engineer, released only by a Tenant Admin) and platform-wide (Platform
//! Admin). Engaged: no automatic step starts and no external write happens,
//! including approved writes still in the outbox. Stored, so it survives
//! restarts; every change is audited.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor, Event};
use crate::store::entity::{platform_control, tenant_control};
use crate::store::{PlatformTx, TenantTx};
use crate::{Clock, Result};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Engagement {
    pub at: DateTime<Utc>,
    pub by: String,
}

/// What applies to one tenant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KillState {
    pub tenant: Option<Engagement>,
    pub platform: Option<Engagement>,
}

impl KillState {
    pub fn engaged(&self) -> bool {
        self.tenant.is_some() || self.platform.is_some()
    }

    pub fn describe(&self) -> String {
        match (&self.platform, &self.tenant) {
            (Some(p), _) => format!(
                "the platform kill switch has been engaged since {} by {}",
                p.at, p.by
            ),
            (None, Some(t)) => format!(
                "this tenant's kill switch has been engaged since {} by {}",
                t.at, t.by
            ),
            (None, None) => "no kill switch engaged".into(),
        }
    }
}

pub async fn platform(conn: &impl ConnectionTrait) -> Result<Option<Engagement>> {
    let row = platform_control::Entity::find_by_id(1).one(conn).await?;
    Ok(row.and_then(|r| {
        Some(Engagement {
            at: r.kill_switch_engaged_at?,
            by: r.kill_switch_engaged_by.unwrap_or_default(),
        })
    }))
}

pub async fn state(tx: &TenantTx) -> Result<KillState> {
    let t = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    let tenant = t.and_then(|r| {
        Some(Engagement {
            at: r.kill_switch_engaged_at?,
            by: r.kill_switch_engaged_by.unwrap_or_default(),
        })
    });
    Ok(KillState {
        tenant,
        platform: platform(&**tx).await?,
    })
}

/// Whether any kill switch (the tenant's or the platform's) is engaged: one
/// round trip, for the hot path (every step transition asks).
pub async fn engaged(tx: &TenantTx) -> Result<bool> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = tx.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT (EXISTS (SELECT 1 FROM tenant_controls WHERE tenant_id = $1 AND kill_switch_engaged_at IS NOT NULL) \
                  OR EXISTS (SELECT 1 FROM platform_controls WHERE kill_switch_engaged_at IS NOT NULL)) AS engaged"
        }
        _ => {
            "SELECT (EXISTS (SELECT 1 FROM tenant_controls WHERE tenant_id = ? AND kill_switch_engaged_at IS NOT NULL) \
                  OR EXISTS (SELECT 1 FROM platform_controls WHERE kill_switch_engaged_at IS NOT NULL)) AS engaged"
        }
    };
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tx.tenant().0.into()],
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<bool>("", "engaged").ok())
        .unwrap_or(true))
}

/// Engages or releases the tenant's switch. Idempotent; audited on change.
pub async fn set_tenant(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, engaged: bool) -> Result<KillState> {
    let before = state(tx).await?;
    if before.tenant.is_some() == engaged {
        return Ok(before);
    }
    let (at, by) = if engaged {
        (Some(clock.now()), Some(actor.label.clone()))
    } else {
        (None, None)
    };
    let existing = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    let am = tenant_control::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        kill_switch_engaged_at: Set(at),
        kill_switch_engaged_by: Set(by),
        ..Default::default()
    };
    if existing.is_some() {
        am.update(&**tx).await?;
    } else {
        am.insert(&**tx).await?;
    }
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: if engaged {
                "kill_switch.engage"
            } else {
                "kill_switch.release"
            },
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"before": {"engaged": !engaged}, "after": {"engaged": engaged}}),
        },
    )
    .await?;
    state(tx).await
}

/// Engages or releases the platform-wide switch. Audited on change.
pub async fn set_platform(
    tx: &PlatformTx,
    clock: &dyn Clock,
    actor: &Actor,
    engaged: bool,
) -> Result<Option<Engagement>> {
    let before = platform(&**tx).await?;
    if before.is_some() == engaged {
        return Ok(before);
    }
    let (at, by) = if engaged {
        (Some(clock.now()), Some(actor.label.clone()))
    } else {
        (None, None)
    };
    platform_control::ActiveModel {
        id: Set(1),
        kill_switch_engaged_at: Set(at),
        kill_switch_engaged_by: Set(by),
    }
    .update(&**tx)
    .await?;
    audit::record_platform(
        tx,
        clock,
        actor,
        Event {
            action: if engaged {
                "platform_kill_switch.engage"
            } else {
                "platform_kill_switch.release"
            },
            target: "platform".into(),
            summary: json!({"before": {"engaged": !engaged}, "after": {"engaged": engaged}}),
        },
    )
    .await?;
    platform(&**tx).await
}
