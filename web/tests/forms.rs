//! XSRF protection, the login guard and templates, through the simulated test client.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use eddy_web::signed::SigningKeys;
use eddy_web::template::memory_loader;
use eddy_web::testing::TestClient;
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, Settings};
use http::Method;

struct Form;
impl RequestHandler for Form {
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let token = ex.xsrf_token();
        ex.write(token);
        Ok(())
    }
    async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("accepted");
        Ok(())
    }
}

struct Private;
impl RequestHandler for Private {
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
    const AUTHENTICATED: &'static [Method] = &[Method::GET, Method::POST];
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let user = ex
            .current_user()
            .expect("the guard let a user in")
            .to_owned();
        ex.write(format!("Hello, {user}"));
        Ok(())
    }
    async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        self.get(ex).await
    }
}

/// Guards by hand, and only `POST`; `prepare` finds the user itself (`X-User`).
struct Api;
impl RequestHandler for Api {
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
    const CHECK_XSRF: bool = false;
    async fn prepare(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let user = ex
            .request()
            .header("x-user")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if user.is_some() {
            ex.set_current_user(user);
        }
        Ok(())
    }
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let who = ex.current_user().unwrap_or("nobody").to_owned();
        ex.write(who);
        Ok(())
    }
    async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let user = ex.authenticated()?;
        ex.write(format!("posted as {user}"));
        Ok(())
    }
}

struct Login;
impl RequestHandler for Login {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_signed_cookie("user", "demo")?;
        ex.redirect("/private", false)
    }
}

struct Greet;
impl RequestHandler for Greet {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let name = ex.argument("name")?;
        ex.render("greet.html", serde_json::json!({ "name": name }))
    }
}

/// `current_user` in a template; `?as=NAME` passes one of the handler's own instead.
struct Who;
impl RequestHandler for Who {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        match ex.query_arguments("as")?.pop() {
            Some(name) => ex.render("who.html", serde_json::json!({ "current_user": name })),
            None => ex.render("who.html", ()),
        }
    }
}

/// A page whose template calls the namespace functions.
struct FormPage;
impl RequestHandler for FormPage {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.render("form.html", serde_json::json!({}))
    }
}

fn app() -> Application {
    let mut templates = BTreeMap::new();
    templates.insert(
        "greet.html".to_string(),
        "<p>Hello, {{ name }}</p>".to_string(),
    );
    templates.insert(
        "who.html".to_string(),
        "{% if current_user %}Hi {{ current_user }}{% else %}anonymous{% endif %}".to_string(),
    );
    templates.insert(
        "form.html".to_string(),
        concat!(
            r#"<form action="{{ reverse_url('user', 42) }}">{{ xsrf_form_html() }}</form>"#,
            "\n{{ xsrf_token() }}"
        )
        .to_string(),
    );
    let settings = Settings {
        cookie_secret: Some(SigningKeys::Single(b"forms".to_vec())),
        xsrf_cookies: true,
        login_url: Some("/login".into()),
        template_loader: Some(memory_loader(templates)),
        random_seed: Some(7),
        current_user: Some(Arc::new(|ex: &Exchange| ex.signed_cookie("user"))),
        ..Settings::default()
    };
    Application::try_new(
        vec![
            Route::new("/form", || Form),
            Route::new("/private", || Private),
            Route::new("/login", || Login),
            Route::new("/greet", || Greet),
            Route::new("/form-page", || FormPage),
            Route::new("/who", || Who),
            Route::new(r"/user/(\d+)", || Form).named("user"),
        ],
        settings,
    )
    .unwrap()
}

