//! The investigation: the one workflow the engine runs for every case, in
//! rounds. Defined here, in one place: its steps, their order and what each
//! takes and gives.
//!
//! 1. `investigation.collect` — the evidence: the case's alerts, the
//!    tenant's indicator-list hits, and enrichment through the integrations'
//!    read scopes (CrowdStrike device records, Graylog message searches:
//!    [`evidence`]), stored verbatim as evidence items; a failing source is
//!    retried by the engine, then recorded as not collected;
//! 2. `investigation.sequence` — the case's timeline with the events the
//!    evidence tells of (Graylog's messages) in event-time order
//!    ([`sequenced`]; the case page and the timeline API show the same);
//! 3. `investigation.assess` — signals with weights and citations (the
//!    drafter's: indicator hits, spread, source severity, ATT&CK tactics
//!    named or implied by detection names, containment status, and the
//!    known-benign: every alert from an entity on the tenant's ignore list,
//!    every detection one the tenant knows to be benign), weighed by the
//!    tenant's [`crate::pipeline::assess`] settings;
//! 4. `investigation.draft` — the brief, a new version (older unapproved
//!    versions are marked superseded), by the tenant's model when one is
//!    configured (validated; on failure the deterministic draft says why),
//!    else by the deterministic drafter; enrichment facts and events are in
//!    it, citing their evidence items;
//! 5. `investigation.propose` — for the draft's recommendation above its
//!    threshold, Vigil itself requests the gate (escalate to Critical; a
//!    ticket on the tenant's first ticket integration; containment of each
//!    host CrowdStrike reports online and not contained), as the system actor,
//!    with the draft version and signals attached; each kind once per case
//!    (a waiting gate is not asked twice, an approved one is done, a
//!    dismissed one is feedback). Escalation comes before the ticket, and
//!    a known-benign case gets a proposal to close it as benign. Then the
//!    workflow waits on people;
//! 6. `investigation.follow_up` — one per proposed gate, enqueued with it
//!    and waiting on it: what follows its approval (after an escalation,
//!    the ticket is proposed; after a ticket or a containment, the
//!    outbox's entry is recorded; after closing, the case's state). A
//!    dismissal cancels it. A round whose follow-ups are not all done is
//!    `awaiting_decision`.
//!
//! A round starts when the ingest transaction that opens a case or adds
//! alerts to it [`schedule`]s one (in that transaction): debounced — while a
//! round's first step has not started, later alerts ride on it; once it
//! runs, the next alerts start a new round, no sooner than
//! [`ROUND_INTERVAL`] after the previous one. A person may start a round
//! too, at once.
//! Every step is a durable step (lease, retries with backoff, dead letter,
//! kill switch) of [`crate::engine::steps`].

use std::sync::Arc;

use chrono::Duration;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::Actor;
use crate::connect::connectors::Connectors;
use crate::engine::state::{CaseState, GateKind, Severity, StepState};
use crate::engine::steps::{NewStep, Registry, StepContext, StepDone, StepFailure, StepHandler};
use crate::engine::{cases, gates, steps};
use crate::pipeline::{drafts, evidence, iocs, timeline};
use crate::store::TenantTx;
use crate::store::entity::{draft, gate, integration, outbox, step};
use crate::{Clock, Error, Result};

pub const COLLECT: &str = "investigation.collect";
pub const SEQUENCE: &str = "investigation.sequence";
pub const ASSESS: &str = "investigation.assess";
pub const DRAFT: &str = "investigation.draft";
pub const PROPOSE: &str = "investigation.propose";
/// What follows a proposal's approval (it waits on the gate).
pub const FOLLOW_UP: &str = "investigation.follow_up";
/// The workflow, in order.
pub const STEPS: [&str; 5] = [COLLECT, SEQUENCE, ASSESS, DRAFT, PROPOSE];
/// How long a new round waits for more alerts before it starts.
pub const DEBOUNCE: Duration = Duration::seconds(2);

