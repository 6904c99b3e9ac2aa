// The facegate sign-in page: sign up, sign in with the password to register (or erase) a face,
// and sign in with the face (Cognito CUSTOM_AUTH). Configuration comes from config.json beside
// the page, never from this file. Every step is said in #status (aria-live) and every refusal
// in #problem (role=alert), plainly and without scores.
//
// A sign-in is one selfie, or, where the stack asks for active liveness, a short sequence of
// head poses (one frame each) said step by step; the challenge tells which.
//
// Timings of the last face sign-in are kept in `window.facegateTimings` (and as performance
// marks and measures named `signin:*`) for the browser benchmark: from the press that sends
// (the only press of a selfie, the last step's of a liveness sequence) to the answer.

import { CognitoError, UserPool, claims } from "./cognito.js";

const $ = (id) => document.getElementById(id);
const screens = ["start", "account", "confirm-erase", "camera", "signed-in"];

const state = {
  config: null,
  pool: null,
  // After a password sign-in: the person whose data the page may act on.
  me: null, // { username, accessToken }
  mode: null, // "register" | "signin"
  stream: null,
  signIn: null, // { username, challenge, failures }
};

const REASONS = {
  "no-face": "No face was found in the photo. Face the camera, inside the oval.",
  "multiple-faces": "More than one face is in the photo. Only you should be in the picture.",
  "extreme-pose": "Your head is turned or tilted too far. Look straight at the camera.",
  blurry: "The photo is blurry. Hold still, and clean the camera lens.",
  "too-dark": "The photo is too dark. Find more light: face a window or a lamp.",
  "too-bright": "The photo is too bright. Move out of direct light.",
  "face-too-small": "Your face is too small in the picture. Come closer, filling the oval.",
  duplicate: "This face is already registered to another account.",
  "not-an-image": "The photo could not be read. Try again.",
  "too-large": "The photo is too large. Try again.",
  "invalid-key": "The photo was sent to the wrong place. Try again.",
};

