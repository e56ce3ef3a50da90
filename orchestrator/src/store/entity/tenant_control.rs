use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_controls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    pub kill_switch_engaged_at: Option<DateTimeUtc>,
    pub kill_switch_engaged_by: Option<String>,
    pub gate_quorum: Option<Json>,
    pub correlation: Option<Json>,
    /// Retention windows (None: the defaults).
    pub retention: Option<Json>,
    /// Assessment settings (None: the defaults).
    pub assessment: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
