# shellcheck shell=bash
# Variables are shared with scripts/gateway-bench, which sources this file:
# shellcheck disable=SC2034,SC2154
# Sourced by scripts/gateway-bench for the kong mode (TOKENS=kong), after the
# static upstream and the nginx proxy are up: a Kong-dialect Warden, its token,
# and the checks before timing. It uses the script's helpers (say, die,
# check, http_get, mint, b64url, start_warden) and sets what the runs and the
# report use: kong_url, kong_path, kong_prefix, kong_token, kong_tls_port,
# kong_username, kong_scope, kong_mode_note, kong_warden_note and
# kong_request_note.
#
# The Warden runs a copy of policies/kong-client-credentials.policy (Kong's
# documented client_credentials example: consumer bob, his app's credential,
# route mockbin on /mock, an oauth2 plugin with `scopes [email, profile]`)
# with two changes: the route forwards to the static upstream instead of the
# built-in echo, and the plugin says `mandatory_scope true` (Kong's way to
# require a scope: the token endpoint refuses to issue a token without one;
# Kong's access phase, like Warden's Kong dialect, never checks scopes per
# request, so there is no 403 for a missing scope to test). Kong's token
# endpoints are HTTPS only: the Warden also listens with TLS (a certificate
# for 127.0.0.1 made here), the token is taken there, and the timed requests
# go to its plain HTTP listener like every other mode's (the route does not
# say `protocols [https]`). Its signing key (WARDEN_SIGNING_KEY) is random.
#
# Checks, all before timing: the token endpoint over plain HTTP is Kong's 400
# "You must use HTTPS"; over HTTPS without a scope 400 "You must specify a
# scope", with a scope outside the list 400 invalid_scope, with scope email
# a JWT; GET /mock/a with it is 200 "ok" from the upstream over HTTP and over
# HTTPS, 401 (Kong's "The access token is missing") without a token, 401 with
# a corrupted one; the upstream receives X-Consumer-ID (a UUID),
# X-Consumer-Custom-ID, X-Consumer-Username, X-Credential-Identifier and
# X-Authenticated-Scope as the policy says, and no X-Authenticated-Userid
# (client_credentials has no resource owner), even when the client sends
# its own values of those headers; tokens minted here with the policy's key
# (the script's HS256 reproduces Warden's token byte for byte first): payload
# edited after signing, another key, expired, bound to another route (aud) are
# 401; one without a scope claim is admitted and reaches the upstream without
# X-Authenticated-Scope (Kong's behaviour: scopes are checked at issuance);
# nginx answers 200 "ok" with the token. Warden's --metrics is on: the report
# gives its token checks during the runs (remembered: from the memo).

kong_source="$root/policies/kong-client-credentials.policy"
kong_prefix=/mock # the route's path_prefix; the static upstream echoes headers below it
kong_path="$kong_prefix/a"
kong_field() { # the first value of FIELD in the policy (its one consumer and credential)
  awk -v field="$1" '$1 == field { v = $2; for (i = 3; i <= NF && $i != "#"; i++) v = v " " $i; gsub(/"/, "", v); print v; exit }' "$kong_source"
}
kong_username="$(kong_field username)"
kong_custom_id="$(kong_field custom_id)"
kong_client_id="$(kong_field client_id)"
kong_client_secret="$(kong_field client_secret)"
for value in "$kong_username" "$kong_custom_id" "$kong_client_id" "$kong_client_secret"; do
  [[ "$value" =~ ^[A-Za-z0-9._~-]+$ ]] ||
    die "$kong_source: a username, custom_id, client_id or client_secret missing or outside [A-Za-z0-9._~-] ('$value'); update scripts/gateway-bench.d/kong.sh"
done
# The plugin's first scope: what the token asks for.
kong_scope="$(sed -n 's/^[[:space:]]*scopes \[\([A-Za-z0-9_.-]*\)[],].*/\1/p' "$kong_source")"
[ -n "$kong_scope" ] || die "$kong_source: no 'scopes [...]' in the plugin; update scripts/gateway-bench.d/kong.sh"

kong_policy="$work/kong.policy"
sed -e "s|upstream echo|upstream \"$upstream_url\"|" \
  -e 's|^\([[:space:]]*\)\(scopes \[.*\]\)$|\1\2\n\1mandatory_scope true|' "$kong_source" >"$kong_policy"
if [ "$(grep -c "upstream \"$upstream_url\"" "$kong_policy")" != 1 ] || grep -q 'upstream echo' "$kong_policy" ||
  [ "$(grep -c '^[[:space:]]*mandatory_scope' "$kong_policy")" != 1 ] ||
  ! grep -q "path_prefix $kong_prefix;" "$kong_policy"; then
  die "$kong_source no longer has one 'upstream echo' route on $kong_prefix and one 'scopes [...]' line without mandatory_scope; update scripts/gateway-bench.d/kong.sh"