/// The label gates and drafts of the investigation carry.
pub fn system() -> Actor {
    Actor {
        label: "system:investigation".into(),
        role: None,
        source_ip: None,
    }
}

/// The shortest time between the starts of two rounds of one case while
/// alerts keep arriving: a busy case gets a fresh draft every
/// `ROUND_INTERVAL`, not one per delivery, so the rounds a tenant asks for
/// grow with its number of busy cases, not with its alert rate. A person's
/// re-run does not wait for it.
pub const ROUND_INTERVAL: Duration = Duration::seconds(10);

/// Schedules a round for each case (in the caller's transaction), unless
/// one is already waiting to start. A case's first round starts
/// [`DEBOUNCE`] after the alert that asked for it; a later one also no
/// sooner than [`ROUND_INTERVAL`] after the previous one started. Returns
/// the cases a round was queued for.
pub async fn schedule(tx: &TenantTx, clock: &dyn Clock, cases: &[Uuid]) -> Result<Vec<Uuid>> {
    let mut queued = Vec::new();
    for &case_id in cases {
        if queue(tx, clock, case_id, false).await? {
            queued.push(case_id);
        }
    }
    Ok(queued)
}

/// The latest round of a case (its first step), if any.
async fn latest_round(tx: &TenantTx, case_id: Uuid) -> Result<Option<step::Model>> {
    Ok(step::Entity::find()
        .filter(step::Column::TenantId.eq(tx.tenant().0))
        .filter(step::Column::CaseId.eq(case_id))
        .filter(step::Column::Kind.eq(COLLECT))
        .order_by_desc(step::Column::CreatedAt)
        .order_by_desc(step::Column::Id)
        .one(&**tx)
        .await?)
}

/// Queues a round of one case unless one is waiting to start; `now`: a
/// person asked, so it is due at once (a waiting round is brought forward).
async fn queue(tx: &TenantTx, clock: &dyn Clock, case_id: Uuid, now: bool) -> Result<bool> {
    let latest = latest_round(tx, case_id).await?;
    let at = clock.now();
    if let Some(l) = latest
        .as_ref()
        .filter(|l| l.state == StepState::Pending.as_str() && l.attempts == 0)
    {
        if now && l.run_after > at {
            let mut m: step::ActiveModel = l.clone().into();
            m.run_after = Set(at);
            m.updated_at = Set(at);
            m.update(&**tx).await?;
            steps::notify(tx).await?;
        }
        return Ok(false);
    }
    let round = match &latest {
        Some(l) => l.input.get("round").and_then(Value::as_i64).unwrap_or(0) + 1,
        None => 1,
    };
    let mut s = NewStep::new(COLLECT, Some(case_id), json!({"round": round}));
    if !now {
        let mut due = at + DEBOUNCE;
        if let Some(l) = &latest {
            // The previous round's start as scheduled.
            due = due.max(l.created_at + DEBOUNCE + ROUND_INTERVAL);
        }
        s.not_before = Some(due);
    }
    steps::enqueue(tx, clock, s).await?;
    Ok(true)
}

/// A person asks for a new round now (the case must be open). Audited.
pub async fn rerun(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, case_id: Uuid) -> Result<bool> {
    let c = cases::model(tx, case_id).await?;
    if c.merged_into.is_some() || c.state != CaseState::Open.as_str() {
        return Err(Error::Conflict(format!(
            "the case is {}",
            if c.merged_into.is_some() {
                "merged"
            } else {
                c.state.as_str()
            }
        )));
    }
    let queued = queue(tx, clock, case_id, true).await?;
    crate::audit::record(
        tx,
        clock,
        actor,
        crate::audit::Event {
            action: "investigation.rerun",
            target: format!("case:{case_id}"),
            summary: json!({"queued": queued}),
        },
    )
    .await?;
    Ok(queued)
}

