//! The guarded transitions, written once for both kinds of row: a [`Table`] names a table's
//! columns and decoder, and the executors below carry out what the domain decided
//! ([`Cancel`]) or what a task report says, each as ONE conditional `UPDATE` whose `WHERE`
//! carries the guard, so concurrent writers cannot both win: the database, not a
//! read-then-write in Rust, decides the order.

use ensinalab_domain::{BriefingStatus, Cancel, Lifecycle, UserId, VideoStatus};
use ensinalab_ports::{
    Briefing, Cancels, Resource, ResourceId, Status, StoreError, Transition, Video,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    UpdateMany,
};

use crate::SqlStore;
use crate::convert::{self, now};
use crate::entity::{briefing, video};
use crate::error::classify;
use crate::owe::{Owe, owe_revokes};

/// A cancel whose update matched nothing reads the row once to say why. If that read finds the
/// row cancellable after all (a briefing moved from `pending` to `processing` in between), the
/// cancel is tried again, at most this many times in all.
const CANCEL_ATTEMPTS: usize = 3;

/// A table of resources, as the guarded writes need it.
pub(crate) trait Table: EntityTrait {
    /// Its statuses.
    type Status: Lifecycle;
    /// Its rows as the ports know them.
    type Row: Resource<Status = Self::Status>;
    const ID: Self::Column;
    const USER_ID: Self::Column;
    const STATUS: Self::Column;
    const TASK_ID: Self::Column;
    const ERROR_MESSAGE: Self::Column;
    const UPDATED_AT: Self::Column;
    const STARTED_AT: Self::Column;
    const FINISHED_AT: Self::Column;
    const CANCEL_REASON: Self::Column;
    /// `None` for a table without progress.
    const PROGRESS: Option<Self::Column>;

    fn decode(model: Self::Model) -> Result<Self::Row, StoreError>;
}

impl Table for briefing::Entity {
    type Status = BriefingStatus;
    type Row = Briefing;
    const ID: Self::Column = briefing::Column::Id;
    const USER_ID: Self::Column = briefing::Column::UserId;
    const STATUS: Self::Column = briefing::Column::Status;
    const TASK_ID: Self::Column = briefing::Column::TaskId;
    const ERROR_MESSAGE: Self::Column = briefing::Column::ErrorMessage;
    const UPDATED_AT: Self::Column = briefing::Column::UpdatedAt;
    const STARTED_AT: Self::Column = briefing::Column::StartedAt;
    const FINISHED_AT: Self::Column = briefing::Column::FinishedAt;
    const CANCEL_REASON: Self::Column = briefing::Column::CancelReason;
    const PROGRESS: Option<Self::Column> = None;

    fn decode(model: briefing::Model) -> Result<Briefing, StoreError> {
        convert::briefing(model)
    }
}

impl Table for video::Entity {
    type Status = VideoStatus;
    type Row = Video;
    const ID: Self::Column = video::Column::Id;
    const USER_ID: Self::Column = video::Column::UserId;
    const STATUS: Self::Column = video::Column::Status;
    const TASK_ID: Self::Column = video::Column::TaskId;
    const ERROR_MESSAGE: Self::Column = video::Column::ErrorMessage;
    const UPDATED_AT: Self::Column = video::Column::UpdatedAt;
    const STARTED_AT: Self::Column = video::Column::StartedAt;
    const FINISHED_AT: Self::Column = video::Column::FinishedAt;
    const CANCEL_REASON: Self::Column = video::Column::CancelReason;
    const PROGRESS: Option<Self::Column> = Some(video::Column::Progress);

    fn decode(model: video::Model) -> Result<Video, StoreError> {
        convert::video(model)
    }
}

/// A kind of row the store keeps: the table it lives in.
pub(crate) trait Stored: Resource {
    type Table: Table<Row = Self, Status = Self::Status>;
}

impl Stored for Briefing {
    type Table = briefing::Entity;
}

impl Stored for Video {
    type Table = video::Entity;
}

impl<I: ResourceId> Cancels<I> for SqlStore
where
    I::Row: Stored,
{
    #[tracing::instrument(level = "debug", skip(self, cancel), err)]
    async fn cancel(
        &self,
        user: UserId,
        id: I,
        cancel: &Cancel<Status<I>>,
    ) -> Result<Transition<I::Row, Status<I>>, StoreError> {
        cancel_one::<<I::Row as Stored>::Table>(&self.db, user, id.key(), cancel).await
    }
}

