#!/usr/bin/env bash
# Build CPython for WASI (wasm32-wasip1) plus its stdlib, from Debian packages
# only, reproducibly and with caching.
#
#   plugins/wasm/python/build.sh OUTDIR
#
# Produces OUTDIR/python.wasm, OUTDIR/lib/python3.13/ (guest path
# /usr/local/lib/python3.13, PYTHONHOME=/usr/local) and OUTDIR/build-info.json.
# See README.md beside this file.
set -euo pipefail

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

# ---------------------------------------------------------------- pinned inputs
# Only the upstream tarballs / the wasi-libc .deb are used (no Debian patches).
# If a Debian suite moves on, bump these pins (the sha256 check says so).
PY_VERSION=3.13.5
PY_MAJMIN=3.13
PY_SRCPKG=python3.13/trixie
PY_ORIG=python3.13_${PY_VERSION}.orig.tar.xz
PY_ORIG_SHA256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640

WASI_LIBC_VERSION=0.0~git20241209.574b88d-2          # trixie
WASI_LIBC_DEB=wasi-libc_${WASI_LIBC_VERSION}_all.deb
WASI_LIBC_SHA256=b7716260051d289248b7667f81fa2792c125d888ff51da3fa09c6272cc0bd11d

ZLIB_VERSION=1.2.13                                   # bookworm 1:1.2.13.dfsg-1
ZLIB_SRCPKG=zlib/bookworm
ZLIB_ORIG=zlib_${ZLIB_VERSION}.dfsg.orig.tar.bz2
ZLIB_ORIG_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1

LLVM=19
TOOLCHAIN_PKGS=(clang-$LLVM lld-$LLVM llvm-$LLVM libclang-rt-$LLVM-dev-wasm32
                build-essential pkg-config xz-utils bzip2 dpkg-dev tcl)
DEBIAN_MIRROR=http://deb.debian.org/debian
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# ------------------------------------------------------------------- paths etc.
START=$(date +%s.%N)
SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
W=${MCPRUNTIME_BUILD_CACHE:-$HOME/.cache/mcpruntime/build}/python-wasi
LOG=$W/build.log
JOBS=$(nproc 2>/dev/null || echo 2)

