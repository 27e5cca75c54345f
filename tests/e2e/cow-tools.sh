#!/usr/bin/env bash
# The offline COW tools through the real launcher, on the kernel's images (copied into the
# store's test resources from shared/fixtures/kernel-cow): dump and check print what the
# fixture records, read reproduces the recorded snapshot sha256, check names damage and exits 1.
. "$(dirname "$0")/lib.sh"
FX="$E2E_ROOT/store/src/test/resources/kernel-cow"
work=$E2E_WORK

for case in basic:cow.img:origin.img handover:cow.img:origin.img overflow:cow2.img:origin2.img; do
    IFS=: read -r scenario cow origin <<<"$case"
    mkdir -p "$work/$scenario"
    gzip -dc "$FX/$scenario/final/$cow.gz" >"$work/$scenario/$cow"
    gzip -dc "$FX/$scenario/final/$origin.gz" >"$work/$scenario/$origin"
    expected=$(sed -n "/^cow $cow:/,/^derived usage/p" "$FX/$scenario/cowdump.txt")
    actual=$("$DMSNAP" cow dump "$work/$scenario/$cow")
    expect_eq "cow dump $scenario/$cow" "$expected" "$actual"
    usage=$(echo "$expected" | sed -n 's/^derived usage: \([^ ]* [0-9]*\).*/\1/p')
    check=$("$DMSNAP" cow check "$work/$scenario/$cow" --origin "$work/$scenario/$origin")
    expect_contains "cow check $scenario/$cow" "clean:" "$check"
    expect_contains "cow check usage $scenario/$cow" "usage $usage" "$check"
    sha=$(sed -n "/^cow $cow:/,/^snapshot view/p" "$FX/$scenario/cowdump.txt" | sed -n 's/^snapshot view sha256 //p')
    out=$("$DMSNAP" cow read --origin "$work/$scenario/$origin" --cow "$work/$scenario/$cow" --out "$work/$scenario/view.raw")
    expect_contains "cow read $scenario/$cow" "snapshot view sha256 $sha" "$out"
    expect_eq "sha256 of the written view" "$sha" "$(sha256sum <"$work/$scenario/view.raw" | cut -d' ' -f1)"
    echo "  $scenario/$cow: dump, check ($usage) and read ($sha) match the kernel"
done

# Damage: entry 5 of area 0 points at chunk 258, which is area 1.
cp "$work/basic/cow.img" "$work/damaged.img"
printf '\x02\x01\x00\x00\x00\x00\x00\x00' | dd of="$work/damaged.img" bs=1 seek=$((4096 + 5 * 16 + 8)) conv=notrunc status=none
set +e
out=$("$DMSNAP" cow check "$work/damaged.img")
rc=$?
set -e
expect_eq "exit status of cow check on a damaged COW" 1 "$rc"
expect_contains "cow check names the damage" "exception 5 of area 0 (byte 4176) points at COW chunk 258, which holds metadata" "$out"
set +e
"$DMSNAP" cow check "$work/none.img" 2>/dev/null
rc=$?
set -e
expect_eq "exit status of cow check on a missing COW" 3 "$rc"
echo "cow tools: ok"
