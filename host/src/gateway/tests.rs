//! The gateway's request handling, through the real guest and the demo
//! policy, without sockets: `Gateway::handle` on in-memory requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};

use super::Gateway;
use crate::{Clock, GuestComponent, PolicyRuntime, RuntimeOptions};
use warden_engine::Upstream;

const NOW: u64 = 1_700_000_000;
const C1: (&str, &str) = (
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);

fn gateway(options: RuntimeOptions) -> Gateway {
    let source = include_str!("../../../policies/demo.policy");
    let runtime = PolicyRuntime::load_with(
        GuestComponent::shared().unwrap(),
        "demo.policy",
        source,
        options,
    )
    .unwrap();
    Gateway::new(Arc::new(runtime), Upstream::Echo)
}

fn fixed() -> RuntimeOptions {
    RuntimeOptions {
        clock: Clock::Fixed(NOW),
        ..Default::default()
    }
}

async fn send(gw: &Gateway, req: Request<Full<Bytes>>) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let response = gw
        .handle(req, Some("127.0.0.1:5555".parse().unwrap()), false)
        .await;
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn get(uri: &str) -> hyper::http::request::Builder {
    Request::get(uri).header("host", "localhost:8080")
}

#[tokio::test]
async fn token_then_forward_to_echo_with_the_consumer_header() {
    let gw = gateway(fixed());
    let uri = format!(
        "/a/oauth2/token?grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let (status, headers, body) = send(&gw, get(&uri).body(Full::default()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(headers["cache-control"], "no-store");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = json["access_token"].as_str().unwrap();

    let req = get("/a/items?x=1")
        .header("authorization", format!("Bearer {token}"))
        .header("x-mse-consumer", "spoofed")
        .body(Full::default())
        .unwrap();
    let (status, headers, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/a/items");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn replies_and_unruled_paths() {
    let gw = gateway(fixed());
    let (status, headers, body) = send(&gw, get("/a").body(Full::default()).unwrap()).await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::UNAUTHORIZED, b"Invalid Jwt token".as_slice())
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let req = get("/public")
        .header("x-mse-consumer", "admin")
        .body(Full::default())
        .unwrap();
    let (status, _, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(echo["headers"].get("x-mse-consumer").is_none(), "{echo}");
}

#[tokio::test]
async fn an_absolute_target_decides_and_forwards_on_its_own_host() {
    let gw = gateway(fixed());
    // `test.com` is ruled (consumer2 only); the spoofed Host is not.
    let req = Request::get("http://test.com/x")
        .header("host", "unruled.local")
        .body(Full::default())
        .unwrap();
    let (status, ..) = send(&gw, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let req = Request::get("http://unruled.local/x")
        .header("host", "test.com")
        .body(Full::default())
        .unwrap();
    let (status, _, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["headers"]["host"], "unruled.local");
}

#[tokio::test]
async fn bodies_stream_past_the_decision_unless_it_reads_them() {
    let gw = gateway(fixed());
    // Not a token request: decided on the head, the 3 MiB body passes unread.
    let req = Request::post("/public")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(vec![b'x'; 3 << 20])))
        .unwrap();
    let (status, _, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_bytes"], 3 << 20);

    // A POST to the token endpoint is decided on its form body…
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        C1.0, C1.1
    );
    let token_post = |body: Bytes| {
        Request::post("/a/oauth2/token")
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(body))
            .unwrap()
    };
    let (status, _, body) = send(&gw, token_post(form.into())).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(std::str::from_utf8(&body).unwrap().contains("access_token"));
    // …read only up to its bound: a longer one is a 413 that says so.
    let (status, _, body) = send(&gw, token_post(Bytes::from(vec![b'a'; 20_000]))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("at most 16384 bytes"),
        "{body:?}"
    );
}

#[tokio::test]
async fn a_failing_guest_means_503_and_nothing_forwarded() {
    let gw = gateway(RuntimeOptions {
        deadline: Duration::ZERO,
        ..fixed()
    });
    let (status, _, body) = send(&gw, get("/public").body(Full::default()).unwrap()).await;
    assert_eq!(
        (status, body.as_ref()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            b"service unavailable\n".as_slice()
        )
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let source = "global_auth false\nroute r { path_prefix /r; upstream http://127.0.0.1:9 }\n";
    let runtime =
        PolicyRuntime::load_with(GuestComponent::shared().unwrap(), "p", source, fixed()).unwrap();
    let gw = Gateway::new(Arc::new(runtime), Upstream::Echo);
    let (status, ..) = send(&gw, get("/r/x").body(Full::default()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[test]
fn the_user_header_counts_from_trusted_proxies_only_and_never_passes() {
    use hyper::header::{HeaderMap, HeaderName, HeaderValue};
    let mut trusted = crate::tls::TrustedProxies::default();
    trusted.push("10.0.0.0/8".parse().unwrap());
    let gw = gateway(fixed())
        .with_trusted_proxies(trusted)
        .with_user_header(Some(HeaderName::from_static("x-forwarded-user")));
    let headers = |values: &[&[u8]]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-user", HeaderValue::from_bytes(v).unwrap());
        }
        h.insert("x-other", HeaderValue::from_static("1"));
        h
    };
    let proxy = Some("10.1.2.3:4000".parse().unwrap());
    let client = Some("127.0.0.1:4000".parse().unwrap());
    for (values, peer, want) in [
        (&[&b"carol"[..]][..], proxy, Some("carol")),
        (&["Jos\u{e9}".as_bytes()][..], proxy, Some("Jos\u{e9}")),
        (&[&b"carol"[..]][..], client, None),
        (&[&b"carol"[..], &b"mallory"[..]][..], proxy, None),
        (&[&b"  "[..]][..], proxy, None),
        (&[][..], proxy, None),
    ] {
        let mut h = headers(values);
        assert_eq!(gw.trusted_user(&mut h, peer).as_deref(), want, "{values:?}");
        assert!(!h.contains_key("x-forwarded-user") && h.contains_key("x-other"));
    }
    // Without --user-header nothing is read or removed.
    let plain = gateway(fixed());
    let mut h = headers(&[b"carol"]);
    assert_eq!(plain.trusted_user(&mut h, proxy), None);
    assert!(h.contains_key("x-forwarded-user"));
}
