#!/usr/bin/env bash
# Checks the deployment files without a cluster or a container engine
# (test.sh runs it): every Kubernetes manifest against the Kubernetes API
# schemas (kubernetes-validate, strict: unknown fields fail), the kustomize
# rendering too when kubectl is present, the release version written the
# same everywhere, the Dockerfile with hadolint, and compose.yaml against the
# Compose specification's schema (and parsed by podman-compose when podman
# is installed). The tools live in a venv under ~/.cache/ninaivalaigal,
# built once from deploy/local/deploy-check-requirements.txt (pinned).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

# Kubernetes versions the manifests must be valid for: the oldest supported
# (grpc probes, matchLabelKeys and unhealthyPodEvictionPolicy are on by
# default from 1.27 to 1.31) and the newest the validator knows.
K8S_VERSIONS=(1.31.0 1.37.0)
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal"
VENV="$CACHE/venv-deploy"
REQUIREMENTS=deploy/local/deploy-check-requirements.txt

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$REQUIREMENTS"; then return; fi
  say "installing the deploy checks' tools into $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv for ensurepip.
    rm -rf "$VENV"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$stamp"
}

ensure_venv
export PATH="$VENV/bin:$PATH"

manifests=()
for file in deploy/kubernetes/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done

say "Kubernetes manifests (kubernetes-validate --strict, ${K8S_VERSIONS[*]})"
for version in "${K8S_VERSIONS[@]}"; do
  kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}"
done
echo "${#manifests[@]} files valid"

say "kustomization.yaml: resources, and one release version everywhere"
python3 - <<'PY'
import pathlib, re, sys
import yaml

root = pathlib.Path("deploy/kubernetes")
kust = yaml.safe_load((root / "kustomization.yaml").read_text())
problems = []
listed = set(kust["resources"])
present = {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
if listed != present:
    problems.append(f"resources {sorted(listed)} differ from the manifests present {sorted(present)}")
(image,) = kust["images"]
version = str(image["newTag"])
job_suffix = version.replace(".", "-").lower()
for name in sorted(listed):
    for doc in yaml.safe_load_all((root / name).read_text()):
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != kust["namespace"]:
            problems.append(f"{name}: {doc['kind']} {doc['metadata']['name']} is not in namespace {kust['namespace']}")
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec")
        if pod:
            for c in pod["containers"]:
                if c["image"] != f"{image['name']}:{version}":
                    problems.append(f"{name}: image {c['image']} is not {image['name']}:{version}")
            if pod.get("automountServiceAccountToken") is not False:
                problems.append(f"{name}: pod mounts a service account token")
        if doc["kind"] == "Job" and doc["metadata"]["name"] != f"ninaivalaigal-migrate-{job_suffix}":
            problems.append(f"{name}: Job {doc['metadata']['name']} does not carry version {version} (set-version.sh)")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"release {version}: images and the migration Job agree")
PY

say "kustomize rendering"
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize deploy/kubernetes >"$CACHE/rendered.yaml" 2>"$CACHE/kustomize.err"; then
  for version in "${K8S_VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet -k "$version" "$CACHE/rendered.yaml"
  done
  echo "kubectl kustomize output: $(grep -c '^kind:' "$CACHE/rendered.yaml") objects, valid"
else
  echo "kubectl is not installed (or its kustomize failed): rendering not checked; each file above was"
fi

say "set-version.sh keeps the release consistent"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r deploy/kubernetes "$scratch/"
bash "$scratch/kubernetes/set-version.sh" 9.8.7-rc1 >/dev/null
grep -q 'name: ninaivalaigal-migrate-9-8-7-rc1$' "$scratch/kubernetes/migrate-job.yaml"
[ "$(cat "$scratch"/kubernetes/*.yaml | grep -c 'ninaivalaigal:9.8.7-rc1$')" -eq 3 ]
grep -q 'newTag: "9.8.7-rc1"' "$scratch/kubernetes/kustomization.yaml"
echo "ok"

say "Dockerfile (hadolint)"
hadolint deploy/container/Dockerfile
echo "no findings"

say "compose.yaml (Compose specification schema)"
check-jsonschema --builtin-schema vendor.compose-spec deploy/container/compose.yaml
if command -v podman >/dev/null 2>&1; then
  # podman-compose resolves the secret files: give it stand-ins.
  cp -r deploy/container "$scratch/container"
  mkdir -p "$scratch/kubernetes" && cp deploy/kubernetes/roles.sql "$scratch/kubernetes/"
  for name in postgres_superuser_password migration_database_url auth_database_url memory_database_url jwt-ed25519.pem \
    tls-ca.crt auth-service-tls.crt auth-service-tls.key memory-service-tls.crt memory-service-tls.key; do
    [ -e "$scratch/container/secrets/$name" ] || echo stand-in >"$scratch/container/secrets/$name"
  done
  podman-compose -f "$scratch/container/compose.yaml" config >/dev/null
  echo "podman-compose parses it"
else
  echo "podman is not installed: podman-compose parsing skipped (deploy/container/try-here.sh installs it)"
fi

say "monitoring: alert rules and Grafana dashboard (deploy/monitoring/)"
# promtool is not packaged anywhere this machine reaches, so the rules are
# checked for shape here, and every series they and the dashboard query must
# still be exported by the code (a renamed metric would leave an alert that
# never fires).
python3 - <<'PY'
import json, pathlib, re, sys
import yaml

root = pathlib.Path("deploy/monitoring")
problems = []
rules = yaml.safe_load((root / "alerts.yaml").read_text())
exprs = []
names = set()
for group in rules["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert", "?")
        if name in names:
            problems.append(f"alerts.yaml: {name} twice")
        names.add(name)
        for key in ("alert", "expr"):
            if not isinstance(rule.get(key), str) or not rule[key].strip():
                problems.append(f"alerts.yaml: {name} lacks {key}")
        if rule.get("labels", {}).get("severity") not in ("page", "ticket"):
            problems.append(f"alerts.yaml: {name} needs labels.severity page or ticket")
        if not rule.get("annotations", {}).get("summary"):
            problems.append(f"alerts.yaml: {name} needs annotations.summary")
        if "for" in rule and not re.fullmatch(r"\d+[smh]", str(rule["for"])):
            problems.append(f"alerts.yaml: {name}: for {rule['for']!r} is not a duration")
        exprs.append((f"alerts.yaml {name}", rule.get("expr", "")))
dashboard = json.loads((root / "grafana-dashboard.json").read_text())
ids = [p["id"] for p in dashboard["panels"]]
if len(ids) != len(set(ids)):
    problems.append("grafana-dashboard.json: panel ids repeat")
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        exprs.append((f"grafana-dashboard.json {panel['title']}", target["expr"]))
code = "\n".join(p.read_text() for p in pathlib.Path(".").glob("*/src/**/*.rs")) + "\n".join(
    p.read_text() for p in pathlib.Path("src").glob("**/*.rs"))
for where, expr in exprs:
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        problems.append(f"{where}: unbalanced brackets")
    for metric in set(re.findall(r"\bninaivalaigal_[a-z_]+", expr)):
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        if f'"{base}"' not in code:
            problems.append(f"{where}: {metric} is not exported by any service")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(names)} alert rules and {len(dashboard['panels'])} dashboard panels; every series they query is exported")
PY

say "shell scripts (bash -n)"
for script in deploy/container/*.sh deploy/kubernetes/*.sh deploy/local/*.sh deploy/pooler/*.sh; do bash -n "$script"; done
echo "ok"
