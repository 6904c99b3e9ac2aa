//! facegate's load generators and its demo: everything that drives the system from outside to
//! measure it or to show it, kept apart from the roles that run in production.
//!
//! Read it in this order:
//! - [`client`]: the verifier's HTTP API from the other side (Cognito's trigger events, the
//!   presigned PUT, `/v1`), and [`cognito_app`]: sign-in through Cognito's own API, as an app
//!   does it. They are the one client of the benchmarks, the demo and the integration tests.
//! - [`Bench`]: `facegate bench <what>`, one module per benchmark: [`pipeline`] (registrations
//!   through the indexer and dedup), [`verifier`] (Verify latency), [`cognito`] (a whole
//!   sign-in through the user pool), [`liveness`] (the attack suite), [`gate`] (the quality
//!   gates' refusals) and [`soak`] (every role its own process, under mixed load and chaos). The
//!   engine's own benchmark stays in `facegate-engine`: it times the stages inside one analysis.
//! - [`demo`]: `facegate demo`, the whole story told step by step against a running stack.

pub mod client;
pub mod cognito;
pub mod cognito_app;
pub mod demo;
pub mod gate;
pub mod liveness;
pub mod pipeline;
pub mod soak;
pub mod verifier;

use clap::Subcommand;

/// `facegate bench`: each benchmark prints its figures (medians and p99) and the reference it
/// is compared to.
#[derive(Subcommand)]
pub enum Bench {
    /// The face engine: per-stage latency against the Python/OpenCV reference, HTTP requests
    /// per second, search time at 10k/100k/1M faces, memory.
    Engine(facegate_engine::bench::BenchArgs),
    /// The registration pipeline on the local stack: registrations/s through indexer + dedup
    /// with 1, 4, 8 and 16 handlers in flight, upload-to-ACTIVE p50/p99, worker RSS, and the worker
    /// runtime's overhead against a plain receive-delete loop. Needs a running engine.
    Pipeline(pipeline::BenchPipelineArgs),
    /// The verifier: Verify-challenge latency and throughput with 1 and 8 clients, per phase,
    /// and memory (needs the stack and `facegate engine` running).
    Verifier(verifier::BenchArgs),
    /// A whole face sign-in through the stack's Cognito user pool and trigger Lambda, beside
    /// the same trigger calls played directly against the verifier: p50/p99 with 1 and 8
    /// clients, the Lambda hop's cost (needs a provisioned stack and `facegate engine`).
    Cognito(verifier::BenchArgs),
    /// The liveness attack suite through the stack's user pool: genuine head-turn sequences
    /// and presentation attacks, APCER per attack kind and BPCER (needs a stack provisioned
    /// with liveness `active`, the default, and `facegate engine`).
    Liveness(liveness::SuiteArgs),
    /// The quality gates' refusals: every labelled photo and its simple variants (re-encoded,
    /// mirrored, scaled, cropped, darkened, blurred) through the engine's DetectFaces and the
    /// indexer's and verifier's gates, with each refusal's reason and the false refusal rate.
    /// Starts its own engine in-process; needs no stack.
    Gate(Box<gate::GateBenchArgs>),
    /// Load and chaos on a local stack of its own: every role its own process, N registrations
    /// and M sign-ins (genuine and impostor, through the user pool or the HTTP trigger routes)
    /// at the same time, every role and the trigger Lambda SIGKILLed and the emulator restarted
    /// on a seeded schedule; throughput, p50/p99, peak RSS per role, and an audit of the end
    /// state (exit 1 if any audit line fails).
    Soak(Box<soak::SoakArgs>),
}

/// Runs one benchmark to the end, printing its report.
pub async fn bench(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Engine(args) => print!("{}", facegate_engine::bench::bench(args).await?),
        Bench::Pipeline(args) => print!("{}", pipeline::run(args).await?),
        Bench::Verifier(args) => verifier::main(args).await?,
        Bench::Cognito(args) => cognito::main(args).await?,
        Bench::Liveness(args) => liveness::main(args).await?,
        Bench::Gate(args) => print!("{}", gate::run(*args).await?),
        Bench::Soak(args) => soak::main(*args).await?,
    }
    Ok(())
}
