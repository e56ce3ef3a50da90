//! The tenant admin's audit log: every event with its place in the chain,
//! who did it (as a person reads it) and the request it came from; where
//! the chain stands (head, last signed checkpoint); verify it now with the
//! installation's checkpoint key; export it (JSON Lines, CSV; a range).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil_orchestrator::Error;
use vigil_orchestrator::audit::{self, chain};

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