function show(screen) {
  for (const id of screens) $(id).hidden = id !== screen;
  const heading = $(screen).querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function say(text, ok = false) {
  $("status").textContent = text;
  $("status").classList.toggle("ok", ok);
}

function problem(text) {
  $("problem").textContent = text || "";
  $("problem").hidden = !text;
}

function busy(button, on) {
  if (button) {
    button.disabled = on;
    button.setAttribute("aria-busy", String(on));
  }
}

function whoLine() {
  $("who").hidden = !state.me;
  $("who").textContent = state.me ? `Signed in as ${state.me.username}` : "";
}

function cognitoProblem(err, what) {
  if (!(err instanceof CognitoError)) return `${what} failed: ${err.message}`;
  switch (err.code) {
    case "UsernameExistsException":
      return "That username is taken. Choose another one.";
    case "InvalidPasswordException":
      return "That password is too weak: use at least 8 characters, with upper and lower case letters, a digit and a symbol.";
    case "InvalidParameterException":
      return `${what} failed: ${err.message}`;
    case "UserLambdaValidationException":
      return "That username cannot be used: letters, digits, - and _ only.";
    case "NotAuthorizedException":
      return "Wrong username or password.";
    case "UserNotFoundException":
      return "Wrong username or password.";
    case "UserNotConfirmedException":
      return "This account is not confirmed yet.";
    case "TooManyRequestsException":
      return "Too many attempts. Wait a minute and try again.";
    case "NetworkError":
      return "The sign-in service cannot be reached. Check your connection and try again.";
    default:
      return `${what} failed: ${err.message}`;
  }
}

// --- The verifier's self-service routes (the person's own access token) -------------------

async function verifier(method, path, body) {
  let answer;
  try {
    answer = await fetch(`${state.config.verifierUrl.replace(/\/$/, "")}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${state.me.accessToken}`,
        ...(body ? { "Content-Type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
    });
  } catch {
    throw new Error("the facegate service cannot be reached");
  }
  const text = await answer.text();
  const json = text ? JSON.parse(text) : {};
  if (!answer.ok) {
    const err = new Error(json.error?.message || `HTTP ${answer.status}`);
    err.status = answer.status;
    err.code = json.error?.code;
    throw err;
  }
  return json;
}

async function upload(url, blob) {
  let answer;
  try {
    answer = await fetch(url, {
      method: "PUT",
      body: blob,
      headers: { "Content-Type": "image/jpeg" },
    });
  } catch {
    throw new Error("the photo could not be sent: the storage service cannot be reached");
  }
  if (!answer.ok) throw new Error(`the upload was refused (HTTP ${answer.status})`);
}

function describeRegistration(reg) {
  switch (reg.state) {
    case "ACTIVE":
      return "Your face is registered: you can sign in with it.";
    case "PENDING":
      return "Your photo is being checked…";
    case "INDEXED":
      return "Your face was found; checking it is not already registered to someone else…";
    case "REJECTED":
      return `Your photo was not accepted. ${(reg.reasons || []).map((r) => REASONS[r] || r).join(" ")}`;
    case "FAILED":
      return "Something went wrong on our side while checking your photo. Please try again.";
    case "REPLACED":
      return "This photo was replaced by a newer one.";
    default:
      return `State: ${reg.state}`;
  }
}

async function showRegistration() {
  const line = $("registration");
  line.textContent = "Checking your face registration…";
  try {
    const answer = await verifier("GET", `/v1/registrations/${encodeURIComponent(state.me.username)}`);
    const regs = answer.registrations || [];
    const current = [...regs].reverse().find((r) => r.state !== "REPLACED") || regs[regs.length - 1];
    line.replaceChildren();
    const badge = document.createElement("span");
    badge.className = `state state-${current.state}`;
    badge.textContent = current.state;
    line.append(badge, " — ", describeRegistration(current));
    $("register").textContent =
      current.state === "ACTIVE" ? "Register a new photo" : "Register my face";
  } catch (err) {
    if (err.status === 404) {
      line.textContent = "No face registered yet. Register one to sign in with your face.";
    } else {
      line.textContent = "";
      problem(`Your registration could not be read: ${err.message}`);
    }
  }
}

// --- The camera ----------------------------------------------------------------------------

function cameraProblem(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was refused. Allow the camera for this page in your browser's settings, then press Try again.";
    case "NotFoundError":
    case "OverconstrainedError":
    case "DevicesNotFoundError":
      return "No camera was found. Connect a camera, then press Try again.";
    case "NotReadableError":
    case "AbortError":
      return "The camera could not be started: another app may be using it. Close it, then press Try again.";
    default:
      return `The camera could not be started (${(err && err.message) || err}). Press Try again.`;
  }
}

async function startCamera() {
  stopCamera();
  problem("");
  $("snapshot").hidden = true;
  $("capture").hidden = false;
  $("capture").disabled = true;
  $("retry").hidden = true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    problem("This browser cannot use a camera on this page (it must be opened over https, or from localhost).");
    $("retry").hidden = false;
    return false;
  }
  say("Starting the camera…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (err) {
    say("");
    problem(cameraProblem(err));
    $("capture").hidden = true;
    $("retry").hidden = false;
    return false;
  }
  const video = $("preview");
  video.srcObject = state.stream;
  await video.play().catch(() => {});
  if (video.readyState < 2) {
    await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
  }
  $("capture").disabled = false;
  say(state.mode === "signin"
    ? "Camera ready. Look at the camera, then press Sign in."
    : "Camera ready. Look at the camera, then press Take photo.");
  $("capture").focus();
  return true;
}

function stopCamera() {
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
  }
  $("preview").srcObject = null;
}

/**
 * One frame of the preview as a JPEG, shown frozen while it is checked (`freeze`), or taken
 * with the preview left live (a liveness step, the next step following at once).
 */
async function capture({ freeze = true } = {}) {
  const video = $("preview");
  const canvas = freeze ? $("snapshot") : document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  canvas.hidden = !freeze;
  const blob = await new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no image"))), "image/jpeg", 0.92));
  await faceHint(canvas);
  return blob;
}

