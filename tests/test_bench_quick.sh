#!/usr/bin/env bash
# `dydca bench --quick`: runs end to end on a generated clip and writes the
# reports (and the plots when gnuplot is installed), with the decoder columns
# (decode fps, peak RSS of the decode child process) filled.
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
grep -q "peak RSS MB" "$out/report.md" || { echo "FAIL: no decoder table"; fails=$((fails+1)); }
grep -q "MACs / LR pixel | PSNR-Y" "$out/report.md" || { echo "FAIL: no MACs table"; fails=$((fails+1)); }
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
# Every QoS level of the dynamic file, with its MACs.
lv = m["dydca L0"]["points"][1]["levels"]
assert len(lv) >= 1 and all(l["macs_per_lr_pixel"] > 0 for l in lv), lv
# Decoder cost at the reference rate (150 kb/s): the SR decoders, the plain
# bicubic and HR H.264 decoders; fps > 0 and a peak RSS above the idle process.
assert d["reference_rate"] == 150, d["reference_rate"]
for k in ("x264-HR", "LR+bicubic", "dydca L0", "static"):
    dec = m[k]["decode"]
    assert dec is not None, "no decode measurement for %s: %s" % (k, r["errors"])
    assert dec["rate"] == 150 and dec["frames"] == 24, dec
    assert dec["fps"] > 0 and dec["rss_peak_kb"] > 0 and dec["rss_peak_kb"] >= dec["rss_idle_kb"], dec
assert m["dydca L0"]["decode"]["runtime_bytes"] > 0
print("bench quick: ok")
PY
# Tables and plots rebuilt from report.json alone.
rm -f "$out/report.md" "$out"/*.png
"$dydca" -q bench --replot "$out" || { echo "FAIL: bench --replot exited $?"; fails=$((fails+1)); }
grep -q "peak RSS MB" "$out/report.md" || { echo "FAIL: replot: no decoder table"; fails=$((fails+1)); }
if command -v gnuplot >/dev/null; then
  for f in rd macs decode bytes; do
    [[ -s "$out/${f}_quick_x2.png" ]] || { echo "FAIL: no $f plot"; fails=$((fails+1)); }
  done
fi
exit $((fails > 0))
