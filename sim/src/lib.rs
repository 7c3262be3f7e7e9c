//! Placeholder crate root; filled in by the simulator work.
