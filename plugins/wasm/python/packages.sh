# Optional Python packages with C extensions, built into a second
# interpreter: OUT/data/python.wasm + OUT/data/lib (the stdlib plus
# site-packages), selected in runtime.hcl by `config { packages = [...] }`.
# Sourced by build.sh (which sets W, DL, LOG, JOBS, WASM_CC, LLVM_BIN,
# PREFIX_MAP, SRC, WASI, ZPREFIX, BUILD_PY, CLANG_PKG_VERSION and the helpers
# quiet/phase/die/unpack/sha).
#
# WASI has no dlopen, so an extension module is linked statically into the
# interpreter and registered in its _PyImport_Inittab under its dotted name
# (PIL._imaging): CPython 3.13's BuiltinImporter.find_spec answers for any
# name _imp.is_builtin knows, dotted ones included, so `from . import
# _imaging` inside the package finds it. The package's Python files go to
# site-packages as usual.

PILLOW_VERSION=11.1.0                                 # trixie 11.1.0-5+deb13u4
PILLOW_SRCPKG=pillow/trixie
PILLOW_ORIG=pillow_${PILLOW_VERSION}.orig.tar.xz
PILLOW_ORIG_SHA256=0fc52818220b9c2208e635d495f6819826607a352c42d0b9524f51f2b8a1a82a

PACKAGES_PINS="$PILLOW_ORIG_SHA256"
PACKAGES_SRCPKGS=("$PILLOW_SRCPKG")
# name=version of every package the data interpreter carries.
DATA_PACKAGES=("pillow=$PILLOW_VERSION")

packages_have_inputs() { have "$PILLOW_ORIG" "$PILLOW_ORIG_SHA256"; }
packages_check_inputs() {
  have "$PILLOW_ORIG" "$PILLOW_ORIG_SHA256" || die "$PILLOW_ORIG missing or sha256 differs from pin (bump PILLOW_* pins in packages.sh?)"
}

# check_signatures SRC...: a C function called through a pointer of another
# arity traps in wasm ("indirect call type mismatch"), where native ABIs let
# it pass. clang's -Wcast-function-type-strict lists every cast of a
# function pointer; those that change the number of parameters are errors.
check_signatures() {
  local flags=("$@")
  $WASM_CC -fsyntax-only -Wcast-function-type-strict "${flags[@]}" 2>&1 |
    "$BUILD_PY" -c '
import re, sys
arity = {"PyCFunction": 2, "destructor": 1, "getter": 2, "setter": 3, "reprfunc": 1,
         "lenfunc": 1, "ssizeargfunc": 2, "binaryfunc": 2, "getiterfunc": 1,
         "iternextfunc": 1, "ssizeobjargproc": 3, "objobjargproc": 3, "hashfunc": 1,
         "richcmpfunc": 3, "initproc": 3, "newfunc": 3, "freefunc": 1, "inquiry": 1}
bad = []
for line in sys.stdin:
    m = re.search(r"warning: cast from .(.*?). (?:\(aka .*?\) )?to .(\w+).", line)
    if not m or m.group(2) not in arity:
        continue
    params = re.search(r"\(\*\)\((.*)\)$", m.group(1)).group(1)
    n = 0 if params in ("", "void") else len(params.split(","))
    if n != arity[m.group(2)]:
        bad.append(line.split(": warning")[0] + ": " + m.group(1) + " used as " + m.group(2))
if bad:
    sys.exit("function pointer casts that trap in wasm:\n  " + "\n  ".join(bad))
'
}

