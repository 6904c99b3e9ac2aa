//! The engine benchmark without the `facegate` binary:
//! `cargo run -p facegate-engine --example bench_engine -- --help`
//! (`facegate bench engine` runs the same [`facegate_engine::bench::bench`]).

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: facegate_engine::bench::BenchArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let report = facegate_engine::bench::bench(cli.bench).await?;
    print!("{report}");
    Ok(())
}
