//! Times each node collector's `collect()` in a loop (no HTTP, no rendering): where a scrape's time goes.
//!   cargo run --release --example collector_cost
use std::time::Instant;

fn main() {
    let config = stevedore::cli::try_parse_from(["stevedore"]).expect("defaults parse");
    let n = 2000;
    for c in stevedore::collector::build(&config, &Default::default()) {
        let t = Instant::now();
        for _ in 0..n {
            let _ = c.collect();
        }
        println!(
            "{:<12} {:>8.1} µs",
            c.name(),
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
