use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub gate_id: Uuid,
    pub action: String,
    pub payload: Json,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: i32,
    pub run_after: DateTimeUtc,
    pub last_error: Option<String>,
    pub result: Option<Json>,
    pub created_at: DateTimeUtc,
    pub executed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
