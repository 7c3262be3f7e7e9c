//! The access log (Tornado's `log_request`): one `tracing` event per request with its
//! status, method, URI, remote IP and milliseconds, at info below 400, warn for 4xx and
//! error for 5xx; `log_function` replaces it.

use std::sync::{Arc, Mutex};

use eddy_web::testing::TestClient;
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, Settings};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One captured `request` event: its level and its fields as `name=value` text.
#[derive(Debug, Clone)]
struct Line {
    level: Level,
    fields: Vec<(String, String)>,
}

impl Line {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Keeps every event whose message is `request`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        if fields
            .0
            .iter()
            .any(|(n, v)| n == "message" && v == "request")
        {
            self.0.lock().unwrap().push(Line {
                level: *event.metadata().level(),
                fields: fields.0,
            });
        }
    }
}

struct Status;
impl RequestHandler for Status {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let code: u16 = ex.path_arg(0).unwrap_or("").parse().unwrap_or(500);
        ex.set_status(code);
        ex.write("x");
        Ok(())
    }
}

fn app(settings: Settings) -> Application {
    Application::try_new(vec![Route::new(r"/status/(\d+)", || Status)], settings).unwrap()
}

#[test]
fn one_line_per_request_at_the_level_of_its_status() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        let mut c = TestClient::new(app(Settings::default()));
        for path in [
            "/status/200",
            "/status/302",
            "/status/404",
            "/status/503",
            "/nowhere?q=1",
        ] {
            c.get(path);
        }
    });
    let lines = capture.0.lock().unwrap().clone();
    let levels: Vec<_> = lines.iter().map(|l| l.level).collect();
    assert_eq!(
        levels,
        [
            Level::INFO,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
            Level::WARN
        ],
        "{lines:?}"
    );
    let first = &lines[0];
    assert_eq!(first.field("status"), Some("200"));
    assert_eq!(first.field("method"), Some("GET"));
    assert_eq!(first.field("uri"), Some("/status/200"));
    assert!(first
        .field("ip")
        .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok()));
    let ms: f64 = first.field("ms").unwrap().parse().unwrap();
    assert!(ms >= 0.0);
    assert_eq!(
        lines[4].field("uri"),
        Some("/nowhere?q=1"),
        "the target as sent"
    );
    assert_eq!(lines[4].field("status"), Some("404"));
}

#[test]
fn a_log_function_replaces_the_line() {
    let capture = Capture::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let settings = Settings {
        log_function: Some({
            let seen = seen.clone();
            Arc::new(move |r: &eddy_web::RequestLog<'_>| {
                seen.lock()
                    .unwrap()
                    .push((r.status, r.method.to_owned(), r.uri.to_owned()))
            })
        }),
        ..Settings::default()
    };
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        TestClient::new(app(settings)).get("/status/201");
    });
    assert!(capture.0.lock().unwrap().is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [(201, "GET".to_owned(), "/status/201".to_owned())]
    );
}
