//! Cases: the unit of investigation. (Correlation creates them with the
//! Investigation pipeline; people may also open one by hand.)

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::state::{CaseState, Severity};
use crate::audit::{self, Actor, Event};
use crate::ids::{Role, UserId};
use crate::store::TenantTx;
use crate::store::entity::{case, case_comment, membership};
use crate::{Clock, Error, Result};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Case {
    pub id: Uuid,
    pub title: String,
    pub severity: Severity,
    pub state: CaseState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The member working the case (a user id), if any.
    pub assignee: Option<Uuid>,
}

impl TryFrom<case::Model> for Case {
    type Error = Error;
    fn try_from(m: case::Model) -> Result<Self> {
        Ok(Case {
            id: m.id,
            title: m.title,
            severity: m.severity.parse()?,
            state: m.state.parse()?,
            created_at: m.created_at,
            updated_at: m.updated_at,
            assignee: m.assignee,
        })
    }
}

/// The longest case title.
pub const TITLE_MAX: usize = 300;

pub async fn open(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    title: &str,
    severity: Severity,
) -> Result<Case> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > TITLE_MAX || title.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "title must be 1 to 300 printable characters".into(),
        ));
    }
    let now = clock.now();
    let m = case::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        title: Set(title.to_owned()),
        severity: Set(severity.as_str().to_owned()),
        state: Set(CaseState::Open.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        merged_into: Set(None),
        assignee: Set(None),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.open",
            target: format!("case:{}", m.id),
            summary: json!({"after": {"title": title, "severity": severity}}),
        },
    )
    .await?;
    m.try_into()
}

/// The case, if it belongs to the transaction's tenant (else NotFound).
pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Case> {
    model(tx, id).await?.try_into()
}

pub(crate) async fn model(tx: &TenantTx, id: Uuid) -> Result<case::Model> {
    case::Entity::find_by_id(id)
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("case"))
}

pub async fn list(
    tx: &TenantTx,
    state: Option<CaseState>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Case>, u64)> {
    let f = Filter {
        state,
        ..Filter::default()
    };
    search(tx, &f, limit, offset).await
}

/// How the case queue is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most recently changed first (the default).
    #[default]
    Updated,
    /// Newest first.
    Created,
    /// Oldest first (what has waited longest).
    Oldest,
    /// Most severe first, then most recently changed.
    Severity,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "updated" => Sort::Updated,
            "created" => Sort::Created,
            "oldest" => Sort::Oldest,
            "severity" => Sort::Severity,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown sort {other:?} (updated, created, oldest, severity)"
                )));
            }
        })
    }
}

/// What the case queue shows: every filter optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<CaseState>,
    pub severity: Option<Severity>,
    /// Words the title contains (case-insensitive, every word).
    pub text: String,
    /// Opened at or after.
    pub since: Option<DateTime<Utc>>,
    pub assignee: Option<Assignee>,
    pub sort: Sort,
}

/// Whose cases the queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    /// Cases assigned to this member.
    User(Uuid),
    /// Cases nobody is working.
    Nobody,
}

/// `text` as a LIKE pattern matching it anywhere, its wildcards escaped.
fn like_anywhere(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The case queue: the tenant's live cases (merged ones live on in their
/// target) matching `f`, one page of them and how many match.
pub async fn search(tx: &TenantTx, f: &Filter, limit: u64, offset: u64) -> Result<(Vec<Case>, u64)> {
    let (rows, n) = search_page(tx, f, limit, offset, None).await?;
    Ok((rows, n.n))
}

/// How many cases match a queue's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub n: u64,
    /// `false`: at least `n` (counting stopped there).
    pub exact: bool,
}

const SEVERITY_RANK: &str =
    "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END";