/// The statuses as stored.
pub(crate) fn wire<S: Lifecycle>(statuses: &[S]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

/// A move to `to`, guarded by `from`; callers narrow it and add what else it writes. A move to a
/// final status records when (`finished_at`, read by the daily statistics): every status change
/// passes here, so no path can finish a job without it.
pub(crate) fn transition<T: Table>(from: &[T::Status], to: T::Status) -> UpdateMany<T> {
    let at = now();
    let update = T::update_many()
        .col_expr(T::STATUS, Expr::value(to.as_str()))
        .col_expr(T::UPDATED_AT, Expr::value(at))
        .filter(T::STATUS.is_in(wire(from)));
    if <T::Status as Lifecycle>::TERMINAL.contains(&to) {
        update.col_expr(T::FINISHED_AT, Expr::value(at))
    } else {
        update
    }
}

/// A task report's move of row `id` to `to`, guarded by the in-flight statuses: a late report
/// never moves a row out of a final status.
pub(crate) fn in_flight<T: Table>(id: i64, to: T::Status) -> UpdateMany<T> {
    transition::<T>(<T::Status as Lifecycle>::IN_FLIGHT, to).filter(T::ID.eq(id))
}

/// `cancel` as one guarded write, over the whole table; callers narrow it.
pub(crate) fn cancel_write<T: Table>(cancel: &Cancel<T::Status>) -> UpdateMany<T> {
    let mut update = transition::<T>(cancel.from, cancel.to)
        .col_expr(T::CANCEL_REASON, Expr::value(cancel.reason.as_str()));
    if let Some(message) = cancel.error_message {
        update = update.col_expr(T::ERROR_MESSAGE, Expr::value(message));
    }
    if let (Some(progress), Some(column)) = (cancel.progress, T::PROGRESS) {
        update = update.col_expr(column, Expr::value(progress));
    }
    update
}

/// Runs a guarded write narrowed to one row; the row after it, or `None` when the guard (or a
/// missing row) kept it from moving.
pub(crate) async fn moved_row<T: Table>(
    db: &DatabaseConnection,
    update: UpdateMany<T>,
) -> Result<Option<T::Row>, StoreError> {
    let moved = update.exec_with_returning(db).await.map_err(classify)?;
    moved.into_iter().next().map(T::decode).transpose()
}

/// A user's cancel of row `id` of `T`: `cancel` narrowed to the row and its owner, and the
/// revoke the moved row owes, in one transaction. When nothing moved, one read of the row's
/// `(owner, status)` says why: no row, someone else's, or a status `cancel` does not allow.
async fn cancel_one<T: Table>(
    db: &DatabaseConnection,
    user: UserId,
    id: i64,
    cancel: &Cancel<T::Status>,
) -> Result<Transition<T::Row, T::Status>, StoreError> {
    let table = T::default().table_name();
    let update = cancel_write::<T>(cancel)
        .filter(T::ID.eq(id))
        .filter(T::USER_ID.eq(user.get()));
    for _ in 0..CANCEL_ATTEMPTS {
        let txn = db.begin().await.map_err(classify)?;
        let moved = update
            .clone()
            .exec_with_returning(&txn)
            .await
            .map_err(classify)?;
        if let Some(row) = moved.into_iter().next() {
            let row = T::decode(row)?;
            let owed: Vec<Owe> = row
                .task_id()
                .map(|task| Owe::new(task.clone(), row.key()))
                .into_iter()
                .collect();
            owe_revokes(&txn, &owed).await?;
            txn.commit().await.map_err(classify)?;
            return Ok(Transition::Done(row));
        }
        // Nothing was written: end the transaction before reading (an in-memory SQLite store
        // has a single connection).
        txn.rollback().await.map_err(classify)?;
        let current = T::find()
            .filter(T::ID.eq(id))
            .select_only()
            .column(T::USER_ID)
            .column(T::STATUS)
            .into_tuple::<(i64, String)>()
            .one(db)
            .await
            .map_err(classify)?;
        let Some((owner, raw)) = current else {
            return Ok(Transition::NotFound);
        };
        if owner != user.get() {
            return Ok(Transition::NotOwned);
        }
        let current: T::Status = convert::parsed(table, id, &raw)?;
        if !cancel.allows(current) {
            return Ok(Transition::Refused(current));
        }
        // Allowed after all: the row moved between the update and the read; try again.
    }
    Err(StoreError::Other(
        format!("{table} {id} kept changing status during a cancel").into(),
    ))
}
