//! Bearer-token check, applied before a protected route reads its request body.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::front::response::ApiError;
use crate::token::Token;

/// Middleware: pass the request on when no token is configured or when its `Authorization`
/// header is `Bearer <token>`; otherwise reply 401 without touching the body.
pub async fn require_token(
    State(token): State<Option<Arc<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let presented = request.headers().get(AUTHORIZATION);
    match presented {
        Some(value) if token.matches_authorization(value.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("wrong bearer token"),
        None => unauthorized("missing Authorization: Bearer <token> header"),
    }
}

fn unauthorized(message: &str) -> Response {
    tracing::warn!(reason = message, "request refused");
    ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
}