fn fail(e: Error) -> StepFailure {
    StepFailure {
        // A case merged away or closed meanwhile is final; storage errors retry.
        transient: !matches!(e, Error::NotFound(_) | Error::Conflict(_) | Error::Invalid(_)),
        message: e.to_string(),
    }
}

fn round(ctx: &StepContext<'_>) -> i64 {
    ctx.input.get("round").and_then(Value::as_i64).unwrap_or(1)
}

fn next(kind: &str, ctx: &StepContext<'_>, extra: Value) -> NewStep {
    let mut input = json!({"round": round(ctx)});
    if let (Some(o), Some(e)) = (input.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    NewStep::new(kind, ctx.case_id, input)
}

/// The case a step is about, if it is still open (merged away: its round
/// ends quietly; the survivor has rounds of its own).
async fn open_case(tx: &TenantTx, ctx: &StepContext<'_>) -> Result<Option<Uuid>> {
    let Some(id) = ctx.case_id else {
        return Err(Error::Invalid("an investigation step needs a case".into()));
    };
    let c = cases::model(tx, id).await?;
    Ok((c.merged_into.is_none() && c.state == CaseState::Open.as_str()).then_some(id))
}

/// A step's transaction and its case, or `None` when the case is closed or
/// was merged away.
async fn begin(ctx: &StepContext<'_>) -> std::result::Result<Option<(TenantTx, Uuid)>, StepFailure> {
    let tx = ctx.store.begin_tenant(ctx.tenant).await.map_err(fail)?;
    Ok(open_case(&tx, ctx).await.map_err(fail)?.map(|id| (tx, id)))
}

fn skipped() -> StepDone {
    StepDone {
        output: json!({"skipped": "the case is closed or was merged"}),
        next: vec![],
    }
}

#[derive(Debug)]
struct Collect {
    connectors: Arc<Connectors>,
}

#[async_trait::async_trait]
impl StepHandler for Collect {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let Some((tx, case_id)) = begin(ctx).await? else {
            return Ok(skipped());
        };
        let alerts = timeline::of_case(&tx, case_id).await.map_err(fail)?;
        let hits = iocs::signals(&tx, case_id).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        // Enrichment through the integrations' read scopes: what failed
        // transiently is tried again by the engine (with backoff), then
        // recorded as not collected; the round goes on either way.
        let got = evidence::collect(
            &self.connectors,
            ctx.clock,
            ctx.tenant,
            case_id,
            round(ctx),
            ctx.attempt >= evidence::TRIES,
        )
        .await
        .map_err(fail)?;
        if !got.retry.is_empty() {
            return Err(StepFailure {
                transient: true,
                message: format!("evidence not collected yet, will retry: {}", got.retry.join("; ")),
            });
        }
        Ok(StepDone {
            output: json!({
                "alerts": alerts.len(),
                "indicator_hits": hits.len(),
                "evidence": got.collected,
                "evidence_reused": got.reused,
                "not_collected": got.not_collected,
                "enrichment": got.nothing,
            }),
            next: vec![next(SEQUENCE, ctx, json!({}))],
        })
    }
}

#[derive(Debug)]
struct Sequence;

#[async_trait::async_trait]
impl StepHandler for Sequence {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let Some((tx, case_id)) = begin(ctx).await? else {
            return Ok(skipped());
        };
        let t = sequenced(&tx, case_id).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        let (alerts, enrichment) = (
            t.iter().filter(|e| matches!(e, Entry::Alert(_))).count(),
            t.iter().filter(|e| matches!(e, Entry::Enrichment(_))).count(),
        );
        Ok(StepDone {
            output: json!({
                "events": t.len(),
                "alerts": alerts,
                "enrichment_events": enrichment,
                "from": t.first().map(Entry::at),
                "to": t.last().map(Entry::at),
            }),
            next: vec![next(ASSESS, ctx, json!({}))],
        })
    }
}

