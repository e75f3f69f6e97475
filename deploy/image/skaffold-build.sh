#!/usr/bin/env bash
# Skaffold's custom build (deploy/skaffold.yaml): build the image as `make image` does, tag
# it as Skaffold asks ($IMAGE), and push it or hand it to Minikube's container runtime.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${IMAGE:?Skaffold sets IMAGE}"
make -s image
podman tag "$(cat .venv/.image)" "$IMAGE"
if [ "${PUSH_IMAGE:-false}" = true ]; then
  podman push "$IMAGE"
else
  podman save "$IMAGE" | minikube image load -
fi
