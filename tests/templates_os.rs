//! Templates read from a directory of the OS (Tornado's `template_path`) through the driver's
//! file interface: inheritance across files, no path out of the directory, debug reloads.

use std::sync::Arc;

use eddy::web::template::{file_loader, Templates};
use eddy_drivers::OsFiles;

#[test]
fn templates_load_from_a_directory_and_never_from_outside_it() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.html"), "SECRET").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.html"),
        "<p>{% block b %}{% endblock %}</p>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("pages")).unwrap();
    std::fs::write(
        dir.path().join("pages/hi.html"),
        "{% extends 'base.html' %}{% block b %}Hi {{ who }}{% endblock %}",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.html"),
        dir.path().join("link.html"),
    )
    .unwrap();
    let files = Arc::new(OsFiles::new(dir.path()).unwrap());
    let debug = Templates::new(file_loader(files.clone()), true);
    let page = debug.render("pages/hi.html", serde_json::json!({ "who": "<you>" }));
    assert_eq!(page.unwrap(), "<p>Hi &lt;you&gt;</p>");
    std::fs::write(
        dir.path().join("base.html"),
        "<div>{% block b %}{% endblock %}</div>",
    )
    .unwrap();
    let page = debug.render("pages/hi.html", serde_json::json!({ "who": "me" }));
    assert_eq!(
        page.unwrap(),
        "<div>Hi me</div>",
        "debug mode reads the files again"
    );
    let plain = Templates::new(file_loader(files), false);
    for escape in ["link.html", "../secret.html", "pages/../../secret.html"] {
        let result = plain.render(escape, ());
        assert!(
            result
                .as_ref()
                .is_err_and(|e| !e.message.contains("SECRET")),
            "{escape}: {result:?}"
        );
    }
}
