//! Readiness of the store. The `Store` port has no health check (it is not a use-case need),
//! so the api crate declares the one it needs here and implements it for each adapter.

use std::future::Future;

use ensinalab_ports::StoreError;

/// A dependency that can say whether it answers.
pub trait Probe: Send + Sync {
    /// One cheap round trip.
    ///
    /// # Errors
    /// [`StoreError`] when the dependency does not answer.
    fn probe(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl Probe for ensinalab_store::SqlStore {
    async fn probe(&self) -> Result<(), StoreError> {
        self.ping().await
    }
}
