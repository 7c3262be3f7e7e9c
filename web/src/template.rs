//! `Templates`: Jinja2-syntax templates (minijinja) loaded through a loader the application
//! supplies (eddy-web reads no file itself), compiled once and cached, re-read on every
//! render in debug mode. HTML autoescaping is on for `.html`, `.htm` and `.xml` names.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Environment;

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

impl Templates {
    /// Templates from `loader`; with `reload`, sources are read again for every render.
    pub fn new(loader: TemplateLoader, reload: bool) -> Templates {
        let mut env = Environment::new();
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

    /// Renders template `name` with `context`.
    pub fn render(
        &self,
        name: &str,
        context: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
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
}
