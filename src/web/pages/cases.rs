//! The analyst's pages: the case queue (filters, sort, pages), the case
//! (investigation progress, current draft claim by claim with its
//! citations, gates, timeline, entities with the other cases that share
//! them, alerts), the evidence viewer (an alert with the cited field
//! highlighted), and the forms that decide drafts and start a round.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;
use vigil_orchestrator::Error;
use vigil_orchestrator::engine::cases::{self, Filter, Sort};
use vigil_orchestrator::engine::gates;
use vigil_orchestrator::engine::state::{CaseState, Severity, StepState};
use vigil_orchestrator::pipeline::drafts::{self, Citation};
use vigil_orchestrator::pipeline::{correlate, ingest, investigation};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};
use crate::web::pages::gates::GateRow;
use crate::web::pages::people::People;

/// Cases per page of the queue.
const PAGE: u64 = 50;

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn csrf_of(p: &Principal) -> String {
    match p {
        Principal::Session { info, .. } => info.csrf.clone(),
        _ => String::new(),
    }
}

/// A citation as a link to the evidence viewer, the cited field highlighted.
#[derive(Debug, Clone)]
pub struct CiteLink {
    pub href: String,
    pub label: String,
}

pub fn cite_links(cites: &[Citation]) -> Vec<CiteLink> {
    cites
        .iter()
        .filter_map(|c| {
            let (path, id, tag) = match (c.alert_id, c.evidence_id) {
                (Some(a), _) => ("alerts", a, ""),
                (None, Some(e)) => ("evidence", e, "evidence "),
                (None, None) => return None,
            };
            Some(CiteLink {
                href: format!("/{path}/{id}?at={}#cited", crate::web::urls::encode(&c.pointer)),
                label: format!("{tag}{}{}", short(id), c.pointer),
            })
        })
        .collect()
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[24..].to_owned()
}

// --- the queue -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    age: String,
    #[serde(default)]
    sort: String,
    /// "" anyone, "me", "none".
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    page: Option<u64>,
}

pub struct QueueRow {
    id: Uuid,
    title: String,
    severity: &'static str,
    state: &'static str,
    alerts: u64,
    created: String,
    updated: String,
    assignee: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "cases.html")]
pub struct QueuePage {
    rows: Vec<QueueRow>,
    total: u64,
    /// `false`: at least `total` (counting stopped there).
    exact: bool,
    page: u64,
    /// Known pages (`page + 1` when the count stopped short).
    pages: u64,
    state: String,
    severity: String,
    q: String,
    age: String,
    sort: String,
    assignee: String,
    error: Option<String>,
    /// The query string of this view without its page (for page links).
    base: String,
    csrf: String,
    /// Whether the viewer may assign and merge (and is a person: a
    /// selection's "assign to me" needs someone to be "me").
    may_bulk: bool,
    /// The person's saved views: (id, name, query string).
    views: Vec<(Uuid, String, String)>,
    is_person: bool,
}

fn filter_of(q: &QueueQuery, now: chrono::DateTime<chrono::Utc>, me: Option<Uuid>) -> Result<Filter, Error> {
    let state = match q.state.as_str() {
        "" => Some(CaseState::Open),
        "all" => None,
        s => Some(s.parse()?),
    };
    let severity: Option<Severity> = match q.severity.as_str() {
        "" => None,
        s => Some(s.parse()?),
    };
    let since = match q.age.as_str() {
        "" => None,
        "24h" => Some(now - chrono::Duration::hours(24)),
        "7d" => Some(now - chrono::Duration::days(7)),
        "30d" => Some(now - chrono::Duration::days(30)),
        other => return Err(Error::Invalid(format!("unknown age {other:?} (24h, 7d, 30d)"))),
    };
    if q.q.chars().count() > 200 || q.q.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "search text: at most 200 printable characters".into(),
        ));
    }
    let assignee = match q.assignee.as_str() {
        "" => None,
        "none" => Some(cases::Assignee::Nobody),
        "me" => Some(cases::Assignee::User(me.unwrap_or(Uuid::nil()))),
        other => return Err(Error::Invalid(format!("unknown assignee {other:?} (me, none)"))),
    };
    Ok(Filter {
        state,
        severity,
        text: q.q.clone(),
        since,
        assignee,
        sort: q.sort.parse::<Sort>()?,
    })
}

