//! The local HTTP server: binds, routes, serves until shutdown, then drains in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use outpost_proto::limits::MAX_FRAME_LEN;
use tokio::net::TcpListener;

use crate::backend::Storage;
use crate::backend::local::LocalBackend;
use crate::config::Config;
use crate::error::ServeError;
use crate::front::auth::require_token;
use crate::front::routes::{self, AppState};
use crate::token::Token;

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    app: Router,
    local_addr: SocketAddr,
}

impl Server {
    /// Open the data directory (blocking briefly), then bind `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let backend = LocalBackend::open(&config.data_dir).map_err(|source| ServeError::Open {
            path: config.data_dir.clone(),
            source,
        })?;
        Self::bind_with(config.listen, config.token, backend).await
    }

    /// Bind `listen` and serve the routes over `storage` (the AWS backend of
    /// `serve --backend aws`, or any other).
    pub async fn bind_with<S: Storage + 'static>(
        listen: SocketAddr,
        token: Option<Token>,
        storage: S,
    ) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            app: router(storage, token),
            local_addr,
        })
    }

    /// The address actually bound (the real port when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` resolves, then stop accepting and wait for in-flight requests.
    pub async fn run<F>(self, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::info!(addr = %self.local_addr, "serving");
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Serve)?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The routes over any storage. `/healthz` is open; the other routes require `token` when set.
/// Request bodies are capped at [`MAX_FRAME_LEN`], replacing axum's 2 MB default.
pub fn router<S: Storage + 'static>(storage: S, token: Option<Token>) -> Router {
    let state = Arc::new(AppState { storage });
    let protected = Router::new()
        .route("/v1/batches", post(routes::post_batch::<S>))
        .route("/v1/metrics", get(routes::get_metrics::<S>))
        .route("/v1/hosts", get(routes::get_hosts::<S>))
        .route_layer(middleware::from_fn_with_state(
            token.map(Arc::new),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .merge(protected)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_FRAME_LEN))
        .with_state(state)
}