fi
kong_signing_key="$(openssl rand -base64 48)"
WARDEN_SIGNING_KEY="$kong_signing_key" "$warden" check "$kong_policy" >"$work/kong-check.log" 2>&1 ||
  die "warden check rejects the Kong policy copy: $(cat "$work/kong-check.log")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/kong-key.pem" -out "$work/kong-cert.pem" \
  >"$work/kong-cert.log" 2>&1 || die "openssl could not make a certificate: $(tail -n 3 "$work/kong-cert.log")"

say "starting warden-kong (Kong dialect, CPU $PROXY_CPU, RUST_LOG=$WARDEN_LOG)"
warden_env=(WARDEN_SIGNING_KEY="$kong_signing_key")
start_warden warden-kong "$kong_policy" --tls-listen 127.0.0.1:0 --tls-cert "$work/kong-cert.pem" \
  --tls-key "$work/kong-key.pem" --metrics 127.0.0.1:0
warden_env=()
kong_port=$started_port
kong_tls_port=$started_tls_port
kong_url="http://127.0.0.1:$kong_port"
kong_tls_url="https://127.0.0.1:$kong_tls_port"
kong_tls=(--cacert "$work/kong-cert.pem")
kong_token_url="$kong_tls_url$kong_prefix/oauth2/token"
kong_client=(-u "$kong_client_id:$kong_client_secret" --data grant_type=client_credentials)

check "warden-kong: token request over plain HTTP (Kong: HTTPS only)" "$kong_url$kong_prefix/oauth2/token" \
  '400 {"error":"access_denied","error_description":"You must use HTTPS"}' "${kong_client[@]}" --data "scope=$kong_scope"
check "warden-kong: token request without a scope (mandatory_scope)" "$kong_token_url" \
  '400 {"error":"invalid_scope","error_description":"You must specify a scope"}' "${kong_tls[@]}" "${kong_client[@]}"
check "warden-kong: token request for a scope outside the plugin's" "$kong_token_url" \
  '400 {"error":"invalid_scope","error_description":"\"admin\" is an invalid scope"}' "${kong_tls[@]}" "${kong_client[@]}" --data scope=admin
kong_reply="$(curl -sS --max-time 5 "${kong_tls[@]}" "${kong_client[@]}" --data "scope=$kong_scope" "$kong_token_url")" ||
  die "token request to warden-kong failed"
