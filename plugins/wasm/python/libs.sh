# Static wasm32-wasip1 builds of the C libraries behind the stdlib's sqlite3,
# bz2 and lzma modules. Sourced by build.sh (which sets W, DL, LOG, JOBS,
# WASM_ENV, WASM_CC, LLVM_BIN, PREFIX_MAP, CLANG_PKG_VERSION, WASI_LIBC_SHA256
# and the helpers quiet/phase/die/unpack); each library is installed with a
# pkg-config file into its own prefix and keyed by its inputs.

SQLITE_VERSION=3.46.1                                 # trixie 3.46.1-7+deb13u2
SQLITE_SRCPKG=sqlite3/trixie
SQLITE_ORIG=sqlite3_${SQLITE_VERSION}.orig.tar.xz
SQLITE_ORIG_SHA256=d0cdd2ece271b29e7ce18095745d892517ee26d0f270065b3a25c2e9eb11639c

BZIP2_VERSION=1.0.8                                   # trixie 1.0.8-6
BZIP2_SRCPKG=bzip2/trixie
BZIP2_ORIG=bzip2_${BZIP2_VERSION}.orig.tar.gz
BZIP2_ORIG_SHA256=ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269

XZ_VERSION=5.8.1                                      # trixie 5.8.1-1+deb13u1
XZ_SRCPKG=xz-utils/trixie
XZ_ORIG=xz-utils_${XZ_VERSION}.orig.tar.xz
XZ_ORIG_SHA256=0b54f79df85912504de0b14aec7971e3f964491af1812d83447005807513cd9e

LIBS_PINS="$SQLITE_ORIG_SHA256 $BZIP2_ORIG_SHA256 $XZ_ORIG_SHA256"
LIBS_SRCPKGS=("$SQLITE_SRCPKG" "$BZIP2_SRCPKG" "$XZ_SRCPKG")

libs_have_inputs() {
  have "$SQLITE_ORIG" "$SQLITE_ORIG_SHA256" && have "$BZIP2_ORIG" "$BZIP2_ORIG_SHA256" &&
    have "$XZ_ORIG" "$XZ_ORIG_SHA256"
}

libs_check_inputs() {
  have "$SQLITE_ORIG" "$SQLITE_ORIG_SHA256" || die "$SQLITE_ORIG missing or sha256 differs from pin (bump SQLITE_* pins in libs.sh?)"
  have "$BZIP2_ORIG" "$BZIP2_ORIG_SHA256" || die "$BZIP2_ORIG missing or sha256 differs from pin (bump BZIP2_* pins in libs.sh?)"
  have "$XZ_ORIG" "$XZ_ORIG_SHA256" || die "$XZ_ORIG missing or sha256 differs from pin (bump XZ_* pins in libs.sh?)"
}

# lib_key NAME SHA: the stage key of one library (its source, the sysroot,
# the compiler and this file).
lib_key() {
  echo "$1 $2 $WASI_LIBC_SHA256 $CLANG_PKG_VERSION $WASM_CC $(sha "${BASH_SOURCE[0]}")" |
    sha256sum | cut -d' ' -f1
}

# write_pc PREFIX NAME VERSION LIBS
write_pc() {
  mkdir -p "$1/lib/pkgconfig"
  cat >"$1/lib/pkgconfig/$2.pc" <<EOF
prefix=$1
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: $2
Description: $2 (static, wasm32-wasip1)
Version: $3
Libs: -L\${libdir} $4
Cflags: -I\${includedir}
EOF
}

