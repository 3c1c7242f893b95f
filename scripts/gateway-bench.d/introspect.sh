# shellcheck shell=bash
# Variables are shared with scripts/gateway-bench, which sources this file:
# shellcheck disable=SC2034,SC2154
# Sourced by scripts/gateway-bench for the introspect mode (TOKENS=introspect),
# after the static upstream and the nginx proxy are up: an introspection
# server, a Warden that checks opaque tokens with it, and the checks before
# timing. It uses the script's helpers (say, die, check, http_get,
# token_checks, start_warden) and sets what the runs and the report use:
# introspect_url, introspect_path, introspect_token, introspection_calls (a
# function), introspect_mode_note, introspect_warden_note and
# introspect_request_note.
#
# The server is scripts/gateway-bench.d/introspection.py (Python's standard
# library, pinned to LOAD_CPU with wrk: after the first request it is not
# called again). It answers only the request the policy's `introspection`
# block makes — POST /introspect, HTTP Basic client authentication, a form
# of one field, token — and 400 to anything else, so Warden's first 200 shows
# the request was that one. The policy (written here, Higress dialect): route
# /api to the static upstream, its rule `introspect bench` with required
# scope read, the answer's username upstream as X-User (and as the consumer,
# X-Mse-Consumer), `cache_ttl 24h` (the answer's exp is a day on, so no
# entry expires during a run).
#
# Checks, all before timing: the server answers Warden's request (curl makes
# it) active with scope read, an unknown token inactive, a GET with the token
# in the query 400, a wrong client secret 401; through Warden, GET /api/a with
# the token is 200 "ok" from the upstream, one introspection call made
# (Warden's `introspected` +1, the server's count +1, none of another shape);
# the same request again is 200 from the cache (`introspection_cached` +1, no
# server call); the upstream receives X-Mse-Consumer and X-User (a client's
# own X-User replaced); 401 OAUTH2_MISSING_HEADER without a token, 401
# OAUTH2_INVALID_ACCESS_TOKEN with an unknown one, 403 OAUTH2_INSUFFICIENT_SCOPE
# with a token the server vouches for without scope read; nginx answers 200
# "ok" with the token. After the runs the report gives the cache hits, misses
# and server calls counted during them.

introspect_prefix=/api # the route's path_prefix; the static upstream echoes headers below it
introspect_path="$introspect_prefix/a"
introspect_client_id=gateway-bench-warden
introspect_client_secret="$(openssl rand -hex 16)"
introspect_token="gateway-bench-opaque-$(openssl rand -hex 16)"
introspect_unscoped_token="gateway-bench-opaque-unscoped-$(openssl rand -hex 16)"
introspect_user=bench-user
introspect_scope="read"

say "starting the introspection server (python3, CPU $LOAD_CPU)"
: >"$work/introspection.out"
taskset -c "$LOAD_CPU" python3 "$confdir/introspection.py" --client-id "$introspect_client_id" \
  --client-secret "$introspect_client_secret" --token "$introspect_token" \
  --token-without-scope "$introspect_unscoped_token" --scope "$introspect_scope" --user "$introspect_user" \
  >"$work/introspection.out" 2>"$work/introspection.err" &
introspection_pid=$!
pids+=("$introspection_pid")
introspection_port=""
for ((i = 0; i < 100; i++)); do
  kill -0 "$introspection_pid" 2>/dev/null || die "the introspection server exited: $(tail -n 5 "$work/introspection.err")"
  introspection_port="$(sed -n 's|^listening on 127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/introspection.out")"
  [ -z "$introspection_port" ] || break
  sleep 0.1
done
[ -n "$introspection_port" ] || die "the introspection server did not start listening within 10 s"
introspection_url="http://127.0.0.1:$introspection_port/introspect"

