//! `ensinalab-migration`: sea-orm's migration CLI over our [`Migrator`]
//! (`up`, `down`, `status`, `fresh`, ...). The database comes from `DATABASE_URL` or `-u`.

use ensinalab_migration::Migrator;
use sea_orm_migration::cli;

#[tokio::main]
async fn main() {
    cli::run_cli(Migrator).await;
}
