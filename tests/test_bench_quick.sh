#!/usr/bin/env bash
# `dydca bench --quick`: runs end to end on a generated clip and writes the
# reports (and a plot when gnuplot is installed).
set -u
dydca=$1
out=$2
rm -rf "$out"
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
"$dydca" -q bench --quick --out "$out" || { echo "FAIL: dydca bench --quick exited $?"; exit 1; }
fails=0
for f in report.md report.json; do
  [[ -s "$out/$f" ]] || { echo "FAIL: $out/$f missing or empty"; fails=$((fails+1)); }
done
grep -q "x264-HR" "$out/report.md" || { echo "FAIL: no x264-HR row"; fails=$((fails+1)); }
grep -q "dydca L0" "$out/report.md" || { echo "FAIL: no dydca row"; fails=$((fails+1)); }
grep -q "static" "$out/report.md" || { echo "FAIL: no static row"; fails=$((fails+1)); }
python3 - "$out/report.json" <<'PY' || fails=$((fails+1))
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"][0]
m = {c["method"]: c for c in r["methods"]}
for k in ("x264-HR", "LR+bicubic", "dydca L0", "static"):
    assert k in m and len(m[k]["points"]) == 2, "method %s: %s" % (k, m.get(k))
    for p in m[k]["points"]:
        assert p["total_kbps"] > 0 and 10 < p["psnr_y"] < 100, p
assert m["dydca L0"]["points"][0]["model_bytes"] > 0
print("bench quick: ok")
PY
if command -v gnuplot >/dev/null; then
  [[ -s "$out/rd_quick_x2.png" ]] || { echo "FAIL: no RD plot"; fails=$((fails+1)); }
fi
exit $((fails > 0))
