//! The `SecurityLog` port: appending to the trail, and reading it filtered, newest first,
//! keyset-paginated on the id.
//!
//! A user filter walks `idx_security_events_user_created`; the others scan backwards from the
//! newest id and stop after one page, which is what an admin looking at recent events needs.

use ensinalab_domain::UserId;
use ensinalab_ports::{
    SecurityEvent, SecurityEventPage, SecurityEventQuery, SecurityLog, StoreError,
    StoredSecurityEvent,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set, Value,
};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::convert::{self, now};
use crate::entity::security_event::{self, Column};
use crate::error::classify;

impl SecurityLog for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn prune_security_events(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let backend = self.db.get_database_backend();
        // SQLite keeps RFC 3339 text whose order is not time order within a second.
        let older = match backend {
            DbBackend::Sqlite => "julianday(created_at) < julianday($1)",
            _ => "created_at < $1",
        };
        let sql = format!(
            "DELETE FROM security_events WHERE id IN \
             (SELECT id FROM security_events WHERE {older} ORDER BY created_at LIMIT $2)"
        );
        let values: [Value; 2] = [convert::utc(before).into(), i64::from(limit).into()];
        let done = self.execute(sql, values).await?;
        Ok(done)
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        security_event::ActiveModel {
            id: NotSet,
            event: Set(event.event.as_str().to_owned()),
            user_id: Set(event.user_id.map(UserId::get)),
            resource_kind: Set(event.resource.map(|(kind, _)| kind.as_str().to_owned())),
            resource_id: Set(event.resource.map(|(_, id)| id)),
            task_id: Set(event.task_id.as_ref().map(|t| t.as_str().to_owned())),
            outcome: Set(event.outcome.as_str().to_owned()),
            client_ip: Set(event.client_ip.clone()),
            details: Set(event.details.clone()),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await
        .map_err(classify)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn security_events(
        &self,
        query: &SecurityEventQuery,
    ) -> Result<SecurityEventPage, StoreError> {
        let limit = query.clamped_limit();
        let mut select = security_event::Entity::find();
        if let Some(user) = query.user_id {
            select = select.filter(Column::UserId.eq(user.get()));
        }
        if let Some(event) = query.event {
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
    let table = "security_events";
    let resource = match (row.resource_kind.as_deref(), row.resource_id) {
        (None, None) => None,
        (Some(kind), Some(id)) => Some(convert::resource(table, row.id, kind, id)?),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "{table} {}: resource kind and id not both set",
                row.id
            )));
        }
    };
    Ok(StoredSecurityEvent {
        id: row.id,
        created_at: convert::utc(row.created_at),
        event: SecurityEvent {
            task_id: convert::task_id(table, row.id, row.task_id.as_deref())?,
            event: convert::parsed(table, row.id, &row.event)?,
            user_id: row.user_id.map(UserId),
            resource,
            outcome: convert::parsed(table, row.id, &row.outcome)?,
            client_ip: row.client_ip,
            details: row.details,
        },
    })
}
