#!/usr/bin/env bash
# Build the Nomad agent used by the tests and by `make cluster`, from the Go
# module proxy, cached outside the tree by a content-hash key.
#
#   plugins/nomad/scripts/build-nomad.sh            build unless cached; print the binary's path
#   plugins/nomad/scripts/build-nomad.sh --cached   print the path if built, else exit 3
#
# Nomad itself is BUSL-1.1: it is built and run here for tests only, never
# copied into the repository or shipped. The plugin links only the MPL-2.0
# `api` module.
#
# Why not `go install`: the nomad module has replace directives and its zip
# lacks api/ (a separate module), so the tree is copied from the module cache
# and api/ is filled from the api module at the commit v1.11.1 uses.
set -euo pipefail

NOMAD_VERSION=v1.11.1
API_VERSION=v0.0.0-20251209201056-5b76eb053561

START=$(date +%s.%N)
W=${MCPRUNTIME_BUILD_CACHE:-$HOME/.cache/mcpruntime/build}/nomad
GO=${GO:-go}
elapsed() { awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }
phase() { printf 'nomad-build: [%6ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { echo "nomad-build: ERROR: $*" >&2; exit 1; }

command -v "$GO" >/dev/null || die "go is required"
command -v gcc >/dev/null || die "a C compiler (gcc) is required: Nomad builds with CGO"

# Key = what the binary is made of: the pinned versions, the build flags
# and the Go toolchain (not this script's text: editing a comment must not
# cost a rebuild; change BUILD_FLAGS to force one).
BUILD_FLAGS="CGO_ENABLED=1 -trimpath -ldflags=-s -w"
KEY=$( { echo "$NOMAD_VERSION $API_VERSION $BUILD_FLAGS"; "$GO" env GOVERSION GOARCH; } |
       sha256sum | cut -d' ' -f1 | cut -c1-16)
OUT=$W/$KEY/nomad
if [[ -x $OUT ]]; then
  echo "$OUT"
  exit 0
fi
[[ ${1:-} == --cached ]] && exit 3

mkdir -p "$W"
exec 9>"$W/.lock"
if ! flock -n 9; then phase "waiting for another build using $W"; flock 9; fi
if [[ -x $OUT ]]; then echo "$OUT"; exit 0; fi

LOG=$W/build.log
: >"$LOG"
trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "nomad-build: FAILED after $(elapsed)s; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; fi' EXIT

export GOFLAGS=-mod=mod GOWORK=off
export GONOSUMDB=github.com/hashicorp/nomad/api
phase "downloading github.com/hashicorp/nomad@$NOMAD_VERSION and api@$API_VERSION"
SRC_MOD=$("$GO" mod download -json "github.com/hashicorp/nomad@$NOMAD_VERSION" 2>>"$LOG" |
          sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
API_MOD=$("$GO" mod download -json "github.com/hashicorp/nomad/api@$API_VERSION" 2>>"$LOG" |
          sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $SRC_MOD && -d $API_MOD ]] || die "module download failed (see $LOG)"

SRC=$W/src
rm -rf "$SRC"
cp -r "$SRC_MOD" "$SRC"
chmod -R u+w "$SRC"
rm -rf "$SRC/api"
cp -r "$API_MOD" "$SRC/api"
chmod -R u+w "$SRC/api"

phase "building (CGO, -trimpath; cold build takes minutes)"
mkdir -p "$(dirname "$OUT")"
( cd "$SRC" && CGO_ENABLED=1 "$GO" build -trimpath -ldflags '-s -w' -o "$OUT.tmp" . ) >>"$LOG" 2>&1 ||
  die "go build failed"
mv "$OUT.tmp" "$OUT"
rm -rf "$SRC"
phase "built $OUT ($(du -h "$OUT" | cut -f1)) in $(elapsed)s"
echo "$(elapsed)" >"$W/$KEY/build-seconds"
echo "$OUT"
