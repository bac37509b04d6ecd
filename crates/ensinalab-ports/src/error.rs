//! Errors the ports report. Adapters classify their own errors into these at the edge, so no
//! `DbErr` or `RedisError` ever crosses a port.

/// A cause carried across a port.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a repository can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out; the request may succeed later (503).
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored value breaks an invariant (e.g. an unknown status string).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the database reported.
    #[error("database error")]
    Other(#[source] BoxError),
}

/// What a task broker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or timed out.
    #[error("task broker unavailable")]
    Unavailable(#[source] BoxError),
    /// The broker answered something we cannot read, or refused a message we built.
    #[error("task broker protocol error: {0}")]
    Protocol(String),
}

/// What sending the operators an e-mail can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail server cannot be reached, timed out, or refused the message for now.
    #[error("mail server unavailable")]
    Unavailable(#[source] BoxError),
    /// The mail server refused the message for good (a bad recipient, say).
    #[error("mail refused: {0}")]
    Refused(String),
}
