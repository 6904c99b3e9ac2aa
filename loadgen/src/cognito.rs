//! The Cognito hop benchmark (`facegate bench cognito`): one whole face sign-in, from its
//! first call to its tokens, with 1 and 8 concurrent clients, two ways in the same run:
//!
//! - **cognito**: through the stack's user pool, as an app does it (`InitiateAuth`
//!   CUSTOM_AUTH, the PUT of the selfie, `RespondToAuthChallenge`); the pool calls the trigger
//!   Lambda (`facegate verifier --lambda`, run by the emulator) for Define, Create, Verify and
//!   Define again;
//! - **direct**: the same four trigger calls and the PUT played against a verifier in this
//!   process over HTTP (`/cognito/*`), with no pool and no Lambda in between.
//!
//! The difference is the cost of the Cognito and Lambda hops. Every selfie is new bytes (no
//! cache of the engine can answer it). Needs a provisioned stack (its user pool and trigger
//! function) and `facegate engine`; the user it creates is erased afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use facegate_shared::ids::UserId;
use facegate_shared::rate_limit::FaceServiceLimiter;
use facegate_shared::stack::Stack;
use facegate_shared::user_pool::UserPool;
use tokio_util::sync::CancellationToken;

use crate::client::{DefineDecision, VerifierClient, fresh_copy};
use crate::cognito_app::{Answered, CognitoApp};
use crate::verifier::{BenchArgs, BenchError, percentile, register_active};
use facegate_verifier::settings::VerifierSettings;

/// One path at one concurrency level.
#[derive(Debug, Clone)]
pub struct PathReport {
    pub path: &'static str,
    pub concurrency: usize,
    pub sign_ins: usize,
    pub signed_in: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_second: f64,
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// Runs with the settings of `facegate bench verifier` (requests, concurrency, photos).
pub async fn main(args: BenchArgs) -> Result<(), BenchError> {
    let reports = run(args).await?;
    println!("path     clients  sign-ins  signed in  p50 ms  p99 ms  sign-ins/s");
    for r in &reports {
        println!(
            "{:<7}  {:>7}  {:>8}  {:>9}  {:>6.1}  {:>6.1}  {:>10.2}",
            r.path, r.concurrency, r.sign_ins, r.signed_in, r.p50_ms, r.p99_ms, r.per_second
        );
    }
    for cognito in reports.iter().filter(|r| r.path == "cognito") {
        if let Some(direct) = reports
            .iter()
            .find(|r| r.path == "direct" && r.concurrency == cognito.concurrency)
        {
            println!(
                "{} client(s): cognito/direct p50 {:.2}x (+{:.1} ms), p99 {:.2}x",
                cognito.concurrency,
                cognito.p50_ms / direct.p50_ms.max(f64::EPSILON),
                cognito.p50_ms - direct.p50_ms,
                cognito.p99_ms / direct.p99_ms.max(f64::EPSILON)
            );
        }
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> Result<Vec<PathReport>, BenchError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| BenchError::Photo {
            path: path.clone(),
            source,
        })
    };
    let registration = read(&args.bench_registration_photo)?;
    let selfie = Bytes::from(read(&args.bench_selfie)?);
    let stack = Stack::connect(&args.stack).await.map_err(setup)?;
    let pool = UserPool::find(&stack.clients.cognito, &stack.names)
        .await
        .map_err(setup)?;
    let app = CognitoApp::new(stack.clients.cognito.clone(), pool.clone());
    let token = uuid::Uuid::new_v4().simple().to_string();
    let shutdown = CancellationToken::new();
    let running = facegate_verifier::spawn(
        stack.clone(),
        Arc::new(FaceServiceLimiter::new(&args.face)),
        VerifierSettings::local(token.clone()),
        shutdown.clone(),
    )
    .await
    .map_err(setup)?;
    let direct = VerifierClient::new(running.url(), token.clone());
    let user = UserId::parse(format!("bench-{}", &token[..8])).map_err(setup)?;
    let password = format!("Bench-{token}-9");
    app.sign_up(user.as_str(), &password).await.map_err(setup)?;
    register_active(&stack, &user, registration)
        .await
        .map_err(setup)?;

    let mut reports = Vec::new();
    for &concurrency in &args.bench_concurrency {
        let concurrency = concurrency.max(1);
        for path in ["direct", "cognito"] {
            let (app, direct, user, selfie) =
                (app.clone(), direct.clone(), user.clone(), selfie.clone());
            let report = level(path, concurrency, args.bench_requests, move |_| {
                let (app, direct, user, selfie) =
                    (app.clone(), direct.clone(), user.clone(), selfie.clone());
                async move {
                    match path {
                        "cognito" => cognito_sign_in(&app, &user, selfie).await,
                        _ => direct_sign_in(&direct, &user, selfie).await,
                    }
                }
            })
            .await?;
            reports.push(report);
        }
    }
    facegate_verifier::erase::erase_user(&running.verifier, &user)
        .await
        .map_err(setup)?;
    let _ = stack
        .clients
        .cognito
        .admin_delete_user()
        .user_pool_id(&pool.id)
        .username(user.as_str())
        .send()
        .await;
    shutdown.cancel();
    Ok(reports)
}

/// InitiateAuth .. tokens through the pool. `Ok(true)` when tokens came back.
async fn cognito_sign_in(app: &CognitoApp, user: &UserId, selfie: Bytes) -> Result<bool, String> {
    let answered = app
        .sign_in_with_face(user.as_str(), fresh_copy(&selfie))
        .await
        .map_err(|e| e.to_string())?;
    Ok(matches!(answered, Answered::SignedIn(_)))
}

/// Define, Create, PUT, Verify, Define against the verifier itself.
async fn direct_sign_in(
    client: &VerifierClient,
    user: &UserId,
    selfie: Bytes,
) -> Result<bool, String> {
    let e = |e: crate::client::ClientError| e.to_string();
    if client.define(user.as_str(), &[]).await.map_err(e)? != DefineDecision::Challenge {
        return Ok(false);
    }
    let challenge = client.create(user.as_str(), &[]).await.map_err(e)?;
    client
        .put_presigned(&challenge.url, fresh_copy(&selfie))
        .await
        .map_err(e)?;
    let (correct, _) = client
        .verify(user.as_str(), &challenge, &challenge.key)
        .await
        .map_err(e)?;
    let session = [challenge.session_entry(correct)];
    Ok(client.define(user.as_str(), &session).await.map_err(e)? == DefineDecision::IssueTokens)
}

async fn level<F, Fut>(
    path: &'static str,
    concurrency: usize,
    requests: usize,
    sign_in: F,
) -> Result<PathReport, BenchError>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let remaining = remaining.clone();
        let sign_in = sign_in.clone();
        clients.spawn(async move {
            let mut samples: Vec<(Duration, bool)> = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let t = Instant::now();
                let signed_in = sign_in(client).await?;
                samples.push((t.elapsed(), signed_in));
            }
            Ok::<_, String>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(joined) = clients.join_next().await {
        samples.extend(joined.map_err(setup)?.map_err(BenchError::Setup)?);
    }
    let wall = started.elapsed();
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.0.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let report = PathReport {
        path,
        concurrency,
        sign_ins: samples.len(),
        signed_in: samples.iter().filter(|s| s.1).count(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    };
    tracing::info!(path, concurrency, p50_ms = report.p50_ms, "level done");
    Ok(report)
}