/**
 * Where the browser can find faces itself (the Shape Detection API), a face too small or off
 * centre is said before anything is sent. Elsewhere the server's quality gate says it.
 */
async function faceHint(canvas) {
  if (!("FaceDetector" in window)) return;
  try {
    const faces = await new window.FaceDetector({ maxDetectedFaces: 2 }).detect(canvas);
    if (faces.length !== 1) return;
    const box = faces[0].boundingBox;
    const cx = (box.x + box.width / 2) / canvas.width;
    const cy = (box.y + box.height / 2) / canvas.height;
    if (box.width / canvas.width < 0.15) say("Your face looks small: come a little closer.");
    else if (Math.abs(cx - 0.5) > 0.2 || Math.abs(cy - 0.5) > 0.25) say("Centre your face in the oval.");
  } catch {
    // A hint only.
  }
}

function progress(items) {
  const list = $("progress");
  list.replaceChildren(
    ...items.map(([text, how]) => {
      const li = document.createElement("li");
      li.textContent = text;
      if (how) li.className = how;
      return li;
    }),
  );
}

function afterPhoto() {
  // Freeze on the photo; "Try again" goes back to the live preview.
  $("capture").hidden = true;
  $("retry").hidden = false;
  $("retry").focus();
}

// --- Registering a face ---------------------------------------------------------------------

async function registerFace() {
  const button = $("capture");
  busy(button, true);
  problem("");
  try {
    say("Taking the photo…");
    const photo = await capture();
    progress([["Photo taken", "done"], ["Sending it…"]]);
    say("Sending your photo…");
    const slot = await verifier("POST", "/v1/registrations", {});
    await upload(slot.url, photo);
    stopCamera();
    progress([["Photo taken", "done"], ["Photo sent", "done"], ["Checking the photo: one face, light, sharpness…"]]);
    say("Checking your photo…");
    const reg = await waitForRegistration(slot.upload_id);
    if (reg.state === "ACTIVE") {
      progress([
        ["Photo taken", "done"], ["Photo sent", "done"], ["Photo checked", "done"],
        ["Not registered to anyone else", "done"], ["Face registered: ACTIVE", "done"],
      ]);
      say("ACTIVE: your face is registered. You can now sign in with it.", true);
    } else {
      progress([["Photo taken", "done"], ["Photo sent", "done"], [`Not accepted: ${reg.state}`, "failed"]]);
      say("");
      problem(describeRegistration(reg));
    }
    afterPhoto();
    $("retry").textContent = "Take another photo";
  } catch (err) {
    progress([]);
    say("");
    problem(`Your photo could not be registered: ${err.message}.`);
    afterPhoto();
  } finally {
    busy(button, false);
  }
}