#[test]
fn xsrf_posts_need_the_token_by_field_or_header() {
    let mut c = TestClient::new(app());
    let r = c.post("/form", &[], "");
    assert_eq!(r.status, 403, "no cookie, no token");
    let token = c.get("/form").text();
    assert!(c.cookies().contains_key("_xsrf"));
    assert!(token.starts_with("2|"), "{token}");
    let second = c.get("/form").text();
    assert_ne!(token, second, "masked afresh on every request");
    assert_eq!(c.post("/form", &[], "").status, 403, "cookie without token");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = format!("_xsrf={}", eddy_web::escape::url_escape(&token, true));
    assert_eq!(c.post("/form", &form, body).text(), "accepted");
    assert_eq!(c.post("/form", &[("x-xsrftoken", &second)], "").status, 200);
    assert_eq!(c.post("/form", &[("x-csrftoken", &token)], "").status, 200);
    let with_header = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-xsrftoken", &token),
    ];
    assert_eq!(
        c.post("/form", &with_header, "_xsrf=").status,
        200,
        "an empty field falls through to the header"
    );
    let forged = "2|00000000|00112233445566778899aabbccddeeff|1";
    assert_eq!(c.post("/form", &[("x-xsrftoken", forged)], "").status, 403);
}

#[test]
fn the_login_guard_redirects_gets_and_refuses_other_methods() {
    let mut c = TestClient::new(app());
    let r = c.get("/private");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login?next=%2Fprivate"));
    let r = c
        .fetch(Method::HEAD, "/private?a=1", &[], Bytes::new())
        .unwrap();
    assert_eq!(r.status, 302, "HEAD follows GET's guard");
    assert_eq!(r.header("location"), Some("/login?next=%2Fprivate%3Fa%3D1"));
    let token = c.get("/form").text();
    let r = c.post("/private", &[("x-xsrftoken", &token)], "");
    assert_eq!(r.status, 403);
    let r = c.get("/login");
    assert_eq!((r.status, r.header("location")), (302, Some("/private")));
    assert_eq!(c.get("/private").text(), "Hello, demo");
    let r = c.post("/private", &[("x-xsrftoken", &token)], "");
    assert_eq!(r.text(), "Hello, demo");
    // A tampered cookie reads as nobody: back to the login page.
    let mut cookie = c.cookies()["user"].clone();
    cookie.push('0');
    c.set_cookie("user", &cookie);
    assert_eq!(c.get("/private").status, 302);
}

