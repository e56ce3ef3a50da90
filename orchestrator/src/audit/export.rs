//! Audit export: one chain as JSON Lines (for machines, verifiable with
//! `vigil audit verify --file`) or CSV (for people), produced page by page
//! so a million events take constant memory.
//!
//! A JSON Lines export is: a `header` (chain, head, range, the signing key's
//! id), the chain's `checkpoint`s, `unchained` events (from before the
//! chain), the `event`s in sequence order, and an `end` line with the counts
//! (so a cut file is told from a short chain). A time range selects the
//! contiguous run of the chain from the first event at or after `from` to
//! the last before `to`, with the checkpoint just before it, so the run
//! verifies on its own.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::Recorded;
use super::chain::{self, Bounds, Checkpoint, PublicKey, Report, Scope, Verifier};
use crate::store::entity::audit_event;
use crate::{Error, Result, Store};

/// The `format` of an export's header.
pub const FORMAT: &str = "vigil-audit-export";

/// What an export says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub chain: String,
    pub tenant_id: Option<uuid::Uuid>,
    pub exported_at: DateTime<Utc>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The chain's head when the export was made.
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
}

/// One line of a JSON Lines export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Checkpoint(Checkpoint),
    Unchained(Recorded),
    Event(Recorded),
    End {
        events: u64,
        checkpoints: u64,
        unchained: u64,
    },
}

/// JSON Lines or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(Error::Invalid(format!(
                "format must be jsonl or csv, not {:?}",
                crate::text::title(other, 40, "")
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

const CSV_COLUMNS: [&str; 16] = [
    "record",
    "seq",
    "at",
    "actor",
    "actor_role",
    "action",
    "target",
    "summary",
    "source_ip",
    "request_id",
    "id",
    "prev_hash",
    "hash",
    "chain",
    "key_id",
    "signature",
];