/// [`search`] for a page a person reads: counting stops at `count_up_to`
/// (a queue of 100,000 cases says "more than 1,000", as a search engine
/// does, instead of counting them all on every page), and a text search
/// with more matches than that walks the queue's order until its page is
/// full instead of sorting every match.
pub async fn search_page(
    tx: &TenantTx,
    f: &Filter,
    limit: u64,
    offset: u64,
    count_up_to: Option<u64>,
) -> Result<(Vec<Case>, Count)> {
    use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, LikeExpr, Order, Query};
    use sea_orm::{ConnectionTrait, FromQueryResult, QueryTrait};
    let mut q = case::Entity::find()
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .filter(case::Column::MergedInto.is_null());
    if let Some(s) = f.state {
        q = q.filter(case::Column::State.eq(s.as_str()));
    }
    if let Some(s) = f.severity {
        q = q.filter(case::Column::Severity.eq(s.as_str()));
    }
    if let Some(t) = f.since {
        q = q.filter(case::Column::CreatedAt.gte(t));
    }
    match f.assignee {
        Some(Assignee::User(u)) => q = q.filter(case::Column::Assignee.eq(u)),
        Some(Assignee::Nobody) => q = q.filter(case::Column::Assignee.is_null()),
        None => {}
    }
    let words: Vec<&str> = f.text.split_whitespace().take(8).collect();
    let title_has = |title: Expr, word: &str| {
        Expr::expr(Func::lower(title)).like(LikeExpr::new(like_anywhere(word)).escape('\\'))
    };
    let unsearched = q.clone();
    for word in &words {
        q = q.filter(title_has(Expr::col(case::Column::Title), word));
    }
    let backend = tx.get_database_backend();
    // One severity: its rank is the same on every row, so the order is the
    // last change's (and served by that index).
    let sort = match (f.sort, f.severity) {
        (Sort::Severity, Some(_)) => Sort::Updated,
        (s, _) => s,
    };
    // A text search counted for a page reads its matches (up to the cap)
    // once: few of them are the whole answer, ordered here; more than the
    // cap are walked for below. A title search has no index to use (below),
    // so each pass over the titles costs a walk of the tenant's cases.
    let mut few: Option<Vec<case::Model>> = None;
    let count = match count_up_to {
        None => Count {
            n: q.clone().count(&**tx).await?,
            exact: true,
        },
        Some(cap) if !words.is_empty() => {
            let found = q.clone().limit(cap.saturating_add(1)).all(&**tx).await?;
            let n = found.len() as u64;
            if n <= cap {
                few = Some(found);
            }
            Count {
                n: std::cmp::min(n, cap),
                exact: n <= cap,
            }
        }
        Some(cap) => {
            let matching = q
                .clone()
                .select_only()
                .column(case::Column::Id)
                .limit(cap.saturating_add(1))
                .into_query();
            let counted = Query::select()
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
                .from_subquery(matching, Alias::new("matching"))
                .to_owned();
            let n: i64 = match tx.query_one_raw(backend.build(&counted)).await? {
                Some(r) => r.try_get("", "n")?,
                None => 0,
            };
            let n = u64::try_from(n).unwrap_or(0);
            Count {
                n: std::cmp::min(n, cap),
                exact: n <= cap,
            }
        }
    };
    let ordered = |q: sea_orm::Select<case::Entity>| {
        let q = match sort {
            Sort::Updated => q.order_by_desc(case::Column::UpdatedAt),
            Sort::Created => q.order_by_desc(case::Column::CreatedAt),
            Sort::Oldest => q.order_by_asc(case::Column::CreatedAt),
            Sort::Severity => q
                .order_by(Expr::cust(SEVERITY_RANK), Order::Desc)
                .order_by_desc(case::Column::UpdatedAt),
        };
        q.order_by_desc(case::Column::Id)
    };
    let rows = if let Some(mut found) = few {
        // The same order as the SQL's, ties broken by id.
        let rank = |sev: &str| match sev {
            "critical" => 4,
            "high" => 3,
            "medium" => 2,
            _ => 1,
        };
        found.sort_by(|a, b| {
            let by = match sort {
                Sort::Updated => b.updated_at.cmp(&a.updated_at),
                Sort::Created => b.created_at.cmp(&a.created_at),
                Sort::Oldest => a.created_at.cmp(&b.created_at),
                Sort::Severity => rank(&b.severity)
                    .cmp(&rank(&a.severity))
                    .then(b.updated_at.cmp(&a.updated_at)),
            };
            by.then(b.id.cmp(&a.id))
        });
        found
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
    } else if !words.is_empty() && !count.exact {
        // Many matches: walk the cases in the queue's order (an index) and
        // keep the matching ones until the page is full. The planner cannot
        // see that itself: under row level security it does not estimate a
        // LIKE on the title (not leakproof), guesses few matches, and sorts
        // every match instead (73 ms for 20,000 of 100,000). The LIMIT on
        // the inner query keeps it from being merged into the outer one.
        let walk = ordered(unsearched).limit(i64::MAX as u64).into_query();
        let mut outer = Query::select();
        outer.column(Asterisk).from_subquery(walk, Alias::new("walk"));
        for word in &words {
            outer.and_where(title_has(
                Expr::col((Alias::new("walk"), case::Column::Title)),
                word,
            ));
        }
        match sort {
            Sort::Updated => outer.order_by(case::Column::UpdatedAt, Order::Desc),
            Sort::Created => outer.order_by(case::Column::CreatedAt, Order::Desc),
            Sort::Oldest => outer.order_by(case::Column::CreatedAt, Order::Asc),
            Sort::Severity => outer
                .order_by_expr(Expr::cust(SEVERITY_RANK), Order::Desc)
                .order_by(case::Column::UpdatedAt, Order::Desc),
        };
        outer
            .order_by(case::Column::Id, Order::Desc)
            .limit(limit)
            .offset(offset);
        case::Model::find_by_statement(backend.build(&outer))
            .all(&**tx)
            .await?
    } else {
        ordered(q).limit(limit).offset(offset).all(&**tx).await?
    };
    Ok((
        rows.into_iter().map(Case::try_from).collect::<Result<_>>()?,
        count,
    ))
}

