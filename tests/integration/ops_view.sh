#!/usr/bin/env bash
# The operator view (/ops, issue 11) in a real browser: a known population of 40 sessions
# (analytics_pop.py, three hours starting six hours ago) is loaded into a SQLite file through the
# edge's own store (tools/an_load); an edge with --analytics on that file serves /ops; Debian's
# chromium (tests/browser/ops.mjs) must draw both charts from /api/v1/analytics (interval 900),
# show the 40 sessions in the totals, and a screenshot is kept as docs/ops-view.png.
# Env: FC_SCREENSHOT=FILE writes the screenshot there instead.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-edge" "$FC_BUILD/tools/an_load"
command -v node >/dev/null || fc_fail "node missing (scripts/install-deps.sh)"
[ -d "$FC_ROOT/tests/browser/node_modules/playwright-core" ] || fc_fail "playwright-core missing (scripts/install-deps.sh)"
[ -f "$FC_ROOT/web/vendor/node_modules/uplot/dist/uPlot.iife.min.js" ] || fc_fail "uPlot missing (scripts/install-deps.sh)"
base=$(( ($(date +%s) / 3600 - 6) * 3600 ))
python3 "$FC_LIB_DIR/analytics_pop.py" gen "$base" "$FC_TMP/pop.tsv"
"$FC_BUILD/tools/an_load" "sqlite:$FC_TMP/a.db" node-a "$FC_TMP/pop.tsv" >"$FC_TMP/load.log" 2>&1 ||
  fc_fail "an_load: $(tail -2 "$FC_TMP/load.log")"
http=$(free_port); relay=$(free_port)
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start edge "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$http" --relay "127.0.0.1:$relay" \
  --key "$FC_TMP/mesh.key" --workers 1 --analytics "sqlite:$FC_TMP/a.db"
wait_http "http://127.0.0.1:$http/ops" 15 || fc_fail "edge never served /ops"
shot=${FC_SCREENSHOT:-$FC_ROOT/docs/ops-view.png}
out=$(cd "$FC_ROOT/tests/browser" && timeout 60 node ops.mjs "http://127.0.0.1:$http" pop.mp3 40 \
  "$shot" 2>&1) || fc_fail "browser: $out"
echo "ops_view: PASS $(tail -1 <<<"$out") screenshot=$(basename "$shot")"
