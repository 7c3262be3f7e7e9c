//! `Templates`: Jinja2-syntax templates (minijinja) loaded through a loader the application
//! supplies (eddy-web reads no file itself), compiled once and cached, re-read on every
//! render in debug mode. HTML autoescaping is on for `.html`, `.htm` and `.xml` names.
//!
//! As in Tornado's template namespace, a template rendered by `Exchange::render` sees
//! `current_user` and `request` (`method`, `uri`, `path`, `query`, `host`, `protocol`,
//! `remote_ip`, `full_url`) and can call `static_url(path)`, `reverse_url(name, args...)`,
//! `xsrf_token()` and `xsrf_form_html()`; they answer from the request being handled, which [`Templates`] reaches through a
//! namespace set for the length of one render.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use eddy_core::file::{FileSystem, Opened, RelPath};
use minijinja::value::{Rest, Value};
use minijinja::{Environment, ErrorKind};

/// Where template sources come from: name → source (`Ok(None)`: no such template).
pub type TemplateLoader = Arc<dyn Fn(&str) -> Result<Option<String>, String> + Send + Sync>;

/// A set of templates; see the module docs.
pub struct Templates {
    env: std::cell::RefCell<Environment<'static>>,
    reload: bool,
}

/// A template that could not be loaded or rendered: names the template and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    /// The template.
    pub name: String,
    /// What went wrong (with the line, when known).
    pub message: String,
}

impl TemplateError {
    fn from_minijinja(name: &str, e: &minijinja::Error) -> TemplateError {
        let at = e
            .line()
            .map(|l| format!(" (line {l} of {})", e.name().unwrap_or(name)))
            .unwrap_or_default();
        TemplateError {
            name: name.to_owned(),
            message: format!("{}{at}", e.detail().unwrap_or(&e.kind().to_string())),
        }
    }
}

/// What the namespace functions answer with during one render (see the module docs); each
/// `Err` is the message of the template error it becomes.
pub(crate) trait RenderNamespace {
    /// `static_url(path)`: the file's URL with its version.
    fn static_url(&self, path: &str) -> Result<String, String>;
    /// `reverse_url(name, args...)`: the named route's path.
    fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, String>;
    /// `xsrf_token()`: the request's masked XSRF token (made, with its cookie, on first use).
    fn xsrf_token(&self) -> Result<String, String>;
}

thread_local! {
    /// The namespace of the render running on this thread, if any.
    static NAMESPACE: RefCell<Option<Rc<dyn RenderNamespace>>> = const { RefCell::new(None) };
}

/// Sets the thread's namespace for one render, restoring the previous one when dropped.
struct NamespaceScope(Option<Rc<dyn RenderNamespace>>);

impl NamespaceScope {
    fn enter(namespace: Option<Rc<dyn RenderNamespace>>) -> NamespaceScope {
        NamespaceScope(NAMESPACE.with(|n| n.replace(namespace)))
    }
}

impl Drop for NamespaceScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        NAMESPACE.with(|n| *n.borrow_mut() = previous);
    }
}