elapsed() { awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }
phase() { printf 'python-wasi: [%6ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "python-wasi: ERROR: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# Run a noisy command with its output appended to the log.
quiet() { echo "+ $*" >>"$LOG"; "$@" >>"$LOG" 2>&1; }
have() { [[ -f $DL/$1 && $(sha "$DL/$1") == "$2" ]]; }
# sqlite3, bzip2 and liblzma (pins and build steps)
LIBS_SH=${SCRIPT%/*}/libs.sh
# shellcheck source=libs.sh
source "$LIBS_SH"
# optional packages with C extensions, in a second interpreter (data/)
PACKAGES_SH=${SCRIPT%/*}/packages.sh
# shellcheck source=packages.sh
source "$PACKAGES_SH"

# --------------------------------------------------------- up-to-date check
# Key = script sha256 + pinned input versions/hashes + installed clang version.
# Computed from local data only: no network, no toolchain needed.
clang_pkg_version() { dpkg-query -W -f='${Version}' "clang-$LLVM" 2>/dev/null || echo none; }
cache_key() {
  { sha "$SCRIPT"; sha "${SCRIPT%/*}/preinit.c"; sha "$LIBS_SH"; sha "$PACKAGES_SH"
    echo "$PY_ORIG_SHA256 $WASI_LIBC_SHA256 $ZLIB_ORIG_SHA256 $LIBS_PINS $PACKAGES_PINS"
    clang_pkg_version; } | sha256sum | cut -d' ' -f1
}
KEY=$(cache_key)

if [[ -f $OUT/build-info.json && -f $OUT/python.wasm && -f $OUT/lib/python$PY_MAJMIN/os.py &&
      -f $OUT/data/python.wasm ]] &&
   grep -q "\"cache_key\": \"$KEY\"" "$OUT/build-info.json" &&
   grep -q "\"sha256\": \"$(sha "$OUT/python.wasm")\"" "$OUT/build-info.json"; then
  echo "python-wasi: up to date ($OUT)"
  exit 0
fi

mkdir -p "$W"
# One build per cache dir at a time.
exec 9>"$W/.lock"
if ! flock -n 9; then echo "python-wasi: waiting for another build using $W"; flock 9; fi
: >"$LOG"
on_error() {
  local rc=$?
  echo "python-wasi: FAILED (exit $rc) after $(elapsed)s; last lines of $LOG:" >&2
  tail -n 40 "$LOG" >&2 || true
  exit "$rc"
}
trap on_error ERR
phase "building into $OUT (cache $W, log $LOG)"

# ------------------------------------------------------------------ toolchain
missing=()
for p in "${TOOLCHAIN_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] && SUDO=() || SUDO=(sudo)
  phase "apt-get install ${missing[*]}"
  quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update
  quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
    install -y --no-install-recommends "${missing[@]}"
  KEY=$(cache_key)
fi
CLANG=clang-$LLVM
CLANG_VERSION=$($CLANG --version | head -n1)
CLANG_PKG_VERSION=$(clang_pkg_version)
LLVM_BIN=/usr/lib/llvm-$LLVM/bin
BUILD_TRIPLE=$(gcc -dumpmachine)

# ----------------------------------------------- downloads (private apt config)
# A private apt configuration for trixie (binaries + sources) and bookworm
# sources; the system's apt configuration and lists are left untouched.
DL=$W/downloads
APTDIR=$W/apt
mkdir -p "$DL"
if ! libs_have_inputs || ! packages_have_inputs || ! have "$PY_ORIG" "$PY_ORIG_SHA256" || ! have "$WASI_LIBC_DEB" "$WASI_LIBC_SHA256" ||
   ! have "$ZLIB_ORIG" "$ZLIB_ORIG_SHA256"; then
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
  cat >"$APTDIR/sources.list" <<EOF
deb [signed-by=$KEYRING] $DEBIAN_MIRROR trixie main
deb-src [signed-by=$KEYRING] $DEBIAN_MIRROR trixie main
deb-src [signed-by=$KEYRING] $DEBIAN_MIRROR bookworm main
EOF
  APT_OPTS=(-o "Dir::Etc::sourcelist=$APTDIR/sources.list" -o Dir::Etc::sourceparts=-
            -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
            -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root
            -o Acquire::Languages=none
            -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
            -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
            -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
  phase "apt-get update (private trixie/bookworm config in $APTDIR)"
  quiet apt-get "${APT_OPTS[@]}" update
  phase "downloading wasi-libc $WASI_LIBC_VERSION, $PY_SRCPKG, $ZLIB_SRCPKG, ${LIBS_SRCPKGS[*]} ${PACKAGES_SRCPKGS[*]}"
  (cd "$DL" &&
   quiet apt-get "${APT_OPTS[@]}" download "wasi-libc=$WASI_LIBC_VERSION" &&
   quiet apt-get "${APT_OPTS[@]}" source --download-only "$PY_SRCPKG" "$ZLIB_SRCPKG")
  # Only the orig tarballs are used; a .dsc or Debian diff missing from the
  # mirror is not an error (the sha256 pins are the check).
  for p in "${LIBS_SRCPKGS[@]}" "${PACKAGES_SRCPKGS[@]}"; do
    (cd "$DL" && quiet apt-get "${APT_OPTS[@]}" source --download-only "$p") || true
  done
  libs_check_inputs
  packages_check_inputs
  have "$PY_ORIG" "$PY_ORIG_SHA256" || die "$PY_ORIG missing or sha256 differs from pin (bump PY_* pins?)"
  have "$WASI_LIBC_DEB" "$WASI_LIBC_SHA256" || die "$WASI_LIBC_DEB sha256 differs from pin"
  have "$ZLIB_ORIG" "$ZLIB_ORIG_SHA256" || die "$ZLIB_ORIG missing or sha256 differs from pin (bump ZLIB_* pins?)"
else
  phase "inputs cached in $DL"
fi

# ------------------------------------------------------------------- unpack
# Each unpacked tree carries a stamp with the sha256 of what it came from.
unpack() { # dir sha cmd...
  local dir=$1 want=$2; shift 2
  if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$want" ]]; then return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  "$@"
  echo "$want" >"$dir/.stamp"
}
SYSROOT_PKG=$W/wasi-libc
SYSROOT=$SYSROOT_PKG/usr
SRC=$W/src/Python-$PY_VERSION
ZSRC=$W/src/zlib-$ZLIB_VERSION.dfsg
phase "unpacking sources"
unpack "$SYSROOT_PKG" "$WASI_LIBC_SHA256" dpkg -x "$DL/$WASI_LIBC_DEB" "$SYSROOT_PKG"
unpack "$SRC" "$PY_ORIG_SHA256" tar -xJf "$DL/$PY_ORIG" -C "$SRC" --strip-components=1
unpack "$ZSRC" "$ZLIB_ORIG_SHA256" tar -xjf "$DL/$ZLIB_ORIG" -C "$ZSRC" --strip-components=1
[[ -f $SYSROOT/lib/wasm32-wasip1/libc.a ]] || die "wasi-libc sysroot layout unexpected"

# Reproducibility: timestamps come from the Python tarball, not the clock.
# (newest mtime in the tarball, computed once per unpacked tree)
if [[ ! -f $SRC/.source_date_epoch ]]; then
  tar -tvJf "$DL/$PY_ORIG" --full-time --utc | awk '{print $4" "$5}' | sort | tail -n1 |
    xargs -I{} date -u -d '{} UTC' +%s >"$SRC/.source_date_epoch"
fi
SOURCE_DATE_EPOCH=$(cat "$SRC/.source_date_epoch")
export SOURCE_DATE_EPOCH PYTHONHASHSEED=0 LC_ALL=C TZ=UTC

# --------------------------------------------------------- clang resource dir
# clang-19 --target=wasm32-wasip1 wants lib/wasm32-unknown-wasip1/
# libclang_rt.builtins.a under its resource dir; Debian ships
# lib/wasi/libclang_rt.builtins-wasm32.a. Provide the expected layout.
SYS_RES=$($CLANG -print-resource-dir)
RES=$W/clang-resource
mkdir -p "$RES/lib/wasm32-unknown-wasip1"
ln -sfn "$SYS_RES/include" "$RES/include"
ln -sfn "$SYS_RES/lib/wasi/libclang_rt.builtins-wasm32.a" \
  "$RES/lib/wasm32-unknown-wasip1/libclang_rt.builtins.a"
[[ -f $RES/lib/wasm32-unknown-wasip1/libclang_rt.builtins.a ]] ||
  die "libclang-rt-$LLVM-dev-wasm32 builtins not found under $SYS_RES"

WASM_CC="$CLANG --target=wasm32-wasip1 --sysroot=$SYSROOT -resource-dir=$RES"
# Keep cache paths out of the binary. LLVM_AR: configure would otherwise pick
# /usr/bin/llvm-ar (LLVM 14 on Debian 12), which cannot index LLVM 19 bitcode
# should LTO ever be enabled (measured: full LTO gained <3% here for +3 min
# and 2 GB of link memory, so it is not).
PREFIX_MAP="-ffile-prefix-map=$W=/build"
WASM_ENV=(CC="$WASM_CC" CPP="$WASM_CC -E" AR="$LLVM_BIN/llvm-ar" RANLIB="$LLVM_BIN/llvm-ranlib"
          NM="$LLVM_BIN/llvm-nm" LLVM_AR="$LLVM_BIN/llvm-ar" CFLAGS="$PREFIX_MAP")

# --------------------------------------------------------------------- zlib
ZPREFIX=$W/zlib-wasi
ZKEY=$(echo "$ZLIB_ORIG_SHA256 $WASI_LIBC_SHA256 $CLANG_PKG_VERSION $WASM_CC" | sha256sum | cut -d' ' -f1)
if [[ -f $ZPREFIX/.stamp && $(cat "$ZPREFIX/.stamp") == "$ZKEY" ]]; then
  phase "zlib $ZLIB_VERSION (wasm32-wasip1, static): cached"
else
  phase "zlib $ZLIB_VERSION (wasm32-wasip1, static): building"
  rm -rf "$ZPREFIX" "$W/build/zlib"
  mkdir -p "$W/build" && cp -a "$ZSRC" "$W/build/zlib"
  (cd "$W/build/zlib" &&
   quiet env "${WASM_ENV[@]}" CFLAGS="-O2 $PREFIX_MAP" CHOST=wasm32-wasip1 \
     ./configure --static --prefix="$ZPREFIX" &&
   quiet make -j"$JOBS" libz.a &&
   quiet make install)   # with --static this builds/installs libz.a + headers only
  [[ -f $ZPREFIX/lib/libz.a ]] || die "zlib build produced no libz.a"
  echo "$ZKEY" >"$ZPREFIX/.stamp"
fi

# ------------------------------------------------- sqlite3, bzip2, liblzma
build_sqlite
build_bzip2
build_lzma
LIBS_KEY=$(cat "$W/sqlite-wasi/.stamp" "$W/bzip2-wasi/.stamp" "$W/xz-wasi/.stamp" | sha256sum | cut -d' ' -f1)

# ----------------------------------------------------- native "build python"
NATIVE=$W/build/native
NKEY=$(echo "$PY_ORIG_SHA256 $(gcc --version | head -n1)" | sha256sum | cut -d' ' -f1)
if [[ -x $NATIVE/python && -f $NATIVE/.stamp && $(cat "$NATIVE/.stamp") == "$NKEY" ]]; then
  phase "native build python $PY_VERSION: cached"
else
  phase "native build python $PY_VERSION: configure + make -j$JOBS (~1.5 min)"
  rm -rf "$NATIVE"; mkdir -p "$NATIVE"
  (cd "$NATIVE" &&
   quiet ../../src/Python-$PY_VERSION/configure --without-ensurepip --disable-test-modules &&
   quiet make -j"$JOBS" all)
  echo "$NKEY" >"$NATIVE/.stamp"
fi
BUILD_PY=$NATIVE/python
"$BUILD_PY" -c 'import sys; assert sys.version_info[:2] == tuple(map(int, "'$PY_MAJMIN'".split(".")))'

# ------------------------------------------------------------ WASI python
WASI=$W/build/wasi
# clock_nanosleep is disabled: wazero's poll_oneoff rejects absolute-time
# sleeps, which would make time.sleep() fail. pymalloc is off by default for
# WASI; without it every int, frame and dict goes through wasi-libc's
# malloc: with it a 2M-iteration loop runs ~29% faster (1028 -> 727 ms).
WASI_CONFIGURE=(--host=wasm32-wasip1 --build="$BUILD_TRIPLE" --with-build-python="$BUILD_PY"
                --prefix=/usr/local --disable-test-modules --without-ensurepip
                --without-system-libmpdec --without-system-expat --with-pymalloc
                ac_cv_func_clock_nanosleep=no ac_cv_lib_rt_clock_nanosleep=no)
WKEY=$( { echo "$PY_ORIG_SHA256 $WASI_LIBC_SHA256 $ZKEY $LIBS_KEY $CLANG_PKG_VERSION $NKEY"
          printf '%s\n' "${WASM_ENV[@]}" "${WASI_CONFIGURE[@]}"; } | sha256sum | cut -d' ' -f1)
if [[ -f $WASI/.stamp && $(cat "$WASI/.stamp") == "$WKEY" ]]; then
  phase "python.wasm: configure cached"
else
  phase "python.wasm: configure --host=wasm32-wasip1"
  rm -rf "$WASI"; mkdir -p "$WASI"
  (cd "$WASI" &&
   quiet env "${WASM_ENV[@]}" CONFIG_SITE="$SRC/Tools/wasm/config.site-wasm32-wasi" \
     PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$ZPREFIX/lib/pkgconfig:$(libs_pkg_config_path)" \
     ../../src/Python-$PY_VERSION/configure "${WASI_CONFIGURE[@]}")
  echo "$WKEY" >"$WASI/.stamp"
fi
phase "python.wasm: make -j$JOBS (~1.5 min when not cached)"
(cd "$WASI" && quiet make -j"$JOBS" all)
# Pre-initialization entry points (preinit.c, maintained with plugins/wasm):
# python.wasm is relinked with them every build (a link: ~1 s).
$WASM_CC -O2 $PREFIX_MAP -I"$WASI" -I"$SRC/Include" -c "${SCRIPT%/*}/preinit.c" -o "$WASI/preinit.o"
(cd "$WASI" && rm -f python.wasm && quiet make python.wasm LINKFORSHARED="$WASI/preinit.o")
[[ -f $WASI/python.wasm ]] || die "no python.wasm produced"
for m in zlib _sqlite3 _bz2 _lzma; do
  grep -q "^$m " "$WASI/Modules/Setup.stdlib" 2>/dev/null || die "$m module not enabled (see config.log in $WASI)"
done

# ----------------------------------------------------------------- assemble
STAGE=$W/stage
LIBDEST=$STAGE/lib/python$PY_MAJMIN
phase "assembling stdlib (pruned) in $STAGE"
rm -rf "$STAGE"; mkdir -p "$LIBDEST/lib-dynload"
"$LLVM_BIN/llvm-strip" --strip-debug -o "$STAGE/python.wasm" "$WASI/python.wasm"
# (tar's --exclude NAME matches that name at any depth)
(cd "$SRC/Lib" && tar -cf - --exclude=__pycache__ --exclude=tkinter --exclude=idlelib \
   --exclude=ensurepip --exclude=turtledemo --exclude=test --exclude=tests \
   --exclude=idle_test --exclude='config-*' .) | tar -xf - -C "$LIBDEST"
SYSCONFIGDATA=$(ls "$WASI/$(cat "$WASI/pybuilddir.txt")"/_sysconfigdata_*.py)
# (with the cache path replaced, so the stdlib does not depend on where it was built)
sed "s|$W|/build|g" "$SYSCONFIGDATA" >"$LIBDEST/$(basename "$SYSCONFIGDATA")"
cp "$SRC/LICENSE" "$LIBDEST/LICENSE.txt"
touch "$LIBDEST/lib-dynload/.empty"
# Byte-code with the native build python (same magic number). unchecked-hash
# pycs stay valid when a copy loses its mtimes.
phase "compiling stdlib to .pyc (unchecked-hash)"
quiet "$BUILD_PY" -Wi -m compileall -q -j"$JOBS" --invalidation-mode unchecked-hash \
  -s "$STAGE" -p /usr/local "$LIBDEST"
assemble_data "$STAGE" "$LIBDEST"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---------------------------------------------------------------- install
phase "installing into $OUT"
[[ $OUT != / ]] || die "refusing to install into /"
rm -f "$OUT/build-info.json"
rm -rf "$OUT/lib/python$PY_MAJMIN" "$OUT/python.wasm" "$OUT/data"   # only what this script owns
mkdir -p "$OUT/lib"
cp -a "$STAGE/python.wasm" "$OUT/python.wasm"
# one cp keeps data/lib's hard links to the stdlib
(cd "$STAGE" && cp -a --parents "lib/python$PY_MAJMIN" data "$OUT/")

WASM_SHA=$(sha "$OUT/python.wasm")
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
cat >"$OUT/build-info.json.tmp" <<EOF
{
  "cache_key": "$KEY",
  "script_sha256": "$(sha "$SCRIPT")",
  "source_date_epoch": $SOURCE_DATE_EPOCH,
  "python": {"version": "$PY_VERSION", "debian_source": "$PY_SRCPKG", "file": "$PY_ORIG", "sha256": "$PY_ORIG_SHA256"},
  "wasi_libc": {"version": "$WASI_LIBC_VERSION", "suite": "trixie", "file": "$WASI_LIBC_DEB", "sha256": "$WASI_LIBC_SHA256"},
  "zlib": {"version": "$ZLIB_VERSION", "debian_source": "$ZLIB_SRCPKG", "file": "$ZLIB_ORIG", "sha256": "$ZLIB_ORIG_SHA256"},
  "sqlite": {"version": "$SQLITE_VERSION", "debian_source": "$SQLITE_SRCPKG", "file": "$SQLITE_ORIG", "sha256": "$SQLITE_ORIG_SHA256"},
  "bzip2": {"version": "$BZIP2_VERSION", "debian_source": "$BZIP2_SRCPKG", "file": "$BZIP2_ORIG", "sha256": "$BZIP2_ORIG_SHA256"},
  "xz": {"version": "$XZ_VERSION", "debian_source": "$XZ_SRCPKG", "file": "$XZ_ORIG", "sha256": "$XZ_ORIG_SHA256"},
  "clang": {"package": "clang-$LLVM $CLANG_PKG_VERSION", "version": $(json_str "$CLANG_VERSION"),
            "libclang_rt_wasm32": "$(dpkg-query -W -f='${Version}' "libclang-rt-$LLVM-dev-wasm32")"},
  "target": "wasm32-wasip1",
  "output": {"file": "python.wasm", "sha256": "$WASM_SHA", "size": $(stat -c %s "$OUT/python.wasm"),
             "stdlib": "lib/python$PY_MAJMIN", "guest_prefix": "/usr/local"},
  "data": {"file": "data/python.wasm", "sha256": "$(sha "$OUT/data/python.wasm")", "packages": "${DATA_PACKAGES[*]}",
           "pillow": {"version": "$PILLOW_VERSION", "debian_source": "$PILLOW_SRCPKG", "file": "$PILLOW_ORIG", "sha256": "$PILLOW_ORIG_SHA256"}}
}
EOF
# the up-to-date check greps for '"sha256": "<wasm sha>"'; keep it on one line
mv "$OUT/build-info.json.tmp" "$OUT/build-info.json"
trap - ERR
phase "done: python.wasm $(du -h "$OUT/python.wasm" | cut -f1) ($WASM_SHA), stdlib $(du -sh "$OUT/lib" | cut -f1)"
