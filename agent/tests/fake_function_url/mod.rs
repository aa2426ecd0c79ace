//! A local stand-in for a Lambda Function URL: an HTTP server on a loopback port that records
//! every `POST /v1/batches` and answers as the test scripts it (an expired signature with a
//! `Date` of its choosing, a 400, a 403, a 200).
#![allow(clippy::unwrap_used, dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (a frame).
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer to send.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    /// 403 "Signature expired", as AWS answers a request signed more than 5 minutes before its
    /// clock, with the server's `Date` `ahead` of the local clock.
    pub fn signature_expired(ahead: Duration) -> Self {
        Self {
            status: 403,
            headers: vec![("date", http_date(SystemTime::now() + ahead))],
            body: r#"{"message":"Signature expired: 20250101T000000Z is now earlier than 20250101T000500Z (20250101T001000Z - 5 min.)"}"#.to_owned(),
        }
    }
}

type Answer = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    answer: Box<Answer>,
}

/// The server; stopped when dropped.
pub struct FakeFunctionUrl {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeFunctionUrl {
    /// Start a server that answers the `n`-th request (from 0) with `answer(n, &request)`.
    pub fn start(answer: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        });
        let state = shared.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .route("/v1/batches", post(handle))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> MutexGuard<'_, Vec<Seen>> {
        self.shared.seen.lock().unwrap()
    }
}

impl Drop for FakeFunctionUrl {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let seen = Seen {
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        status: 0,
    };
    let reply = {
        let mut list = shared.seen.lock().unwrap();
        let reply = (shared.answer)(list.len(), &seen);
        list.push(Seen {
            status: reply.status,
            ..seen
        });
        reply
    };
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        resp.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    resp
}

/// An HTTP date: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from(t).format(&fmt).unwrap()
}

/// The time an `x-amz-date` header (`20250102T030405Z`) names.
pub fn amz_date(text: &str) -> SystemTime {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, &fmt)
        .unwrap()
        .assume_utc()
        .into()
}
