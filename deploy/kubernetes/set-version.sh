#!/usr/bin/env bash
# Sets the release that the manifests deploy: the image tag (in every
# manifest and in kustomization.yaml) and the migration Job's name, which
# carries the version because a Job cannot be changed once created.
#   deploy/kubernetes/set-version.sh 0.2.0
# deploy/local/check-deploy.sh fails when these disagree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

version=${1:?usage: set-version.sh VERSION (for example 0.2.0)}
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z]+)*$ ]]; then
  echo "set-version.sh: $version is not a version such as 0.2.0 or 0.2.0-rc1" >&2
  exit 2
fi
# The Job's name: dots become dashes (0.2.0-rc1 -> 0-2-0-rc1), lower case.
job_suffix=$(printf '%s' "$version" | tr '.A-Z' '-a-z')

sed -i -E "s|(image: ghcr\.io/ninaivalaigal/ninaivalaigal:)[^ ]+$|\1$version|" \
  auth-service.yaml memory-service.yaml migrate-job.yaml
sed -i -E "s|^(  name: ninaivalaigal-migrate-).*$|\1$job_suffix|; s|^(    app\.kubernetes\.io/version: ).*$|\1\"$version\"|" \
  migrate-job.yaml
sed -i -E "s|^(    newTag: ).*$|\1\"$version\"|" kustomization.yaml
echo "manifests now deploy $version (migration Job ninaivalaigal-migrate-$job_suffix)"
