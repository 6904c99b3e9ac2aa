#!/usr/bin/env python3
"""Render a Kustomize overlay of deploy/k8s/ without the kustomize binary.

Neither Debian (bookworm's kubectl is 1.20, with a Kustomize too old for `patches` and
`labels`) nor PyPI ships a current Kustomize, so `deploy/validate.sh` renders with this script.
It implements exactly the Kustomize features deploy/k8s uses, with Kustomize's semantics, and
refuses anything else instead of rendering it wrongly:

- `resources`: YAML files (several documents each) and directories holding a kustomization.yaml
  (rendered recursively, as Kustomize does);
- `patches`: JSON 6902 patches (a YAML list of operations), inline (`patch`) or from a file
  (`path`), with a `target` of `kind` and/or `name` (and optionally `group`, `version`,
  `namespace`);
- `namespace`: sets metadata.namespace of every namespaced resource;
- `labels` with `pairs` (and `includeSelectors`/`includeTemplates` false, the default): added
  to metadata.labels;
- `images`: `name` -> `newName` / `newTag` / `digest` in every container and init container.

They are applied in Kustomize's order (patches, namespace, labels, images). When `kubectl` is
installed, `validate.sh` also renders with `kubectl kustomize` and checks that both agree.

Usage: render.py <overlay directory>   (writes the manifests to stdout, as `---` documents)
"""

import copy
import os
import sys

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images"}
# Kinds that are not namespaced (the built-in ones this renderer could meet).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ClusterTriggerAuthentication",
}


class RenderError(Exception):
    pass


def load_kustomization(directory):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                kustomization = yaml.safe_load(f) or {}
            unknown = set(kustomization) - KNOWN_FIELDS
            if unknown:
                raise RenderError(f"{path}: unsupported Kustomize fields {sorted(unknown)}")
            return kustomization
    raise RenderError(f"{directory}: no kustomization.yaml")


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise RenderError(f"{path}: every document must be a resource with kind and metadata")
    return docs


def matches(resource, target):
    group, _, version = resource["apiVersion"].rpartition("/")
    checks = {
        "kind": resource["kind"],
        "name": resource["metadata"].get("name"),
        "namespace": resource["metadata"].get("namespace"),
        "group": group,
        "version": version,
    }
    for key, value in target.items():
        if key not in checks:
            raise RenderError(f"unsupported patch target field {key!r}")
        if checks[key] != value:
            return False
    return True


def pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def walk(doc, parts):
    node = doc
    for part in parts:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                raise RenderError(f"path element {part!r} not found")
            node = node[part]
        else:
            raise RenderError(f"path element {part!r} not found")
    return node


def apply_op(doc, op):
    kind = op.get("op")
    parts = pointer(op.get("path", ""))
    if not parts:
        raise RenderError("patching the whole document is not supported")
    parent = walk(doc, parts[:-1])
    last = parts[-1]
    if kind in ("add", "replace"):
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, value)
            else:
                parent[index] = value
        else:
            if kind == "replace" and last not in parent:
                raise RenderError(f"replace: {op['path']} does not exist")
            parent[last] = value
    elif kind == "remove":
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            if last not in parent:
                raise RenderError(f"remove: {op['path']} does not exist")
            del parent[last]
    elif kind == "test":
        if walk(doc, parts) != op["value"]:
            raise RenderError(f"test failed at {op['path']}")
    else:
        raise RenderError(f"unsupported JSON patch operation {kind!r}")


def apply_patches(resources, patches, directory):
    for patch in patches:
        unknown = set(patch) - {"target", "patch", "path"}
        if unknown:
            raise RenderError(f"unsupported patch fields {sorted(unknown)}")
        if "path" in patch:
            with open(os.path.join(directory, patch["path"]), encoding="utf-8") as f:
                text = f.read()
        else:
            text = patch["patch"]
        ops = yaml.safe_load(text)
        if not isinstance(ops, list):
            raise RenderError("only JSON 6902 patches (a list of operations) are supported")
        target = patch.get("target")
        if not target:
            raise RenderError("a JSON 6902 patch needs a target")
        hits = [r for r in resources if matches(r, target)]
        if not hits:
            raise RenderError(f"patch target {target} matches no resource")
        for resource in hits:
            for op in ops:
                try:
                    apply_op(resource, op)
                except (RenderError, KeyError, IndexError, ValueError) as e:
                    name = f"{resource['kind']}/{resource['metadata'].get('name')}"
                    raise RenderError(f"patch {op} on {name}: {e}") from e


def set_labels(resources, entries):
    for entry in entries:
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise RenderError("labels with includeSelectors/includeTemplates are not supported")
        unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
        if unknown:
            raise RenderError(f"unsupported labels fields {sorted(unknown)}")
        for resource in resources:
            labels = resource["metadata"].setdefault("labels", {}) or {}
            labels.update({k: str(v) for k, v in entry["pairs"].items()})
            resource["metadata"]["labels"] = labels


def pod_specs(resource):
    spec = resource.get("spec") or {}
    if resource["kind"] == "Pod":
        yield spec
    template = spec.get("template") or {}
    if "spec" in template:
        yield template["spec"]
    job = (spec.get("jobTemplate") or {}).get("spec", {}).get("template", {})
    if "spec" in job:
        yield job["spec"]


def image_name(image):
    if "@" in image:
        return image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def set_images(resources, images):
    for entry in images:
        unknown = set(entry) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise RenderError(f"unsupported images fields {sorted(unknown)}")
        for resource in resources:
            for spec in pod_specs(resource):
                for container in spec.get("containers", []) + spec.get("initContainers", []):
                    image = container.get("image", "")
                    if image_name(image) != entry["name"]:
                        continue
                    name = entry.get("newName", entry["name"])
                    if "digest" in entry:
                        container["image"] = f"{name}@{entry['digest']}"
                    elif "newTag" in entry:
                        container["image"] = f"{name}:{entry['newTag']}"
                    else:
                        rest = image[len(image_name(image)):]
                        container["image"] = name + rest


def render(directory):
    kustomization = load_kustomization(directory)
    resources = []
    for entry in kustomization.get("resources", []):
        path = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(path):
            resources.extend(render(path))
        elif os.path.isfile(path):
            resources.extend(load_documents(path))
        else:
            raise RenderError(f"{directory}: resource {entry!r} not found")
    seen = set()
    for r in resources:
        key = (r["apiVersion"], r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])
        if key in seen:
            raise RenderError(f"{directory}: resource {key} defined twice")
        seen.add(key)
    apply_patches(resources, kustomization.get("patches", []), directory)
    if "namespace" in kustomization:
        for r in resources:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = kustomization["namespace"]
    set_labels(resources, kustomization.get("labels", []))
    set_images(resources, kustomization.get("images", []))
    return resources


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        resources = render(argv[1])
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(resources, sort_keys=False, explicit_start=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