pub async fn queue(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<QueueQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let mut view = QueuePage {
        rows: Vec::new(),
        total: 0,
        exact: true,
        page,
        pages: 1,
        state: q.state.clone(),
        severity: q.severity.clone(),
        q: q.q.clone(),
        age: q.age.clone(),
        sort: q.sort.clone(),
        assignee: q.assignee.clone(),
        error: None,
        base: format!(
            "state={}&severity={}&q={}&age={}&sort={}&assignee={}",
            crate::web::urls::encode(&q.state),
            crate::web::urls::encode(&q.severity),
            crate::web::urls::encode(&q.q),
            crate::web::urls::encode(&q.age),
            crate::web::urls::encode(&q.sort),
            crate::web::urls::encode(&q.assignee)
        ),
        csrf: csrf_of(&p),
        may_bulk: p.user_id().is_some() && s.authz.allows(ctx.role, "case", "write"),
        views: Vec::new(),
        is_person: p.user_id().is_some(),
    };
    let me = p.user_id().map(|u| u.0);
    let f = match filter_of(&q, s.clock.now(), me) {
        Ok(f) => f,
        Err(e) => {
            view.error = Some(crate::web::ApiError::from(e).message);
            return (StatusCode::UNPROCESSABLE_ENTITY, view).into_response();
        }
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let offset = (page - 1) * PAGE;
        // Count as far as twenty pages ahead (at least 1,000), in thousands.
        let cap = (offset + 20 * PAGE).max(1000).div_ceil(1000) * 1000;
        let (items, total) = cases::search_page(&tx, &f, PAGE, offset, Some(cap)).await?;
        let ids: Vec<Uuid> = items.iter().map(|c| c.id).collect();
        let counts = correlate::alert_counts(&tx, &ids).await?;
        let people = People::load(&tx).await?;
        let views = match p.user_id() {
            Some(u) => cases::views(&tx, u).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok::<_, Error>((items, total, counts, people, views))
    }
    .await;
    match result {
        Ok((items, total, counts, people, views)) => {
            view.views = views.into_iter().map(|v| (v.id, v.name, v.query)).collect();
            view.total = total.n;
            view.exact = total.exact;
            view.pages = if total.exact {
                total.n.div_ceil(PAGE).max(1)
            } else {
                page + 1
            };
            view.rows = items
                .into_iter()
                .map(|c| QueueRow {
                    alerts: counts.get(&c.id).copied().unwrap_or(0),
                    id: c.id,
                    title: c.title,
                    severity: c.severity.as_str(),
                    state: c.state.as_str(),
                    created: when(c.created_at),
                    updated: when(c.updated_at),
                    assignee: match c.assignee {
                        Some(u) if Some(u) == me => "me".to_owned(),
                        Some(u) => people.name(&format!("user:{u}")),
                        None => String::new(),
                    },
                })
                .collect();
            view.into_response()
        }
        Err(e) => page_error(e),
    }
}

// --- the case --------------------------------------------------------------

pub struct StepLine {
    kind: String,
    state: &'static str,
    attempts: i32,
    note: String,
}

pub struct RoundLine {
    round: i64,
    state: &'static str,
    steps: Vec<StepLine>,
}

pub struct Claim {
    text: String,
    cites: Vec<CiteLink>,
}

pub struct Section {
    title: &'static str,
    claims: Vec<Claim>,
}

pub struct Rec {
    action: String,
    total: String,
    signals: Vec<(String, String, Vec<CiteLink>)>,
}

pub struct DraftView {
    id: Uuid,
    version: i32,
    state: String,
    drafter: String,
    created: String,
    sections: Vec<Section>,
    recs: Vec<Rec>,
    decided: String,
    reason: String,
    /// What a person changed (edited versions): where, before, after.
    diff: Vec<(String, String, String)>,
    /// One field per claim, for edit-then-approve: (name, text, label).
    fields: Vec<(String, String, String)>,
}

/// A diff side as text: sentences by their text, anything else as JSON.
fn diff_side(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.get("text")
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join(" / "),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

pub struct EntityLine {
    kind: &'static str,
    value: String,
    role: String,
    links: bool,
    why: String,
    others: Vec<(Uuid, String)>,
}

pub struct EventLine {
    at: String,
    placed_by: &'static str,
    placed_label: &'static str,
    format: String,
    summary: String,
    href: String,
}

pub struct AlertLine {
    id: Uuid,
    short: String,
    at: String,
    joined: String,
}

/// An evidence item of the case, one line: its round, source, subject and
/// whether it was collected (else why not).
#[derive(Debug, Clone)]
pub struct EvidenceLine {
    id: Uuid,
    round: i64,
    source: String,
    subject: String,
    at: String,
    error: Option<String>,
}

/// A comment as the case page shows it.
pub struct CommentLine {
    author: String,
    at: String,
    body: String,
    /// Written on a case since merged into this one.
    merged: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "case.html")]
pub struct CasePage {
    id: Uuid,
    /// Who works the case ("" for nobody).
    assignee: String,
    assigned_to_me: bool,
    /// The members who may be assigned: (user id, e-mail, current).
    workers: Vec<(Uuid, String, bool)>,
    comments: Vec<CommentLine>,
    /// Comments beyond those shown.
    comments_more: u64,
    is_person: bool,
    title: String,
    severity: &'static str,
    state: &'static str,
    created: String,
    updated: String,
    rounds: Vec<RoundLine>,
    draft: Option<DraftView>,
    older: Vec<DraftView>,
    gates: Vec<GateRow>,
    events: Vec<EventLine>,
    /// Where this page of the timeline sits among the case's alerts.
    events_nav: Nav,
    /// Events from evidence in the whole timeline.
    enrichment: usize,
    entities: Vec<EntityLine>,
    alerts: Vec<AlertLine>,
    alerts_nav: Nav,
    evidence: Vec<EvidenceLine>,
    csrf: String,
    may_write: bool,
    may_decide_draft: bool,
    case_links: bool,
}

/// A window of `CASE_PAGE_ROWS` rows of a long list on the case page, and
/// links to the windows before and after it.
pub struct Nav {
    /// 1-based first and last row shown, and how many there are.
    first: u64,
    last: u64,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
}

impl Nav {
    fn new(offset: u64, total: u64, param: &str, anchor: &str) -> Nav {
        let link = |o: u64| format!("?{param}={o}#{anchor}");
        Nav {
            first: (offset + 1).min(total),
            last: offset.saturating_add(CASE_PAGE_ROWS).min(total),
            total,
            prev: (offset > 0).then(|| link(offset.saturating_sub(CASE_PAGE_ROWS))),
            next: (offset.saturating_add(CASE_PAGE_ROWS) < total).then(|| link(offset + CASE_PAGE_ROWS)),
        }
    }

    fn paged(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

fn step_note(s: &vigil_orchestrator::engine::steps::StepView) -> String {
    if let Some(e) = &s.last_error {
        return e.clone();
    }
    let gate_kind = || {
        s.input
            .get("gate_kind")
            .and_then(Value::as_str)
            .unwrap_or("gate")
            .replace('_', " ")
    };
    if s.kind == investigation::FOLLOW_UP {
        match s.state {
            StepState::Waiting => {
                return format!("waits for a person's decision on the {} proposal", gate_kind());
            }
            StepState::Cancelled => return format!("the {} proposal was dismissed", gate_kind()),
            _ => {}
        }
    }
    let Some(o) = &s.output else { return String::new() };
    if let Some(skip) = o.get("skipped").and_then(Value::as_str) {
        return format!("skipped: {skip}");
    }
    match s.kind.as_str() {
        investigation::COLLECT => {
            let mut n = format!(
                "{} alert(s), {} indicator hit(s), {} evidence item(s) collected",
                o.get("alerts").unwrap_or(&Value::Null),
                o.get("indicator_hits").unwrap_or(&Value::Null),
                o.get("evidence").and_then(Value::as_u64).unwrap_or(0),
            );
            if let Some(k) = o
                .get("evidence_reused")
                .and_then(Value::as_u64)
                .filter(|k| *k > 0)
            {
                n.push_str(&format!(", {k} still fresh from an earlier round"));
            }
            if let Some(nc) = o
                .get("not_collected")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            {
                let why: Vec<&str> = nc.iter().filter_map(Value::as_str).collect();
                n.push_str(&format!("; not collected: {}", why.join("; ")));
            }
            if let Some(why) = o.get("enrichment").and_then(Value::as_str) {
                n.push_str(&format!("; {why}"));
            }
            n
        }
        investigation::SEQUENCE => format!(
            "{} event(s): {} alert(s), {} from the evidence",
            o.get("events").and_then(Value::as_u64).unwrap_or(0),
            o.get("alerts").and_then(Value::as_u64).unwrap_or(0),
            o.get("enrichment_events").and_then(Value::as_u64).unwrap_or(0),
        ),
        investigation::ASSESS => match o.get("recommendation").and_then(Value::as_str) {
            Some(r) => format!(
                "recommends {} (signals total {})",
                r.replace('_', " "),
                o.get("total")
                    .and_then(Value::as_f64)
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_default()
            ),
            None => "no recommendation: the signals stay under every threshold".into(),
        },
        investigation::DRAFT => format!("draft version {}", o.get("version").unwrap_or(&Value::Null)),
        investigation::PROPOSE => {
            let n = |k: &str| o.get(k).and_then(Value::as_array).map_or(0, Vec::len);
            format!(
                "{} gate(s) proposed, {} not proposed",
                n("proposed"),
                n("not_proposed")
            )
        }
        investigation::FOLLOW_UP => match o.get("outbox") {
            Some(Value::Object(entry)) => format!(
                "{} approved: the write is with the outbox ({})",
                gate_kind(),
                entry.get("state").and_then(Value::as_str).unwrap_or("?")
            ),
            _ if o.get("proposed").is_some() => {
                let n = |k: &str| o.get(k).and_then(Value::as_array).map_or(0, Vec::len);
                format!(
                    "{} approved: {} gate(s) proposed, {} not proposed",
                    gate_kind(),
                    n("proposed"),
                    n("not_proposed")
                )
            }
            _ => format!("{} approved", gate_kind()),
        },
        _ => String::new(),
    }
}

fn draft_view(d: drafts::Draft, people: &People) -> DraftView {
    let body: drafts::Body = serde_json::from_value(d.body).unwrap_or_default();
    let mut fields = Vec::new();
    for (name, title, v) in [
        ("summary", "Summary", &body.summary),
        ("scope", "Scope", &body.scope),
        ("entities", "Entities", &body.entities),
        ("timeline", "Timeline", &body.timeline),
    ] {
        for (i, s) in v.iter().enumerate() {
            fields.push((
                format!("{name}.{i}"),
                s.text.clone(),
                format!("{title}, claim {}", i + 1),
            ));
        }
    }
    let diff = d
        .edit_diff
        .as_ref()
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r.get("pointer")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .trim_start_matches('/')
                            .to_owned(),
                        diff_side(r.get("before").unwrap_or(&Value::Null)),
                        diff_side(r.get("after").unwrap_or(&Value::Null)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let section = |title: &'static str, v: &[drafts::Sentence]| Section {
        title,
        claims: v
            .iter()
            .map(|s| Claim {
                text: s.text.clone(),
                cites: cite_links(&s.cites),
            })
            .collect(),
    };
    DraftView {
        id: d.id,
        version: d.version,
        state: d.state,
        drafter: d.drafter,
        created: when(d.created_at),
        sections: vec![
            section("Summary", &body.summary),
            section("Scope", &body.scope),
            section("Entities", &body.entities),
            section("Timeline", &body.timeline),
        ],
        recs: body
            .recommendations
            .iter()
            .map(|r| Rec {
                action: r.action.replace('_', " "),
                total: format!("{:.1}", r.total),
                signals: r
                    .signals
                    .iter()
                    .map(|s| (s.name.clone(), format!("{:.1}", s.weight), cite_links(&s.cites)))
                    .collect(),
            })
            .collect(),
        decided: match (d.decided_by, d.decided_at) {
            (Some(by), Some(at)) => format!("{} at {}", people.name(&by), when(at)),
            _ => String::new(),
        },
        reason: d.reason.unwrap_or_default(),
        diff,
        fields,
    }
}

/// Rows of the case page's timeline and alert list shown at once.
pub const CASE_PAGE_ROWS: u64 = 200;

/// Where the case page's timeline and alert list start.
#[derive(Debug, Default, Deserialize)]
pub struct CaseView {
    #[serde(default)]
    events: u64,
    #[serde(default)]
    alerts: u64,
}

pub async fn case_page(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
    view: Result<Query<CaseView>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A mangled window is the start of the case, not an error page.
    let mut view = view.map(|Query(v)| v).unwrap_or_default();
    // An offset past any case is an empty window, not an overflow.
    view.events = view.events.min(u64::from(u32::MAX));
    view.alerts = view.alerts.min(u64::from(u32::MAX));
    let Ok(case_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let me = p.actor(Some(ctx.role), None).label;
    let may = |o: &str, a: &str| s.authz.allows(ctx.role, o, a);
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let c = cases::get(&tx, case_id).await?;
        let (people, members) = People::with_members(&tx).await?;
        let (comment_rows, comment_total) = cases::comments(&tx, case_id, 200, 0).await?;
        let progress = investigation::progress(&tx, case_id).await?;
        let all_drafts = drafts::list(&tx, case_id, false).await?;
        let (gs, _) = gates::list(&tx, None, Some(case_id), 200, 0).await?;
        let mut gates = Vec::with_capacity(gs.len());
        for g in gs {
            gates.push(
                crate::web::pages::gates::row(
                    &s,
                    &tx,
                    &people,
                    ctx.role,
                    &me,
                    g,
                    &c.title,
                    c.severity.as_str(),
                )
                .await?,
            );
        }
        let timeline = investigation::sequenced_page(&tx, case_id, view.events, CASE_PAGE_ROWS).await?;
        let explained = correlate::explain(&tx, case_id).await?;
        let pairs: Vec<_> = explained
            .entities
            .iter()
            .map(|e| (e.kind, e.value.clone()))
            .collect();
        let others = correlate::elsewhere(&tx, case_id, &pairs, 5).await?;
        let evidence = vigil_orchestrator::pipeline::evidence::of_case(&tx, case_id)
            .await?
            .into_iter()
            .rev()
            .map(|e| EvidenceLine {
                id: e.id,
                round: e.round,
                source: e.source,
                subject: e.subject,
                at: when(e.collected_at),
                error: e.error,
            })
            .collect();
        tx.commit().await?;
        let rounds = progress
            .rounds
            .iter()
            .map(|r| RoundLine {
                round: r.round,
                state: r.state,
                steps: r
                    .steps
                    .iter()
                    .map(|st| StepLine {
                        kind: match st.kind.as_str() {
                            investigation::COLLECT => "Collect evidence".into(),
                            investigation::SEQUENCE => "Sequence the timeline".into(),
                            investigation::ASSESS => "Assess".into(),
                            investigation::DRAFT => "Draft the brief".into(),
                            investigation::PROPOSE => "Propose actions".into(),
                            investigation::FOLLOW_UP => "After the decision".into(),
                            other => other.to_owned(),
                        },
                        state: st.state.as_str(),
                        attempts: st.attempts,
                        note: step_note(st),
                    })
                    .collect(),
            })
            .collect();
        let mut drafts_iter = all_drafts.into_iter().map(|d| draft_view(d, &people));
        let draft = drafts_iter.next();
        let older = drafts_iter.collect();
        let events = timeline
            .entries
            .into_iter()
            .map(|entry| match entry {
                investigation::Entry::Alert(r) => EventLine {
                    at: when(r.at),
                    placed_by: r.placed_by,
                    placed_label: if r.placed_by == "received" {
                        "no event time: at receipt"
                    } else {
                        "event time out of bounds: at receipt"
                    },
                    format: r.format,
                    summary: r.summary,
                    href: match &r.evidence.pointer {
                        Some(ptr) => format!(
                            "/alerts/{}?at={}#cited",
                            r.evidence.alert_id,
                            crate::web::urls::encode(ptr)
                        ),
                        None => format!("/alerts/{}", r.evidence.alert_id),
                    },
                },
                investigation::Entry::Enrichment(e) => EventLine {
                    at: when(e.at),
                    placed_by: "event",
                    placed_label: "",
                    format: format!("Graylog: {}", e.source),
                    summary: e.summary,
                    href: format!(
                        "/evidence/{}?at={}#cited",
                        e.evidence_id,
                        crate::web::urls::encode(&e.pointer)
                    ),
                },
            })
            .collect();
        let entities = explained
            .entities
            .into_iter()
            .map(|e| EntityLine {
                others: others
                    .get(&(e.kind, e.value.clone()))
                    .cloned()
                    .unwrap_or_default(),
                kind: e.kind.as_str(),
                value: e.value,
                role: e.role.as_str().replace('_', " "),
                links: e.links,
                why: e.why,
            })
            .collect();
        let alerts_total = explained.alerts.len() as u64;
        let alerts = explained
            .alerts
            .into_iter()
            .skip(usize::try_from(view.alerts).unwrap_or(usize::MAX))
            .take(CASE_PAGE_ROWS as usize)
            .map(|a| AlertLine {
                short: short(a.alert_id),
                id: a.alert_id,
                at: when(a.at),
                joined: match &a.joined_by {
                    None => "opened the case".into(),
                    Some(j) => joined_text(j, &people),
                },
            })
            .collect();
        let me = p.user_id().map(|u| u.0);
        let workers = members
            .into_iter()
            .filter(|m| s.authz.allows(m.role, "case", "write"))
            .map(|m| (m.user_id.0, m.email, Some(m.user_id.0) == c.assignee))
            .collect();
        let comments = comment_rows
            .into_iter()
            .map(|k| CommentLine {
                author: people.name(&k.author),
                at: when(k.created_at),
                merged: k.case_id != c.id,
                body: k.body,
            })
            .collect::<Vec<_>>();
        Ok::<_, Error>(CasePage {
            assignee: c
                .assignee
                .map(|u| people.name(&format!("user:{u}")))
                .unwrap_or_default(),
            assigned_to_me: c.assignee.is_some() && c.assignee == me,
            workers,
            comments_more: comment_total.saturating_sub(comments.len() as u64),
            comments,
            is_person: me.is_some(),
            id: c.id,
            title: c.title,
            severity: c.severity.as_str(),
            state: c.state.as_str(),
            created: when(c.created_at),
            updated: when(c.updated_at),
            rounds,
            draft,
            older,
            gates,
            events,
            events_nav: Nav::new(view.events, timeline.alerts, "events", "timeline"),
            enrichment: timeline.enrichment,
            entities,
            alerts,
            alerts_nav: Nav::new(view.alerts, alerts_total, "alerts", "alerts"),
            evidence,
            csrf: csrf_of(&p),
            may_write: may("case", "write"),
            may_decide_draft: may("draft", "decide"),
            case_links: true,
        })
    }
    .await;
    match result {
        Ok(page) => page.into_response(),
        Err(e) => page_error(e),
    }
}

/// How an alert came into the case, in words.
fn joined_text(j: &Value, people: &People) -> String {
    if let Some(by) = j.get("by").and_then(Value::as_str) {
        return match j.get("merged_from").and_then(Value::as_str) {
            Some(from) => format!("merged in by {} from case {from}", people.name(by)),
            None => format!("moved here by {}", people.name(by)),
        };
    }
    match (
        j.get("kind").and_then(Value::as_str),
        j.get("value").and_then(Value::as_str),
    ) {
        (Some(k), Some(v)) => format!("joined by {k} {v}"),
        _ => j.to_string(),
    }
}

// --- the evidence viewer ---------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct AtQuery {
    #[serde(default)]
    at: String,
}

pub struct JsonLine {
    indent: usize,
    text: String,
    cited: bool,
    /// The first line of the cited value (the `#cited` anchor).
    anchor: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "alert.html")]
pub struct AlertPage {
    id: Uuid,
    format: String,
    received: String,
    case_id: Option<Uuid>,
    at: String,
    found: bool,
    lines: Vec<JsonLine>,
}

/// Pretty-prints `v` line by line, each line knowing the JSON pointer of
/// the value it belongs to, so the cited value's lines can be marked.
fn json_lines(v: &Value, cited: &str) -> Vec<JsonLine> {
    fn esc(seg: &str) -> String {
        seg.replace('~', "~0").replace('/', "~1")
    }
    fn walk(
        v: &Value,
        key: Option<String>,
        ptr: &str,
        depth: usize,
        last: bool,
        cited: &str,
        out: &mut Vec<JsonLine>,
    ) {
        let inside = !cited.is_empty() && (ptr == cited || ptr.starts_with(&format!("{cited}/")));
        let lead = key.map(|k| format!("{}: ", Value::String(k))).unwrap_or_default();
        let comma = if last { "" } else { "," };
        let push = |text: String, out: &mut Vec<JsonLine>, first: bool| {
            out.push(JsonLine {
                indent: depth,
                text,
                cited: inside,
                anchor: inside && first && ptr == cited,
            });
        };
        match v {
            Value::Object(m) if !m.is_empty() => {
                push(format!("{lead}{{"), out, true);
                let n = m.len();
                for (i, (k, child)) in m.iter().enumerate() {
                    walk(
                        child,
                        Some(k.clone()),
                        &format!("{ptr}/{}", esc(k)),
                        depth + 1,
                        i + 1 == n,
                        cited,
                        out,
                    );
                }
                push(format!("}}{comma}"), out, false);
            }
            Value::Array(a) if !a.is_empty() => {
                push(format!("{lead}["), out, true);
                let n = a.len();
                for (i, child) in a.iter().enumerate() {
                    walk(
                        child,
                        None,
                        &format!("{ptr}/{i}"),
                        depth + 1,
                        i + 1 == n,
                        cited,
                        out,
                    );
                }
                push(format!("]{comma}"), out, false);
            }
            other => push(format!("{lead}{other}{comma}"), out, true),
        }
    }
    let mut out = Vec::new();
    walk(v, None, "", 0, true, cited, &mut out);
    out
}

pub async fn alert_page(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> Response {
    let Ok(alert_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such alert.");
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let got = ingest::get(&tx, alert_id).await?;
        tx.commit().await?;
        Ok::<_, Error>(got)
    }
    .await;
    let (a, case_id) = match result {
        Ok(x) => x,
        Err(e) => return page_error(e),
    };
    let doc: Value = serde_json::from_str(&a.raw).unwrap_or(Value::String(a.raw.clone()));
    let at = if q.at.starts_with('/') {
        q.at.clone()
    } else {
        String::new()
    };
    let found = !at.is_empty() && doc.pointer(&at).is_some();
    AlertPage {
        id: a.id,
        format: a.format,
        received: when(a.received_at),
        case_id,
        lines: json_lines(&doc, if found { &at } else { "" }),
        at,
        found,
    }
    .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "evidence.html")]
pub struct EvidencePage {
    item: vigil_orchestrator::pipeline::evidence::Item,
    integration: String,
    collected: String,
    at: String,
    found: bool,
    lines: Vec<JsonLine>,
}

/// An evidence item: what was asked of which integration, and its answer,
/// the cited field highlighted (or why it was not collected).
pub async fn evidence_page(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such evidence item.");
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let item = vigil_orchestrator::pipeline::evidence::get(&tx, id).await?;
        let integration = vigil_orchestrator::connect::integrations::get(&tx, item.integration_id)
            .await
            .map(|i| format!("{} ({})", i.name, i.kind))
            .unwrap_or_else(|_| "a removed integration".into());
        tx.commit().await?;
        Ok::<_, Error>((item, integration))
    }
    .await;
    let (item, integration) = match result {
        Ok(x) => x,
        Err(e) => return page_error(e),
    };
    let at = if q.at.starts_with('/') {
        q.at.clone()
    } else {
        String::new()
    };
    let doc = item.response.clone().unwrap_or(Value::Null);
    let found = !at.is_empty() && doc.pointer(&at).is_some();
    EvidencePage {
        collected: when(item.collected_at),
        lines: if item.response.is_some() {
            json_lines(&doc, if found { &at } else { "" })
        } else {
            Vec::new()
        },
        item,
        integration,
        at,
        found,
    }
    .into_response()
}

