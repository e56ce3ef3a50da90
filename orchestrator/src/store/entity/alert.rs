use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub integration_id: Uuid,
    pub format: String,
    pub source_id: Option<String>,
    pub dedup_key: String,
    pub raw: String,
    pub received_at: DateTimeUtc,
    /// Where the alert sits in time (see `placed_by`); `None` only for rows
    /// written before event times were kept (read as `received_at`).
    pub event_at: Option<DateTimeUtc>,
    /// `event` (the source's time field), `received` (it has none), or
    /// `out_of_bounds` (its time was too far from its receipt to trust).
    pub placed_by: String,
    /// Observables beyond the per-alert bound, not stored.
    pub observables_truncated: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
