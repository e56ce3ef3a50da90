//! Approved briefs, for everyone who may read them (executives first): a
//! list across the tenant and one brief. No drafts, no raw telemetry, no
//! controls; citations are shown as where a claim comes from, not links
//! into evidence the reader may not open.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::Error;
use vigil_orchestrator::pipeline::drafts;

use crate::web::AppState;
use crate::web::auth::TenantCtx;
use crate::web::error::{message, page_error};
use crate::web::pages::people::People;

const PAGE: u64 = 50;

pub struct BriefRow {
    id: Uuid,
    case_title: String,
    version: i32,
    approved: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "briefs.html")]
pub struct BriefsPage {
    rows: Vec<BriefRow>,
    total: u64,
    page: u64,
    pages: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<u64>,
}

fn approved_line(d: &drafts::Draft, people: &People) -> String {
    match (&d.decided_by, d.decided_at) {
        (Some(by), Some(at)) => format!("{} by {}", at.format("%Y-%m-%d %H:%M UTC"), people.name(by)),
        _ => String::new(),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let people = People::load(&tx).await?;
        let (items, total) = drafts::approved(&tx, PAGE, (page - 1) * PAGE).await?;
        tx.commit().await?;
        let rows = items
            .into_iter()
            .map(|(d, case_title)| BriefRow {
                approved: approved_line(&d, &people),
                id: d.id,
                case_title,
                version: d.version,
            })
            .collect();
        Ok::<_, Error>(BriefsPage {
            rows,
            total,
            page,
            pages: total.div_ceil(PAGE).max(1),
        })
    }
    .await;
    match result {
        Ok(p) => p.into_response(),
        Err(e) => page_error(e),
    }
}

pub struct Part {
    title: &'static str,
    sentences: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "brief.html")]
pub struct BriefPage {
    case_title: String,
    version: i32,
    approved: String,
    parts: Vec<Part>,
    recommendations: Vec<String>,
}

pub async fn one(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such brief.");
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let people = People::load(&tx).await?;
        let (d, case_title) = drafts::approved_one(&tx, id).await?;
        tx.commit().await?;
        let approved = approved_line(&d, &people);
        let body: drafts::Body = serde_json::from_value(d.body).unwrap_or_default();
        let part = |title: &'static str, v: &[drafts::Sentence]| Part {
            title,
            sentences: v.iter().map(|s| s.text.clone()).collect(),
        };
        Ok::<_, Error>(BriefPage {
            case_title,
            version: d.version,
            approved,
            parts: vec![
                part("Summary", &body.summary),
                part("Scope", &body.scope),
                part("Entities", &body.entities),
                part("Timeline", &body.timeline),
            ],
            recommendations: body
                .recommendations
                .iter()
                .map(|r| format!("{} (signals total {:.1})", r.action.replace('_', " "), r.total))
                .collect(),
        })
    }
    .await;
    match result {
        Ok(p) => p.into_response(),
        Err(e) => page_error(e),
    }
}