/// One event of a case's sequenced timeline: an alert, or an event an
/// evidence item tells of.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Entry {
    Alert(timeline::Row),
    Enrichment(evidence::Event),
}

impl Entry {
    pub fn at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Entry::Alert(r) => r.at,
            Entry::Enrichment(e) => e.at,
        }
    }
}

/// The case's timeline with what the tenant's tools logged around it, in
/// event-time order (an alert before an enrichment event at the same time).
pub async fn sequenced(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = timeline::of_case(tx, case_id)
        .await?
        .into_iter()
        .map(Entry::Alert)
        .collect();
    let items = evidence::newest(tx, case_id).await?;
    out.extend(evidence::events(&items).into_iter().map(Entry::Enrichment));
    out.sort_by_key(Entry::at); // stable: alerts first on a tie
    Ok(out)
}

/// One page of [`sequenced`]: `limit` alerts from `offset` in timeline
/// order, with the enrichment events that fall among them (each event on
/// exactly one page: the page of the alert it follows, the first page for
/// those before every alert).
#[derive(Debug, Clone)]
pub struct SequencedPage {
    pub entries: Vec<Entry>,
    /// Alerts in the whole timeline.
    pub alerts: u64,
    /// Enrichment events in the whole timeline.
    pub enrichment: usize,
}

pub async fn sequenced_page(tx: &TenantTx, case_id: Uuid, offset: u64, limit: u64) -> Result<SequencedPage> {
    let page = timeline::page_of_case(tx, case_id, offset, limit).await?;
    let items = evidence::newest(tx, case_id).await?;
    let events = evidence::events(&items);
    let enrichment = events.len();
    let mut entries: Vec<Entry> = page.rows.into_iter().map(Entry::Alert).collect();
    entries.extend(
        events
            .into_iter()
            .filter(|e| page.from.is_none_or(|f| e.at >= f) && page.until.is_none_or(|u| e.at < u))
            .map(Entry::Enrichment),
    );
    entries.sort_by_key(Entry::at); // stable: alerts first on a tie
    Ok(SequencedPage {
        entries,
        alerts: page.total,
        enrichment,
    })
}

#[derive(Debug)]
struct Assess;

#[async_trait::async_trait]
impl StepHandler for Assess {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let Some((tx, case_id)) = begin(ctx).await? else {
            return Ok(skipped());
        };
        let body = drafts::draft_of(&tx, case_id).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        let rec = body.recommendations.first();
        Ok(StepDone {
            output: json!({
                "recommendation": rec.map(|r| r.action.clone()),
                "total": rec.map(|r| r.total),
                "signals": rec.map(|r| r.signals.clone()),
            }),
            next: vec![next(DRAFT, ctx, json!({}))],
        })
    }
}

#[derive(Debug)]
struct Draft {
    connectors: Arc<Connectors>,
}

#[async_trait::async_trait]
impl StepHandler for Draft {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let Some((tx, case_id)) = begin(ctx).await? else {
            return Ok(skipped());
        };
        let suffix = format!("(round {})", round(ctx));
        // A retry after a committed draft reuses it (idempotent per round).
        let mine = draft::Entity::find()
            .filter(draft::Column::TenantId.eq(ctx.tenant.0))
            .filter(draft::Column::CaseId.eq(case_id))
            .filter(draft::Column::Drafter.ends_with(&suffix))
            .one(&*tx)
            .await
            .map_err(|e| fail(e.into()))?;
        let model = model_integration(&tx).await.map_err(fail)?;
        let d = match (mine, model) {
            (Some(d), _) => {
                tx.commit().await.map_err(fail)?;
                drafts::Draft::from(d)
            }
            (None, Some(llm)) => {
                // The tenant's model (no transaction held while it thinks);
                // on any failure the deterministic draft, which says why.
                tx.commit().await.map_err(fail)?;
                drafts::generate_with_model_for(
                    &self.connectors,
                    ctx.clock,
                    ctx.tenant,
                    case_id,
                    llm,
                    &suffix,
                )
                .await
                .map_err(fail)?
            }
            (None, None) => {
                let body = drafts::draft_of(&tx, case_id).await.map_err(fail)?;
                let d = drafts::store(&tx, ctx.clock, case_id, &body, &format!("deterministic {suffix}"))
                    .await
                    .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                d
            }
        };
        let tx = ctx.store.begin_tenant(ctx.tenant).await.map_err(fail)?;
        drafts::supersede_older(&tx, case_id, d.version)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(StepDone {
            output: json!({"draft": d.id, "version": d.version, "drafter": d.drafter}),
            next: vec![next(PROPOSE, ctx, json!({"draft": d.id}))],
        })
    }
}