kong_token="$(printf '%s' "$kong_reply" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
[[ "$kong_token" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] ||
  die "no access token from warden-kong's token endpoint (reply: ${kong_reply:0:200})"
say "ok: warden-kong: $kong_username's app's token, scope $kong_scope, over HTTPS"
kong_auth="Authorization: Bearer $kong_token"

check "warden-kong GET $kong_path with the token" "$kong_url$kong_path" "200 ok " -H "$kong_auth"
check "warden-kong GET $kong_path with the token, over HTTPS" "$kong_tls_url$kong_path" "200 ok " "${kong_tls[@]}" -H "$kong_auth"
check "warden-kong GET $kong_path without a token" "$kong_url$kong_path" \
  '401 {"error":"invalid_request","error_description":"The access token is missing"}'
check "warden-kong GET $kong_path with a corrupted token" "$kong_url$kong_path" \
  '401 {"error":"invalid_token","error_description":"The access token is invalid or has expired"}' -H "${kong_auth}x"
check "nginx GET $kong_path with the Kong token" "http://127.0.0.1:$proxy_port$kong_path" "200 ok " -H "$kong_auth"

# kong_headers TOKEN [curl args...]: the Kong headers the static upstream saw,
# on one line ("name: value; ..."), for a request with TOKEN through Warden.
kong_headers() {
  local t=$1 seen
  shift
  seen="$(curl -sS --max-time 5 -H "Authorization: Bearer $t" "$@" "$kong_url$kong_prefix/gateway-bench-headers")" ||
    die "warden-kong: GET $kong_prefix/gateway-bench-headers failed"
  printf '%s\n' "$seen" | sed 's/ *$//' | paste -sd ';' | sed 's/;/; /g'
}
uuid_re='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
kong_expected="x-consumer-custom-id: $kong_custom_id; x-consumer-username: $kong_username; x-credential-identifier: $kong_client_id; x-authenticated-scope: $kong_scope; x-authenticated-userid:; x-anonymous-consumer:"
for spoof in no yes; do
  spoofed=()
  if [ "$spoof" = yes ]; then
    spoofed=(-H "X-Consumer-ID: 00000000-0000-0000-0000-000000000000" -H "X-Consumer-Username: mallory"
      -H "X-Authenticated-Scope: admin" -H "X-Authenticated-Userid: mallory" -H "X-Anonymous-Consumer: true")
  fi
  seen="$(kong_headers "$kong_token" "${spoofed[@]}")"
  if ! [[ "$seen" =~ ^x-consumer-id:\ ($uuid_re)\;\ (.*)$ ]] || [ "${BASH_REMATCH[2]}" != "$kong_expected" ]; then
    die "warden-kong: the upstream saw '$seen', expected 'x-consumer-id: <uuid>; $kong_expected'"
  fi
  kong_consumer_id=${BASH_REMATCH[1]}
  if [ "$spoof" = yes ]; then
    say "ok: warden-kong: the client's own X-Consumer-*/X-Authenticated-* headers are replaced or removed -> $seen"
  else
    say "ok: warden-kong: the upstream received -> $seen"
  fi
done

# Tokens minted here with the policy's signing key, from Warden's own token:
# first the same header and claims, which must give Warden's token exactly.
unb64url() {
  local s
  s="$(printf '%s' "$1" | tr '_-' '/+')"
  while ((${#s} % 4)); do s+="="; done
  printf '%s' "$s" | base64 -d
}
kong_header_json="$(unb64url "${kong_token%%.*}")"
kong_claims="$(unb64url "$(printf '%s' "$kong_token" | cut -d . -f 2)")"
[ "$(mint "$kong_header_json" "$kong_claims" "$kong_signing_key")" = "$kong_token" ] ||
  die "warden-kong: re-signing its token's header and claims with the policy's key does not give the token; update scripts/gateway-bench.d/kong.sh"
kong_edit() { # kong_edit SED_EXPRESSION: the claims edited; dies when nothing changed
  local edited
  edited="$(printf '%s' "$kong_claims" | sed "$1")"
  [ "$edited" != "$kong_claims" ] || die "warden-kong: its token's claims ($kong_claims) have no match for '$1'; update scripts/gateway-bench.d/kong.sh"
  printf '%s' "$edited"
}
now="$(date +%s)"
kong_edited="${kong_token%%.*}.$(kong_edit 's/"scope":"[^"]*"/"scope":"email profile"/' | b64url).${kong_token##*.}"
kong_forged=(
  "payload edited after signing (scope widened)|$kong_edited"
  "signed with another key|$(mint "$kong_header_json" "$kong_claims" "wrong-$kong_signing_key")"
  "expired 120 s ago|$(mint "$kong_header_json" "$(kong_edit "s/\"exp\":[0-9]*/\"exp\":$((now - 120))/")" "$kong_signing_key")"
  "bound to another route (aud)|$(mint "$kong_header_json" "$(kong_edit 's/"aud":"[^"]*"/"aud":"another-route"/')" "$kong_signing_key")"
)
for row in "${kong_forged[@]}"; do
  IFS='|' read -r name forged_token <<<"$row"
  check "warden-kong: $name" "$kong_url$kong_path" \
    '401 {"error":"invalid_token","error_description":"The access token is invalid or has expired"}' -H "Authorization: Bearer $forged_token"
done
kong_unscoped="$(mint "$kong_header_json" "$(kong_edit 's/"scope":"[^"]*",//')" "$kong_signing_key")"
check "warden-kong: a token without a scope claim, signed with the key (Kong checks scopes at issuance only)" \
  "$kong_url$kong_path" "200 ok " -H "Authorization: Bearer $kong_unscoped"
seen="$(kong_headers "$kong_unscoped")"
[ "$seen" = "x-consumer-id: $kong_consumer_id; ${kong_expected/x-authenticated-scope: $kong_scope/x-authenticated-scope:}" ] ||
  die "warden-kong: with the unscoped token the upstream saw '$seen'"
say "ok: warden-kong: the unscoped token reaches the upstream without X-Authenticated-Scope -> $seen"

kong_warden_note="Warden (Kong dialect): \`warden serve --policy <policies/kong-client-credentials.policy, route mockbin ($kong_prefix) pointed at the static upstream, its plugin with mandatory_scope true> --listen 127.0.0.1:$kong_port --tls-listen 127.0.0.1:$kong_tls_port --tls-cert <made here> --tls-key <…> --metrics 127.0.0.1:${warden_metrics[warden-kong]}\` (RUST_LOG=$WARDEN_LOG, WARDEN_SIGNING_KEY random), pinned to CPU $PROXY_CPU; the TLS listener serves only the token request"
kong_request_note="Request (kong): \`GET $kong_path\` over plain HTTP with \`Authorization: Bearer <$kong_username's app's token>\`, taken over HTTPS from \`$kong_prefix/oauth2/token\` (client_credentials, HTTP Basic, scope $kong_scope). Checked before timing: token endpoint 400 over plain HTTP, 400 without a scope and with one outside the plugin's; 200 \"ok\" with the token (HTTP and HTTPS), 401 without, 401 corrupted; the upstream receives X-Consumer-ID, X-Consumer-Custom-ID $kong_custom_id, X-Consumer-Username $kong_username, X-Credential-Identifier $kong_client_id, X-Authenticated-Scope $kong_scope (a client's own values replaced or removed); tokens minted with the policy's key: edited, wrong key, expired, another route's are 401, one without scope is admitted without X-Authenticated-Scope (Kong checks scopes at issuance, never per request: no 403 to test); nginx ignores the token"
kong_mode_note="every request carries the same Kong-dialect token of $kong_username's app (client_credentials, scope $kong_scope): Warden verifies it (from its memo after the first), binds it to the route, checks it is not revoked and sets X-Consumer-ID, X-Consumer-Custom-ID, X-Consumer-Username, X-Credential-Identifier and X-Authenticated-Scope upstream; HAProxy n/a (no counterpart of Kong's oauth2 plugin)"