/// Assigns the case to a member of the tenant (`Some`) or to nobody
/// (`None`). `may_work` says whether a role may work cases (the caller's
/// authorization model): a member whose role may not — an executive, a
/// read-only analyst — is refused, as is anyone who is not a member of this
/// tenant (NotFound, like another tenant's id). A merged case is assigned
/// through the case it was merged into. Audited with before and after.
pub async fn assign(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    case_id: Uuid,
    assignee: Option<UserId>,
    may_work: &(dyn Fn(Role) -> bool + Sync),
) -> Result<Case> {
    let m = model(tx, case_id).await?;
    if m.merged_into.is_some() {
        return Err(Error::Conflict(
            "this case was merged into another; assign that one".into(),
        ));
    }
    if let Some(u) = assignee {
        let member = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tx.tenant().0))
            .filter(membership::Column::UserId.eq(u.0))
            .one(&**tx)
            .await?
            .ok_or(Error::NotFound("member"))?;
        let role: Role = member.role.parse()?;
        if !may_work(role) {
            return Err(Error::Invalid(format!(
                "a member with the role {} does not work cases",
                role.as_str()
            )));
        }
    }
    let before = m.assignee;
    let after = assignee.map(|u| u.0);
    if before == after {
        return m.try_into();
    }
    let now = clock.now();
    let updated = case::ActiveModel {
        id: Set(m.id),
        assignee: Set(after),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.assign",
            target: format!("case:{}", m.id),
            summary: json!({"before": {"assignee": before}, "after": {"assignee": after}}),
        },
    )
    .await?;
    updated.try_into()
}

/// A comment on a case.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub case_id: Uuid,
    /// Who wrote it: `user:<id>` or `token:<id>`.
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<case_comment::Model> for Comment {
    fn from(m: case_comment::Model) -> Self {
        Comment {
            id: m.id,
            case_id: m.case_id,
            author: m.author,
            body: m.body,
            created_at: m.created_at,
        }
    }
}

/// The longest comment, in characters.
pub const COMMENT_MAX: usize = 10_000;

/// Adds a comment to the case (a merged case's comments go to the case it
/// was merged into, so they are read where the work goes on). The text is a
/// person's: 1 to 10,000 characters, line breaks and tabs allowed, other
/// control characters refused. Audited with the comment's id and length —
/// the text itself stays in the comment, which retention and purge delete.
pub async fn comment(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    case_id: Uuid,
    body: &str,
) -> Result<Comment> {
    let body = body.replace("\r\n", "\n");
    let body = body.trim();
    let n = body.chars().count();
    if n == 0 || n > COMMENT_MAX {
        return Err(Error::Invalid(format!(
            "a comment must be 1 to {COMMENT_MAX} characters, not {n}"
        )));
    }
    if body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::Invalid(
            "a comment may not contain control characters other than line breaks and tabs".into(),
        ));
    }
    let target = live(tx, case_id).await?.id;
    let now = clock.now();
    let row = case_comment::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(target),
        author: Set(actor.label.clone()),
        body: Set(body.to_owned()),
        created_at: Set(now),
    }
    .insert(&**tx)
    .await?;
    case::ActiveModel {
        id: Set(target),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.comment",
            target: format!("case:{target}"),
            summary: json!({"after": {"comment": row.id, "chars": n}}),
        },
    )
    .await?;
    Ok(row.into())
}

/// The case a merged case lives on in (following merges), or the case
/// itself.
pub async fn live(tx: &TenantTx, case_id: Uuid) -> Result<case::Model> {
    let mut m = model(tx, case_id).await?;
    // Merges only go into live cases, so chains are short; the bound is
    // against a cycle written by hand in the database.
    for _ in 0..64 {
        match m.merged_into {
            Some(next) => m = model(tx, next).await?,
            None => return Ok(m),
        }
    }
    Err(Error::Conflict("the case's merges form a cycle".into()))
}