# SQLite: Debian's orig tarball is the canonical source tree, so the
# amalgamation is generated natively first (needs tclsh), then compiled once
# for wasm. The amalgamation's own __wasi__ block turns off WAL, threads and
# extension loading.
build_sqlite() {
  local prefix=$W/sqlite-wasi src=$W/src/sqlite3-$SQLITE_VERSION key
  key=$(lib_key sqlite "$SQLITE_ORIG_SHA256")
  if [[ -f $prefix/.stamp && $(cat "$prefix/.stamp") == "$key" ]]; then
    phase "sqlite $SQLITE_VERSION (wasm32-wasip1, static): cached"; return
  fi
  phase "sqlite $SQLITE_VERSION (wasm32-wasip1, static): amalgamation + compile (~1 min)"
  unpack "$src" "$SQLITE_ORIG_SHA256" tar -xJf "$DL/$SQLITE_ORIG" -C "$src" --strip-components=1
  rm -rf "$prefix" "$W/build/sqlite"; mkdir -p "$W/build/sqlite" "$prefix/lib" "$prefix/include"
  (cd "$W/build/sqlite" &&
   quiet "$src/configure" --disable-tcl &&
   quiet make sqlite3.c &&
   quiet $WASM_CC -O2 $PREFIX_MAP -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION \
     -DSQLITE_ENABLE_MATH_FUNCTIONS -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_RTREE \
     -DSQLITE_ENABLE_COLUMN_METADATA -c sqlite3.c -o sqlite3.o &&
   quiet "$LLVM_BIN/llvm-ar" rcs "$prefix/lib/libsqlite3.a" sqlite3.o &&
   cp sqlite3.h sqlite3ext.h "$prefix/include/")
  write_pc "$prefix" sqlite3 "$SQLITE_VERSION" -lsqlite3
  echo "$key" >"$prefix/.stamp"
}

# bzip2: the library's seven sources, compiled directly (its Makefile builds
# the command-line tools too).
build_bzip2() {
  local prefix=$W/bzip2-wasi src=$W/src/bzip2-$BZIP2_VERSION key f
  key=$(lib_key bzip2 "$BZIP2_ORIG_SHA256")
  if [[ -f $prefix/.stamp && $(cat "$prefix/.stamp") == "$key" ]]; then
    phase "bzip2 $BZIP2_VERSION (wasm32-wasip1, static): cached"; return
  fi
  phase "bzip2 $BZIP2_VERSION (wasm32-wasip1, static): building"
  unpack "$src" "$BZIP2_ORIG_SHA256" tar -xzf "$DL/$BZIP2_ORIG" -C "$src" --strip-components=1
  rm -rf "$prefix" "$W/build/bzip2"; mkdir -p "$W/build/bzip2" "$prefix/lib" "$prefix/include"
  for f in blocksort huffman crctable randtable compress decompress bzlib; do
    quiet $WASM_CC -O2 $PREFIX_MAP -D_FILE_OFFSET_BITS=64 -c "$src/$f.c" -o "$W/build/bzip2/$f.o"
  done
  quiet "$LLVM_BIN/llvm-ar" rcs "$prefix/lib/libbz2.a" "$W/build/bzip2"/*.o
  cp "$src/bzlib.h" "$prefix/include/"
  write_pc "$prefix" bzip2 "$BZIP2_VERSION" -lbz2
  echo "$key" >"$prefix/.stamp"
}

# xz-utils: only liblzma, single-threaded (wasip1 has no threads).
build_lzma() {
  local prefix=$W/xz-wasi src=$W/src/xz-$XZ_VERSION key
  key=$(lib_key xz "$XZ_ORIG_SHA256")
  if [[ -f $prefix/.stamp && $(cat "$prefix/.stamp") == "$key" ]]; then
    phase "liblzma $XZ_VERSION (wasm32-wasip1, static): cached"; return
  fi
  phase "liblzma $XZ_VERSION (wasm32-wasip1, static): configure + make (~1 min)"
  unpack "$src" "$XZ_ORIG_SHA256" tar -xJf "$DL/$XZ_ORIG" -C "$src" --strip-components=1
  rm -rf "$prefix" "$W/build/xz"; mkdir -p "$W/build/xz"
  (cd "$W/build/xz" &&
   quiet env "${WASM_ENV[@]}" CFLAGS="-O2 $PREFIX_MAP" "$src/configure" \
     --host=wasm32-wasip1 --build="$BUILD_TRIPLE" --prefix="$prefix" \
     --enable-static --disable-shared --disable-threads --disable-xz --disable-xzdec \
     --disable-lzmadec --disable-lzmainfo --disable-lzma-links --disable-scripts \
     --disable-doc --disable-nls --disable-sandbox &&
   quiet make -j"$JOBS" -C src/liblzma &&
   quiet make -C src/liblzma install)
  [[ -f $prefix/lib/liblzma.a ]] || die "xz build produced no liblzma.a"
  echo "$key" >"$prefix/.stamp"
}

# pkg-config search path covering every static library above.
libs_pkg_config_path() {
  echo "$W/sqlite-wasi/lib/pkgconfig:$W/bzip2-wasi/lib/pkgconfig:$W/xz-wasi/lib/pkgconfig"
}
