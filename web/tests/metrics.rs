//! `/healthz` and `/metrics` on the simulator: requests counted by status, the latency
//! histogram, and the sampled open connections and loop lag of the serving loop.

use eddy_web::testing::TestClient;
use eddy_web::{Application, Exchange, HttpError, Metrics, RequestHandler, Route, Settings};

struct Page;
impl RequestHandler for Page {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("page");
        Ok(())
    }
}

#[test]
fn requests_connections_and_lag_are_exposed_for_prometheus() {
    let metrics = Metrics::new();
    let mut routes = vec![Route::new("/", || Page)];
    routes.extend(metrics.routes());
    let settings = Settings {
        metrics: Some(metrics.clone()),
        ..Settings::default()
    };
    let mut c = TestClient::new(Application::try_new(routes, settings).unwrap());
    let health = c.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    for _ in 0..3 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(c.get("/nope").status, 404);
    // Let the sampler run at least once in virtual time.
    c.sim().run_for(eddy_core::Duration::from_secs(2)).unwrap();
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text();
    assert!(
        text.contains("eddy_http_requests_total{status=\"200\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("eddy_http_requests_total{status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("eddy_http_request_duration_seconds_count 5"),
        "{text}"
    );
    // Each test-client request opens its own connection, and the server keeps them alive.
    assert!(
        text.contains("eddy_open_connections{loop=\"0\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("eddy_loop_lag_seconds{loop=\"0\"} 0.0\n"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}