# Pillow: _imaging (with zlib: PNG, GIF, TIFF, BMP, ...; no JPEG, FreeType
# or LittleCMS, whose libraries are not built here), _imagingmath and
# _imagingmorph.
build_pillow() {
  local prefix=$W/pillow-wasi src=$W/src/pillow-$PILLOW_VERSION obj key f files=()
  key=$(echo "$PILLOW_ORIG_SHA256 $(cat "$ZPREFIX/.stamp") $(cat "$WASI/.stamp") $CLANG_PKG_VERSION $WASM_CC $(sha "${BASH_SOURCE[0]}")" |
        sha256sum | cut -d' ' -f1)
  if [[ -f $prefix/.stamp && $(cat "$prefix/.stamp") == "$key" ]]; then
    phase "pillow $PILLOW_VERSION (wasm32-wasip1, static): cached"; return
  fi
  phase "pillow $PILLOW_VERSION (wasm32-wasip1, static): building"
  unpack "$src" "$PILLOW_ORIG_SHA256" tar -xJf "$DL/$PILLOW_ORIG" -C "$src" --strip-components=1
  # Methods registered METH_NOARGS but defined with one parameter (7 of
  # them in 11.1.0): give them the second, unused one.
  sed -i -E 's/^(_isblock|_getextrema|_getprojection|_split|_getpalettemode|_chop_invert)\(ImagingObject \*self\) \{/\1(ImagingObject *self, PyObject *Py_UNUSED(ignored)) {/' "$src/src/_imaging.c"
  sed -i -E 's/^_encode_to_pyfd\(ImagingEncoderObject \*encoder\) \{/_encode_to_pyfd(ImagingEncoderObject *encoder, PyObject *Py_UNUSED(ignored)) {/' "$src/src/encode.c"
  files=("$src"/src/{_imaging,decode,encode,map,display,outline,path,_imagingmath,_imagingmorph}.c)
  for f in $("$BUILD_PY" -c '
import re, sys
m = re.search(r"_LIB_IMAGING = \((.*?)\)", open(sys.argv[1]).read(), re.S)
print(" ".join(re.findall(r"\"(\w+)\"", m.group(1))))' "$src/setup.py"); do
    files+=("$src/src/libImaging/$f.c")
  done
  local cflags=(-O2 $PREFIX_MAP -DHAVE_LIBZ "-DPILLOW_VERSION=\"$PILLOW_VERSION\""
                -I"$src/src/libImaging" -I"$src/src" -I"$ZPREFIX/include" -I"$SRC/Include" -I"$WASI")
  for f in "$src"/src/{_imaging,encode,decode,map,display,outline,path,_imagingmath,_imagingmorph}.c; do
    check_signatures "${cflags[@]}" "$f" >>"$LOG" 2>&1 || die "pillow: $(tail -n 5 "$LOG")"
  done
  rm -rf "$prefix" "$W/build/pillow"; obj=$W/build/pillow; mkdir -p "$obj" "$prefix/lib"
  echo "+ compiling ${#files[@]} files with ${cflags[*]}" >>"$LOG"
  printf '%s\0' "${files[@]}" |
    xargs -0 -P "$JOBS" -I{} bash -c "$WASM_CC ${cflags[*]@Q} -c \"\$1\" -o \"$obj/\$(basename \"\$1\" .c).o\"" _ {} \
      >>"$LOG" 2>&1 || die "pillow: compile failed (see $LOG)"
  quiet "$LLVM_BIN/llvm-ar" rcs "$prefix/lib/libpillow.a" "$obj"/*.o
  cp -a "$src/src/PIL" "$prefix/PIL"
  echo "$key" >"$prefix/.stamp"
}

# link_data_python OUTWASM: python.wasm's link line with the packages'
# archives and a config.c whose inittab names their modules.
link_data_python() {
  local out=$1 cfg=$W/build/pillow-config.c cmd
  "$BUILD_PY" - "$WASI/Modules/config.c" "$cfg" <<'EOF'
import sys
mods = [("PIL._imaging", "PyInit__imaging"), ("PIL._imagingmath", "PyInit__imagingmath"),
        ("PIL._imagingmorph", "PyInit__imagingmorph")]
s = open(sys.argv[1]).read()
for marker, text in (("/* -- ADDMODULE MARKER 1 -- */", "".join(f"extern PyObject* {f}(void);\n" for _, f in mods)),
                     ("/* -- ADDMODULE MARKER 2 -- */", "".join(f'    {{"{n}", {f}}},\n' for n, f in mods))):
    assert s.count(marker) == 1, marker
    s = s.replace(marker, marker + "\n" + text)
open(sys.argv[2], "w").write(s)
EOF
  quiet $WASM_CC -O2 $PREFIX_MAP -DPy_BUILD_CORE -I"$SRC/Include" -I"$SRC/Include/internal" -I"$WASI" \
    -c "$cfg" -o "$W/build/pillow-config.o"
  # make -n prints python.wasm's link command; swap its config.o for ours.
  cmd=$(cd "$WASI" && make -n -W Programs/python.o python.wasm \
          LINKFORSHARED="$W/build/pillow-config.o $WASI/preinit.o $W/pillow-wasi/lib/libpillow.a" |
        grep -- '-o python.wasm')
  [[ $cmd == *" Modules/config.o "* ]] || die "python.wasm link line has no Modules/config.o"
  cmd=${cmd/ Modules\/config.o / }
  cmd=${cmd/-o python.wasm/-o $out}
  (cd "$WASI" && echo "+ $cmd" >>"$LOG" && eval "$cmd" >>"$LOG" 2>&1) || die "linking the data python failed (see $LOG)"
}

# assemble_data STAGE LIBDEST: STAGE/data/{python.wasm,lib/python3.x} with
# the stdlib hard-linked from LIBDEST and the packages in site-packages.
assemble_data() {
  local stage=$1 libdest=$2 data=$1/data site
  build_pillow
  phase "data python (${DATA_PACKAGES[*]}): linking"
  rm -rf "$data"; mkdir -p "$data/lib"
  link_data_python "$W/build/python-data.wasm"
  "$LLVM_BIN/llvm-strip" --strip-debug -o "$data/python.wasm" "$W/build/python-data.wasm"
  cp -al "$libdest" "$data/lib/"
  site=$data/lib/$(basename "$libdest")/site-packages
  mkdir -p "$site"
  cp -a "$W/pillow-wasi/PIL" "$site/PIL"
  quiet "$BUILD_PY" -Wi -m compileall -q -j"$JOBS" --invalidation-mode unchecked-hash \
    -s "$stage/data" -p /usr/local "$site"
  printf '%s\n' "${DATA_PACKAGES[@]}" >"$data/packages.txt"
}
