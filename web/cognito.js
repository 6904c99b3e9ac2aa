// The Cognito user pool, through Cognito's own JSON API (SignUp, InitiateAuth,
// RespondToAuthChallenge) with fetch, and the password sign-in (USER_SRP_AUTH) through the
// vendored amazon-cognito-identity-js, whose SRP proof is not worth writing again.

/** A refusal from Cognito, by its code (`NotAuthorizedException`, ...). */
export class CognitoError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "CognitoError";
    this.code = code;
  }
}

/** Tokens kept in memory only: closing the tab signs out. */
class MemoryStorage {
  constructor() { this.items = new Map(); }
  setItem(key, value) { this.items.set(key, String(value)); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  removeItem(key) { this.items.delete(key); }
  clear() { this.items.clear(); }
}

/** The claims of a JWT, read without checking it (the verifier checks tokens it is given). */
export function claims(jwt) {
  const part = jwt.split(".")[1] || "";
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

export class UserPool {
  /** `config`: `{ region, userPoolId, clientId, cognitoEndpoint }` from config.json. */
  constructor(config) {
    this.config = config;
    this.endpoint =
      config.cognitoEndpoint || `https://cognito-idp.${config.region}.amazonaws.com/`;
  }

  async call(operation, body) {
    let answer;
    try {
      answer = await fetch(this.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${operation}`,
        },
        body: JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new CognitoError("NetworkError", "The sign-in service cannot be reached.");
    }
    const text = await answer.text();
    const json = text ? JSON.parse(text) : {};
    if (!answer.ok) {
      const type = String(json.__type || json.code || `HTTP${answer.status}`);
      throw new CognitoError(type.split("#").pop(), json.message || json.Message);
    }
    return json;
  }

  /** `SignUp`: true when the account is confirmed at once (the local stack's PreSignUp). */
  async signUp(username, password) {
    const answer = await this.call("SignUp", {
      ClientId: this.config.clientId,
      Username: username,
      Password: password,
    });
    return Boolean(answer.UserConfirmed);
  }

  /** `USER_SRP_AUTH`: the password proof, for the person's own data. Resolves to tokens. */
  passwordSignIn(username, password) {
    const sdk = globalThis.AmazonCognitoIdentity;
    if (!sdk) {
      return Promise.reject(new CognitoError("NotLoaded", "The sign-in library did not load."));
    }
    const storage = new MemoryStorage();
    const pool = new sdk.CognitoUserPool({
      UserPoolId: this.config.userPoolId,
      ClientId: this.config.clientId,
      endpoint: this.endpoint,
      Storage: storage,
    });
    const user = new sdk.CognitoUser({ Username: username, Pool: pool, Storage: storage });
    user.setAuthenticationFlowType("USER_SRP_AUTH");
    const details = new sdk.AuthenticationDetails({ Username: username, Password: password });
    return new Promise((resolve, reject) => {
      user.authenticateUser(details, {
        onSuccess: (session) =>
          resolve({
            accessToken: session.getAccessToken().getJwtToken(),
            idToken: session.getIdToken().getJwtToken(),
          }),
        onFailure: (err) => reject(new CognitoError(err.code || err.name, err.message)),
        newPasswordRequired: () =>
          reject(new CognitoError("NewPasswordRequired", "A new password is required.")),
      });
    });
  }

  /** `DeleteUser`: the account itself, with its own access token. */
  async deleteUser(accessToken) {
    await this.call("DeleteUser", { AccessToken: accessToken });
  }

  /** Starts a face sign-in (`CUSTOM_AUTH`): the first challenge. */
  async startFaceSignIn(username) {
    const answer = await this.call("InitiateAuth", {
      AuthFlow: "CUSTOM_AUTH",
      ClientId: this.config.clientId,
      AuthParameters: { USERNAME: username },
    });
    return faceChallenge(username, answer);
  }

  /**
   * Answers a face challenge with its key: `{ tokens }` when signed in, `{ next }` (the next
   * challenge) after a wrong face with tries left; a refusal that ends the sign-in throws
   * Cognito's `NotAuthorizedException`.
   */
  async answer(challenge) {
    const answer = await this.call("RespondToAuthChallenge", {
      ChallengeName: "CUSTOM_CHALLENGE",
      ClientId: this.config.clientId,
      Session: challenge.session,
      ChallengeResponses: { USERNAME: challenge.username, ANSWER: challenge.key },
      // The verifier counts failed liveness checks per device (and per source address).
      ClientMetadata: { deviceId: deviceId() },
    });
    if (answer.AuthenticationResult) {
      return {
        tokens: {
          accessToken: answer.AuthenticationResult.AccessToken,
          idToken: answer.AuthenticationResult.IdToken,
        },
      };
    }
    return { next: faceChallenge(challenge.username, answer) };
  }
}

/**
 * A face challenge as the page uses it. A single-selfie challenge has one upload `url`; an
 * active-liveness challenge has `steps` (the poses asked, in order: `centre`, `left`,
 * `right`) and one upload URL per step in `frameUrls`.
 */
/**
 * This browser's device id: random, made once and kept in localStorage (a fresh one each
 * time where storage is refused). It is the client's own claim; the per-source limit holds
 * for a client that changes it.
 */
export function deviceId() {
  const KEY = "facegate-device-id";
  try {
    let id = localStorage.getItem(KEY);
    if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      id = crypto.randomUUID().replaceAll("-", "");
      localStorage.setItem(KEY, id);
    }
    return id;
  } catch {
    return crypto.randomUUID().replaceAll("-", "");
  }
}

function faceChallenge(username, answer) {
  const p = answer.ChallengeParameters || {};
  if (p.livenessSessionId) {
    // FACEGATE_LIVENESS_POLICY=aws-face-liveness: AWS's FaceLivenessDetector answers it.
    throw new CognitoError(
      "UnsupportedChallenge",
      "This sign-in asks for Amazon's Face Liveness check, which this page does not run.",
    );
  }
  const steps = p.steps ? p.steps.split(",") : null;
  const frameUrls = steps ? steps.map((_, i) => p[`frame${i + 1}Url`]) : null;
  const complete = steps ? frameUrls.every(Boolean) : Boolean(p.url);
  if (answer.ChallengeName !== "CUSTOM_CHALLENGE" || !p.key || !complete) {
    throw new CognitoError("UnexpectedChallenge", `Unexpected challenge ${answer.ChallengeName}.`);
  }
  return {
    username,
    session: answer.Session,
    url: p.url || null,
    steps,
    frameUrls,
    key: p.key,
    expiry: p.expiry,
  };
}
