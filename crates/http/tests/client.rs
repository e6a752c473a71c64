//! The kit against real local servers on 127.0.0.1: redirects are not followed and no
//! credential reaches another host, refused endpoints never connect, the server's wait is
//! honoured, a 503 storm ends at the deadline, and no `Debug` output shows a credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::any;
use cairn_core::net::Dialer;
use cairn_http::{
    ApiClient, Class, Classify, Failure, GaveUp, HttpError, RetryPolicy, server_wait,
};
use reqwest::Method;

const KEY: &str = "s3cr3t-api-key-0123456789";

/// Serves `app` on `ip:0`; returns the address.
async fn serve(ip: &str, app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A server that counts requests and remembers every header value it saw.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicUsize>,
    headers: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Seen {
    fn router(&self, status: StatusCode) -> Router {
        let seen = self.clone();
        Router::new().fallback(any(move |h: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.hits.fetch_add(1, Ordering::SeqCst);
                let mut all = seen.headers.lock().unwrap();
                all.extend(
                    h.values()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                );
                status
            }
        }))
    }
}

fn local() -> Dialer {
    Dialer::new(Default::default(), false)
}

fn client(endpoint: &str) -> ApiClient {
    ApiClient::builder(endpoint)
        .net(local())
        .auth_header("x-api-key", KEY)
        .unwrap()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A provider-like error for the retry tests.
#[derive(Debug)]
enum TestError {
    Status(u16),
    Http(HttpError),
    GaveUp(GaveUp, Box<TestError>),
}

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestError::Status(s) => write!(f, "HTTP {s}"),
            TestError::Http(e) => write!(f, "{e}"),
            TestError::GaveUp(g, last) => write!(f, "{g}; last error: {last}"),
        }
    }
}

impl Classify for TestError {
    fn class(&self) -> Class {
        match self {
            TestError::Status(status) => Class::Answer {
                status: *status,
                busy: false,
            },
            TestError::Http(e) => e.class(),
            TestError::GaveUp(..) => Class::Final,
        }
    }
    fn gave_up(self, why: GaveUp) -> Self {
        TestError::GaveUp(why, Box::new(self))
    }
}

async fn get_with(c: &ApiClient, policy: &RetryPolicy) -> Result<(), TestError> {
    policy
        .run(true, || async {
            let resp = c
                .send(c.request(Method::GET, "/thing"))
                .await
                .map_err(TestError::Http)?;
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(());
            }
            Err(Failure {
                error: TestError::Status(status),
                wait: server_wait(status, resp.headers()),
            })
        })
        .await
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_the_key_never_reaches_it() {
    let other = Seen::default();
    let other_addr = serve("127.0.0.1", other.router(StatusCode::OK)).await;
    let target = format!("http://{other_addr}/stolen");
    let redirecting = Router::new().fallback(any(move || {
        let target = target.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, target)]).into_response() }
    }));
    let addr = serve("127.0.0.1", redirecting).await;
    let c = client(&format!("http://{addr}"));
    let resp = c.send(c.request(Method::GET, "/thing")).await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        302,
        "the redirect comes back as it is"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        other.hits.load(Ordering::SeqCst),
        0,
        "the other host got a request"
    );
    assert!(
        !other
            .headers
            .lock()
            .unwrap()
            .iter()
            .any(|v| v.contains(KEY)),
        "the key reached the other host"
    );
}

#[tokio::test]
async fn the_auth_header_reaches_the_endpoint_itself() {
    let seen = Seen::default();
    let addr = serve("127.0.0.1", seen.router(StatusCode::OK)).await;
    let c = client(&format!("http://{addr}/api"));
    c.send(c.request(Method::GET, "/x")).await.unwrap();
    assert!(seen.headers.lock().unwrap().iter().any(|v| v == KEY));
}

#[tokio::test]
async fn plain_http_to_a_non_loopback_host_is_refused_before_any_connection() {
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing may be dialled.
    let e = ApiClient::builder("http://192.0.2.7:8080/api")
        .net(local())
        .build()
        .unwrap_err();
    assert!(matches!(e, HttpError::Config(_)), "{e}");
    assert!(
        e.to_string()
            .contains("plain http:// is allowed only to loopback"),
        "{e}"
    );
}

#[tokio::test]
async fn the_loopback_only_switch_refuses_a_non_loopback_endpoint() {
    let on = Dialer::new(Default::default(), true);
    for remote in ["https://192.0.2.7:8006", "https://api.hetzner.cloud/v1"] {
        let e = ApiClient::builder(remote)
            .net(on.clone())
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("not a loopback address"),
            "{remote}: {e}"
        );
    }
    let forced = ApiClient::builder("https://192.0.2.7:8006")
        .net(local())
        .loopback_only(true)
        .build();
    assert!(
        forced.is_err(),
        "the switch can be forced on by a provider setting"
    );
    assert!(
        ApiClient::builder("https://127.0.0.1:8006")
            .net(on)
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn a_mapped_endpoint_is_dialled_on_its_loopback_address() {
    let seen = Seen::default();
    let addr = serve("127.0.20.99", seen.router(StatusCode::OK)).await;
    let net = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true);
    let c = ApiClient::builder(format!("http://10.0.20.99:{}/api", addr.port()))
        .net(net)
        .build()
        .unwrap();
    assert_eq!(c.base().host_str(), Some("127.0.20.99"));
    let resp = c.send(c.request(Method::GET, "/x")).await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_delay() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(any(move || {
        let h = h.clone();
        async move {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
    }));
    let addr = serve("127.0.0.1", app).await;
    let c = client(&format!("http://{addr}"));
    let policy = RetryPolicy {
        max_attempts: 5,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_secs(10),
    };
    let t = Instant::now();
    get_with(&c, &policy).await.expect("succeeds after waiting");
    let took = t.elapsed();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(took >= Duration::from_secs(1), "waited as told: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_503_storm_gives_up_at_the_deadline() {
    let seen = Seen::default();
    let addr = serve("127.0.0.1", seen.router(StatusCode::SERVICE_UNAVAILABLE)).await;
    let c = client(&format!("http://{addr}"));
    let policy = RetryPolicy {
        max_attempts: 1000,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        deadline: Duration::from_millis(500),
    };
    let t = Instant::now();
    let e = get_with(&c, &policy).await.unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, TestError::GaveUp(..)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("retry deadline") && msg.contains("HTTP 503"),
        "{msg}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "stopped near the deadline: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(400),
        "kept trying until the deadline: {took:?}"
    );
    assert!(seen.hits.load(Ordering::SeqCst) >= 5, "it retried");
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_write() {
    // Bind and drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("http://127.0.0.1:{port}"));
    let e = c.send(c.request(Method::POST, "/x")).await.unwrap_err();
    assert_eq!(
        e.class(),
        Class::Transport(cairn_http::TransportKind::NotSent),
        "{e}"
    );
    assert!(e.class().retried(false));
    assert!(!e.to_string().contains(&port.to_string()), "no URL in {e}");
}

#[test]
fn debug_output_of_the_client_and_a_request_never_shows_the_key() {
    let c = client("http://127.0.0.1:9/api");
    let req = c.request(Method::GET, "/x").header(
        "cookie",
        cairn_http::sensitive(&format!("PVEAuthCookie={KEY}")).unwrap(),
    );
    for shown in [
        format!("{c:?}"),
        format!("{req:?}"),
        format!("{:?}", req.build()),
    ] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(
            shown.contains("Sensitive"),
            "the header is there, hidden: {shown}"
        );
    }
}