/// The case and every case merged into it (directly or through others).
async fn with_merged(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Uuid>> {
    let mut all = vec![case_id];
    let mut frontier = vec![case_id];
    while !frontier.is_empty() && all.len() < 10_000 {
        let next: Vec<Uuid> = case::Entity::find()
            .filter(case::Column::TenantId.eq(tx.tenant().0))
            .filter(case::Column::MergedInto.is_in(frontier))
            .select_only()
            .column(case::Column::Id)
            .into_tuple()
            .all(&**tx)
            .await?;
        frontier = next.into_iter().filter(|id| !all.contains(id)).collect();
        all.extend(&frontier);
    }
    Ok(all)
}

/// The case's comments, oldest first, one page, and how many there are.
/// A case's comments include those written on cases merged into it.
pub async fn comments(tx: &TenantTx, case_id: Uuid, limit: u64, offset: u64) -> Result<(Vec<Comment>, u64)> {
    model(tx, case_id).await?;
    let ids = with_merged(tx, case_id).await?;
    let q = case_comment::Entity::find()
        .filter(case_comment::Column::TenantId.eq(tx.tenant().0))
        .filter(case_comment::Column::CaseId.is_in(ids));
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_asc(case_comment::Column::CreatedAt)
        .order_by_asc(case_comment::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((rows.into_iter().map(Comment::from).collect(), total))
}

/// A person's saved view of the case queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SavedView {
    pub id: Uuid,
    pub name: String,
    /// The queue's query string (checked by the caller before saving).
    pub query: String,
}

/// How many views one person keeps per tenant.
pub const MAX_VIEWS: u64 = 20;

/// Saves (or replaces, by name) a person's view of the queue.
pub async fn save_view(
    tx: &TenantTx,
    clock: &dyn Clock,
    user: UserId,
    name: &str,
    query: &str,
) -> Result<SavedView> {
    use crate::store::entity::saved_view;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a view's name is 1 to 60 printable characters".into(),
        ));
    }
    if query.len() > 2_000 || query.chars().any(char::is_control) {
        return Err(Error::Invalid("that view is too long to save".into()));
    }
    let mine = saved_view::Entity::find()
        .filter(saved_view::Column::TenantId.eq(tx.tenant().0))
        .filter(saved_view::Column::UserId.eq(user.0));
    let same = mine
        .clone()
        .filter(saved_view::Column::Name.eq(name))
        .one(&**tx)
        .await?;
    if let Some(old) = same {
        saved_view::Entity::delete_by_id(old.id).exec(&**tx).await?;
    } else if mine.count(&**tx).await? >= MAX_VIEWS {
        return Err(Error::Invalid(format!(
            "keep at most {MAX_VIEWS} saved views: delete one first"
        )));
    }
    let m = saved_view::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        user_id: Set(user.0),
        name: Set(name.to_owned()),
        query: Set(query.to_owned()),
        created_at: Set(clock.now()),
    }
    .insert(&**tx)
    .await?;
    Ok(SavedView {
        id: m.id,
        name: m.name,
        query: m.query,
    })
}

/// A person's saved views, by name.
pub async fn views(tx: &TenantTx, user: UserId) -> Result<Vec<SavedView>> {
    use crate::store::entity::saved_view;
    Ok(saved_view::Entity::find()
        .filter(saved_view::Column::TenantId.eq(tx.tenant().0))
        .filter(saved_view::Column::UserId.eq(user.0))
        .order_by_asc(saved_view::Column::Name)
        .all(&**tx)
        .await?
        .into_iter()
        .map(|m| SavedView {
            id: m.id,
            name: m.name,
            query: m.query,
        })
        .collect())
}

/// Deletes one of the person's views (another person's is not found).
pub async fn delete_view(tx: &TenantTx, user: UserId, id: Uuid) -> Result<()> {
    use crate::store::entity::saved_view;
    let n = saved_view::Entity::delete_many()
        .filter(saved_view::Column::TenantId.eq(tx.tenant().0))
        .filter(saved_view::Column::UserId.eq(user.0))
        .filter(saved_view::Column::Id.eq(id))
        .exec(&**tx)
        .await?
        .rows_affected;
    if n == 0 {
        return Err(Error::NotFound("saved view"));
    }
    Ok(())
}