/// The tenant's model integration (the first one), if any.
async fn model_integration(tx: &TenantTx) -> Result<Option<Uuid>> {
    use sea_orm::QueryOrder;
    Ok(integration::Entity::find()
        .filter(integration::Column::TenantId.eq(tx.tenant().0))
        .filter(integration::Column::Kind.eq("llm"))
        .order_by_asc(integration::Column::CreatedAt)
        .one(&**tx)
        .await?
        .map(|i| i.id))
}

#[derive(Debug)]
struct Propose;

#[async_trait::async_trait]
impl StepHandler for Propose {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let Some((tx, case_id)) = begin(ctx).await? else {
            return Ok(skipped());
        };
        let draft_id = ctx
            .input
            .get("draft")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or_else(|| fail(Error::Invalid("propose needs the round's draft".into())))?;
        let (d, body) = round_draft(&tx, draft_id).await.map_err(fail)?;
        let c = cases::model(&tx, case_id).await.map_err(fail)?;
        let mut out = Proposals::default();
        for rec in &body.recommendations {
            let attached = json!({
                "proposed_by": "investigation",
                "draft": {"id": d.id, "version": d.version},
                "signals": rec.signals,
                "total": rec.total,
            });
            let mut wants: Vec<(GateKind, Value)> = Vec::new();
            let mut ticket_now = rec.action == "open_ticket";
            if rec.action == "escalate_critical" {
                if c.severity == Severity::Critical.as_str() {
                    out.skip("escalate_critical", "the case is already critical");
                    ticket_now = true;
                } else {
                    // The ticket follows the escalation's approval (its
                    // follow-up step proposes it).
                    let reason = format!(
                        "{} (signals total {:.1})",
                        rec.signals
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                        rec.total
                    );
                    wants.push((
                        GateKind::EscalateCritical,
                        with(&attached, json!({"reason": reason})),
                    ));
                }
            }
            if ticket_now {
                match ticket(&tx, &c, &body).await.map_err(fail)? {
                    Some(t) => wants.push((GateKind::TicketWrite, with(&attached, t))),
                    None => out.skip("ticket_write", NO_TICKET_SYSTEM),
                }
            }
            if rec.action == "contain_host" {
                let targets = containment(&tx, rec).await.map_err(fail)?;
                if targets.is_empty() {
                    out.skip("contain_host", "no device record of the host to contain");
                }
                for target in targets {
                    wants.push((GateKind::ContainHost, with(&attached, target)));
                }
            }
            if rec.action == "close_benign" {
                let reason = format!(
                    "known benign: {} (signals total {:.1})",
                    rec.signals
                        .iter()
                        .filter(|s| s.weight < 0.0)
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    rec.total
                );
                wants.push((
                    GateKind::CloseCase,
                    with(&attached, json!({"resolution": "benign", "reason": reason})),
                ));
            }
            for (kind, payload) in wants {
                out.propose(&tx, ctx, case_id, kind, payload, &d)
                    .await
                    .map_err(fail)?;
            }
        }
        tx.commit().await.map_err(fail)?;
        Ok(StepDone {
            output: out.json(),
            next: vec![],
        })
    }
}

