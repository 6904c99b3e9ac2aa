#!/usr/bin/env python3
"""Validate rendered deploy/k8s manifests.

1. `kubernetes-validate --strict` (PyPI) on every document: built-in kinds are checked against
   the Kubernetes OpenAPI schema of KUBERNETES_VERSION, rejecting unknown fields. It has no
   schema for custom resources and only warns "Couldn't find schema" for them: that warning is
   accepted for KEDA's kinds alone (ScaledObject, TriggerAuthentication) and fails for any other
   kind, so a typo in a built-in apiVersion cannot slip through as "unknown".
2. KEDA's kinds are validated against KEDA's CRD schema as the PyPI package
   `cloudcoil.models.keda` ships it (pydantic models generated from the CRDs): types, enums and
   required fields by the model, unknown fields by checking that the document survives a
   validate/dump round trip unchanged (the models themselves ignore extra fields).
3. Cross-references the schemas cannot see: each ScaledObject scales a Deployment of the render
   and uses a TriggerAuthentication of the render; each Deployment's service account and
   ConfigMap exist; each pod runs non-root, read-only, without capabilities, with probes and
   resources; the grace period leaves room for the worker's drain; a PodDisruptionBudget selects
   every Deployment's pods (the engine's too, in the overlay that runs it).

Usage: check.py <kubernetes version> <rendered.yaml>...
"""

import subprocess
import sys

import yaml

KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def run_kubernetes_validate(version, files):
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files],
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    problems = []
    passed = 0
    for line in output.splitlines():
        if line.startswith("INFO") and " passed for resource " in line:
            passed += 1
        elif "Couldn't find schema for kind" in line:
            kind = line.split("Couldn't find schema for kind ", 1)[1].split()[0]
            if kind not in KEDA_KINDS:
                problems.append(line)
        elif line.strip():
            problems.append(line)
    if proc.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {proc.returncode}")
    return passed, problems


def check_keda(doc):
    from cloudcoil.models.keda import v1alpha1

    model = getattr(v1alpha1, doc["kind"])
    try:
        parsed = model.model_validate(doc)
    except Exception as e:  # pydantic.ValidationError
        return [f"{doc['kind']}/{doc['metadata']['name']}: {e}"]
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if dumped != doc:
        return [f"{doc['kind']}/{doc['metadata']['name']}: fields unknown to KEDA's schema "
                f"(document changes in a round trip: {diff(doc, dumped)})"]
    return []


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return diff(a.get(key), b.get(key), f"{path}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return diff(x, y, f"{path}/{i}")
    return path or "/"


def check_references(docs):
    problems = []
    names = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}

    def has(kind, namespace, name):
        return (kind, namespace, name) in names

    for d in docs:
        ns, name = d["metadata"].get("namespace"), d["metadata"]["name"]
        where = f"{d['kind']}/{name}"
        if d["kind"] == "ScaledObject":
            target = d["spec"]["scaleTargetRef"]
            if target.get("kind", "Deployment") != "Deployment" or not has("Deployment", ns, target["name"]):
                problems.append(f"{where}: scales {target['name']}, not a Deployment of the render")
            for trigger in d["spec"]["triggers"]:
                ref = trigger.get("authenticationRef", {}).get("name")
                if ref and not has("TriggerAuthentication", ns, ref):
                    problems.append(f"{where}: TriggerAuthentication {ref} missing")
        if d["kind"] != "Deployment":
            continue
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        budgets = [b for b in docs if b["kind"] == "PodDisruptionBudget"
                   and b["metadata"].get("namespace") == ns
                   and b["spec"].get("selector", {}).get("matchLabels")
                   and b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        if not budgets:
            problems.append(f"{where}: no PodDisruptionBudget selects its pods")
        pod = d["spec"]["template"]["spec"]
        sa = pod.get("serviceAccountName")
        if not sa or not has("ServiceAccount", ns, sa):
            problems.append(f"{where}: service account {sa} missing")
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod must run non-root with seccomp RuntimeDefault")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]):
                problems.append(f"{cw}: needs readOnlyRootFilesystem, no privilege escalation, drop ALL")
            if not (c.get("readinessProbe") and c.get("livenessProbe")):
                problems.append(f"{cw}: needs readiness and liveness probes")
            res = c.get("resources", {})
            if not (res.get("requests") and res.get("limits")):
                problems.append(f"{cw}: needs resource requests and limits")
            for source in c.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                if ref and not has("ConfigMap", ns, ref):
                    problems.append(f"{cw}: ConfigMap {ref} missing")
                    continue
                drain = next((int(cm["data"].get("FACEGATE_WORKER_DRAIN_SECS", 20))
                              for cm in docs if cm["kind"] == "ConfigMap"
                              and cm["metadata"]["name"] == ref), 20)
                if drain >= grace:
                    problems.append(f"{cw}: drain {drain}s does not fit the {grace}s grace period")
    return problems


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    version, files = argv[1], argv[2:]
    passed, problems = run_kubernetes_validate(version, files)
    keda = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            if d["apiVersion"].startswith("keda.sh/") and d["kind"] in KEDA_KINDS:
                keda += 1
                problems += [f"{path}: {p}" for p in check_keda(d)]
        problems += [f"{path}: {p}" for p in check_references(docs)]
    for p in problems:
        print(f"FAIL {p}")
    print(f"[k8s] kubernetes-validate --strict (Kubernetes {version}): {passed} built-in resources "
          f"passed; KEDA CRD schema: {keda} resources checked; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
