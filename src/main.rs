//! `facegate`: one binary, one subcommand per role. Every setting is also an environment
//! variable; `facegate <role> --help` lists them with their defaults.

mod demo;
mod dev;
mod gate_bench;
mod probe;
mod soak;
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
    Bench(Bench),
    /// Walk through the whole story against a running stack (`facegate dev`), printing each
    /// step: two people register, a duplicate is caught, a genuine sign-in, three impostor
    /// attempts and the lockout, the security alerts, and an erasure. Exits non-zero naming
    /// the first step that does not behave as described.
    Demo(Box<demo::DemoArgs>),
    /// Erase one user everywhere: their faces in the collection, their records and their
    /// photos (the same as the verifier's `DELETE /v1/users/<id>`), and print what was removed.
    Erase(facegate_verifier::erase::EraseArgs),
    /// Check an HTTP health endpoint (exit 0 on 200): the containers' health check.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The face engine: per-stage latency against the Python/OpenCV reference, HTTP requests
    /// per second, search time at 10k/100k/1M faces, memory.
    Engine(facegate_engine::bench::BenchArgs),
    /// The registration pipeline on the local stack: registrations/s through indexer + dedup
    /// with 1, 2 and 4 handlers in flight, upload-to-ACTIVE p50/p99, worker RSS, and the worker
    /// runtime's overhead against a plain receive-delete loop. Needs a running engine.
    Pipeline(facegate_workers::bench::BenchPipelineArgs),
    /// The verifier: Verify-challenge latency and throughput with 1 and 8 clients, per phase,
    /// and memory (needs the stack and `facegate engine` running).
    Verifier(facegate_verifier::bench::BenchArgs),
    /// A whole face sign-in through the stack's Cognito user pool and trigger Lambda, beside
    /// the same trigger calls played directly against the verifier: p50/p99 with 1 and 8
    /// clients, the Lambda hop's cost (needs a provisioned stack and `facegate engine`).
    Cognito(facegate_verifier::bench::BenchArgs),
    /// The liveness attack suite through the stack's user pool: genuine head-turn sequences
    /// and presentation attacks, APCER per attack kind and BPCER (needs a stack provisioned
    /// with liveness `active`, the default, and `facegate engine`).
    Liveness(facegate_verifier::liveness_suite::SuiteArgs),
    /// The quality gates' refusals: every labelled photo and its simple variants (re-encoded,
    /// mirrored, scaled, cropped, darkened, blurred) through the engine's DetectFaces and the
    /// indexer's and verifier's gates, with each refusal's reason and the false refusal rate.
    /// Starts its own engine in-process; needs no stack.
    Gate(Box<gate_bench::GateBenchArgs>),
    /// Load and soak on the local stack: every role its own process, N registrations and M
    /// sign-ins (genuine and impostor) by concurrent clients, one worker SIGKILLed mid-run;
    /// throughput, p50/p99, peak RSS per role, and an audit of the end state (exit 1 if any
    /// audit line fails).
    Soak(Box<soak::SoakArgs>),
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
        Command::Bench(Bench::Engine(args)) => {
            print!("{}", facegate_engine::bench::bench(args).await?)
        }
        Command::Dev(args) => dev::run(*args).await?,
        Command::Indexer(args) => facegate_workers::indexer_main(args).await?,
        Command::Dedup(args) => facegate_workers::dedup_main(args).await?,
        Command::Verifier(args) => facegate_verifier::main(args).await?,
        Command::Alerts(args) => facegate_workers::alerts::alerts_main(args).await?,
        Command::Bench(Bench::Pipeline(args)) => {
            print!("{}", facegate_workers::bench::run(args).await?)
        }
        Command::Bench(Bench::Verifier(args)) => facegate_verifier::bench::main(args).await?,
        Command::Bench(Bench::Liveness(args)) => {
            facegate_verifier::liveness_suite::main(args).await?;
        }
        Command::Bench(Bench::Cognito(args)) => {
            facegate_verifier::bench_cognito::main(args).await?
        }
        Command::Demo(args) => demo::run(*args).await?,
        Command::Erase(args) => {
            facegate_verifier::erase::main(args).await?;
        }
        Command::Bench(Bench::Soak(args)) => soak::main(*args).await?,
        Command::Bench(Bench::Gate(args)) => print!("{}", gate_bench::run(*args).await?),
        Command::Health { url } => probe::probe(&url).await?,
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
