//! The core's one error type. The web layer maps it to HTTP once, at the edge.

use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not found, or belongs to another tenant: callers cannot tell which.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state conflict (e.g. a name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Input that fails validation.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The caller's role or relation to the object does not allow this
    /// (e.g. deciding a gate one requested).
    #[error("{0}")]
    Forbidden(String),
    /// A kill switch is engaged: no external write may start.
    #[error("kill switch engaged: {0}")]
    KillSwitch(String),
    /// A credential (token, one-time link) that is unknown, expired or used.
    #[error("credential rejected: {0}")]
    Unauthenticated(&'static str),
    /// Too much work is waiting; nothing was done, retry shortly.
    #[error("busy: {0}")]
    Busy(String),
    #[error("database error: {0}")]
    Db(DbErr),
    #[error("cannot hash password: {0}")]
    Hash(String),
    /// The audit chain or its signing key cannot be used as it is.
    #[error("audit: {0}")]
    Audit(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DbErr> for Error {
    /// A value the database cannot hold as text (PostgreSQL: NUL in a text
    /// column or a `\u0000` escape where JSON is parsed) is the input's
    /// fault, not the server's: a precise refusal, not a 500.
    fn from(e: DbErr) -> Self {
        let m = e.to_string();
        if (m.contains("invalid byte sequence for encoding") && m.contains("0x00"))
            || m.contains("unsupported Unicode escape sequence")
        {
            return Error::Invalid("text must not contain NUL (U+0000) characters".into());
        }
        Error::Db(e)
    }
}

impl Error {
    /// Maps a unique-constraint violation to [`Error::Conflict`], everything
    /// else to [`Error::Db`].
    pub fn from_insert(e: DbErr, what: &str) -> Self {
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                Error::Conflict(format!("{what} already exists"))
            }
            _ => Error::from(e),
        }
    }
}
