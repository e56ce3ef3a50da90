use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "gates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub case_id: Uuid,
    pub kind: String,
    pub state: String,
    pub payload: Json,
    pub payload_hash: String,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub escalate_at: DateTimeUtc,
    pub escalated_at: Option<DateTimeUtc>,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    pub reason: Option<String>,
    pub edit_diff: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
