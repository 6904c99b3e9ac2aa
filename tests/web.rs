//! The sign-in page (`web/`) as a person uses it: headless Chromium, its camera faked from the
//! fixture photos (a YUV4MPEG2 file per photo, written here), driven over WebDriver
//! (chromedriver, started here on a free port; fantoccini), against the real `facegate dev`
//! (engine, provisioning with the user pool and the trigger Lambda, every role, the page) on a
//! stack of its own. A Chromium session per camera file: the fake camera is fixed per launch.
//!
//! A screenshot of every step goes to `target/web-screenshots/` (`FACEGATE_WEB_SCREENSHOTS`
//! chooses another folder); any JavaScript error in the browser console fails the test.
//!
//! Needs the emulator (`scripts/stack.sh start`), the face models (`scripts/setup.sh`), and
//! Chromium with its driver (`apt-get install chromium chromium-driver`; `FACEGATE_CHROMIUM`,
//! `FACEGATE_CHROMEDRIVER` point at others).
//!
//! `cargo test --test web -- --ignored --nocapture` runs the benchmark: 20 face sign-ins through
//! the page, p50 of each part.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestStack;
use common::cognito::PASSWORD;
use common::pipeline::{fixture, two_faces_jpeg, workspace_root};
use facegate_loadgen::client::{StatusCode, VerifierClient};
use facegate_loadgen::cognito_app::CognitoApp;
use facegate_loadgen::liveness::Clip;
use facegate_shared::user_pool::UserPool;
use facegate_verifier::liveness::{STEPS, Step};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use image::DynamicImage;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const TOKEN: &str = "web-test-token-0123456789";
const READY_WITHIN: Duration = Duration::from_secs(240);
/// Registration runs the quality gate, IndexFaces and the dedup search on two shared cores.
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);
const STEP_WITHIN: Duration = Duration::from_secs(45);
/// The fake camera's frame size.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// The photo camera's loop: 6 s at 10 frames/s, each frame different.
const CAMERA_FRAMES: usize = 60;

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("an address").port())
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// --- The browser and its driver ------------------------------------------------------------

/// `name` on the PATH (or the override in `variable`), or a failure that says what to install.
fn program(variable: &str, names: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the browser test needs {} on the PATH (or {variable}): install Chromium and its \
         WebDriver, e.g. `apt-get install chromium chromium-driver` on Debian/Ubuntu \
         (scripts/setup.sh does it where apt-get is there and it runs as root); elsewhere \
         Chromium or Chrome with the matching chromedriver",
        names.join(" or ")
    );
}

struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Driver {
    async fn start() -> Self {
        let chromium = program(
            "FACEGATE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let chromedriver = program("FACEGATE_CHROMEDRIVER", &["chromedriver"]);
        let [port] = free_ports::<1>();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            chromium,
        }
    }

    /// A fresh headless Chromium whose camera plays `camera` (a .y4m file), phone-sized.
    async fn browser(&self, camera: &Path, shots: &Screenshots) -> Browser {
        self.browser_with(Camera::File(camera), shots).await
    }

    async fn browser_with(&self, camera: Camera<'_>, shots: &Screenshots) -> Browser {
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            "--window-size=500,900".into(),
            // This machine's network is closed: without these Chromium dials out at every start.
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
        ];
        match camera {
            Camera::File(file) => args.extend([
                "--use-fake-ui-for-media-stream".into(),
                "--use-fake-device-for-media-stream".into(),
                format!("--use-file-for-fake-video-capture={}", file.display()),
            ]),
            // A camera is there, and the person says no.
            Camera::Denied => args.extend([
                "--use-fake-device-for-media-stream".into(),
                "--deny-permission-prompts".into(),
            ]),
            // Permission is granted, and there is no camera at all.
            Camera::Missing => args.push("--use-fake-ui-for-media-stream".into()),
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
                // A phone's screen (headless windows are at least 500 px wide).
                "mobileEmulation": {
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 1.0 },
                },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"));
        Browser {
            client,
            shots: shots.clone(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

enum Camera<'a> {
    File(&'a Path),
    Denied,
    Missing,
}

/// chromedriver's browser console (`goog:loggingPrefs`): each call returns what is new.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

#[derive(Clone)]
struct Screenshots {
    dir: PathBuf,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Screenshots {
    /// `target/web-screenshots/<case>/`, emptied first.
    fn new(case: &str) -> Self {
        let dir = std::env::var_os("FACEGATE_WEB_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/web-screenshots"))
            .join(case);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        Self {
            dir,
            count: Default::default(),
        }
    }
}

struct Browser {
    client: Client,
    shots: Screenshots,
}

impl Browser {
    async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
        self.wait_js(
            "document.body.dataset.ready === 'true'",
            "the page to start",
        )
        .await;
    }

    async fn wait_js(&self, condition: &str, what: &str) {
        let deadline = Instant::now() + STEP_WITHIN;
        loop {
            let script = format!("return Boolean({condition});");
            if self.client.execute(&script, vec![]).await.ok() == Some(Value::Bool(true)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.failure(&format!("waited {STEP_WITHIN:?} for {what}"))
                        .await
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn text(&self, id: &str) -> String {
        match self.client.find(Locator::Id(id)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until `#id` shows `wanted`; on time-out says what the page shows instead.
    async fn wait_text(&self, id: &str, wanted: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text(id).await;
            if text.contains(wanted) {
                return text;
            }
            if Instant::now() > deadline {
                let what = format!("waited {within:?} for #{id} to say {wanted:?}");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// What went wrong and what the page says, with a screenshot of it.
    async fn failure(&self, what: &str) -> String {
        self.shot("FAILED").await;
        let (status, problem) = (self.text("status").await, self.text("problem").await);
        format!("{what}; the page says: status {status:?}, problem {problem:?}")
    }

    async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.expect(id);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("typing");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Enter in `#id`: the form is submitted from the keyboard.
    async fn enter(&self, id: &str) {
        let field = self.client.find(Locator::Id(id)).await.expect(id);
        field.send_keys("\u{E007}").await.expect("Enter");
    }

    async fn shot(&self, name: &str) {
        let n = self
            .shots
            .count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if let Ok(png) = self.client.screenshot().await {
            let path = self.shots.dir.join(format!("{n:02}-{name}.png"));
            std::fs::write(&path, png).expect("the screenshot is written");
        }
    }

    /// Fails on any JavaScript error in the console since the last look. Failed requests
    /// (the 400 of a refused sign-in, the 404 of "no registration yet") are the network's
    /// entries, expected here.
    async fn no_console_errors(&self) {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser log");
        let errors: Vec<&Value> = entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
            .collect();
        assert!(
            errors.is_empty(),
            "JavaScript errors in the console: {errors:#?}"
        );
    }

    async fn close(self) {
        self.no_console_errors().await;
        let _ = self.client.close().await;
    }

    // --- What a person does ---------------------------------------------------------------

    async fn sign_up(&self, user: &str) {
        self.click("#signup-box summary").await;
        self.fill("signup-username", user).await;
        self.fill("signup-password", PASSWORD).await;
        self.shot(&format!("{user}-sign-up")).await;
        self.click("#signup").await;
        self.wait_text("registration", "No face registered yet", STEP_WITHIN)
            .await;
        self.shot(&format!("{user}-signed-up")).await;
    }

    async fn password_sign_in(&self, user: &str) {
        self.click("#password-box summary").await;
        self.fill("password-username", user).await;
        self.fill("password-password", PASSWORD).await;
        self.click("#password-signin").await;
        self.wait_text(
            "status",
            &format!("Signed in as {user} with your password"),
            STEP_WITHIN,
        )
        .await;
    }

    async fn camera_ready(&self) {
        self.wait_text("status", "Camera ready", STEP_WITHIN).await;
        // A frame of the fake camera is on screen.
        self.wait_js(
            "document.getElementById('preview').videoWidth > 0",
            "the camera's first frame",
        )
        .await;
    }

    async fn register_face(&self, user: &str) {
        self.click("#register").await;
        self.camera_ready().await;
        self.shot(&format!("{user}-camera-preview")).await;
        self.click("#capture").await;
    }

    /// Starts a face sign-in from the start screen, from the keyboard.
    async fn start_face_sign_in(&self, user: &str) {
        self.fill("face-username", user).await;
        self.enter("face-username").await;
        self.camera_ready().await;
    }

    /// Liveness: presses Capture for each step the page asks, at the moment the head-turn
    /// camera starts showing the pose (its marker turns to the step's colour). The marker is
    /// read and the button pressed in one script, so the frame captured is the one read.
    /// Returns the steps pressed, in order.
    async fn follow_steps(&self) -> Vec<String> {
        const PRESS_AT_POSE_START: &str = r#"
            const button = document.getElementById("capture");
            const want = button.dataset.step;
            if (!want || button.disabled || button.hidden) { window.fgSeen = null; return null; }
            const canvas = document.createElement("canvas");
            canvas.width = 16; canvas.height = 16;
            const g = canvas.getContext("2d", { willReadFrequently: true });
            g.drawImage(document.getElementById("preview"), 0, 0, 16, 16, 0, 0, 16, 16);
            const [r, gr, b] = g.getImageData(8, 8, 1, 1).data;
            const seen = r > 150 && gr < 110 && b < 110 ? "centre"
              : gr > 150 && r < 110 && b < 110 ? "left"
              : b > 150 && r < 110 && gr < 110 ? "right" : "none";
            const before = window.fgSeen;
            window.fgSeen = seen;
            if (seen === want && before && before !== want) { button.click(); return want; }
            return null;
        "#;
        let mut pressed = Vec::new();
        let deadline = Instant::now() + STEP_WITHIN;
        while pressed.len() < STEPS {
            let answer = self.client.execute(PRESS_AT_POSE_START, vec![]).await;
            if let Ok(Value::String(step)) = answer {
                self.shot(&format!("liveness-step-{}-{step}", pressed.len() + 1))
                    .await;
                pressed.push(step);
            }
            if Instant::now() > deadline {
                let what = format!("waited {STEP_WITHIN:?} for the steps (pressed {pressed:?})");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        pressed
    }

    async fn erase(&self, user: &str) {
        self.click("#erase").await;
        self.shot(&format!("{user}-erase-confirm")).await;
        self.click("#erase-yes").await;
        let said = self
            .wait_text("status", "Your data is erased", STEP_WITHIN)
            .await;
        assert!(said.contains("and the account is deleted"), "{said}");
        self.shot(&format!("{user}-erased")).await;
    }
}

// --- The fake camera -----------------------------------------------------------------------

/// `photo` centred on a grey 640x480 frame.
fn on_grey(photo: &DynamicImage) -> image::RgbImage {
    let fitted = photo.resize(WIDTH, HEIGHT, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([128, 128, 128]));
    let (x, y) = ((WIDTH - fitted.width()) / 2, (HEIGHT - fitted.height()) / 2);
    image::imageops::overlay(&mut frame, &fitted.to_rgb8(), x.into(), y.into());
    frame
}

/// One 640x480 frame as YUV 4:2:0 planes (BT.601, studio range), as the y4m file holds them.
fn yuv420(frame: &image::RgbImage) -> Vec<u8> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut planes = vec![0u8; w * h * 3 / 2];
    let (luma, chroma) = planes.split_at_mut(w * h);
    let (cb, cr) = chroma.split_at_mut(w * h / 4);
    let rgb = |px: usize, py: usize| {
        let p = frame.get_pixel(px as u32, py as u32).0;
        (
            f32::from(p[0]) / 255.0,
            f32::from(p[1]) / 255.0,
            f32::from(p[2]) / 255.0,
        )
    };
    for py in 0..h {
        for px in 0..w {
            let (r, g, b) = rgb(px, py);
            luma[py * w + px] = (16.0 + 65.481 * r + 128.553 * g + 24.966 * b).round() as u8;
        }
    }
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (pr, pg, pb) = rgb(cx * 2 + dx, cy * 2 + dy);
                r += pr / 4.0;
                g += pg / 4.0;
                b += pb / 4.0;
            }
            cb[cy * w / 2 + cx] = (128.0 - 37.797 * r - 74.203 * g + 112.0 * b).round() as u8;
            cr[cy * w / 2 + cx] = (128.0 + 112.0 * r - 93.786 * g - 18.214 * b).round() as u8;
        }
    }
    planes
}

/// A YUV4MPEG2 file as Chromium's fake camera plays it (looping), `fps` frames a second.
/// Every frame gets a sensor noise of its own (one pixel in 97, a different set per frame), as
/// a real camera's frames are never the same bytes twice: without it every capture was one
/// JPEG, and the engine's cache of recent analyses answered the benchmark's sign-ins.
fn write_y4m(path: &Path, fps: u32, frames: &[Vec<u8>]) {
    let mut out = format!("YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n").into_bytes();
    let luma = (WIDTH * HEIGHT) as usize;
    for (n, planes) in frames.iter().enumerate() {
        out.extend_from_slice(b"FRAME\n");
        let mut noisy = planes.clone();
        for pixel in noisy[..luma].iter_mut().skip(n % 97).step_by(97) {
            *pixel = pixel.saturating_add(12);
        }
        out.extend_from_slice(&noisy);
    }
    std::fs::write(path, out).expect("the .y4m file is written");
}

/// A camera showing one photo: 6 s at 10 frames/s.
fn camera_file(dir: &Path, name: &str, photo: &[u8]) -> PathBuf {
    let image = image::load_from_memory(photo).expect("the photo decodes");
    let path = dir.join(format!("{name}.y4m"));
    write_y4m(&path, 10, &vec![yuv420(&on_grey(&image)); CAMERA_FRAMES]);
    path
}

/// Seconds each pose of the head-turn camera is held.
const POSE_SECONDS: u32 = 1;
const POSE_FPS: u32 = 4;
/// Rounds of centre, left, right in the head-turn camera's loop, each from other clip frames
/// (the steady pools hold 8 and 10 frames: two rounds of 4 each never repeat a frame).
const POSE_ROUNDS: usize = 2;

/// The colour of the head-turn camera's marker for a pose: a 16-pixel square in the frame's
/// top-left corner (in the grey band above the clip's 16:9 picture), so the test can press
/// Capture when the asked pose is on screen, as a person would.
fn marker(step: Step) -> image::Rgb<u8> {
    match step {
        Step::Centre => image::Rgb([220, 30, 30]),
        Step::Left => image::Rgb([30, 200, 30]),
        Step::Right => image::Rgb([30, 30, 220]),
    }
}

/// A camera playing the real head-turn clip's frames by pose: rounds of centre, left (the
/// person's own right) and right (the mirrored left frames), each pose held [`POSE_SECONDS`],
/// each frame marked with its pose's colour. No round repeats a frame of another, so two
/// steps of one pose in a sequence get different frames (the verifier refuses repeats).
/// The frames are the clip's steady pools: which frames a sequence pairs is a matter of
/// timing here, and the wide centre frames refuse some strong turns (a measured false
/// rejection, kept out of this test and named in `loadgen`'s liveness module).
fn head_turn_camera(dir: &Path, clip: &Clip) -> PathBuf {
    let per_pose = (POSE_SECONDS * POSE_FPS) as usize;
    let mut frames = Vec::new();
    for round in 0..POSE_ROUNDS {
        for step in [Step::Centre, Step::Left, Step::Right] {
            let pool = clip.steady_pool(step);
            assert!(
                pool.len() >= POSE_ROUNDS * per_pose,
                "a round would repeat a frame"
            );
            for bytes in &pool[round * per_pose..][..per_pose] {
                let photo = image::load_from_memory(bytes).expect("a clip frame decodes");
                let mut frame = on_grey(&photo);
                for (x, y) in (0..16).flat_map(|x| (0..16).map(move |y| (x, y))) {
                    frame.put_pixel(x, y, marker(step));
                }
                frames.push(yuv420(&frame));
            }
        }
    }
    let path = dir.join("head-turn.y4m");
    write_y4m(&path, POSE_FPS, &frames);
    path
}

// --- facegate dev ----------------------------------------------------------------------------

struct Dev {
    child: Child,
    log: PathBuf,
    dir: PathBuf,
    web_url: String,
    verifier_url: String,
    ops_port: u16,
}

impl Dev {
    async fn start(test: &TestStack, env: &[(&str, &str)]) -> Self {
        let [engine, verifier, ops, web] = free_ports::<4>();
        let dir = std::env::temp_dir().join(format!("facegate-web-test-{}", test.prefix));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let log = dir.join("dev.log");
        let log_file = std::fs::File::create(&log).expect("the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_facegate"));
        command
            .arg("dev")
            .env("FACEGATE_PREFIX", test.prefix.as_str())
            .env("FACEGATE_ENV", "local")
            .env("FACEGATE_VERIFIER_TOKEN", TOKEN)
            .env("FACEGATE_ENGINE_LISTEN", format!("127.0.0.1:{engine}"))
            .env("FACEGATE_ENGINE_DATA_DIR", dir.join("engine"))
            .env("FACEGATE_VERIFIER_LISTEN", format!("127.0.0.1:{verifier}"))
            .env("FACEGATE_OPS_LISTEN", format!("127.0.0.1:{ops}"))
            .env("FACEGATE_WEB_LISTEN", format!("127.0.0.1:{web}"))
            .env("FACEGATE_WEB_DIR", workspace_root().join("web"))
            // Three wrong faces end a sign-in, and three failures lock the account.
            .env("FACEGATE_VERIFY_MAX_ANSWERS", "3")
            .env("FACEGATE_LOCKOUT_THRESHOLD", "3");
        for name in [
            "FACEGATE_BUCKET",
            "FACEGATE_DEDUP_POLICY",
            "FACEGATE_DEDUP_THRESHOLD",
            "FACEGATE_VERIFY_THRESHOLD",
            "FACEGATE_SIGNIN_POLICY",
            "FACEGATE_LIVENESS_POLICY",
            "FACEGATE_VERIFIER_CORS_ORIGIN",
            "AWS_ENDPOINT_URL_REKOGNITION",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdout(log_file.try_clone().expect("the log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("facegate dev starts");
        let mut dev = Self {
            child,
            log,
            dir,
            web_url: format!("http://127.0.0.1:{web}/"),
            verifier_url: format!("http://127.0.0.1:{verifier}"),
            ops_port: ops,
        };
        dev.wait_ready().await;
        dev
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        let readyz = format!("127.0.0.1:{}", self.ops_port);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "facegate dev exited ({status}) before it was ready:\n{}",
                    tail(&self.log)
                );
            }
            let printed = std::fs::read_to_string(&self.log).unwrap_or_default();
            if printed.contains("sign-in page (web/)") && ready(&readyz).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "facegate dev was not ready within {READY_WITHIN:?}:\n{}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn verifier(&self) -> VerifierClient {
        VerifierClient::new(&self.verifier_url, TOKEN)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET /readyz` answers 200.
async fn ready(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

async fn registrations_status(dev: &Dev, user: &str) -> StatusCode {
    dev.verifier()
        .get(&format!("/v1/registrations/{user}"))
        .await
        .expect("GET /v1/registrations")
        .status
}

// --- The cases -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_registers_and_signs_in_with_the_camera() {
    let shots = Screenshots::new("sign-in-story");
    let driver = Driver::start().await;
    let test = TestStack::new().await;
    // The single-selfie page; the liveness steps have their own case below.
    let dev = Dev::start(&test, &[("FACEGATE_LIVENESS_POLICY", "off")]).await;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let (alice, carol) = (format!("web-{run}-alice"), format!("web-{run}-carol"));
    let cameras = dev.dir.join("cameras");
    std::fs::create_dir_all(&cameras).expect("the cameras folder");

    // Alice signs up and registers her face, the camera playing obama_1.
    let browser = driver
        .browser(
            &camera_file(&cameras, "alice-1", &fixture("obama_1.jpg")),
            &shots,
        )
        .await;
    browser.open(&dev.web_url).await;
    browser.shot("start").await;
    browser.sign_up(&alice).await;
    browser.register_face(&alice).await;
    browser.wait_text("status", "ACTIVE", ACTIVE_WITHIN).await;
    browser.shot(&format!("{alice}-registered-active")).await;
    browser.close().await;

    // She signs in with another photo of herself: the username comes from the token.
    let browser = driver
        .browser(
            &camera_file(&cameras, "alice-2", &fixture("obama_2.jpg")),
            &shots,
        )
        .await;
    browser.open(&dev.web_url).await;
    browser.start_face_sign_in(&alice).await;
    browser.shot(&format!("{alice}-face-sign-in-camera")).await;
    browser.click("#capture").await;
    let shown = browser
        .wait_text("signed-in-user", &alice, STEP_WITHIN)
        .await;
    assert_eq!(shown, alice, "the page shows who the token says");
    browser.shot(&format!("{alice}-signed-in")).await;
    browser.close().await;

    // Someone else's face (biden_1) is refused three times; the page says Alice is locked.
    let browser = driver
        .browser(
            &camera_file(&cameras, "impostor", &fixture("biden_1.jpg")),
            &shots,
        )
        .await;
    browser.open(&dev.web_url).await;
    browser.start_face_sign_in(&alice).await;
    browser.click("#capture").await;
    browser
        .wait_text("problem", "2 tries left", STEP_WITHIN)
        .await;
    browser.shot("impostor-refused-1").await;
    for (attempt, wanted) in [(2, "1 try left"), (3, "is now locked")] {
        browser.click("#retry").await;
        browser.camera_ready().await;
        browser.click("#capture").await;
        let said = browser.wait_text("problem", wanted, STEP_WITHIN).await;
        assert!(
            !said.contains('%') && !said.to_lowercase().contains("score"),
            "{said}"
        );
        browser.shot(&format!("impostor-refused-{attempt}")).await;
    }
    // The lock is real: the failure-alert worker locks her, and a fresh sign-in is refused at
    // once (Define refuses a locked user before any challenge).
    let (stack, locked) = (&test, &alice);
    common::eventually("the lock", Duration::from_secs(60), || async move {
        cognito_refuses_face_sign_in(stack, locked)
            .await
            .then_some(())
    })
    .await;
    browser.click("#camera-cancel").await;
    browser.start_face_sign_in(&alice).await;
    browser.click("#capture").await;
    browser
        .wait_text("problem", "Face sign-in is not possible for", STEP_WITHIN)
        .await;
    browser.shot("locked-fresh-sign-in-refused").await;
    browser.close().await;

    // Carol registers a photo of two faces: the page names the reason; then she erases her
    // data, and Alice (locked for face sign-in, not for her password) erases hers.
    let browser = driver
        .browser(
            &camera_file(&cameras, "two-faces", &two_faces_jpeg()),
            &shots,
        )
        .await;
    browser.open(&dev.web_url).await;
    browser.sign_up(&carol).await;
    browser.register_face(&carol).await;
    browser
        .wait_text(
            "problem",
            "More than one face is in the photo",
            ACTIVE_WITHIN,
        )
        .await;
    browser.shot(&format!("{carol}-rejected-two-faces")).await;
    browser.click("#camera-cancel").await;
    browser
        .wait_text("registration", "REJECTED", STEP_WITHIN)
        .await;
    browser.shot(&format!("{carol}-account-rejected")).await;
    assert_eq!(registrations_status(&dev, &carol).await, StatusCode::OK);
    browser.erase(&carol).await;
    assert_eq!(
        registrations_status(&dev, &carol).await,
        StatusCode::NOT_FOUND
    );

    assert_eq!(registrations_status(&dev, &alice).await, StatusCode::OK);
    browser.password_sign_in(&alice).await;
    browser
        .wait_text("registration", "ACTIVE", STEP_WITHIN)
        .await;
    browser.shot(&format!("{alice}-account-active")).await;
    browser.erase(&alice).await;
    assert_eq!(
        registrations_status(&dev, &alice).await,
        StatusCode::NOT_FOUND
    );
    browser.close().await;

    dev.stop().await;
}

/// Active liveness in the page: the steps are said one by one; a photo of the person held to
/// the camera is refused; the real head-turn clip, its poses shown as asked, signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_liveness_is_active_a_head_turn_signs_in_and_a_photo_does_not() {
    let shots = Screenshots::new("liveness");
    let driver = Driver::start().await;
    let test = TestStack::new().await;
    let dev = Dev::start(&test, &[("FACEGATE_LIVENESS_POLICY", "active")]).await;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let lin = format!("web-{run}-lin");
    let cameras = dev.dir.join("cameras");
    std::fs::create_dir_all(&cameras).expect("the cameras folder");
    let clip = Clip::load(&workspace_root().join("tests/fixtures/faces/clip")).expect("the clip");

    // He registers a photo of himself, then holds that photo to the camera to sign in: the
    // page asks for the steps, and whatever is captured, a photo is refused.
    let photo = fixture("lin_manuel_miranda_1.png");
    let browser = driver
        .browser(&camera_file(&cameras, "lin-photo", &photo), &shots)
        .await;
    browser.open(&dev.web_url).await;
    browser.sign_up(&lin).await;
    browser.register_face(&lin).await;
    browser.wait_text("status", "ACTIVE", ACTIVE_WITHIN).await;
    browser.click("#camera-cancel").await;
    browser.click("#signout").await;
    browser.start_face_sign_in(&lin).await;
    browser.click("#capture").await;
    let first = browser
        .wait_text("instruction", "Step 1 of 3", STEP_WITHIN)
        .await;
    browser.shot("photo-held-step-1").await;
    for step in 1..=3 {
        browser
            .wait_js(
                "(b => b.dataset.step && !b.disabled && !b.hidden)(document.getElementById('capture'))",
                "a step to capture",
            )
            .await;
        if step > 1 {
            let said = browser.text("instruction").await;
            assert!(said.contains(&format!("Step {step} of 3")), "{said}");
        }
        browser.click("#capture").await;
    }
    let said = browser
        .wait_text("problem", "2 tries left", STEP_WITHIN)
        .await;
    assert!(
        said.contains("live"),
        "the refusal says why plainly: {said}"
    );
    assert!(
        !said.contains('%') && !said.to_lowercase().contains("score"),
        "{said}"
    );
    browser.shot("photo-held-refused").await;
    browser.close().await;
    assert!(first.contains("Hold it, then press Capture"), "{first}");

    // The head-turn camera: each pose captured as it is asked, and he is signed in.
    let browser = driver
        .browser(&head_turn_camera(&cameras, &clip), &shots)
        .await;
    browser.open(&dev.web_url).await;
    browser.start_face_sign_in(&lin).await;
    browser.click("#capture").await;
    browser
        .wait_text("instruction", "Step 1 of 3", STEP_WITHIN)
        .await;
    let pressed = browser.follow_steps().await;
    let shown = browser.wait_text("signed-in-user", &lin, STEP_WITHIN).await;
    assert_eq!(shown, lin, "the page shows who the token says");
    assert!(pressed.iter().any(|s| s == "centre"), "{pressed:?}");
    assert!(pressed.iter().any(|s| s != "centre"), "{pressed:?}");
    browser.shot("head-turn-signed-in").await;
    browser.close().await;

    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_plainly_when_the_camera_is_refused_or_missing() {
    let shots = Screenshots::new("camera-errors");
    let driver = Driver::start().await;
    // The page's own files, with a config.json naming a pool: no Cognito call is made before
    // the camera starts.
    let page = static_page(&workspace_root().join("web")).await;
    for (camera, name, wanted) in [
        (
            Camera::Denied,
            "camera-refused",
            "Camera access was refused",
        ),
        (Camera::Missing, "no-camera", "camera"),
    ] {
        let browser = driver.browser_with(camera, &shots).await;
        browser.open(&page).await;
        browser.fill("face-username", "someone").await;
        browser.enter("face-username").await;
        let said = browser.wait_text("problem", wanted, STEP_WITHIN).await;
        assert!(said.contains("Try again"), "{said}");
        browser.shot(name).await;
        browser.close().await;
    }
}

/// `web/` and a `config.json` beside it, on a free port: the page without a stack.
async fn static_page(dir: &Path) -> String {
    let config = json!({
        "region": "us-east-1",
        "userPoolId": "us-east-1_NotUsed",
        "clientId": "not-used",
        "cognitoEndpoint": "http://127.0.0.1:9",
        "verifierUrl": "http://127.0.0.1:9",
    });
    let router = axum::Router::new()
        .route(
            "/config.json",
            axum::routing::get(move || {
                let config = config.clone();
                async move { axum::Json(config) }
            }),
        )
        .fallback_service(tower_http::services::ServeDir::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/")
}

/// Cognito refuses a face sign-in of `user` before any challenge (Define: locked).
async fn cognito_refuses_face_sign_in(test: &TestStack, user: &str) -> bool {
    let pool = UserPool::find(&test.clients.cognito, &test.names)
        .await
        .expect("the stack's user pool");
    let app = CognitoApp::new(test.clients.cognito.clone(), pool);
    match app.start_face_sign_in(user).await {
        Err(e) => e.cognito_code() == Some("NotAuthorizedException"),
        Ok(_) => false,
    }
}

/// The face engine's time per call, in milliseconds, from `facegate dev`'s JSON log (the engine
/// logs every answered call at debug level), in order, from byte `from` of the log on.
fn engine_calls(log: &Path, from: usize) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut calls = Vec::new();
    for line in text.get(from..).unwrap_or_default().lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = if entry.get("fields").is_some() {
            &entry["fields"]
        } else {
            &entry
        };
        if let (Some(op), Some(ms)) = (fields["operation"].as_str(), fields["elapsed_ms"].as_f64())
        {
            calls.push((op.to_string(), ms));
        }
    }
    calls
}

/// `cargo test --test web -- --ignored --nocapture`: 20 face sign-ins through the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on its own"]
async fn bench_face_sign_in_in_the_browser() {
    let shots = Screenshots::new("bench");
    let driver = Driver::start().await;
    let test = TestStack::new().await;
    let dev = Dev::start(
        &test,
        &[
            ("RUST_LOG", "info,facegate_engine=debug"),
            ("FACEGATE_LOG_FORMAT", "json"),
            ("FACEGATE_LIVENESS_POLICY", "off"),
        ],
    )
    .await;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = format!("bench-{run}");
    let cameras = dev.dir.join("cameras");
    std::fs::create_dir_all(&cameras).expect("the cameras folder");
    let browser = driver
        .browser(
            &camera_file(&cameras, "reg", &fixture("obama_1.jpg")),
            &shots,
        )
        .await;
    browser.open(&dev.web_url).await;
    browser.sign_up(&user).await;
    browser.register_face(&user).await;
    browser.wait_text("status", "ACTIVE", ACTIVE_WITHIN).await;
    browser.close().await;

    let browser = driver
        .browser(
            &camera_file(&cameras, "signin", &fixture("obama_2.jpg")),
            &shots,
        )
        .await;
    let log_from = std::fs::metadata(&dev.log).map_or(0, |m| m.len() as usize);
    let runs = 20;
    let mut parts: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for run in 0..runs {
        browser.open(&dev.web_url).await;
        browser.start_face_sign_in(&user).await;
        // The fake camera starts its loop again with every page: capture at a different
        // moment each run, so each run's photo is a frame of its own (new bytes, as a real
        // camera's; the same bytes again would be answered by the engine's cache).
        tokio::time::sleep(Duration::from_millis(150 * run as u64)).await;
        browser.click("#capture").await;
        browser
            .wait_text("signed-in-user", &user, STEP_WITHIN)
            .await;
        let timings = browser
            .client
            .execute("return window.facegateTimings;", vec![])
            .await
            .expect("the page's timings");
        for (name, ms) in timings.as_object().expect("timings") {
            parts
                .entry(name.clone())
                .or_default()
                .push(ms.as_f64().unwrap_or(0.0));
        }
    }
    browser.close().await;
    // Each Verify makes one DetectFaces and one SearchFacesByImage; nothing else calls the
    // engine while the runs go (registration is over).
    let calls = engine_calls(&dev.log, log_from);
    let cached = calls
        .iter()
        .filter(|(op, ms)| op == "DetectFaces" && *ms < 5.0)
        .count();
    println!("DetectFaces answered in under 5 ms (a repeated photo, from the cache): {cached}");
    let face: Vec<f64> = calls
        .iter()
        .filter(|(op, _)| op == "DetectFaces")
        .zip(calls.iter().filter(|(op, _)| op == "SearchFacesByImage"))
        .map(|((_, a), (_, b))| a + b)
        .collect();
    parts.insert("face work (engine, inside respond)".into(), face);
    let p50 = |values: &mut [f64]| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("face sign-in in headless Chromium, {runs} runs, p50 ms (from pressing Sign in):");
    for name in [
        "total",
        "capture",
        "initiate",
        "upload",
        "respond",
        "face work (engine, inside respond)",
    ] {
        match parts.get_mut(name) {
            Some(values) if !values.is_empty() => {
                println!("  {name:<36} {:>7.1}  (n={})", p50(values), values.len());
            }
            _ => println!("  {name:<36}     n/a"),
        }
    }
    dev.stop().await;
}
