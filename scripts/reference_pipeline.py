#!/usr/bin/env python3
"""The reference face pipeline: OpenCV's FaceDetectorYN + FaceRecognizerSF on the same two ONNX
files the Rust engine uses (.facegate/models/), doing the same work per photo:

    decode  cv2.imdecode (EXIF orientation applied, like the engine)
    detect  letterbox into 640x640 (INTER_LINEAR resize, zero padding bottom/right), YuNet,
            boxes and landmarks mapped back to the original image
    align   FaceRecognizerSF.alignCrop of every face (similarity transform, 112x112)
    embed   FaceRecognizerSF.feature of every face, L2-normalised

Two uses:
    bench  IMAGE... [--iterations N]   per-stage and end-to-end p50/p99 in ms, as JSON
           (also SFace alone through onnxruntime's Python API, "embed_onnxruntime", when
           onnxruntime is installed: the speed the engine's embedder is held to)
    embed  IMAGE...                    each photo's faces (box, score, 128-d embedding), as JSON,
                                       to cross-check the Rust embeddings

Needs opencv-python-headless (scripts/requirements-bench.txt) in .venv:
    .venv/bin/pip install -r scripts/requirements-bench.txt
OpenCV runs on one thread by default (--threads), like each of the engine's sessions.
"""

import argparse
import json
import pathlib
import sys
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / ".facegate" / "models"
DETECTOR = MODELS / "face_detection_yunet_2023mar.onnx"
EMBEDDER = MODELS / "face_recognition_sface_2021dec.onnx"
# YuNet's fixed input side, the engine's score threshold (confidence 50 on its scale) and
# OpenCV FaceDetectorYN's NMS defaults.
SIDE = 640
SCORE_THRESHOLD = 0.8
NMS_THRESHOLD = 0.3
TOP_K = 5000


class Pipeline:
    def __init__(self):
        self.detector = cv2.FaceDetectorYN.create(
            str(DETECTOR), "", (SIDE, SIDE), SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K
        )
        self.recognizer = cv2.FaceRecognizerSF.create(str(EMBEDDER), "")

    def decode(self, data):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("not a decodable image")
        return image

    def detect(self, image):
        height, width = image.shape[:2]
        scale = min(SIDE / width, SIDE / height)
        scaled_w = max(1, min(SIDE, round(width * scale)))
        scaled_h = max(1, min(SIDE, round(height * scale)))
        resized = cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)
        canvas = cv2.copyMakeBorder(
            resized, 0, SIDE - scaled_h, 0, SIDE - scaled_w, cv2.BORDER_CONSTANT, value=0
        )
        _, faces = self.detector.detect(canvas)
        if faces is None:
            return np.zeros((0, 15), np.float32)
        faces = faces.copy()
        faces[:, 0:14:2] *= width / scaled_w
        faces[:, 1:14:2] *= height / scaled_h
        # Largest first, like the engine.
        order = np.argsort(-(faces[:, 2] * faces[:, 3]), kind="stable")
        return faces[order]

    def align(self, image, faces):
        return [self.recognizer.alignCrop(image, face) for face in faces]

    def embed(self, crops):
        out = []
        for crop in crops:
            feature = self.recognizer.feature(crop).reshape(-1).astype(np.float64)
            out.append(feature / np.linalg.norm(feature))
        return out

    def run(self, data):
        """Run all four stages, returning (faces, embeddings, seconds per stage)."""
        c0 = time.process_time()
        t0 = time.perf_counter()
        image = self.decode(data)
        t1 = time.perf_counter()
        faces = self.detect(image)
        t2 = time.perf_counter()
        crops = self.align(image, faces)
        t3 = time.perf_counter()
        embeddings = self.embed(crops)
        t4 = time.perf_counter()
        stages = {"decode": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "embed": t4 - t3,
                  "total": t4 - t0, "cpu": time.process_time() - c0}
        return faces, embeddings, stages


def percentile(samples, q):
    """Nearest-rank percentile (the same definition as the Rust bench)."""
    ordered = sorted(samples)
    rank = max(1, int(np.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def onnxruntime_embedder(threads):
    """SFace in onnxruntime's own Python API (one session, `threads` intra-op threads), the
    speed the engine's embedder is held to; None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(EMBEDDER), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(crops):
        for crop in crops:
            blob = cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True)
            session.run(None, {name: blob})
    return run


def bench(pipeline, paths, iterations, warmup, threads=1):
    report = {"opencv": cv2.__version__, "threads": cv2.getNumThreads(),
              "iterations": iterations, "images": {}}
    for path in paths:
        data = pathlib.Path(path).read_bytes()
        for _ in range(warmup):
            pipeline.run(data)
        samples = {}
        faces = 0
        for _ in range(iterations):
            found, _, stages = pipeline.run(data)
            faces = len(found)
            for stage, seconds in stages.items():
                samples.setdefault(stage, []).append(seconds * 1000.0)
        image = pipeline.decode(data)
        ort_embed = onnxruntime_embedder(threads)
        if ort_embed is not None:
            crops = pipeline.align(image, pipeline.detect(image))
            for _ in range(warmup):
                ort_embed(crops)
            for _ in range(iterations):
                t0 = time.perf_counter()
                ort_embed(crops)
                samples.setdefault("embed_onnxruntime", []).append(
                    (time.perf_counter() - t0) * 1000.0)
        report["images"][str(path)] = {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "faces": faces,
            "ms": {stage: {"p50": percentile(v, 50), "p99": percentile(v, 99)}
                   for stage, v in samples.items()},
        }
    return report


def embed(pipeline, paths):
    report = {"opencv": cv2.__version__, "images": {}}
    for path in paths:
        faces, embeddings, _ = pipeline.run(pathlib.Path(path).read_bytes())
        report["images"][pathlib.Path(path).name] = [
            {"box": [float(v) for v in face[0:4]],
             "landmarks": [float(v) for v in face[4:14]],
             "score": float(face[14]),
             "embedding": [round(float(v), 7) for v in embedding]}
            for face, embedding in zip(faces, embeddings)
        ]
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["bench", "embed"])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (default 1, like one engine session)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    pipeline = Pipeline()
    if args.command == "bench":
        result = bench(pipeline, args.images, args.iterations, args.warmup, args.threads)
    else:
        result = embed(pipeline, args.images)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