#[test]
fn the_current_user_is_asked_once_and_prepare_may_set_it() {
    /// Asks for the user three times: the hook runs once.
    struct Thrice;
    impl RequestHandler for Thrice {
        const AUTHENTICATED: &'static [Method] = &[Method::GET];
        async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
            let a = ex.current_user().map(str::to_owned);
            let b = ex.authenticated()?;
            ex.write(format!("{a:?} {b}"));
            Ok(())
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let settings = Settings {
        current_user: Some(Arc::new(move |ex: &Exchange| {
            counted.fetch_add(1, Ordering::Relaxed);
            ex.request()
                .header("x-user")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })),
        ..Settings::default()
    };
    let routes = vec![Route::new("/api", || Api), Route::new("/thrice", || Thrice)];
    let mut c = TestClient::new(Application::try_new(routes, settings).unwrap());
    let get = |c: &mut TestClient, path: &str, headers: &[(&str, &str)]| {
        c.fetch(Method::GET, path, headers, Bytes::new()).unwrap()
    };
    let r = get(&mut c, "/thrice", &[("x-user", "ann")]);
    assert_eq!(r.text(), r#"Some("ann") ann"#);
    assert_eq!(calls.load(Ordering::Relaxed), 1, "asked once per request");
    assert_eq!(get(&mut c, "/thrice", &[]).status, 403, "no login_url: 403");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    // `prepare` sets the user: the hook is not asked.
    assert_eq!(get(&mut c, "/api", &[("x-user", "bob")]).text(), "bob");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(c.post("/api", &[], "").status, 403, "nobody may POST");
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(
        c.post("/api", &[("x-user", "cy")], "").text(),
        "posted as cy"
    );
}

#[test]
fn templates_escape_what_they_interpolate() {
    let mut c = TestClient::new(app());
    let r = c.get("/greet?name=%3Cscript%3E");
    assert_eq!(r.text(), "<p>Hello, &lt;script&gt;</p>");
    assert_eq!(c.get("/greet").status, 400);
}

#[test]
fn templates_call_reverse_url_and_the_xsrf_functions() {
    let mut c = TestClient::new(app());
    let r = c.get("/form-page");
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    let (form, token) = page.split_once('\n').unwrap();
    let field = form
        .strip_prefix(r#"<form action="/user/42"><input type="hidden" name="_xsrf" value=""#)
        .and_then(|rest| rest.strip_suffix(r#""/></form>"#))
        .expect(form);
    assert_eq!(
        field, token,
        "one token per request, unescaped in the field (no & < > \" ')"
    );
    let set_cookies = r.headers.get_all("set-cookie").iter().count();
    assert_eq!(set_cookies, 1, "the new _xsrf cookie is set once");
    // The page's token is accepted; the next page keeps the cookie and sets none.
    assert_eq!(c.post("/form", &[("x-xsrftoken", token)], "").status, 200);
    let again = c.get("/form-page");
    assert!(again.headers.get("set-cookie").is_none());
    assert!(again.text().contains("name=\"_xsrf\""));
}

#[test]
fn templates_see_the_current_user() {
    let mut c = TestClient::new(app());
    assert_eq!(c.get("/who").text(), "anonymous");
    c.get("/login");
    assert_eq!(c.get("/who").text(), "Hi demo");
    assert_eq!(
        c.get("/who?as=%3Cb%3E").text(),
        "Hi &lt;b&gt;",
        "the handler's own wins"
    );
}

#[test]
fn a_template_function_error_is_a_500_that_names_it() {
    let mut templates = BTreeMap::new();
    templates.insert(
        "bad.html".to_string(),
        "{{ reverse_url('nowhere') }}".to_string(),
    );
    templates.insert(
        "css.html".to_string(),
        "{{ static_url('a.css') }}".to_string(),
    );
    struct Render(&'static str);
    impl RequestHandler for Render {
        async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
            ex.render(self.0, ())
        }
    }
    let settings = Settings {
        template_loader: Some(memory_loader(templates)),
        ..Settings::default()
    };
    let app = Application::try_new(
        vec![
            Route::new("/bad", || Render("bad.html")),
            Route::new("/css", || Render("css.html")),
        ],
        settings,
    )
    .unwrap();
    let mut c = TestClient::new(app);
    assert_eq!(c.get("/bad").status, 500);
    assert_eq!(c.get("/css").status, 500, "no static_files setting");
}

#[test]
fn templates_see_the_request() {
    struct Req;
    impl RequestHandler for Req {
        async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
            let page = "{{ request.method }} {{ request.path }} {{ request.query }} \
                        {{ request.protocol }}://{{ request.host }} {{ request.uri }}";
            ex.render_string(page, ())
        }
    }
    let app = Application::try_new(vec![Route::new("/r/(.*)", || Req)], Settings::default());
    let mut c = TestClient::new(app.unwrap());
    let page = c.get("/r/a%20b?x=%3C1%3E&y").text();
    let host = page.split("://").nth(1).unwrap().split(' ').next().unwrap();
    assert_eq!(
        page,
        format!("GET /r/a%20b x=%3C1%3E&amp;y http://{host} /r/a%20b?x=%3C1%3E&amp;y"),
        "as sent, escaped for HTML"
    );
    assert!(!host.is_empty());
}

#[test]
fn a_login_page_elsewhere_gets_the_whole_url_back() {
    let app_with = |login: &str| {
        let settings = Settings {
            login_url: Some(login.into()),
            current_user: Some(Arc::new(|_: &Exchange| None)),
            ..Settings::default()
        };
        let app = Application::try_new(vec![Route::new("/private", || Private)], settings);
        TestClient::new(app.unwrap())
    };
    let r = app_with("https://auth.example/login").get("/private?x=1");
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    let next = location
        .strip_prefix("https://auth.example/login?next=")
        .expect(location);
    assert!(
        next.starts_with("http%3A%2F%2F") && next.ends_with("%2Fprivate%3Fx%3D1"),
        "{next}"
    );
    // As Tornado: a login URL with a query of its own is used as it is.
    let r = app_with("/login?app=1").get("/private");
    assert_eq!(r.header("location"), Some("/login?app=1"));
}
