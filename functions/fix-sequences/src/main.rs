//! Lambda entry point of the `fix-sequences` step: wiring only (see `lib.rs`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dbsync_db::lambda::serve("dbsync-fix-sequences", fix_sequences::handle).await
}
