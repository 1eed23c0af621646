#!/usr/bin/env bash
# `dydca bench --quick`: runs end to end on a generated clip (rates from the
# x264 probe, the x264 ladder and hull, dydca auto and x2, the static
# baseline, decoders, crop PNG) and checks the report's structure: the hull
# is computed from the ladder, the BD numbers of the main curve are finite,
# every dydca point has its margin and SR gain, the crop PNG is written, the
# decoder columns are filled, and --replot rebuilds tables and plots.
set -u
dydca=$1
out=$2
rm -rf "$out"
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
"$dydca" -q bench --quick --out "$out" || { echo "FAIL: dydca bench --quick exited $?"; exit 1; }
fails=0
for f in report.md report.json crop_quick.png; do
  [[ -s "$out/$f" ]] || { echo "FAIL: $out/$f missing or empty"; fails=$((fails+1)); }
done
for s in "x264-full" "x264 hull" "x264 x2+lanczos" "dydca x2" "LR+lanczos (dydca x2)" "static x2" \
         "## Summary" "BD-rate vs hull" "margin dB" "SR gain dB" "peak RSS MB" "MACs / LR pixel"; do
  grep -qF "$s" "$out/report.md" || { echo "FAIL: report.md has no '$s'"; fails=$((fails+1)); }
done
python3 - "$out/report.json" "$out/crop_quick.png" <<'PY' || fails=$((fails+1))
import json, math, struct, sys
d = json.load(open(sys.argv[1]))
r = d["results"][0]
assert r["rates_from"] == "probe" and len(r["probe"]) >= 2, r["probe"]
rates = r["rates"]
assert len(rates) == 4 and rates == sorted(set(rates)), rates
assert r["ref_rate"] == rates[2], (r["ref_rate"], rates)
m = {c["method"]: c for c in r["curves"]}
fin = lambda v: v is not None and math.isfinite(v)
# The x264 ladder: full size and each LR scale + lanczos, one point per rate.
for s in (1, 2, 3, 4):
    k = "x264-full" if s == 1 else "x264 x%d+lanczos" % s
    assert k in m and [p["rate"] for p in m[k]["points"]] == rates, (k, m.get(k), r["errors"])
    for p in m[k]["points"]:
        assert p["total_kbps"] > 0 and 10 < p["psnr_y"] < 100 and p["scale"] == s, p
# The probe's rates make x264-full climb (it spans the 32-42 dB target on this clip).
full = [p["psnr_y"] for p in m["x264-full"]["points"]]
assert full == sorted(full) and full[-1] - full[0] > 2, full
# The hull: points of the ladder, increasing, reaching at least x264-full's best.
ladder = {(p["total_kbps"], p["psnr_y"]) for c in r["curves"] if c["kind"] == "x264" for p in c["points"]}
hull = m["x264 hull"]["points"]
assert len(hull) >= 4 and all((p["total_kbps"], p["psnr_y"]) in ladder for p in hull), hull
assert all(a["total_kbps"] < b["total_kbps"] and a["psnr_y"] < b["psnr_y"] for a, b in zip(hull, hull[1:])), hull
assert max(p["psnr_y"] for p in hull) >= max(full)
# dydca: the main curve (auto when the encoder has it, else the first fixed scale)
# has every rate, finite BD numbers against x264-full and the hull, and per point
# a margin and an SR gain over lanczos of its own LR stream.
assert "dydca auto" in m, list(m)
if not m["dydca auto"]["points"]:
    # The encoder rejected --scale auto (before it landed): said in the errors.
    assert any("dydca auto" in e for e in r["errors"]), r["errors"]
else:
    for p in m["dydca auto"]["points"]:
        assert 1 <= p["scale"] <= 4 and p["decision"] and p["trials"], p
        assert not p["plain_x264"] or p["scale"] == 1, p
main = m[r["main_curve"]]
assert len(main["points"]) == 4, (main, r["errors"])
# BD-PSNR always; BD-rate where the PSNR ranges overlap by >= 0.25 dB, else
# n/a (None: it would extrapolate). On this generated clip dydca's fitted
# linear upscaler can sit wholly above x264's range.
def overlap(a, b):
    pa, pb = [p["psnr_y"] for p in a], [p["psnr_y"] for p in b]
    return min(max(pa), max(pb)) - max(min(pa), min(pb))