/// Calls `f` with the running render's namespace; an error outside `Exchange::render`.
fn with_namespace<T>(
    function: &str,
    f: impl FnOnce(&dyn RenderNamespace) -> Result<T, String>,
) -> Result<T, minijinja::Error> {
    let namespace = NAMESPACE.with(|n| n.borrow().clone()).ok_or_else(|| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{function}() is only available in templates rendered for a request"),
        )
    })?;
    f(&*namespace).map_err(|message| minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// A template argument as text: strings as they are, anything else as it prints (`42`).
fn arg_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Registers Tornado's namespace functions on `env`.
fn add_namespace_functions(env: &mut Environment<'static>) {
    env.add_function("static_url", |path: String| {
        with_namespace("static_url", |ns| ns.static_url(&path))
    });
    env.add_function("reverse_url", |name: String, args: Rest<Value>| {
        let args: Vec<String> = args.iter().map(arg_text).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        with_namespace("reverse_url", |ns| ns.reverse_url(&name, &args))
    });
    env.add_function("xsrf_token", || {
        with_namespace("xsrf_token", |ns| ns.xsrf_token())
    });
    env.add_function("xsrf_form_html", || {
        with_namespace("xsrf_form_html", |ns| {
            ns.xsrf_token()
                .map(|token| Value::from_safe_string(crate::xsrf::form_html(&token)))
        })
    });
}

impl Templates {
    /// Templates from `loader`; with `reload`, sources are read again for every render.
    pub fn new(loader: TemplateLoader, reload: bool) -> Templates {
        let mut env = Environment::new();
        add_namespace_functions(&mut env);
        env.set_loader(move |name| {
            loader(name).map_err(|message| {
                minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, message)
            })
        });
        // HTML escaping as Tornado's `xhtml_escape` (`& < > " '`), not minijinja's, which
        // also escapes `/`.
        env.set_formatter(
            |out, state, value| match (state.auto_escape(), value.as_str()) {
                (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => out
                    .write_str(&crate::escape::xhtml_escape(text))
                    .map_err(minijinja::Error::from),
                _ => minijinja::escape_formatter(out, state, value),
            },
        );
        Templates {
            env: std::cell::RefCell::new(env),
            reload,
        }
    }

    /// Renders template `name` with `context` (the namespace functions answer with errors:
    /// there is no request; see `Exchange::render`).
    pub fn render(
        &self,
        name: &str,
        context: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        self.render_in(name, context, None)
    }

    /// Renders template `name` with `context`, the namespace functions answering from
    /// `namespace`.
    pub(crate) fn render_in(
        &self,
        name: &str,
        context: impl serde::Serialize,
        namespace: Option<Rc<dyn RenderNamespace>>,
    ) -> Result<String, TemplateError> {
        let _scope = NamespaceScope::enter(namespace);
        let mut env = self.env.borrow_mut();
        if self.reload {
            env.clear_templates();
        }
        let template = env
            .get_template(name)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        template
            .render(context)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Renders `source` itself (autoescaped as HTML) with `context`.
    pub fn render_string(
        &self,
        source: &str,
        context: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        self.render_string_in(source, context, None)
    }

    /// [`Templates::render_string`], the namespace functions answering from `namespace`.
    pub(crate) fn render_string_in(
        &self,
        source: &str,
        context: impl serde::Serialize,
        namespace: Option<Rc<dyn RenderNamespace>>,
    ) -> Result<String, TemplateError> {
        let _scope = NamespaceScope::enter(namespace);
        let env = self.env.borrow();
        env.template_from_named_str("string.html", source)
            .and_then(|t| t.render(context))
            .map_err(|e| TemplateError::from_minijinja("<string>", &e))
    }
}

/// A loader over sources held in memory (name → source), e.g. from `include_str!`.
pub fn memory_loader(sources: BTreeMap<String, String>) -> TemplateLoader {
    Arc::new(move |name| Ok(sources.get(name).cloned()))
}

/// Largest template file [`file_loader`] reads.
pub const MAX_TEMPLATE_FILE: u64 = 4 * 1024 * 1024;

/// A loader over the files below a directory (Tornado's `template_path`), read through the
/// file interface a driver supplies (`eddy_drivers::OsFiles::new("templates")`) or the
/// simulator's `SimFiles`: `base.html`, `admin/page.html`. A name that would leave the
/// directory, a directory, and a missing file are "no such template"; a file that is not
/// UTF-8, larger than [`MAX_TEMPLATE_FILE`] or fails to read is an error. Templates render
/// synchronously, so the file system must answer at once (the OS one does; a simulated slow
/// disk is an error here).
pub fn file_loader(files: Arc<dyn FileSystem>) -> TemplateLoader {
    Arc::new(move |name| read_template(&*files, name))
}

fn read_template(files: &dyn FileSystem, name: &str) -> Result<Option<String>, String> {
    let Ok(path) = RelPath::new(name) else {
        return Ok(None);
    };
    let opened = match files.open(&path).now() {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(Err(e)) => return Err(format!("cannot open {name}: {e}")),
        Err(_) => return Err(format!("{name}: the file system did not answer at once")),
    };
    let Opened::File(file) = opened else {
        return Ok(None);
    };
    let len = file.metadata.len;
    if len > MAX_TEMPLATE_FILE {
        return Err(format!("{name} is {len} bytes, over {MAX_TEMPLATE_FILE}"));
    }
    let mut bytes = vec![0; len as usize];
    let mut at = 0;
    while at < bytes.len() {
        match file.content.read_at(at as u64, &mut bytes[at..]) {
            Ok(0) => break, // shorter than at open: what is there
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read {name}: {e}")),
        }
    }
    bytes.truncate(at);
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{name} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        let mut sources = BTreeMap::new();
        sources.insert(
            "base.html".into(),
            "<p>{% block body %}{% endblock %}</p>".into(),
        );
        sources.insert(
            "greet.html".into(),
            "{% extends \"base.html\" %}{% block body %}Hello, {{ name }}{% endblock %}".into(),
        );
        sources.insert("bad.html".into(), "line one\n{{ broken".into());
        Templates::new(memory_loader(sources), false)
    }

    #[test]
    fn inheritance_and_html_escaping() {
        let t = templates();
        let out = t
            .render("greet.html", minijinja::context! { name => "<b>&" })
            .unwrap();
        assert_eq!(out, "<p>Hello, &lt;b&gt;&amp;</p>");
        let s = t
            .render_string("{{ x }}", minijinja::context! { x => "<i>" })
            .unwrap();
        assert_eq!(s, "&lt;i&gt;");
    }

    #[test]
    fn errors_name_the_template_and_line() {
        let t = templates();
        let e = t.render("bad.html", ()).unwrap_err();
        assert_eq!(e.name, "bad.html");
        assert!(e.message.contains("line 2"), "{e}");
        assert!(t.render("missing.html", ()).is_err());
    }

    #[test]
    fn a_file_loader_reads_below_its_directory_and_reloads_in_debug() {
        use eddy_sim::{FileFaults, SimFiles};
        let fs = Arc::new(SimFiles::new(1, FileFaults::none()));
        fs.write("base.html", "<main>{% block body %}{% endblock %}</main>")
            .unwrap();
        fs.write(
            "pages/hi.html",
            "{% extends \"base.html\" %}{% block body %}Hi {{ name }}{% endblock %}",
        )
        .unwrap();
        fs.write("bad.html", vec![0xffu8, 0xfe]).unwrap();
        let cached = Templates::new(file_loader(fs.clone()), false);
        let reloaded = Templates::new(file_loader(fs.clone()), true);
        for t in [&cached, &reloaded] {
            let page = t.render("pages/hi.html", minijinja::context! { name => "<x>" });
            assert_eq!(page.unwrap(), "<main>Hi &lt;x&gt;</main>");
        }
        fs.write("base.html", "<div>{% block body %}{% endblock %}</div>")
            .unwrap();
        let hi = |t: &Templates| t.render("pages/hi.html", minijinja::context! { name => "y" });
        assert_eq!(
            hi(&cached).unwrap(),
            "<main>Hi y</main>",
            "compiled once, cached"
        );
        assert_eq!(
            hi(&reloaded).unwrap(),
            "<div>Hi y</div>",
            "debug reads again"
        );
        for missing in ["nope.html", "pages", "../base.html", "/etc/passwd", ""] {
            let e = cached.render(missing, ()).unwrap_err();
            assert_eq!(e.name, missing, "{e}");
        }
        let e = cached.render("bad.html", ()).unwrap_err();
        assert!(e.message.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn namespace_functions_need_a_request() {
        let t = templates();
        let e = t
            .render_string("{{ static_url('a.css') }}", ())
            .unwrap_err();
        assert!(e.message.contains("rendered for a request"), "{e}");
    }
}