introspection_stat() { # introspection_stat introspections|bad: the server's count
  local stats value
  stats="$(curl -sS --max-time 5 "http://127.0.0.1:$introspection_port/stats")" ||
    die "could not read the introspection server's /stats"
  value="$(printf '%s' "$stats" | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p")"
  [ -n "$value" ] || die "no $1 in the introspection server's /stats: ${stats:0:200}"
  printf '%s\n' "$value"
}
introspection_calls() { introspection_stat introspections; }

# The request Warden's introspection block makes, made by curl.
introspect_client=(-u "$introspect_client_id:$introspect_client_secret")
reply="$(http_get "$introspection_url" "${introspect_client[@]}" --data-urlencode "token=$introspect_token")"
[[ "$reply" == "200 {\"active\": true, \"sub\": \"$introspect_user\", "*"\"scope\": \"$introspect_scope\"}" ]] ||
  die "introspection server: POST, Basic, token= (as Warden sends it): expected 200, active, sub $introspect_user, scope $introspect_scope; got '$reply'"
say "ok: introspection server: POST, Basic, token= (as Warden sends it) -> $reply"
check "introspection server: an unknown token" "$introspection_url" '200 {"active": false}' \
  "${introspect_client[@]}" --data-urlencode "token=gateway-bench-unknown"
check "introspection server: the token in a GET query (another shape)" "$introspection_url?token=$introspect_token" 400 \
  "${introspect_client[@]}"
check "introspection server: a wrong client secret" "$introspection_url" 401 \
  -u "$introspect_client_id:wrong" --data-urlencode "token=$introspect_token"

introspect_policy="$work/introspect.policy"
cat >"$introspect_policy" <<EOF
# scripts/gateway-bench, introspect mode: opaque tokens on /api, checked by
# RFC 7662 introspection against scripts/gateway-bench.d/introspection.py.
global_auth false

introspection bench {
  endpoint          "$introspection_url"
  method            POST
  client_id         $introspect_client_id
  client_secret     "$introspect_client_secret"
  token_query_param none
  token_form_field  token
  required_scopes   [$introspect_scope]
  payload_headers   { username X-User }
  cache_ttl         24h
}

route api { path_prefix $introspect_prefix; upstream "$upstream_url" }
rule api { match route [api]; introspect bench }
EOF
"$warden" check "$introspect_policy" >"$work/introspect-check.log" 2>&1 ||
  die "warden check rejects the introspection policy: $(cat "$work/introspect-check.log")"

say "starting warden-introspect (CPU $PROXY_CPU, RUST_LOG=$WARDEN_LOG)"
start_warden warden-introspect "$introspect_policy" --metrics 127.0.0.1:0
introspect_port=$started_port
introspect_url="http://127.0.0.1:$introspect_port"
introspect_metrics=${warden_metrics[warden-introspect]}
introspect_auth="Authorization: Bearer $introspect_token"

# expect_counts NAME INTROSPECTED CACHED CALLS: what the last request changed,
# since the previous call: Warden's two counters and the server's calls.
count_introspected=0 count_cached=0 count_calls="$(introspection_calls)" count_bad="$(introspection_stat bad)"
expect_counts() {
  local name=$1 introspected cached calls bad
  introspected="$(token_checks "$introspect_metrics" introspected)"
  cached="$(token_checks "$introspect_metrics" introspection_cached)"
  calls="$(introspection_calls)"
  bad="$(introspection_stat bad)"
  [ "$((introspected - count_introspected)) $((cached - count_cached)) $((calls - count_calls)) $((bad - count_bad))" = "$2 $3 $4 0" ] ||
    die "$name: introspected +$((introspected - count_introspected)), introspection_cached +$((cached - count_cached)), server calls +$((calls - count_calls)) (of another shape: +$((bad - count_bad))); expected +$2, +$3, +$4 (+0)"
  say "ok: $name -> introspected +$2, introspection_cached +$3, server calls +$4"
  count_introspected=$introspected count_cached=$cached count_calls=$calls count_bad=$bad
}
check "warden-introspect GET $introspect_path with the token (first: introspected)" \
  "$introspect_url$introspect_path" "200 ok " -H "$introspect_auth"
