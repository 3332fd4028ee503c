//! `sqlx::migrate!()` embeds `migrations/` at compile time, and on stable Rust cargo only reruns
//! the macro when a Rust source changes: a migration added on its own would be missing from the
//! build (and from every test database) until something else forced a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