ov = {"x264_full": overlap(main["points"], m["x264-full"]["points"]),
      "hull": overlap(main["points"], m["x264 hull"]["points"])}
for ref in ("x264_full", "hull"):
    assert fin(main["bd_psnr_vs_" + ref]), (ref, main)
    bd = main["bd_rate_vs_" + ref]
    assert fin(bd) if ov[ref] >= 0.25 else bd is None, (ref, bd, ov[ref])
for c in ("dydca x2", r["main_curve"]):
    for p in m[c]["points"]:
        assert p["model_bytes"] > 0 and p["lanczos_psnr_y"] > 10, p
        assert fin(p["margin_db"]) and fin(p["sr_gain_db"]) and fin(p["x264_full_psnr_y_at_rate"]), p
        assert abs(p["sr_gain_db"] - (p["psnr_y"] - p["lanczos_psnr_y"])) < 1e-9, p
        assert len(p["levels"]) >= 1 and all(l["macs_per_lr_pixel"] >= 0 for l in p["levels"]), p
s = r["summary"]
assert fin(s["worst_margin_db"]), s
for ref in ("x264_full", "hull"):
    assert (s["bd_rate_vs_" + ref] is None) == (main["bd_rate_vs_" + ref] is None), (ref, s)
assert d["mean"]["clips_with_bd_vs_x264_full"] == (1 if ov["x264_full"] >= 0.25 else 0), d["mean"]
assert len(m["static x2"]["points"]) == 4, m["static x2"]
# Decoders at the reference rate: x264-full, the main dydca file (level 0) and
# its LR stream alone, the static baseline.
dec = {(x["method"], x["decoder"]): x for x in r["decodes"]}
ref_main = [p for p in main["points"] if p["rate"] == r["ref_rate"]][0]
want = [("x264-full", "H.264"), ("dydca x2", "SR level 0"), ("static x2", "SR, 1 model")]
if ref_main["plain_x264"]:  # auto shipped plain x264 at this rate: no model, no LR stream
    want.append((r["main_curve"], "plain x264 output"))
else:
    want += [(r["main_curve"], "SR level 0"), (r["main_curve"], "plain video, no model")]
for meth, what in want:
    hits = [x for (mm, dd), x in dec.items() if mm == meth and what in dd]
    assert hits, "no decode of %s (%s): %s %s" % (meth, what, list(dec), r["errors"])
    x = hits[0]
    assert x["rate"] == r["ref_rate"] and x["frames"] == r["frames"] == 24, x
    assert x["fps"] > 0 and x["rss_peak_kb"] > 0 and x["rss_peak_kb"] >= x["rss_idle_kb"], x
# The crop PNG: original, x264-full, LR + lanczos, dydca, side by side.
c = r["crop"]
assert c["png"] == "crop_quick.png" and len(c["panels"]) == 4 and c["rate"] == r["ref_rate"], c
png = open(sys.argv[2], "rb").read(24)
assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:8]
w, h = struct.unpack(">II", png[16:24])
assert w >= 4 * c["side"] * c["magnify"] and h >= c["side"] * c["magnify"], (w, h, c)
print("bench quick: ok (main curve %s, BD-rate %s vs x264-full, %s vs hull)"
      % (r["main_curve"], s["bd_rate_vs_x264_full"], s["bd_rate_vs_hull"]))
PY
# Tables and plots rebuilt from report.json alone.
cp "$out/report.md" "$out/report.md.orig"
rm -f "$out/report.md" "$out"/{rd,ladder,macs,decode,bytes}_*.png
"$dydca" -q bench --replot "$out" || { echo "FAIL: bench --replot exited $?"; fails=$((fails+1)); }
cmp -s "$out/report.md" "$out/report.md.orig" || { echo "FAIL: replot: report.md differs"; fails=$((fails+1)); }
if command -v gnuplot >/dev/null; then
  for f in rd ladder macs decode bytes; do
    [[ -s "$out/${f}_quick.png" ]] || { echo "FAIL: no $f plot"; fails=$((fails+1)); }
  done
fi
exit $((fails > 0))
