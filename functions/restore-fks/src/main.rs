//! Lambda entry point of the `restore-fks` step: wiring only (see `lib.rs`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_db::lambda::serve("dbsync-restore-fks", restore_fks::handle).await
}
