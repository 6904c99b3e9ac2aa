//! `facegate dev`: the whole system in one process on one machine.
//!
//! Starts the face engine, provisions the stack (idempotently: state from an earlier run is
//! kept), then runs every role as it would run in its own container, sharing one set of AWS
//! clients and one face-service budget. Ctrl-C (or SIGTERM) stops the roles first, letting each
//! drain, then the engine.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use facegate_engine::{EngineArgs, face::ModelSettings};
use facegate_shared::{
    ops::{self, Health, OpsSettings},
    provision::{self, ProvisionArgs},
    rate_limit::{FaceServiceLimiter, FaceServiceSettings},
    shutdown,
    stack::{Stack, StackArgs},
    worker::WorkerSettings,
};
use facegate_verifier::VerifierSettings;
use facegate_workers::{DedupSettings, IndexerSettings, alerts::AlertsSettings};
use tokio::task::JoinSet;

use crate::web::{Lockout, PageConfig, WebError, WebListener, WebSettings};

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
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub face_service: FaceServiceSettings,
    #[command(flatten)]
    pub indexer: IndexerSettings,
    #[command(flatten)]
    pub dedup: DedupSettings,
    #[command(flatten)]
    pub alerts: AlertsSettings,
    #[command(flatten)]
    pub verifier: VerifierSettings,
    #[command(flatten)]
    pub web: WebSettings,
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

    // The user pool's trigger function runs this very binary, with this stack's endpoints.
    let plan = ProvisionArgs {
        aws: stack_args.aws.clone(),
        stack: stack_args.stack.clone(),
        dry_run: false,
        skip_collection: false,
        skip_user_pool: false,
        trigger_binary: None,
    }
    .plan()?;
    let report = provision::apply(&plan, &stack_args.aws).await?;
    tracing::info!(resources = report.outcomes.len(), "stack provisioned");
    let stack = Stack::connect(&stack_args).await?;

    // One face-service budget for the whole process, as one container would have.
    let limiter = Arc::new(FaceServiceLimiter::for_stack(&args.face_service, &stack));
    let mut roles = JoinSet::new();
    let mut health = Vec::new();
    let mut role_health = || {
        let h = Health::default();
        health.push(h.clone());
        h
    };
    let (indexer_health, dedup_health, alerts_health) =
        (role_health(), role_health(), role_health());
    roles.spawn(facegate_workers::run_indexer(
        stack.clone(),
        limiter.clone(),
        args.worker.clone(),
        args.indexer.clone(),
        indexer_health,
        stop.clone(),
    ));
    roles.spawn(facegate_workers::run_dedup(
        stack.clone(),
        limiter.clone(),
        args.worker.clone(),
        args.dedup.clone(),
        dedup_health,
        stop.clone(),
    ));
    roles.spawn(facegate_workers::alerts::run_alerts(
        stack.clone(),
        args.worker.clone(),
        args.alerts.clone(),
        alerts_health,
        stop.clone(),
    ));
    // The sign-in page's origin is the one the verifier allows for CORS. Without the page's
    // files (a binary run outside the checkout) the rest still runs.
    let web = match WebListener::bind(&args.web).await {
        Ok(web) => Some(web),
        Err(e @ WebError::MissingFiles(_)) => {
            tracing::warn!(error = %e, "the sign-in page is not served");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut verifier_settings = args.verifier.clone();
    if let Some(web) = &web {
        verifier_settings
            .cors_origin
            .get_or_insert_with(|| web.origin());
    }
    let generated_token = verifier_settings.token.is_none();
    let token = verifier_settings
        .token
        .get_or_insert_with(|| format!("dev-{}", uuid::Uuid::new_v4().simple()))
        .clone();
    let mut verifier = facegate_verifier::spawn(
        stack.clone(),
        limiter.clone(),
        verifier_settings,
        stop.clone(),
    )
    .await?;
    health.push(verifier.health.clone());
    let verifier_url = verifier.url();
    roles.spawn(async move {
        if let Err(e) = verifier.wait().await {
            tracing::error!(error = %facegate_shared::report::chain(&e), "the verifier stopped");
        }
    });

    let cognito_endpoint = stack.aws.endpoint(facegate_shared::aws::Service::Cognito);
    let page = report.user_pool.as_ref().map(|pool| PageConfig {
        region: pool.region().to_string(),
        user_pool_id: pool.id.clone(),
        client_id: pool.client_id.clone(),
        cognito_endpoint,
        verifier_url: verifier_url.clone(),
        max_answers: args.verifier.max_answers,
        lockout: Lockout {
            after_failures: args.alerts.lockout_threshold,
            seconds: args.alerts.lockout_secs,
        },
    });
    let mut web_url = None;
    if let (Some(page), Some(web)) = (page, web) {
        web_url = Some(web.origin());
        let web_task = web.serve(page, stop.clone());
        roles.spawn(async move {
            match web_task.await {
                Ok(Err(e)) => tracing::error!(error = %e, "the sign-in page's server stopped"),
                Err(e) => tracing::error!(error = %e, "the sign-in page's server panicked"),
                Ok(Ok(())) => {}
            }
        });
    } else if report.user_pool.is_none() {
        tracing::warn!("no user pool was provisioned: the sign-in page is not served");
    }

    let ops_settings = args.ops.clone();
    let ops_stop = stop.clone();
    roles.spawn(async move {
        if let Err(e) = ops::serve(&ops_settings, health, ops_stop).await {
            tracing::error!(error = %e, "the operations endpoint stopped");
        }
    });

    println!("facegate dev is running (Ctrl-C stops it)");
    println!("  face engine (Rekognition API)   {}", engine.url());
    println!("  verifier (Cognito triggers, /v1) {verifier_url}");
    if generated_token {
        println!("  verifier bearer token           {token}  (FACEGATE_VERIFIER_TOKEN sets one)");
    } else {
        println!("  verifier bearer token           the one in FACEGATE_VERIFIER_TOKEN");
    }
    println!("  workers                         indexer, dedup, alerts");
    if let Some(pool) = &report.user_pool {
        let cognito = stack
            .aws
            .endpoint(facegate_shared::aws::Service::Cognito)
            .unwrap_or_else(|| format!("https://cognito-idp.{}.amazonaws.com", pool.region()));
        println!(
            "  Cognito user pool               {}  (endpoint {cognito})",
            pool.id
        );
        println!("  Cognito app client id           {}", pool.client_id);
    }
    if let Some(web_url) = &web_url {
        println!("  sign-in page (web/)             {web_url}/");
    }
    println!(
        "  metrics / health                http://{}/metrics  /healthz  /readyz",
        args.ops.ops_listen
    );
    println!(
        "  stack `{}` on the AWS emulator  {}",
        stack.names.prefix(),
        stack
            .aws
            .endpoint(facegate_shared::aws::Service::Sqs)
            .unwrap_or_else(|| "AWS".into())
    );
    println!(
        "  upload a registration photo to s3://{}/registrations/<user>/<id>.jpg",
        stack.names.bucket()
    );

    stop.cancelled().await;
    while let Some(done) = roles.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a role panicked");
        }
    }
    engine.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
