//! Lambda entry point of the `drop-fks` step: wiring only (see `lib.rs`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_db::lambda::serve("dbsync-drop-fks", drop_fks::handle).await
}
