use ensinalab_domain::VideoStatus;
use ensinalab_ports::{StoreError, Videos};
use ensinalab_store::SqlStore;

use crate::support::*;

on_both_backends! {
    async fn a_live_database_answers_a_ping(store: Store) {
        store.ping().await.unwrap();
        // Migrating an up-to-date schema is a no-op.
        store.migrate().await.unwrap();
    }
}

#[tokio::test]
async fn a_database_nobody_listens_for_is_unavailable() {
    let err = SqlStore::connect("postgres://postgres@127.0.0.1:1/ensinalab")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_url_of_no_supported_database_is_not_called_unavailable() {
    let err = SqlStore::connect("mysqlx://nowhere").await.unwrap_err();
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
}

#[tokio::test]
async fn a_sqlite_file_keeps_its_rows_across_connections() {
    let dir = std::env::temp_dir().join(format!("ensinalab-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("ensinalab.db").display());

    let store = SqlStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let v = video_in(&store, ALICE, VideoStatus::Processing).await;
    drop(store);

    let again = SqlStore::connect(&url).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.video(v.id).await.unwrap(), Some(v));
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn each_in_memory_sqlite_store_is_a_database_of_its_own() {
    let one = ensinalab_store::testing::sqlite_memory().await.unwrap();
    let v = video_in(&one, ALICE, VideoStatus::Queued).await;
    let other = ensinalab_store::testing::sqlite_memory().await.unwrap();
    assert_eq!(other.video(v.id).await.unwrap(), None);
    // Clones share the one connection, so they see the same rows.
    assert_eq!(one.clone().video(v.id).await.unwrap(), Some(v));
}

#[tokio::test]
async fn a_test_database_is_dropped_even_when_the_test_never_cleans_up() {
    let db = ensinalab_store::testing::TestPostgres::new().await.unwrap();
    let url = db.url().to_owned();
    SqlStore::connect(&url).await.unwrap().ping().await.unwrap();
    drop(db);
    let err = SqlStore::connect(&url).await.unwrap_err();
    assert!(err.to_string().contains("database"), "{err:?}");
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains("does not exist"), "{source}");
}
