//! Times each default collector's `collect()` in a loop (no HTTP, no rendering): where a scrape's time goes.
//!   cargo run --release --example collector_cost
fn main() {
    for (name, us) in stevedore::devtools::collector_cost(2000) {
        println!("{name:<12} {us:>8.1} µs");
    }
}
