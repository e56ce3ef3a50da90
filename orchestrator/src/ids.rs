//! Validated identifiers and the role vocabulary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| Error::Invalid(format!(concat!($what, " id `{}` is not a UUID"), s)))
            }
        }
    };
}

id_type!(TenantId, "tenant");
id_type!(UserId, "user");

/// The roles of PRODUCT.md. `PlatformAdmin` is an installation-wide grant
/// (users.is_platform_admin); the other five are granted per tenant through
/// memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    SecurityEngineer,
    AnalystEdit,
    AnalystRead,
    Executive,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::SecurityEngineer,
        Role::AnalystEdit,
        Role::AnalystRead,
        Role::Executive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::SecurityEngineer => "security_engineer",
            Role::AnalystEdit => "analyst_edit",
            Role::AnalystRead => "analyst_read",
            Role::Executive => "executive",
        }
    }

    /// Roles granted inside a tenant (memberships, API tokens).
    pub fn is_tenant_role(self) -> bool {
        self != Role::PlatformAdmin
    }

    /// PRODUCT.md: MFA is mandatory for these roles.
    pub fn requires_mfa(self) -> bool {
        matches!(
            self,
            Role::PlatformAdmin | Role::TenantAdmin | Role::SecurityEngineer
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
            Error::Invalid(format!("unknown role `{s}` (one of: {})", names.join(", ")))
        })
    }
}

/// A normalised e-mail address (trimmed, lower-cased, one `@`, non-empty parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim().to_lowercase();
        let valid = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(s))
        } else {
            Err(Error::Invalid(format!("`{s}` is not an e-mail address")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
        assert!(!Role::PlatformAdmin.is_tenant_role());
        assert!(Role::SecurityEngineer.requires_mfa() && !Role::AnalystEdit.requires_mfa());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@x.io", "a@", "a@b@c.io", "a b@c.io", "a@localhost"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn id_parse_never_panics(s in ".{0,64}") {
            let _ = s.parse::<TenantId>();
        }
    }
}
