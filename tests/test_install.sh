#!/usr/bin/env bash
# `cmake --install` of libdydca into a temporary prefix, then
# examples/minimal_decode.c built against the installed copy with
# `pkg-config --cflags --libs dydca`: its md5 must equal
# `dydca decode FILE -o - --muxer md5`. Also: the library needs no LibTorch
# and no OpenCV, exports only dydca_* symbols, and dydca.h compiles as C99 and C++.
# Usage: test_install.sh CMAKE BUILD_DIR SOURCE_DIR DYDCA TEST_DECODER
# Exit 77 (ctest: skipped) without a C compiler or pkg-config.
set -u
cmake=$1 build=$2 src=$3 dydca=$4 test_decoder=$5
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "SKIP: no C compiler ($cc)"; exit 77; }
command -v pkg-config >/dev/null || { echo "SKIP: no pkg-config"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }

prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; echo "FAIL: cmake --install"; exit 1; }
pc=$(find "$prefix" -name dydca.pc | head -1)
lib=$(find "$prefix" -name 'libdydca.so' | head -1)
[[ -f $prefix/include/dydca/dydca.h ]] || fail "no include/dydca/dydca.h"
[[ -n $pc && -n $lib ]] || { find "$prefix"; echo "FAIL: no dydca.pc or libdydca.so"; exit 1; }
[[ $pc == "$prefix/lib/pkgconfig/dydca.pc" ]] || echo "note: dydca.pc at $pc"
libdir=$(dirname "$lib")

# Client code only.
deps=$(ldd "$lib")
names=$(awk '{print $1}' <<<"$deps")
grep -Eqi "torch|^libc10|opencv" <<<"$names" && fail "libdydca.so needs LibTorch or OpenCV: $names"
grep -q "not found" <<<"$deps" && fail "libdydca.so has unresolved libraries: $deps"
# Only the C API is exported.
others=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRVW]/ {print $3}' | grep -v '^dydca_' \
         | grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' || true)
[[ -z $others ]] || fail "libdydca.so exports more than dydca_*: $(head -5 <<<"$others")"
nm -D --defined-only "$lib" | grep -q " T dydca_get_picture$" || fail "dydca_get_picture not exported"

# The header alone, as C99 and as C++.
export PKG_CONFIG_PATH=$(dirname "$pc")
cflags=$(pkg-config --cflags dydca) || fail "pkg-config --cflags dydca"
libs=$(pkg-config --libs dydca) || fail "pkg-config --libs dydca"
echo '#include <dydca/dydca.h>
int main(void) { return dydca_api_version() == 0; }' >"$tmp/h.c"
"$cc" -std=c99 -pedantic -Wall -Wextra -Werror $cflags -c "$tmp/h.c" -o "$tmp/h.o" \
  || fail "dydca.h as C99"
if command -v c++ >/dev/null; then
  c++ -x c++ -std=c++17 -Wall -Wextra -Werror $cflags -c "$tmp/h.c" -o "$tmp/hpp.o" \
    || fail "dydca.h as C++"
fi

# The example, built against the installed library only.
"$cc" -std=c99 -Wall -Wextra -Werror "$src/examples/minimal_decode.c" $cflags $libs \
  -o "$tmp/minimal_decode" || { echo "FAIL: build minimal_decode"; exit 1; }

DYDCA_DECODER_FIXTURE="$tmp/a.mkv" DYDCA_DECODER_FIXTURE_V2="$tmp/v2.mkv" \
  "$test_decoder" -tc="fixture*" >/dev/null 2>&1
[[ -s $tmp/a.mkv && -s $tmp/v2.mkv ]] || { echo "FAIL: no fixture"; exit 1; }
for f in a.mkv v2.mkv; do
  want=$("$dydca" -q decode "$tmp/$f" -o - --muxer md5) || fail "dydca decode $f"
  # The installed library is found through LD_LIBRARY_PATH (no RPATH is set).
  got=$(LD_LIBRARY_PATH=$libdir "$tmp/minimal_decode" "$tmp/$f" 2>"$tmp/err") \
    || { cat "$tmp/err"; fail "minimal_decode $f"; }
  [[ $want =~ ^[0-9a-f]{32}$ && $got == "$want" ]] || fail "$f: example md5 '$got' != CLI '$want'"
  # The example loaded the installed copy.
  LD_LIBRARY_PATH=$libdir ldd "$tmp/minimal_decode" | grep -q "$libdir/libdydca.so" \
    || fail "the example did not load $libdir/libdydca.so"
  [[ $f == a.mkv ]] && md5_a=$want
done
want2=$("$dydca" -q decode "$tmp/a.mkv" -o - --muxer md5 --level 2)
got2=$(LD_LIBRARY_PATH=$libdir "$tmp/minimal_decode" "$tmp/a.mkv" 2 2>/dev/null)
[[ $got2 == "$want2" && $got2 != "${md5_a:-}" ]] || fail "level 2: example '$got2' != CLI '$want2'"
LD_LIBRARY_PATH=$libdir "$tmp/minimal_decode" "$tmp/missing.mkv" >/dev/null 2>"$tmp/err" \
  && fail "missing file: exit 0"
grep -q "missing.mkv" "$tmp/err" || fail "missing file: message names it ($(cat "$tmp/err"))"

[[ $fails == 0 ]] && echo "test_install: ok" || { echo "$fails failure(s)"; exit 1; }