// --- decisions -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DraftForm {
    #[serde(default)]
    reason: String,
}

async fn decide_draft(
    s: AppState,
    p: Principal,
    ctx: TenantCtx,
    ip: String,
    id: String,
    approve: bool,
    f: DraftForm,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such draft.");
    };
    let actor = p.actor(Some(ctx.role), Some(ip));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let d = drafts::decide(&tx, s.clock.as_ref(), &actor, id, approve, Some(&f.reason)).await?;
        tx.commit().await?;
        Ok::<_, Error>(d.case_id)
    }
    .await;
    match result {
        Ok(case) => Redirect::to(&format!("/cases/{case}#draft")).into_response(),
        Err(e) => page_error(e),
    }
}

pub async fn approve_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<DraftForm>,
) -> Response {
    decide_draft(s, p, ctx, peer.ip().to_string(), id, true, f).await
}

pub async fn reject_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<DraftForm>,
) -> Response {
    decide_draft(s, p, ctx, peer.ip().to_string(), id, false, f).await
}

/// Edit-then-approve from the case page: one text field per claim
/// (`summary.0`, `scope.1`, …); a claim keeps its citations, an emptied
/// field drops the claim.
pub async fn edit_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such draft.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let d = drafts::get(&tx, id).await?;
        let mut body: drafts::Body =
            serde_json::from_value(d.body).map_err(|e| Error::Invalid(e.to_string()))?;
        for (name, text) in &fields {
            let Some((section, i)) = name.split_once('.') else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            let list = match section {
                "summary" => &mut body.summary,
                "scope" => &mut body.scope,
                "entities" => &mut body.entities,
                "timeline" => &mut body.timeline,
                _ => continue,
            };
            if let Some(sentence) = list.get_mut(i) {
                sentence.text = text.replace("\r\n", "\n").trim().to_owned();
            }
        }
        for list in [
            &mut body.summary,
            &mut body.scope,
            &mut body.entities,
            &mut body.timeline,
        ] {
            list.retain(|s| !s.text.is_empty());
        }
        let edited = drafts::edit_and_approve(&tx, s.clock.as_ref(), &actor, id, &body).await?;
        tx.commit().await?;
        Ok::<_, Error>(edited.case_id)
    }
    .await;
    match result {
        Ok(case) => Redirect::to(&format!("/cases/{case}#draft")).into_response(),
        Err(e) => page_error(e),
    }
}

