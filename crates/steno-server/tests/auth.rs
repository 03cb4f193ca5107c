//! Optional access control: a shared token and an Origin allow-list, both
//! refused with plain HTTP before the upgrade.

mod common;

use common::*;

/// 101 when the upgrade went through (and `ready` came), else the HTTP
/// status of the refusal, whose body must be the documented error shape.
async fn status_of(url: &str, headers: &[(&'static str, &str)]) -> u16 {
    let mut connector = Connector::new(url);
    for (k, v) in headers {
        connector = connector.header(k, v);
    }
    match connector.connect().await {
        Ok(_) => 101,
        Err(ConnectError::Http { status, body }) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"]["message"].is_string(), "{body}");
            status
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_origin_are_checked_before_the_upgrade() {
    let mut config = test_config();
    config.auth.token = "s3cret-token".into();
    config.auth.allowed_origins = vec!["https://app.example".into()];
    let server = TestServer::start(config).await;
    let url = server.url("");

    assert_eq!(status_of(&url, &[]).await, 401, "no token");
    assert_eq!(
        status_of(&url, &[("authorization", "Bearer wrong")]).await,
        401
    );
    assert_eq!(
        status_of(&url, &[("authorization", "Bearer s3cret-token")]).await,
        101
    );
    assert_eq!(status_of(&server.url("token=s3cret-token"), &[]).await, 101);
    assert_eq!(
        status_of(&server.url("token=s3cret-tokenX"), &[]).await,
        401
    );
    let good = [
        ("authorization", "Bearer s3cret-token"),
        ("origin", "https://app.example"),
    ];
    assert_eq!(status_of(&url, &good).await, 101);
    let evil = [
        ("authorization", "Bearer s3cret-token"),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(status_of(&url, &evil).await, 403);
    // Health and readiness stay open for probes.
    assert_eq!(http_get(server.addr, "/health").await.unwrap().0, 200);
    server.stop().await;
}
