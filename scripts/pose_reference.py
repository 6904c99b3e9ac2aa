#!/usr/bin/env python3
"""The independent head-pose reference: OpenCV's solvePnP on the five YuNet landmarks.

For every image: OpenCV's FaceDetectorYN (letterboxed exactly like the engine and
scripts/reference_pipeline.py) on the photo and on its mirror, the two runs averaged like the
engine does (measure::symmetrize), then cv2.solvePnP (SOLVEPNP_SQPNP, a globally optimal
solver, refined by solvePnPRefineLM) of the same mean head model and pinhole camera as
engine/src/face/measure.rs, turned into yaw, pitch and roll relative to the line of sight
with the engine's conventions.
Written as JSON: per image, the landmarks that went in and the angles that came out, plus the
same for the mirrored photo. The engine's test `pose_agrees_with_opencv_solvepnp` checks
both its solver (on these landmarks) and its whole pipeline (on the photos) against it.

    /tmp/venv/bin/python scripts/pose_reference.py IMAGE... > tests/fixtures/faces/pose_reference.json

Needs opencv-python-headless (scripts/requirements-bench.txt) and numpy, and the models in
.facegate/models.
"""

import json
import pathlib
import sys

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference_pipeline  # noqa: E402  (the same detector set-up and letterbox)

NOSE_DEPTH = 0.45
# engine/src/face/measure.rs HEAD_MODEL: eye distance 1, x right, y down, z away from camera.
HEAD_MODEL = np.array([
    [-0.5, 0.0, 0.0],
    [0.5, 0.0, 0.0],
    [0.0, 0.51, -NOSE_DEPTH],
    [-0.454, 0.96, 0.0],
    [0.454, 0.96, 0.0],
], np.float64)


def camera(width, height):
    focal = float(max(width, height))
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], np.float64)


def angles(rotation):
    """(yaw, pitch, roll) in degrees for R = Rz(roll) . Ry(-yaw) . Rx(-pitch)."""
    r = rotation
    yaw = np.degrees(np.arcsin(np.clip(r[2, 0], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def towards_camera(tvec):
    """The rotation taking the optical axis onto the line of sight to the head (the smallest
    one): a head facing the lens from off the image's centre is turned by exactly this."""
    t = np.asarray(tvec, np.float64).reshape(3)
    t = t / np.linalg.norm(t)
    axis = np.cross([0.0, 0.0, 1.0], t)
    sin = np.linalg.norm(axis)
    if sin < 1e-12:
        return np.eye(3)
    angle = np.arctan2(sin, t[2])
    rotation, _ = cv2.Rodrigues(axis / sin * angle)
    return rotation


def solve(landmarks, width, height):
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    k = camera(width, height)
    ok, rvec, tvec = cv2.solvePnP(HEAD_MODEL, points, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise RuntimeError("solvePnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(HEAD_MODEL, points, k, None, rvec, tvec)
    rotation, _ = cv2.Rodrigues(rvec)
    # The pose relative to the line of sight, as the engine reports it.
    yaw, pitch, roll = angles(towards_camera(tvec).T @ rotation)
    projected, _ = cv2.projectPoints(HEAD_MODEL, rvec, tvec, k, None)
    eyes = np.linalg.norm(points[1] - points[0])
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(5, 2) - points) ** 2, axis=1))) / eyes)
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "rms_error": rms}


def unmirror(face, width):
    """A mirror-run detection (15 floats) in the photo's pixels, landmarks back in order."""
    out = face.copy()
    out[0] = width - face[0] - face[2]
    pts = face[4:14].reshape(5, 2).copy()
    pts[:, 0] = width - pts[:, 0]
    out[4:14] = pts[[1, 0, 2, 4, 3]].reshape(-1)
    return out


def iou(a, b):
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def symmetric_largest(pipeline, image):
    """The largest face of the photo, averaged with the same face in the mirror's run."""
    width = image.shape[1]
    faces = pipeline.detect(image)
    if len(faces) == 0:
        return None
    face = faces[0]
    mirrored = [unmirror(f, width) for f in pipeline.detect(cv2.flip(image, 1))]
    best = max(mirrored, key=lambda m: iou(face, m), default=None)
    if best is not None and iou(face, best) >= 0.5:
        face = (face + best) / 2.0
    return face


def main():
    pipeline = reference_pipeline.Pipeline()
    report = {"opencv": cv2.__version__, "solver": "SOLVEPNP_SQPNP + solvePnPRefineLM",
              "images": {}}
    for path in sys.argv[1:]:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        entry = {}
        for label, picture in (("photo", image), ("mirror", cv2.flip(image, 1))):
            face = symmetric_largest(pipeline, picture)
            if face is None:
                entry[label] = None
                continue
            landmarks = [float(v) for v in face[4:14]]
            entry[label] = {"width": width, "height": height, "landmarks": landmarks,
                            **solve(landmarks, width, height)}
        report["images"][pathlib.Path(path).parent.name + "/" + pathlib.Path(path).name] = entry
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
