//! axum 0.8 (hyper + tokio current-thread) serving `GET /user/{id}` as JSON
//! `{"id": N, "name": "user N"}`: the peer eddy-web's demo route is measured against.
//!
//! Usage: axum_user PORT

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};

async fn user(Path(id): Path<u64>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": id, "name": format!("user {id}") }))
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: axum_user PORT");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = Router::new().route("/user/{id}", get(user));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