/// A person starts a new investigation round of the case now.
pub async fn investigate(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let Ok(case_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        investigation::rerun(&tx, s.clock.as_ref(), &actor, case_id).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{case_id}#investigation")).into_response(),
        Err(e) => page_error(e),
    }
}

/// The form fields named `name`, in order.
fn fields<'a>(f: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    f.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Where a form's handler sends the browser: to `to` once done, else the
/// refusal in place.
fn then_to(result: Result<String, Error>) -> Response {
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => page_error(e),
    }
}

/// Parses a form's case or alert id; a malformed one is the same "not
/// found" as another tenant's.
fn form_id(v: &str, what: &'static str) -> Result<Uuid, Error> {
    Uuid::try_parse(v.trim()).map_err(|_| Error::NotFound(what))
}

/// Saves the queue's current filters under a name, for the person.
pub async fn save_view(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let user = p
            .user_id()
            .ok_or_else(|| Error::Invalid("only a person keeps saved views".into()))?;
        let query = field(&f, "query");
        // Only a view the queue itself would accept is kept.
        let q: QueueQuery = serde_urlencoded::from_str(query)
            .map_err(|_| Error::Invalid("not a view of the queue".into()))?;
        filter_of(&q, s.clock.now(), Some(user.0))?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let v = cases::save_view(&tx, s.clock.as_ref(), user, field(&f, "name"), query).await?;
        tx.commit().await?;
        Ok(format!("/cases?{}", v.query))
    }
    .await;
    then_to(result)
}

