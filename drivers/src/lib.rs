//! Placeholder crate root; filled in by the drivers work.
