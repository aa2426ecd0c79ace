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

use crate::alarm::Alarms;
use crate::backend::local::LocalBackend;
use crate::config::Config;
use crate::error::ServeError;
use crate::front::auth::require_token;
use crate::front::routes::{self, AppState};
use crate::token::Token;
use outpost_sink_core::ports::Storage;

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    app: Router,
    local_addr: SocketAddr,
    /// The alarms to evaluate while serving, over the local store.
    alarms: Option<(Alarms, LocalBackend)>,
}

impl Server {
    /// Open the data directory (blocking briefly), load the saved alarm states when
    /// `config.rules` is set, then bind `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let backend = LocalBackend::open(&config.data_dir).map_err(|source| ServeError::Open {
            path: config.data_dir.clone(),
            source,
        })?;
        let alarms = config
            .rules
            .map(|rules| Alarms::start(rules, &config.data_dir));
        let mut server =
            Self::bind_inner(config.listen, config.token, backend.clone(), alarms.clone()).await?;
        server.alarms = alarms.map(|alarms| (alarms, backend));
        Ok(server)
    }

    /// Bind `listen` and serve the routes over `storage` (the AWS backend of
    /// `serve --backend aws`, or any other).
    pub async fn bind_with<S: Storage + 'static>(
        listen: SocketAddr,
        token: Option<Token>,
        storage: S,
    ) -> Result<Self, ServeError> {
        Self::bind_inner(listen, token, storage, None).await
    }

    async fn bind_inner<S: Storage + 'static>(
        listen: SocketAddr,
        token: Option<Token>,
        storage: S,
        alarms: Option<Alarms>,
    ) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            app: router_with_alarms(storage, token, alarms),
            local_addr,
            alarms: None,
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
        let evaluator = self
            .alarms
            .map(|(alarms, store)| tokio::spawn(alarms.run(store)));
        let served = axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Serve);
        // States are saved at each change, so stopping between ticks loses nothing.
        if let Some(evaluator) = evaluator {
            evaluator.abort();
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The routes over any storage. `/healthz` is open; the other routes require `token` when set.
/// Request bodies are capped at [`MAX_FRAME_LEN`], replacing axum's 2 MB default.
pub fn router<S: Storage + 'static>(storage: S, token: Option<Token>) -> Router {
    router_with_alarms(storage, token, None)
}

/// [`router`], with `GET /v1/alarms` answering from `alarms` (404 without).
pub fn router_with_alarms<S: Storage + 'static>(
    storage: S,
    token: Option<Token>,
    alarms: Option<Alarms>,
) -> Router {
    let state = Arc::new(AppState { storage, alarms });
    let protected = Router::new()
        .route("/v1/batches", post(routes::post_batch::<S>))
        .route("/v1/metrics", get(routes::get_metrics::<S>))
        .route("/v1/hosts", get(routes::get_hosts::<S>))
        .route("/v1/alarms", get(routes::get_alarms::<S>))
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