async function waitForRegistration(uploadId) {
  const until = Date.now() + 90_000;
  let last = null;
  while (Date.now() < until) {
    try {
      const answer = await verifier("GET", `/v1/registrations/${encodeURIComponent(state.me.username)}`);
      const reg = (answer.registrations || []).find((r) => r.upload_id === uploadId);
      if (reg) {
        if (reg.state !== last) {
          last = reg.state;
          if (reg.state === "INDEXED") {
            progress([["Photo taken", "done"], ["Photo sent", "done"], ["Photo checked", "done"],
              ["Checking it is not registered to anyone else…"]]);
            say("Your face was found. Checking it is not registered to anyone else…");
          }
        }
        if (["ACTIVE", "REJECTED", "FAILED", "REPLACED"].includes(reg.state)) return reg;
      }
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
  throw new Error("checking took too long; look again in a minute");
}

// --- Signing in with the face ----------------------------------------------------------------

function mark(name) {
  performance.mark(`signin:${name}`);
}

function measure(timings, name, from, to) {
  const m = performance.measure(`signin:${name}`, `signin:${from}`, `signin:${to}`);
  timings[name] = m.duration;
}

// What each liveness step asks, in the person's own words. The preview is mirrored, as a
// mirror is: the server's `left` (the nose towards the image's left edge, as the camera sees
// it) is the person turning to their own right, which the preview shows towards its right.
const STEPS = {
  centre: { say: "Look straight at the camera.", short: "Look straight ahead", arrow: "●" },
  left: { say: "Turn your head to your right, towards the → side of the screen.", short: "Turn to your right", arrow: "→" },
  right: { say: "Turn your head to your left, towards the ← side of the screen.", short: "Turn to your left", arrow: "←" },
};

/** Presses of the sign-in button: the first asks Cognito for a challenge. */
async function faceSignIn() {
  const s = state.signIn;
  if (s.challenge?.steps) return captureStep();
  const button = $("capture");
  busy(button, true);
  problem("");
  performance.clearMarks();
  performance.clearMeasures();
  mark("press");
  const timings = {};
  try {
    if (!s.challenge) {
      say("Asking for a sign-in challenge…");
      s.challenge = await s.pool.startFaceSignIn(s.username);
    }
    mark("challenged");
    if (s.challenge.steps) {
      showStep();
      return;
    }
    say("Taking the photo…");
    const photo = await capture();
    mark("captured");
    say("Sending your photo…");
    await upload(s.challenge.url, photo);
    mark("uploaded");
    measure(timings, "initiate", "press", "challenged");
    measure(timings, "capture", "challenged", "captured");
    await answerChallenge(timings, "captured");
  } catch (err) {
    signInFailed(err);
  } finally {
    busy(button, false);
  }
}

/** Liveness: the step the person is asked for now, said and shown on the button. */
function showStep() {
  const s = state.signIn;
  const steps = s.challenge.steps;
  const i = s.frames.length;
  const step = STEPS[steps[i]] || { say: `Show the pose "${steps[i]}".`, short: steps[i], arrow: "" };
  $("instruction").textContent =
    `Step ${i + 1} of ${steps.length}: ${step.say} Hold it, then press Capture.`;
  $("step-arrow").textContent = step.arrow;
  $("step-arrow").hidden = false;
  const button = $("capture");
  button.textContent = i + 1 < steps.length ? `Capture step ${i + 1} of ${steps.length}` : "Capture and sign in";
  button.dataset.step = steps[i];
  progress(steps.map((name, k) =>
    [`${STEPS[name]?.short || name}`, k < i ? "done" : k === i ? "current" : ""]));
  say(`Step ${i + 1} of ${steps.length}: ${step.say}`);
  button.focus();
}

/** Liveness: one frame for the current step; after the last, the frames go and are judged. */
async function captureStep() {
  const s = state.signIn;
  const button = $("capture");
  busy(button, true);
  try {
    if (s.frames.length + 1 === s.challenge.steps.length) {
      performance.clearMarks();
      performance.clearMeasures();
      mark("press");
    }
    s.frames.push(await capture({ freeze: false }));
    if (s.frames.length < s.challenge.steps.length) {
      showStep();
      return;
    }
    mark("captured");
    delete button.dataset.step;
    $("step-arrow").hidden = true;
    say("Sending your frames…");
    await Promise.all(s.challenge.frameUrls.map((url, i) => upload(url, s.frames[i])));
    mark("uploaded");
    const timings = {};
    measure(timings, "capture", "press", "captured");
    await answerChallenge(timings, "captured");
  } catch (err) {
    signInFailed(err);
  } finally {
    busy(button, false);
  }
}

/** The challenge answered: signed in, or refused with the tries left said plainly. */
async function answerChallenge(timings, uploadFrom) {
  const s = state.signIn;
  say("Checking it is you…");
  let answer;
  try {
    answer = await s.pool.answer(s.challenge);
  } finally {
    mark("answered");
    measure(timings, "upload", uploadFrom, "uploaded");
    measure(timings, "respond", "uploaded", "answered");
    measure(timings, "total", "press", "answered");
    window.facegateTimings = timings;
  }
  if (answer.tokens) {
    stopCamera();
    const id = claims(answer.tokens.idToken);
    const access = claims(answer.tokens.accessToken);
    const username = id["cognito:username"] || access.username;
    state.signIn = null;
    $("signed-in-user").textContent = username;
    show("signed-in");
    say(`Signed in as ${username}.`, true);
    $("who").hidden = false;
    $("who").textContent = `Signed in as ${username}`;
    return;
  }
  const live = Boolean(s.challenge.steps);
  s.failures += 1;
  s.challenge = answer.next;
  s.frames = [];
  const left = Math.max(0, (state.config.maxAnswers || 3) - s.failures);
  say("");
  problem((live
    ? `That did not show ${s.username}'s registered face, live, following each step. `
    : `That does not look like the face registered for ${s.username}. `) +
    (left ? `${left} ${left === 1 ? "try" : "tries"} left. ` : "") +
    (live
      ? "Do each step as it is asked, in good light, inside the oval, and try again."
      : "Face the camera in good light, inside the oval, and try again."));
  progress([]);
  $("step-arrow").hidden = true;
  afterPhoto();
}

function signInFailed(err) {
  const s = state.signIn;
  stopCamera();
  say("");
  $("step-arrow").hidden = true;
  delete $("capture").dataset.step;
  const refused = err instanceof CognitoError &&
    (err.code === "NotAuthorizedException" || err.code === "UserNotFoundException");
  if (refused) {
    if (s.challenge && s.failures + 1 >= lockoutAfter()) {
      s.failures += 1;
      problem(`Sign-in refused: the face did not match ${s.failures} times. ` +
        `For your security, ${s.username} is now locked for ${lockoutMinutes()}. ` +
        "Try again later, or contact support if this was not you.");
    } else if (s.challenge) {
      problem("Sign-in refused: the face did not match. Start again to try once more.");
    } else {
      problem(`Face sign-in is not possible for ${s.username} right now: the account is locked after ` +
        "failed attempts, has no registered face yet, or does not exist.");
    }
  } else if (err instanceof CognitoError) {
    problem(cognitoProblem(err, "Sign-in"));
  } else {
    problem(`Sign-in did not complete: ${err.message}. Try again.`);
  }
  state.signIn = null;
  $("capture").hidden = true;
  $("retry").hidden = true;
  $("camera-cancel").textContent = "Back";
  $("camera-cancel").focus();
}

function lockoutAfter() {
  return state.config.lockout?.afterFailures ?? 3;
}

function lockoutMinutes() {
  const minutes = Math.round((state.config.lockout?.seconds ?? 900) / 60);
  return minutes === 1 ? "1 minute" : `${minutes} minutes`;
}

// --- Wiring ----------------------------------------------------------------------------------

function openCamera(mode) {
  state.mode = mode;
  progress([]);
  $("camera-cancel").textContent = "Cancel";
  $("retry").textContent = "Try again";
  $("camera-title").textContent = mode === "signin"
    ? `Sign in as ${state.signIn.username}`
    : "Register your face";
  $("capture").textContent = mode === "signin" ? "Sign in" : "Take photo";
  delete $("capture").dataset.step;
  $("step-arrow").hidden = true;
  $("instruction").textContent =
    "Look straight at the camera, your face inside the oval, in good light.";
  show("camera");
  return startCamera();
}

function leaveCamera() {
  stopCamera();
  progress([]);
  if (state.mode === "register" && state.me) {
    show("account");
    showRegistration();
  } else {
    state.signIn = null;
    show("start");
  }
  say("");
}

function signOut() {
  state.me = null;
  state.signIn = null;
  whoLine();
  problem("");
  show("start");
  say("Signed out.");
}

function value(id) {
  return $(id).value.trim();
}

function needFields(...ids) {
  for (const id of ids) {
    if (!value(id)) {
      problem(`Please fill in ${$(id).labels[0].textContent.toLowerCase()}.`);
      $(id).setAttribute("aria-invalid", "true");
      $(id).focus();
      return false;
    }
    $(id).removeAttribute("aria-invalid");
  }
  return true;
}

async function afterPasswordSignIn(username, tokens) {
  state.me = { username, accessToken: tokens.accessToken };
  // No password stays on the page once it has been used.
  for (const id of ["signup-password", "password-password"]) $(id).value = "";
  $("signup-box").open = false;
  $("password-box").open = false;
  whoLine();
  show("account");
  say(`Signed in as ${username} with your password.`);
  await showRegistration();
}

function wire() {
  $("signup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    problem("");
    if (!needFields("signup-username", "signup-password")) return;
    const username = value("signup-username");
    const password = $("signup-password").value;
    busy($("signup"), true);
    try {
      say("Creating your account…");
      const confirmed = await state.pool.signUp(username, password);
      if (!confirmed) {
        say("Account created. Confirm it with the code you were sent, then sign in.", true);
        return;
      }
      say("Account created. Signing you in…");
      const tokens = await state.pool.passwordSignIn(username, password);
      await afterPasswordSignIn(username, tokens);
    } catch (err) {
      say("");
      problem(cognitoProblem(err, "Creating the account"));
    } finally {
      busy($("signup"), false);
    }
  });

  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    problem("");
    if (!needFields("password-username", "password-password")) return;
    const username = value("password-username");
    busy($("password-signin"), true);
    try {
      say("Signing in…");
      const tokens = await state.pool.passwordSignIn(username, $("password-password").value);
      await afterPasswordSignIn(username, tokens);
    } catch (err) {
      say("");
      problem(cognitoProblem(err, "Sign-in"));
    } finally {
      busy($("password-signin"), false);
    }
  });

  $("face-form").addEventListener("submit", (event) => {
    event.preventDefault();
    problem("");
    if (!needFields("face-username")) return;
    state.signIn = {
      pool: state.pool, username: value("face-username"), challenge: null, failures: 0, frames: [],
    };
    openCamera("signin");
  });

  $("capture").addEventListener("click", () =>
    state.mode === "signin" ? faceSignIn() : registerFace());
  $("retry").addEventListener("click", async () => {
    progress([]);
    $("retry").textContent = "Try again";
    // A liveness challenge already drawn (after a refusal) asks its first step at once.
    if ((await startCamera()) && state.mode === "signin" && state.signIn?.challenge?.steps) {
      showStep();
    }
  });
  $("camera-cancel").addEventListener("click", leaveCamera);
  $("register").addEventListener("click", () => {
    problem("");
    openCamera("register");
  });
  $("erase").addEventListener("click", () => {
    problem("");
    show("confirm-erase");
  });
  $("erase-no").addEventListener("click", () => show("account"));
  $("erase-yes").addEventListener("click", async () => {
    busy($("erase-yes"), true);
    try {
      say("Erasing your data…");
      await verifier("DELETE", `/v1/users/${encodeURIComponent(state.me.username)}`);
      const who = state.me.username;
      // Then the account itself: the username is free again.
      let account = "and the account is deleted";
      try {
        await state.pool.deleteUser(state.me.accessToken);
      } catch (err) {
        account = `but the account could not be deleted (${cognitoProblem(err, "Deleting it")})`;
      }
      state.me = null;
      whoLine();
      show("start");
      say(`Your data is erased: ${who} has no face, photos or sign-in history here any more, ${account}.`, true);
    } catch (err) {
      say("");
      problem(`Your data could not be erased: ${err.message}. Try again.`);
    } finally {
      busy($("erase-yes"), false);
    }
  });
  $("signout").addEventListener("click", signOut);
  $("signout2").addEventListener("click", signOut);
}

async function main() {
  try {
    const answer = await fetch("config.json", { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    state.config = await answer.json();
    for (const key of ["userPoolId", "clientId", "verifierUrl"]) {
      if (!state.config[key]) throw new Error(`config.json has no ${key}`);
    }
  } catch (err) {
    problem(`This page is not configured (config.json: ${err.message}).`);
    return;
  }
  state.pool = new UserPool(state.config);
  wire();
  document.body.dataset.ready = "true";
}

main();
