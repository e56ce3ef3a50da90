use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sso_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub protocol: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Sealed by the master key (AAD `sso:{id}`), if the client has one.
    pub client_secret: Option<String>,
    pub algorithms: Json,
    pub group_claim: String,
    pub role_map: Json,
    pub trust_idp_mfa: bool,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    /// SAML: the IdP's metadata XML.
    pub idp_metadata: Option<String>,
    /// E-mail domains this provider owns: an IdP-verified address there may
    /// link to an existing account.
    pub domains: Option<Json>,
    /// SAML: the IdP's e-mail attribute is verified by the IdP.
    pub email_authoritative: bool,
    /// OIDC: scopes asked for besides openid, email and the group claim.
    pub scopes: Option<Json>,
    /// Disabled: no sign-in, and its sessions have ended.
    pub disabled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
