//! `facegate`: one binary, one subcommand per role. Every setting is also an environment
//! variable; `facegate <role> --help` lists them with their defaults.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "facegate", version, about = "Sign in with your face: facegate's roles and tools.")]
struct Cli {
    #[command(flatten)]
    log: facegate_shared::telemetry::LogSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create every bucket, queue, topic, table and collection (idempotent).
    Provision(facegate_shared::provision::ProvisionArgs),
    /// Run the local face engine: Rekognition's API over real face models.
    Engine(facegate_engine::EngineArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    facegate_shared::telemetry::init(&cli.log);
    match cli.command {
        Command::Provision(args) => facegate_shared::provision::run(args).await?,
        Command::Engine(args) => facegate_engine::run(args).await?,
    }
    Ok(())
}