/// Deletes one of the person's saved views.
pub async fn delete_view(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let user = p.user_id().ok_or(Error::NotFound("saved view"))?;
        let id = form_id(&id, "saved view")?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        cases::delete_view(&tx, user, id).await?;
        tx.commit().await?;
        Ok("/cases".to_owned())
    }
    .await;
    then_to(result)
}

/// Assigns the case (`user` = a member's id, `me`, or empty for nobody).
pub async fn assign(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(case_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let user = match field(&f, "user").trim() {
            "" => None,
            "me" => Some(
                p.user_id()
                    .ok_or_else(|| Error::Invalid("only a person can be assigned a case".into()))?,
            ),
            u => Some(vigil_orchestrator::ids::UserId(form_id(u, "member")?)),
        };
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        cases::assign(&tx, s.clock.as_ref(), &actor, case_id, user, &|r| {
            s.authz.allows(r, "case", "write")
        })
        .await?;
        tx.commit().await
    }
    .await;
    then_to(result.map(|()| format!("/cases/{case_id}#work")))
}

/// Adds a comment to the case.
pub async fn comment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(case_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let c = cases::comment(&tx, s.clock.as_ref(), &actor, case_id, field(&f, "body")).await?;
        tx.commit().await?;
        Ok::<_, Error>(c.case_id)
    }
    .await;
    then_to(result.map(|case| format!("/cases/{case}#comments")))
}