/// Lines rendered in `format`; `first` adds the CSV column names.
pub fn render(format: Format, lines: &[Line], first: bool) -> Result<Vec<u8>> {
    match format {
        Format::Jsonl => {
            let mut out = Vec::new();
            for l in lines {
                serde_json::to_writer(&mut out, l).map_err(|e| Error::Audit(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            let csv_err = |e: csv::Error| Error::Audit(e.to_string());
            if first {
                w.write_record(CSV_COLUMNS).map_err(csv_err)?;
            }
            for l in lines {
                w.write_record(csv_row(l)).map_err(csv_err)?;
            }
            w.into_inner().map_err(|e| Error::Audit(e.to_string()))
        }
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

fn csv_row(l: &Line) -> [String; 16] {
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut row: [String; 16] = Default::default();
    let mut set = |col: &str, v: String| {
        if let Some(i) = CSV_COLUMNS.iter().position(|c| *c == col) {
            row[i] = v;
        }
    };
    match l {
        Line::Header(h) => {
            set("record", "export".into());
            set("seq", opt(&h.head_seq));
            set("at", ts(h.exported_at));
            set("target", opt(&h.tenant_id));
            set(
                "summary",
                serde_json::json!({"format": h.format, "version": h.version, "from": h.from, "to": h.to})
                    .to_string(),
            );
            set("hash", opt(&h.head_hash));
            set("chain", h.chain.clone());
        }
        Line::Checkpoint(c) => {
            set("record", "checkpoint".into());
            set("seq", c.seq.to_string());
            set("at", ts(c.at));
            set("hash", c.hash.clone());
            set("chain", c.chain.clone());
            set("key_id", c.key_id.clone());
            set("signature", c.signature.clone());
        }
        Line::Unchained(e) | Line::Event(e) => {
            let record = if matches!(l, Line::Event(_)) {
                "event"
            } else {
                "unchained"
            };
            set("record", record.into());
            set("seq", opt(&e.seq));
            set("at", ts(e.at));
            set("actor", e.actor.clone());
            set("actor_role", opt(&e.actor_role));
            set("action", e.action.clone());
            set("target", e.target.clone());
            set("summary", crate::canonical::canonical_json(&e.summary));
            set("source_ip", opt(&e.source_ip));
            set("request_id", opt(&e.request_id));
            set("id", e.id.to_string());
            set("prev_hash", opt(&e.prev_hash));
            set("hash", opt(&e.hash));
            set("chain", opt(&e.chain));
        }
        Line::End {
            events,
            checkpoints,
            unchained,
        } => {
            set("record", "end".into());
            set(
                "summary",
                serde_json::json!({"events": events, "checkpoints": checkpoints, "unchained": unchained})
                    .to_string(),
            );
        }
    }
    row
}

#[derive(Debug)]
enum Stage {
    Start,
    Unchained(Option<uuid::Uuid>),
    Events(i64),
    End,
    Done,
}

/// Produces an export page by page (each page its own short read).
#[derive(Debug)]
pub struct Exporter {
    store: Store,
    scope: Scope,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    stage: Stage,
    /// The contiguous run of the chain the range selects.
    last_seq: i64,
    events_from: i64,
    events: u64,
    checkpoints: u64,
    unchained: u64,
    page: u64,
}

impl Exporter {
    pub fn new(
        store: Store,
        scope: Scope,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(Error::Invalid("from must be before to".into()));
        }
        Ok(Self {
            store,
            scope,
            from,
            to,
            now,
            stage: Stage::Start,
            last_seq: 0,
            events_from: 0,
            events: 0,
            checkpoints: 0,
            unchained: 0,
            page: chain::PAGE,
        })
    }

    fn in_range(&self) -> sea_orm::Condition {
        let mut c = sea_orm::Condition::all();
        if let Some(f) = self.from {
            c = c.add(audit_event::Column::At.gte(f));
        }
        if let Some(t) = self.to {
            c = c.add(audit_event::Column::At.lt(t));
        }
        c
    }

    fn scoped(&self) -> sea_orm::Select<audit_event::Entity> {
        let q = audit_event::Entity::find();
        match self.scope.tenant() {
            Some(t) => q.filter(audit_event::Column::TenantId.eq(t.0)),
            None => q.filter(audit_event::Column::TenantId.is_null()),
        }
    }

    /// The next lines, or None when the export is complete.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<Line>>> {
        let chain = self.scope.chain();
        match self.stage {
            Stage::Start => {
                let tx = self.scope.begin_read(&self.store).await?;
                // Head and checkpoints before the run's bounds: a
                // checkpoint exists only once its event is committed, so
                // every checkpoint read here is within the run read next.
                let head = chain::head(&*tx, &chain).await?;
                let cps = chain::checkpoints(&*tx, &chain).await?;
                let seq_at = |first: bool| {
                    let q = self
                        .scoped()
                        .filter(audit_event::Column::Seq.is_not_null())
                        .filter(self.in_range())
                        .select_only()
                        .column(audit_event::Column::Seq);
                    if first {
                        q.order_by_asc(audit_event::Column::Seq)
                    } else {
                        q.order_by_desc(audit_event::Column::Seq)
                    }
                    .limit(1)
                    .into_tuple::<Option<i64>>()
                };
                let lo = seq_at(true).one(&*tx).await?.flatten();
                let hi = seq_at(false).one(&*tx).await?.flatten();
                tx.commit().await?;
                let (lo, hi) = match (lo, hi) {
                    (Some(l), Some(h)) => (l, h),
                    _ => (1, 0),
                };
                let ranged = self.from.is_some() || self.to.is_some();
                let cps: Vec<Checkpoint> = cps
                    .into_iter()
                    .filter(|c| !ranged || (c.seq >= lo - 1 && c.seq <= hi))
                    .collect();
                self.checkpoints = cps.len() as u64;
                self.last_seq = hi;
                let mut lines = vec![Line::Header(Header {
                    format: FORMAT.into(),
                    version: 1,
                    chain,
                    tenant_id: self.scope.tenant().map(|t| t.0),
                    exported_at: self.now,
                    from: self.from,
                    to: self.to,
                    head_seq: head.as_ref().map(|h| h.0),
                    head_hash: head.map(|h| h.1),
                })];
                lines.extend(cps.into_iter().map(Line::Checkpoint));
                self.stage = Stage::Unchained(None);
                // Events from just before the run.
                self.events_from = lo - 1;
                Ok(Some(lines))
            }
            Stage::Unchained(after) => {
                let tx = self.scope.begin_read(&self.store).await?;
                let mut q = self
                    .scoped()
                    .filter(audit_event::Column::Seq.is_null())
                    .filter(self.in_range());
                if let Some(a) = after {
                    q = q.filter(audit_event::Column::Id.gt(a));
                }
                let rows = q
                    .order_by_asc(audit_event::Column::Id)
                    .limit(self.page)
                    .all(&*tx)
                    .await?;
                tx.commit().await?;
                match rows.last() {
                    None => {
                        self.stage = Stage::Events(self.events_from);
                        Box::pin(self.next_chunk()).await
                    }
                    Some(last) => {
                        self.stage = Stage::Unchained(Some(last.id));
                        self.unchained += rows.len() as u64;
                        Ok(Some(
                            rows.into_iter()
                                .map(|r| Line::Unchained(Recorded::from(r)))
                                .collect(),
                        ))
                    }
                }
            }
            Stage::Events(after) => {
                if after >= self.last_seq {
                    self.stage = Stage::End;
                    return Box::pin(self.next_chunk()).await;
                }
                let tx = self.scope.begin_read(&self.store).await?;
                let rows = chain::events_after(&*tx, &chain, after, self.page).await?;
                tx.commit().await?;
                let rows: Vec<Recorded> = rows
                    .into_iter()
                    .filter(|e| e.seq.is_some_and(|s| s <= self.last_seq))
                    .collect();
                match rows.last().and_then(|e| e.seq) {
                    None => {
                        self.stage = Stage::End;
                        Box::pin(self.next_chunk()).await
                    }
                    Some(last) => {
                        self.stage = Stage::Events(last);
                        self.events += rows.len() as u64;
                        Ok(Some(rows.into_iter().map(Line::Event).collect()))
                    }
                }
            }
            Stage::End => {
                self.stage = Stage::Done;
                Ok(Some(vec![Line::End {
                    events: self.events,
                    checkpoints: self.checkpoints,
                    unchained: self.unchained,
                }]))
            }
            Stage::Done => Ok(None),
        }
    }
}

/// The verifier an export's header calls for: a ranged export may start
/// and end anywhere in the chain.
fn verifier_for(h: &Header, key: Option<PublicKey>, cps: &[Checkpoint]) -> Verifier {
    let ranged = h.from.is_some() || h.to.is_some();
    Verifier::new(
        &h.chain,
        key,
        cps,
        Bounds {
            start_anywhere: ranged,
            end_anywhere: ranged,
        },
    )
}

/// Verifies a JSON Lines export read from `input`: the same checks as a
/// live chain, against the head the header states; a ranged export may
/// start and end anywhere in the chain. `max_unsigned` is measured to the
/// export's own time.
pub fn verify(
    input: impl std::io::BufRead,
    key: Option<PublicKey>,
    max_unsigned: Option<chrono::Duration>,
) -> Result<Report> {
    let mut header: Option<Header> = None;
    let mut cps: Vec<Checkpoint> = Vec::new();
    let mut v: Option<Verifier> = None;
    let mut ended: Option<(u64, u64, u64)> = None;
    let mut seen = (0u64, 0u64);
    let mut bad: Option<String> = None;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::Audit(format!("cannot read the export: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_str(&line) {
            Ok(l) => l,
            Err(e) => {
                bad = Some(format!("line {} is not an export line: {e}", n + 1));
                break;
            }
        };
        if ended.is_some() {
            bad = Some(format!("line {} follows the end line", n + 1));
            break;
        }
        match parsed {
            Line::Header(h) if header.is_none() && n == 0 => {
                if h.format != FORMAT || h.version != 1 {
                    return Err(Error::Audit(format!(
                        "not a {FORMAT} version 1 file (format {:?}, version {})",
                        h.format, h.version
                    )));
                }
                header = Some(h);
            }
            _ if header.is_none() => {
                return Err(Error::Audit(format!(
                    "not a {FORMAT} file: its first line is no header"
                )));
            }
            Line::Header(_) => {
                bad = Some(format!("line {} is a second header", n + 1));
                break;
            }
            Line::Checkpoint(c) if v.is_none() => {
                seen.1 += 1;
                cps.push(c);
            }
            Line::Checkpoint(_) => {
                bad = Some(format!("line {}: a checkpoint after the events", n + 1));
                break;
            }
            Line::Unchained(_) | Line::Event(_) | Line::End { .. } => {
                let h = header.as_ref().ok_or_else(|| Error::Audit("no header".into()))?;
                let ver = v.get_or_insert_with(|| verifier_for(h, key.clone(), &cps));
                match parsed {
                    Line::Unchained(_) => ver.unchained(),
                    Line::Event(e) => {
                        seen.0 += 1;
                        ver.push(&e);
                    }
                    Line::End {
                        events,
                        checkpoints,
                        unchained,
                    } => ended = Some((events, checkpoints, unchained)),
                    _ => {}
                }
            }
        }
    }
    let h = header.ok_or_else(|| Error::Audit(format!("not a {FORMAT} file: it is empty")))?;
    let mut ver = v.unwrap_or_else(|| verifier_for(&h, key.clone(), &cps));
    let at = |ver: &Verifier| ver.broken().map(|b| b.seq).unwrap_or(0);
    if let Some(why) = bad {
        let s = at(&ver);
        ver.malformed(s, why);
    } else if ver.broken().is_none() {
        match ended {
            None => {
                let s = at(&ver);
                ver.malformed(s, "the export has no end line: the file was cut".into());
            }
            Some((events, checkpoints, _)) if (events, checkpoints) != seen => {
                let s = at(&ver);
                ver.malformed(
                    s,
                    format!(
                        "the end line counts {events} events and {checkpoints} checkpoints; the file holds {} and {}",
                        seen.0, seen.1
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let head = h.head_seq.zip(h.head_hash.clone());
    Ok(ver.finish(head, h.exported_at, max_unsigned))
}
