//! sea-orm entities, one per table of `ensinalab-migration`. Status columns are plain strings:
//! the domain's enums own the wire strings (and sea-orm traits cannot be implemented on them
//! here), so rows are parsed into domain types in `convert`, where an unknown string becomes
//! `StoreError::Corrupt` rather than a panic.

pub mod briefing;
pub mod cleanup_outbox;
pub mod option;
pub mod revoke_outbox;
pub mod security_event;
pub mod video;