expect_counts "warden-introspect: the first request" 1 0 1
check "warden-introspect GET $introspect_path with the token again (cached)" \
  "$introspect_url$introspect_path" "200 ok " -H "$introspect_auth"
expect_counts "warden-introspect: the second request" 0 1 0
for spoof in no yes; do
  spoofed=()
  if [ "$spoof" = yes ]; then spoofed=(-H "X-User: mallory" -H "X-Mse-Consumer: mallory"); fi
  check "warden-introspect: the upstream's headers$([ "$spoof" = no ] || printf ', the client sending its own')" \
    "$introspect_url$introspect_prefix/gateway-bench-headers" \
    "200 x-mse-consumer: $introspect_user x-user: $introspect_user " -H "$introspect_auth" "${spoofed[@]}"
done
expect_counts "warden-introspect: the header checks" 0 2 0

# check_key NAME URL STATUS ERROR_KEY [curl args...]: the status and Warden's
# x-error-key header (Gravitee's error key).
check_key() {
  local name=$1 target=$2 expected="$3 $4" got
  shift 4
  got="$(curl -sS --max-time 5 -o /dev/null -D - "$@" "$target" 2>/dev/null | tr -d '\r' |
    awk 'NR == 1 { status = $2 } tolower($1) == "x-error-key:" { key = $2 } END { print status " " key }')"
  [ "$got" = "$expected" ] || die "$name: expected '$expected', got '$got'"
  say "ok: $name -> $got"
}
check_key "warden-introspect GET $introspect_path without a token" "$introspect_url$introspect_path" \
  401 OAUTH2_MISSING_HEADER
check_key "warden-introspect GET $introspect_path with an unknown token" "$introspect_url$introspect_path" \
  401 OAUTH2_INVALID_ACCESS_TOKEN -H "Authorization: Bearer gateway-bench-unknown"
check_key "warden-introspect GET $introspect_path with a token without scope $introspect_scope" \
  "$introspect_url$introspect_path" 403 OAUTH2_INSUFFICIENT_SCOPE -H "Authorization: Bearer $introspect_unscoped_token"
check "nginx GET $introspect_path with the opaque token" "http://127.0.0.1:$proxy_port$introspect_path" "200 ok " \
  -H "$introspect_auth"
say "ok: warden-introspect: $(token_checks "$introspect_metrics" introspection_cached) cache hits, $(introspection_calls) server calls so far (all from the checks, curl's own included); every timed request should be a hit"

python_version="$(python3 --version 2>&1 | sed 's/^Python //')"
introspect_warden_note="Warden (introspection): \`warden serve --policy <introspect.policy: route /api to the static upstream, introspect bench: POST to the introspection server, HTTP Basic, token in the form, required_scopes [$introspect_scope], payload_headers { username X-User }, cache_ttl 24h> --listen 127.0.0.1:$introspect_port --metrics 127.0.0.1:$introspect_metrics\` (RUST_LOG=$WARDEN_LOG, store: memory), pinned to CPU $PROXY_CPU; the introspection server: \`scripts/gateway-bench.d/introspection.py\` (Python $python_version, http.server), pinned to CPU $LOAD_CPU"
introspect_request_note="Request (introspect): \`GET $introspect_path\` with \`Authorization: Bearer <an opaque token>\`. Checked before timing: the server answers the request Warden makes (and refuses any other shape); 200 \"ok\" with the token, the first request introspected (one server call), the next from the cache (no call; Warden's \`introspection_cached\` counter); the upstream receives X-Mse-Consumer and X-User $introspect_user (a client's own replaced); 401 without a token and with an unknown one, 403 insufficient_scope with a token the server vouches for without scope $introspect_scope; nginx ignores the token"
introspect_mode_note="every request carries the same opaque token, introspected once (RFC 7662) before timing: every timed request is an introspection-cache hit (Warden's store, then the required scope, X-Mse-Consumer and X-User upstream); HAProxy n/a (no RFC 7662 introspection)"
