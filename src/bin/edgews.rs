//! The `edgews` command line.

fn main() {
    println!("edgews {}", env!("CARGO_PKG_VERSION"));
}
