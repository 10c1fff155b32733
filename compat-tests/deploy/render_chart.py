"""Lints and renders a Helm chart, and validates every rendered object against the Kubernetes schemas.

    python render_chart.py CHART_DIR VALUES_JSON RELEASE NAMESPACE KUBE_VERSION...

VALUES_JSON is a file of values (JSON) or "-" for the chart's defaults. Helm is its Go library, in
the `helm-python-sdk` wheel (import name helm_python); the schemas are those `kubernetes-validate`
ships, checked strictly (unknown fields are errors). Prints one JSON object on stdout:

    {"helm": "v4.x", "lint": {"messages": [...], "errors": [...]},
     "notes": "...", "objects": [{"template": ..., "object": {...}}, ...],
     "invalid": ["Kind/name against 1.28: path: reason", ...],
     "secrets": {"NAME": {"KEY": "decoded value", ...}, ...}}

and exits 0; a chart that does not render exits 2 with Helm's message on stderr. Used by
compat-tests/tests/deploy.rs; scripts/deps/helm.sh installs both packages.
"""

import base64
import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml


def validate(obj, versions):
    """The schema errors of one object, one line each (empty when it is valid for every version)."""
    name = "%s/%s" % (obj.get("kind"), obj.get("metadata", {}).get("name"))
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append("%s against %s: %s: %s" % (name, version, path, e.message))
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append("%s: %s" % (name, e.message))
    return problems


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    chart_dir, values_file, release, namespace = sys.argv[1:5]
    versions = sys.argv[5:]
    values = None
    if values_file != "-":
        with open(values_file) as f:
            values = json.load(f)

    lint = helm.lint(chart_dir, values, strict=True, namespace=namespace,
                     kube_version="v%s.0" % versions[0])
    try:
        with helm.Chart.load(chart_dir) as chart:
            manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    except helm.HelmError as e:
        print("helm: %s" % e, file=sys.stderr)
        sys.exit(2)

    objects, invalid, secrets, notes = [], [], {}, ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in yaml.safe_load_all(text):
            if not obj:
                continue
            objects.append({"template": template, "object": obj})
            invalid.extend(validate(obj, versions))
            if obj.get("kind") == "Secret":
                data = obj.get("data") or {}
                secrets[obj["metadata"]["name"]] = {
                    key: base64.b64decode(value).decode() for key, value in data.items()
                }

    json.dump({
        "helm": helm.helm_sdk_version(),
        "lint": lint,
        "notes": notes,
        "objects": objects,
        "invalid": invalid,
        "secrets": secrets,
    }, sys.stdout)


if __name__ == "__main__":
    main()
