//! The build's identity (commit, date, target) for the run record and the lock:
//! the binary's build script, run for this crate too.

#[path = "../../build.rs"]
mod identity;

fn main() {
    identity::main();
}
