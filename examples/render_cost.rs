//! Times rendering alone: a snapshot of N containers (realistic figures) to text 0.0.4 and OpenMetrics.
//!   cargo run --release --example render_cost [N]
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    for (format, ms, bytes) in stevedore::devtools::render_cost(n) {
        println!(
            "{format}: {ms:.1} ms per render, {:.1} MB",
            bytes as f64 / 1e6
        );
    }
}
