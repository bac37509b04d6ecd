//! Fixtures and the two-backend test macro.

use ensinalab_domain::{
    BriefingDraft, BriefingStatus, Cancel, CancelReason, GeneratedOption, Lifecycle, TaskId,
    UserId, VideoStatus,
};
pub use ensinalab_ports::Cancels;
use ensinalab_ports::{
    Briefing, BriefingOption, BriefingUpdate, Briefings, Caller, CancelledAll, NewVideo,
    StoreError, Tasks, Video, Videos,
};
use ensinalab_store::SqlStore as Store;
use ensinalab_store::testing;

/// Writes `async fn name(store: Store) { .. }` once and runs it as `name::on_postgres` (a fresh
/// database of its own) and `name::on_sqlite` (in memory).
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($store:ident: Store) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: ensinalab_store::SqlStore) $body

            #[tokio::test]
            async fn on_postgres() {
                let db = ensinalab_store::testing::TestPostgres::new()
                    .await
                    .expect("a fresh PostgreSQL database (is it up? scripts/ensure-postgres.sh)");
                body(db.store().clone()).await;
                db.cleanup().await.expect("drop the test database");
            }

            #[tokio::test]
            async fn on_sqlite() {
                let store = ensinalab_store::testing::sqlite_memory()
                    .await
                    .expect("in-memory SQLite");
                body(store).await;
            }
        }
    };
}
pub(crate) use on_both_backends;

/// The first page of `user`'s active list.
pub async fn active(store: &Store, user: UserId) -> Vec<ensinalab_ports::ActiveResource> {
    store
        .active(user, &ensinalab_ports::ActivePage::default())
        .await
        .unwrap()
        .rows
}

/// The cancel the domain decides for a user's cancel of one resource.
pub fn by_user<S: Lifecycle>() -> Cancel<S> {
    Cancel::new(CancelReason::User)
}

/// The store's half of a user's cancel-all, as the use case calls it.
pub async fn cancel_all(store: &Store, caller: &Caller) -> Result<CancelledAll, StoreError> {
    let (b, v) = (
        Cancel::new(CancelReason::UserAll),
        Cancel::new(CancelReason::UserAll),
    );
    store.cancel_all(caller.user_id, &b, &v).await
}

pub const ALICE: UserId = UserId(1);
pub const BOB: UserId = UserId(2);
/// A user with nothing.
pub const CAROL: UserId = UserId(3);

pub fn task() -> TaskId {
    TaskId::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

pub fn draft() -> BriefingDraft {
    BriefingDraft::new("Gestão de Sala de Aula", "Como usar o Google Classroom", 10).unwrap()
}

pub fn generated(title: &str) -> GeneratedOption {
    GeneratedOption {
        title: title.into(),
        description: format!("{title}: roteiro"),
        generator_type: "simple".into(),
    }
}

/// Puts a row in any status, as a worker or an old version might have left it.
pub async fn set_status(store: &Store, table: &str, id: i64, status: &str) {
    testing::execute(
        store,
        &format!("UPDATE {table} SET status = '{status}' WHERE id = {id}"),
    )
    .await
    .unwrap();
}

/// Sets a row's `created_at` to second `second` of a fixed minute (same literal on both backends).
pub async fn set_created(store: &Store, table: &str, id: i64, second: u8) {
    testing::execute(
        store,
        &format!("UPDATE {table} SET created_at = '2026-11-28T12:00:{second:02}Z' WHERE id = {id}"),
    )
    .await
    .unwrap();
}

/// A briefing of `user` in `status` (created `processing`, then forced).
pub async fn briefing_in(store: &Store, user: UserId, status: BriefingStatus) -> Briefing {
    let b = store
        .create_briefing(user, &draft(), &task(), u32::MAX)
        .await
        .unwrap()
        .expect("a free job slot");
    set_status(store, "briefings", b.id.get(), status.as_str()).await;
    store.briefing(b.id).await.unwrap().unwrap().0
}

/// A briefing of `user` with one option, through the ports.
pub async fn briefing_with_option(store: &Store, user: UserId) -> (Briefing, BriefingOption) {
    let b = store
        .create_briefing(user, &draft(), &task(), u32::MAX)
        .await
        .unwrap()
        .expect("a free job slot");
    let update = BriefingUpdate::OptionsReady(vec![generated("Como usar Google Classroom")]);
    assert!(
        store
            .apply_briefing_update(b.id, &update)
            .await
            .unwrap()
            .is_some()
    );
    let (b, mut options) = store.briefing(b.id).await.unwrap().unwrap();
    (b, options.remove(0))
}

/// A video of `user` in `status` (created `queued`, then forced).
pub async fn video_in(store: &Store, user: UserId, status: VideoStatus) -> Video {
    let (b, o) = briefing_with_option(store, user).await;
    let v = store
        .create_video(
            &NewVideo {
                user_id: user,
                briefing_id: b.id,
                option_id: o.id,
                title: o.title.clone(),
                generator_type: o.generator_type.clone(),
                task_id: task(),
            },
            u32::MAX,
        )
        .await
        .unwrap()
        .expect("a free job slot");
    set_status(store, "videos", v.id.get(), status.as_str()).await;
    store.video(v.id).await.unwrap().unwrap()
}
