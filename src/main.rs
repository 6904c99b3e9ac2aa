//! `facegate`: one binary, one subcommand per role. Every setting is also an environment
//! variable; `facegate <role> --help` lists them with their defaults.

mod dev;
mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "facegate",
    version,
    about = "Sign in with your face: facegate's roles and tools."
)]
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
    /// Run everything in one process: the engine, provisioning, and every role.
    Dev(Box<dev::DevArgs>),
    /// Index registration photos: quality gate, IndexFaces, `FaceIndexed` (queue `uploads`).
    Indexer(facegate_workers::IndexerArgs),
    /// Settle indexed faces: duplicate search, then ACTIVE, REPLACED or REJECTED (queue `dedup`).
    Dedup(facegate_workers::DedupArgs),
    /// Answer Cognito's custom-auth triggers and the /v1 API over HTTP (or, with --lambda, as
    /// the trigger Lambda).
    Verifier(facegate_verifier::VerifierArgs),
    /// Count failed sign-ins, lock users, raise security alerts, watch the dead-letter queues
    /// (queue `alerts`).
    Alerts(facegate_workers::alerts::AlertsArgs),
    /// Measure the face engine's similarity on labelled photos: every pair, and the false-match
    /// and false-non-match rate at each threshold.
    Calibrate {
        /// Folder of photos named <person>_<n>.<jpg|png>.
        #[arg(default_value = "tests/fixtures/faces")]
        faces: PathBuf,
        #[command(flatten)]
        models: facegate_engine::face::ModelSettings,
    },
    /// Benchmarks: each prints its figures (medians and p99) and the reference it is compared to.
    #[command(subcommand)]
    Bench(facegate_loadgen::Bench),
    /// Walk through the whole story against a running stack (`facegate dev`), printing each
    /// step: two people register, a duplicate is caught, a genuine sign-in, three impostor
    /// attempts and the lockout, the security alerts, and an erasure. Exits non-zero naming
    /// the first step that does not behave as described.
    Demo(Box<facegate_loadgen::demo::DemoArgs>),
    /// Erase one user everywhere: their faces in the collection, their records and their
    /// photos (the same as the verifier's `DELETE /v1/users/<id>`), and print what was removed.
    Erase(facegate_verifier::erase::EraseArgs),
    /// Check an HTTP health endpoint (exit 0 on 200): the containers' health check.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    facegate_shared::telemetry::init(&cli.log);
    match cli.command {
        Command::Provision(args) => facegate_shared::provision::run(args).await?,
        Command::Engine(args) => facegate_engine::run(args).await?,
        Command::Calibrate { faces, models } => {
            let report = tokio::task::spawn_blocking(move || {
                let models = facegate_engine::face::FaceModels::load(&models)?;
                anyhow::Ok(facegate_engine::face::calibrate(&models, &faces)?)
            })
            .await??;
            print!("{report}");
        }
        Command::Dev(args) => dev::run(*args).await?,
        Command::Indexer(args) => facegate_workers::indexer_main(args).await?,
        Command::Dedup(args) => facegate_workers::dedup_main(args).await?,
        Command::Verifier(args) => facegate_verifier::main(args).await?,
        Command::Alerts(args) => facegate_workers::alerts::alerts_main(args).await?,
        Command::Bench(which) => facegate_loadgen::bench(which).await?,
        Command::Demo(args) => facegate_loadgen::demo::run(*args).await?,
        Command::Erase(args) => {
            facegate_verifier::erase::main(args).await?;
        }
        Command::Health { url } => facegate_shared::probe::probe(&url).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's flags and environment variables are unique (clap panics at run time
    /// otherwise; `facegate dev` composes the settings of every role).
    #[test]
    fn the_command_line_is_consistent() {
        fn check(command: &clap::Command) {
            command.clone().debug_assert();
            command.get_subcommands().for_each(check);
        }
        check(&super::Cli::command());
    }
}