/// Merges another case (`from`) into this one.
pub async fn merge(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(into) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let from = form_id(field(&f, "from"), "case")?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        correlate::merge(&tx, s.clock.as_ref(), &actor, from, into).await?;
        tx.commit().await
    }
    .await;
    then_to(result.map(|()| format!("/cases/{into}#alerts")))
}

/// Splits the checked alerts (`alert`, repeated) out into a new case.
pub async fn split(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(case_id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such case.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let alerts = fields(&f, "alert")
            .map(|a| form_id(a, "alert"))
            .collect::<Result<Vec<_>, _>>()?;
        let title = field(&f, "title").trim();
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let new = correlate::split(
            &tx,
            s.clock.as_ref(),
            &actor,
            case_id,
            &alerts,
            (!title.is_empty()).then_some(title),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(new)
    }
    .await;
    then_to(result.map(|new| format!("/cases/{new}")))
}

/// The queue's selection: `action=assign_me` assigns every checked case
/// (`case`, repeated) to the person; `action=merge` merges them all into
/// the one opened first. One transaction: all or nothing.
pub async fn bulk(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let mut ids = fields(&f, "case")
            .map(|c| form_id(c, "case"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Err(Error::Invalid("select at least one case".into()));
        }
        if ids.len() > PAGE as usize {
            return Err(Error::Invalid(format!("select at most {PAGE} cases")));
        }
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let to = match field(&f, "action") {
            "assign_me" => {
                let me = p
                    .user_id()
                    .ok_or_else(|| Error::Invalid("only a person can be assigned a case".into()))?;
                for id in &ids {
                    cases::assign(&tx, s.clock.as_ref(), &actor, *id, Some(me), &|r| {
                        s.authz.allows(r, "case", "write")
                    })
                    .await?;
                }
                "/cases?assignee=me".to_owned()
            }
            "merge" => {
                if ids.len() < 2 {
                    return Err(Error::Invalid("select two or more cases to merge".into()));
                }
                let mut found = Vec::with_capacity(ids.len());
                for id in &ids {
                    found.push(cases::get(&tx, *id).await?);
                }
                found.sort_by_key(|c| (c.created_at, c.id));
                let into = found[0].id;
                for c in &found[1..] {
                    correlate::merge(&tx, s.clock.as_ref(), &actor, c.id, into).await?;
                }
                format!("/cases/{into}#alerts")
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown action {other:?} (assign_me, merge)"
                )));
            }
        };
        tx.commit().await?;
        Ok(to)
    }
    .await;
    then_to(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cited_value_and_only_it_is_marked() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}, "d": "y/z", "e~/f": 2});
        let lines = json_lines(&v, "/a/b/1");
        let marked: Vec<_> = lines
            .iter()
            .filter(|l| l.cited)
            .map(|l| l.text.trim().to_owned())
            .collect();
        assert_eq!(marked, vec!["{", "\"c\": \"x\"", "}"]);
        assert_eq!(lines.iter().filter(|l| l.anchor).count(), 1);
        // Escaped keys (RFC 6901) are found too.
        let lines = json_lines(&v, "/e~0~1f");
        assert_eq!(lines.iter().filter(|l| l.cited).count(), 1);
        // Nothing cited: nothing marked.
        assert!(json_lines(&v, "").iter().all(|l| !l.cited));
    }
}