const NO_TICKET_SYSTEM: &str = "the tenant has no Jira or ServiceNow integration";

/// The round's draft and its body.
async fn round_draft(tx: &TenantTx, id: Uuid) -> Result<(draft::Model, drafts::Body)> {
    let d = draft::Entity::find_by_id(id)
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("draft"))?;
    let body = serde_json::from_value(d.body.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((d, body))
}

/// What a step proposed and what it did not, and why.
#[derive(Default)]
struct Proposals {
    proposed: Vec<Value>,
    skipped: Vec<Value>,
}

impl Proposals {
    fn skip(&mut self, kind: &str, why: &str) {
        self.skipped.push(json!({"kind": kind, "why": why}));
    }

    /// Requests the gate as the system actor (unless one of its kind is on
    /// the case already) with its follow-up step, which waits on the gate's
    /// approval (a dismissal cancels it), in the same transaction.
    async fn propose(
        &mut self,
        tx: &TenantTx,
        ctx: &StepContext<'_>,
        case_id: Uuid,
        kind: GateKind,
        payload: Value,
        d: &draft::Model,
    ) -> Result<()> {
        if let Some(state) = earlier(tx, case_id, kind, &payload).await? {
            self.skip(
                kind.as_str(),
                &format!("a gate of this kind is on the case already ({state})"),
            );
            return Ok(());
        }
        match gates::request(
            tx,
            ctx.clock,
            &system(),
            case_id,
            kind,
            payload,
            gates::ESCALATE_AFTER,
        )
        .await
        {
            Ok(g) => {
                let mut s = next(
                    FOLLOW_UP,
                    ctx,
                    json!({"gate": g.id, "gate_kind": kind.as_str(), "draft": d.id}),
                );
                s.after_gate = Some(g.id);
                steps::enqueue(tx, ctx.clock, s).await?;
                self.proposed.push(json!({"gate": g.id, "kind": kind.as_str()}));
            }
            Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => self.skip(kind.as_str(), &e.to_string()),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn json(self) -> Value {
        json!({"proposed": self.proposed, "not_proposed": self.skipped})
    }
}

/// A ticket for the case on the tenant's ticket system, if it has one.
async fn ticket(
    tx: &TenantTx,
    c: &crate::store::entity::case::Model,
    body: &drafts::Body,
) -> Result<Option<Value>> {
    Ok(ticket_integration(tx).await?.map(|(id, kind)| {
        let fields = if kind == "jira" {
            json!({"summary": crate::text::title(&c.title, 250, ""), "description": summary(body)})
        } else {
            json!({"short_description": crate::text::title(&c.title, 160, ""), "description": summary(body)})
        };
        json!({"system": kind, "operation": "create", "integration_id": id, "fields": fields})
    }))
}

/// What follows a proposal's approval, in the same workflow: after an
/// escalation, the ticket; after a ticket or a containment, the write is
/// the outbox's (the step records its entry); after closing, nothing more.
#[derive(Debug)]
struct FollowUp;

#[async_trait::async_trait]
impl StepHandler for FollowUp {
    async fn run(&self, ctx: &StepContext<'_>) -> std::result::Result<StepDone, StepFailure> {
        let gate_id = ctx
            .input
            .get("gate")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or_else(|| fail(Error::Invalid("a follow-up needs its gate".into())))?;
        let tx = ctx.store.begin_tenant(ctx.tenant).await.map_err(fail)?;
        let g = gates::get(&tx, gate_id).await.map_err(fail)?;
        let output = match g.kind {
            GateKind::EscalateCritical => {
                let Some(case_id) = open_case(&tx, ctx).await.map_err(fail)? else {
                    return Ok(skipped());
                };
                let draft_id = g
                    .payload
                    .pointer("/draft/id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Uuid>().ok())
                    .ok_or_else(|| fail(Error::Invalid("the escalation names no draft".into())))?;
                let (d, body) = round_draft(&tx, draft_id).await.map_err(fail)?;
                let c = cases::model(&tx, case_id).await.map_err(fail)?;
                let mut out = Proposals::default();
                match ticket(&tx, &c, &body).await.map_err(fail)? {
                    Some(t) => {
                        let attached = json!({
                            "proposed_by": "investigation",
                            "draft": {"id": d.id, "version": d.version},
                            "signals": g.payload.get("signals"),
                            "total": g.payload.get("total"),
                            "after": {"gate": g.id, "kind": g.kind.as_str()},
                        });
                        out.propose(&tx, ctx, case_id, GateKind::TicketWrite, with(&attached, t), &d)
                            .await
                            .map_err(fail)?;
                    }
                    None => out.skip("ticket_write", NO_TICKET_SYSTEM),
                }
                with(&json!({"after": g.kind.as_str()}), out.json())
            }
            GateKind::TicketWrite | GateKind::ContainHost => {
                let entry = outbox::Entity::find()
                    .filter(outbox::Column::TenantId.eq(ctx.tenant.0))
                    .filter(outbox::Column::GateId.eq(g.id))
                    .one(&*tx)
                    .await
                    .map_err(|e| fail(e.into()))?;
                json!({
                    "after": g.kind.as_str(),
                    "outbox": entry.map(|o| json!({"id": o.id, "state": o.state})),
                })
            }
            GateKind::CloseCase => {
                let c = cases::model(&tx, g.case_id).await.map_err(fail)?;
                json!({"after": g.kind.as_str(), "case": c.state})
            }
        };
        tx.commit().await.map_err(fail)?;
        Ok(StepDone { output, next: vec![] })
    }
}

fn with(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

fn summary(body: &drafts::Body) -> String {
    body.summary
        .iter()
        .chain(&body.scope)
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The state of an earlier gate of this kind on the case, if there is one:
/// Vigil proposes each kind once per case — a waiting one is not asked
/// twice, an approved one is done (a ticket is not opened again), and a
/// dismissed one is the person's feedback, not to be repeated every round.
/// A containment is one gate per device, so "this kind" is "this device".
async fn earlier(tx: &TenantTx, case_id: Uuid, kind: GateKind, payload: &Value) -> Result<Option<String>> {
    let device = |p: &Value| p.get("device_id").cloned();
    Ok(gate::Entity::find()
        .filter(gate::Column::TenantId.eq(tx.tenant().0))
        .filter(gate::Column::CaseId.eq(case_id))
        .filter(gate::Column::Kind.eq(kind.as_str()))
        .all(&**tx)
        .await?
        .into_iter()
        .find(|g| kind != GateKind::ContainHost || device(&g.payload) == device(payload))
        .map(|g| g.state))
}

/// The hosts to contain, one per device, from the CrowdStrike device
/// records the recommendation's signals cite: `{integration_id, device_id, host}`.
async fn containment(tx: &TenantTx, rec: &drafts::Recommendation) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for c in rec.signals.iter().flat_map(|s| &s.cites) {
        let Some(id) = c.evidence_id else { continue };
        let item = evidence::get(tx, id).await?;
        if item.source != evidence::CROWDSTRIKE_DEVICE {
            continue;
        }
        let device = item.response.as_ref().and_then(|d| d.pointer("/resources/0"));
        let field = |k: &str| {
            device
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if let Some(device_id) = field("device_id")
            && !out.iter().any(|t| t["device_id"] == device_id.as_str())
        {
            out.push(json!({
                "integration_id": item.integration_id,
                "device_id": device_id,
                "host": field("hostname").unwrap_or_else(|| item.subject.trim_start_matches("host:").to_owned()),
            }));
        }
    }
    Ok(out)
}

/// The tenant's ticket integration (the first Jira or ServiceNow one).
async fn ticket_integration(tx: &TenantTx) -> Result<Option<(Uuid, String)>> {
    use sea_orm::QueryOrder;
    Ok(integration::Entity::find()
        .filter(integration::Column::TenantId.eq(tx.tenant().0))
        .filter(integration::Column::Kind.is_in(["jira", "servicenow"]))
        .order_by_asc(integration::Column::CreatedAt)
        .one(&**tx)
        .await?
        .map(|i| (i.id, i.kind)))
}

/// One round of a case's investigation as people see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Round {
    pub round: i64,
    /// `waiting` (its first step has not started), `running`,
    /// `awaiting_decision` (its steps ran; a proposal waits for a person, or
    /// what follows an approval is under way), `complete`, or `failed` (a
    /// step is dead-lettered: retry it from the steps API).
    #[schema(value_type = RoundState)]
    pub state: &'static str,
    pub steps: Vec<steps::StepView>,
}

/// A round's state, as the API spells it (the schema of `Round::state`).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundState {
    Waiting,
    Running,
    AwaitingDecision,
    Complete,
    Failed,
}

/// A case's investigation: its rounds (newest first) and the current draft.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub rounds: Vec<Round>,
    pub draft: Option<drafts::Draft>,
}

/// The investigation of a case so far.
pub async fn progress(tx: &TenantTx, case_id: Uuid) -> Result<Progress> {
    let all = steps::list(tx, Some(case_id), None, 1_000).await?;
    let mut by_round: std::collections::BTreeMap<i64, Vec<steps::StepView>> = Default::default();
    for s in all
        .into_iter()
        .filter(|s| STEPS.contains(&s.kind.as_str()) || s.kind == FOLLOW_UP)
    {
        let r = s.input.get("round").and_then(Value::as_i64).unwrap_or(1);
        by_round.entry(r).or_default().push(s);
    }
    let rounds = by_round
        .into_iter()
        .rev()
        .map(|(round, mut steps)| {
            steps.sort_by_key(|s| STEPS.iter().position(|k| *k == s.kind).unwrap_or(usize::MAX));
            let dead = steps.iter().any(|s| s.state == StepState::Dead);
            let done = steps
                .iter()
                .any(|s| s.kind == PROPOSE && s.state == StepState::Succeeded)
                || steps.iter().any(|s| {
                    s.state == StepState::Succeeded
                        && s.output.as_ref().is_some_and(|o| o.get("skipped").is_some())
                });
            let waiting = steps.len() == 1 && steps[0].state == StepState::Pending && steps[0].attempts == 0;
            // Follow-ups still open: a proposal waits for a person, or what
            // follows an approval has not run yet.
            let open = steps.iter().any(|s| {
                s.kind == FOLLOW_UP && !matches!(s.state, StepState::Succeeded | StepState::Cancelled)
            });
            let state = if dead {
                "failed"
            } else if done && open {
                "awaiting_decision"
            } else if done {
                "complete"
            } else if waiting {
                "waiting"
            } else {
                "running"
            };
            Round { round, state, steps }
        })
        .collect();
    let draft = drafts::list(tx, case_id, false)
        .await?
        .into_iter()
        .max_by_key(|d| d.version);
    Ok(Progress { rounds, draft })
}

/// The investigation's step handlers, for the engine's worker: evidence
/// and model calls go through `connectors` (read scopes only).
pub fn registry(base: Registry, connectors: Connectors) -> Registry {
    let connectors = Arc::new(connectors);
    base.with(
        COLLECT,
        Arc::new(Collect {
            connectors: connectors.clone(),
        }),
    )
    .with(SEQUENCE, Arc::new(Sequence))
    .with(ASSESS, Arc::new(Assess))
    .with(DRAFT, Arc::new(Draft { connectors }))
    .with(PROPOSE, Arc::new(Propose))
    .with(FOLLOW_UP, Arc::new(FollowUp))
}
