//! Function URL requests: turned into HTTP requests and answered by the very router of
//! `outpost-sink serve` (same routes, statuses and JSON), without a bearer token (AWS checked
//! the agent's SigV4 signature before the function ran).

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tower::ServiceExt;

use super::{LambdaError, LambdaFront};

/// Largest response body read back from the router (replies are small JSON documents; a
/// `GET /v1/metrics` over a long range is the largest). Lambda's own response limit is 6 MB.
const MAX_RESPONSE: usize = 6 * 1024 * 1024;

/// Turn a Function URL request into an HTTP request for the router.
pub fn to_http(event: &LambdaFunctionUrlRequest) -> Result<Request<Body>, LambdaError> {
    let malformed = |message: String| LambdaError::Malformed {
        kind: "Function URL",
        message,
    };
    let http = &event.request_context.http;
    let method = http
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse::<Method>()
        .map_err(|e| malformed(format!("method: {e}")))?;
    let path = event.raw_path.as_deref().unwrap_or("/");
    let uri = match event.raw_query_string.as_deref() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(b), true) => BASE64
            .decode(b)
            .map_err(|e| malformed(format!("base64 body: {e}")))?,
        (Some(b), false) => b.clone().into_bytes(),
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(headers) = request.headers_mut() {
        headers.extend(event.headers.clone());
        // The body is whole here: its length is exact whatever the client declared.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.remove(header::TRANSFER_ENCODING);
    }
    request
        .body(Body::from(body))
        .map_err(|e| malformed(format!("request: {e}")))
}

impl LambdaFront {
    /// Answer a Function URL request with the HTTP router.
    pub async fn function_url(
        &self,
        event: &LambdaFunctionUrlRequest,
    ) -> Result<LambdaFunctionUrlResponse, LambdaError> {
        let request = to_http(event)?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, MAX_RESPONSE)
            .await
            .map_err(|e| LambdaError::Malformed {
                kind: "response",
                message: e.to_string(),
            })?;
        let mut out = LambdaFunctionUrlResponse::default();
        out.status_code = i64::from(parts.status.as_u16());
        out.headers = parts.headers;
        match String::from_utf8(body.to_vec()) {
            Ok(text) => out.body = Some(text),
            Err(_) => {
                out.body = Some(BASE64.encode(&body));
                out.is_base64_encoded = true;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::lambda::Event;
    use crate::front::lambda::tests::url_event;

    #[test]
    fn a_base64_body_becomes_the_exact_bytes_with_their_length() {
        let Ok(Event::FunctionUrl(event)) = Event::parse(url_event(
            "POST",
            "/v1/batches",
            "",
            Some(&BASE64.encode([0u8, 159, 146, 150])),
            true,
        )) else {
            panic!("not a URL event")
        };
        let request = to_http(&event).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/v1/batches");
        assert_eq!(request.headers()[header::CONTENT_LENGTH], "4");
        let Ok(Event::FunctionUrl(event)) = Event::parse(url_event(
            "GET",
            "/v1/metrics",
            "host=web-1&name=cpu",
            None,
            false,
        )) else {
            panic!("not a URL event")
        };
        assert_eq!(
            to_http(&event).unwrap().uri(),
            "/v1/metrics?host=web-1&name=cpu"
        );
        let Ok(Event::FunctionUrl(event)) =
            Event::parse(url_event("POST", "/v1/batches", "", Some("%%%"), true))
        else {
            panic!("not a URL event")
        };
        assert!(matches!(
            to_http(&event),
            Err(LambdaError::Malformed { .. })
        ));
    }
}
