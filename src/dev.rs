//! `facegate dev`: the whole system in one process on one machine.
//!
//! Starts the face engine, provisions the stack (idempotently: state from an earlier run is
//! kept), then runs every role as it would run in its own container, sharing one set of AWS
//! clients and one face-service budget. Ctrl-C (or SIGTERM) stops the roles first, letting each
//! drain, then the engine.

use std::{net::SocketAddr, path::PathBuf};

use facegate_engine::{EngineArgs, face::ModelSettings};
use facegate_shared::{
    ops::{self, OpsSettings},
    provision::{self, Plan},
    shutdown,
    stack::{Stack, StackArgs},
};
use tokio::task::JoinSet;

/// Settings of `facegate dev`: those of every role, each once.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub models: ModelSettings,
    /// Where the in-process face engine listens.
    #[arg(long, env = "FACEGATE_ENGINE_LISTEN", default_value = "127.0.0.1:4599")]
    pub engine_listen: SocketAddr,
    /// Where the engine keeps its collections.
    #[arg(
        long,
        env = "FACEGATE_ENGINE_DATA_DIR",
        default_value = ".facegate/engine"
    )]
    pub engine_data_dir: PathBuf,
    #[command(flatten)]
    pub ops: OpsSettings,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let stop = shutdown::on_signal();
    let engine = facegate_engine::spawn(EngineArgs {
        listen: args.engine_listen,
        data_dir: args.engine_data_dir.clone(),
        models: args.models.clone(),
        aws: args.stack.aws.clone(),
        ..EngineArgs::local(args.engine_data_dir.clone(), args.models.clone())
    })
    .await?;
    let mut stack_args = args.stack.clone();
    stack_args.aws.endpoint_url_rekognition = Some(engine.url());

    let report = provision::apply(&Plan::new(&stack_args.stack, true), &stack_args.aws).await?;
    tracing::info!(resources = report.outcomes.len(), "stack provisioned");
    let stack = Stack::connect(&stack_args).await?;

    let mut roles = JoinSet::new();
    let health = Vec::new();
    // Roles are added here as they land (indexer, dedup, alerts, verifier).
    let _ = &stack;

    let ops_settings = args.ops.clone();
    let ops_stop = stop.clone();
    roles.spawn(async move {
        ops::serve(&ops_settings, health, ops_stop)
            .await
            .map_err(anyhow::Error::from)
    });

    println!("facegate dev is running (Ctrl-C stops it)");
    println!("  face engine (Rekognition API)  {}", engine.url());
    println!(
        "  metrics / health               http://{}/metrics  /healthz  /readyz",
        args.ops.ops_listen
    );
    println!(
        "  stack `{}`, AWS emulator at     {}",
        stack.names.prefix(),
        stack
            .aws
            .endpoint(facegate_shared::aws::Service::Sqs)
            .unwrap_or_else(|| "AWS".into())
    );

    stop.cancelled().await;
    while let Some(done) = roles.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(error = %e, "a role stopped with an error");
        }
    }
    engine.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
