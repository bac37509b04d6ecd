//! Reading the security trail: filtered, newest first, keyset-paginated on the id.
//!
//! A user filter walks `idx_security_events_user_created`; the others scan backwards from the
//! newest id and stop after one page, which is what an admin looking at recent events needs.

use ensinalab_domain::{ResourceKind, UserId};
use ensinalab_ports::{
    SecurityEvent, SecurityEventPage, SecurityEventQuery, StoreError, StoredSecurityEvent,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::convert;
use crate::entity::security_event::{self, Column};
use crate::error::classify;

impl Store {
    #[tracing::instrument(skip(self), err)]
    pub(crate) async fn query_security_events(
        &self,
        query: &SecurityEventQuery,
    ) -> Result<SecurityEventPage, StoreError> {
        let limit = query.clamped_limit();
        let mut select = security_event::Entity::find();
        if let Some(user) = query.user_id {
            select = select.filter(Column::UserId.eq(user.get()));
        }
        if let Some(event) = &query.event {
            select = select.filter(Column::Event.eq(event.as_str()));
        }
        let sqlite = self.db.get_database_backend() == DbBackend::Sqlite;
        for (bound, op) in [(query.since, ">="), (query.until, "<")] {
            let Some(bound) = bound.map(convert::utc) else {
                continue;
            };
            select = if sqlite {
                // SQLite keeps RFC 3339 text whose fraction has as many digits as it needs
                // (none on a whole second), so text order is not time order; julianday() is,
                // to the millisecond.
                select.filter(Expr::cust_with_values(
                    format!("julianday(\"created_at\") {op} julianday(?)"),
                    [bound],
                ))
            } else if op == ">=" {
                select.filter(Column::CreatedAt.gte(bound))
            } else {
                select.filter(Column::CreatedAt.lt(bound))
            };
        }
        if let Some(before) = query.before_id {
            select = select.filter(Column::Id.lt(before));
        }
        let rows = select
            .order_by_desc(Column::Id)
            .limit(u64::from(limit) + 1)
            .all(&self.db)
            .await
            .map_err(classify)?;
        let events = rows
            .into_iter()
            .map(stored_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SecurityEventPage::from_overfetch(events, limit))
    }
}

/// A row as the port's record; `Corrupt` for a row the ports could not have written.
pub(crate) fn stored_event(row: security_event::Model) -> Result<StoredSecurityEvent, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("security_events {}: {what}", row.id));
    let resource = match (row.resource_kind.as_deref(), row.resource_id) {
        (None, None) => None,
        (Some(kind), Some(id)) if kind == ResourceKind::Briefing.as_str() => {
            Some((ResourceKind::Briefing, id))
        }
        (Some(kind), Some(id)) if kind == ResourceKind::Video.as_str() => {
            Some((ResourceKind::Video, id))
        }
        _ => return Err(corrupt("resource")),
    };
    Ok(StoredSecurityEvent {
        id: row.id,
        created_at: convert::utc(row.created_at),
        event: SecurityEvent {
            task_id: convert::task_id("security_events", row.id, row.task_id.as_deref())?,
            event: row.event,
            user_id: row.user_id.map(UserId),
            resource,
            outcome: row.outcome,
            client_ip: row.client_ip,
            details: row.details,
        },
    })
}
