#!/usr/bin/env bash
# Three domains of text every Debian machine carries, so the experts have something to specialise
# on (one domain alone, balanced by design, leaves pruning no signal): Python's standard library
# (code), the licences in /usr/share/common-licenses (legal prose), and Debian package changelogs
# (terse technical notes). Each is cut into train (the first 90%) and held-out text (the last
# 10%, at most HELDOUT bytes, default 60000: the saved reference distributions grow with it).
#   bash bench/compression/make_corpora.sh OUT_DIR [BYTES_PER_DOMAIN]
set -eu  # no pipefail: `head -c` closes the pipe early on purpose
out=$1
bytes=${2:-3000000}
mkdir -p "$out"
py=$(ls -d /usr/lib/python3.* | sort -V | tail -1)
# sort: the same files in the same order on every machine with these packages
find "$py" -maxdepth 2 -name '*.py' -not -path '*/test*' -not -path '*/idlelib/*' -print0 |
  sort -z | xargs -0 cat | head -c "$bytes" >"$out/code.txt"
# (the licences are fewer bytes than the other domains; run.sh weights the domains evenly)
find /usr/share/common-licenses -type f -print0 | sort -z | xargs -0 cat | head -c "$bytes" >"$out/legal.txt"
find /usr/share/doc -name changelog.Debian.gz -print0 | sort -z | xargs -0 zcat 2>/dev/null |
  head -c "$bytes" >"$out/changelog.txt" || true
for d in code legal changelog; do
  n=$(stat -c %s "$out/$d.txt")
  head -c $((n * 9 / 10)) "$out/$d.txt" >"$out/$d.train"
  held=$((n / 10))
  ((held > ${HELDOUT:-60000})) && held=${HELDOUT:-60000}
  tail -c $((n / 10)) "$out/$d.txt" | head -c "$held" >"$out/$d.heldout"
done
ls -l "$out"
