"""Real OAuth2 client libraries against `warden serve`, for tests/oauth2_clients.rs.

Each subcommand runs one flow with a client library doing the protocol and
prints one JSON line: what the token endpoint answered, what the protected
routes answered, and what PyJWT made of the access token. Any failure of a
library (an exception: a refused token response, a state mismatch, a TLS
error) propagates: the script exits non-zero with the traceback on stderr.

    python oauth_clients.py client-credentials LIBRARY AUTH TOKEN_URL CA \
        CLIENT_ID CLIENT_SECRET ISSUER [CALL…]
        LIBRARY: requests-oauthlib | authlib
        AUTH:    basic (HTTP Basic) | form (client_id/client_secret in the body)
        CALL:    URL or URL@HOST: GET with the session's token (Host: HOST)
    python oauth_clients.py code-pkce LIBRARY BASE CA CLIENT_ID CLIENT_SECRET|- \
        REDIRECT_URI SCOPE PROVISION_KEY USER SIGNING_KEY ISSUER AUDIENCE
        the authorization code flow with PKCE (S256) against a Kong-dialect
        policy: the library builds the authorize request (and the verifier),
        the resource owner's application POSTs it to BASE/oauth2/authorize
        with the provision_key, the library exchanges the code from the
        answer's redirect_uri, calls BASE/orders, refreshes, calls again.

    python oauth_clients.py verify TOKEN KEY ISSUER AUDIENCE
        PyJWT's verdict on a token another client obtained (HS256 with KEY).

CA is the PEM file the HTTPS listener's certificate is trusted by.
"""
import json
import os
import sys
import urllib.parse

import jwt
import requests


def check_jwt(token, key, issuer, audience):
    """PyJWT against the RFC 9068 profile: HS256 with `key`, typ at+jwt,
    the registered claims present, iss and aud as expected."""
    header = jwt.get_unverified_header(token)
    typ = header.get("typ", "")
    # RFC 9068 §4: "at+jwt" or "application/at+jwt", and nothing else.
    if typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise ValueError(f"typ {typ!r} is not RFC 9068's at+jwt")
    claims = jwt.decode(
        token,
        key,
        algorithms=["HS256"],
        issuer=issuer,
        audience=audience,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    return {"header": header, "claims": claims}


def call(session, target, **kwargs):
    url, _, host = target.partition("@")
    headers = {"Host": host} if host else {}
    resp = session.get(url, headers=headers, **kwargs)
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return {
        "target": target,
        "status": resp.status_code,
        "body": body,
        "www_authenticate": resp.headers.get("www-authenticate"),
    }


def client_credentials(library, auth, token_url, ca, client_id, secret, issuer, *calls):
    if library == "requests-oauthlib":
        from oauthlib.oauth2 import BackendApplicationClient
        from requests.auth import HTTPBasicAuth
        from requests_oauthlib import OAuth2Session

        session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
        session.verify = ca
        if auth == "basic":
            token = session.fetch_token(
                token_url, auth=HTTPBasicAuth(client_id, secret)
            )
        elif auth == "form":
            token = session.fetch_token(
                token_url,
                client_id=client_id,
                client_secret=secret,
                include_client_id=True,
            )
        else:
            sys.exit(f"unknown AUTH {auth}")
    elif library == "authlib":
        from authlib.integrations.requests_client import OAuth2Session

        method = {"basic": "client_secret_basic", "form": "client_secret_post"}[auth]
        session = OAuth2Session(
            client_id, secret, token_endpoint_auth_method=method
        )
        session.verify = ca
        token = session.fetch_token(token_url, grant_type="client_credentials")
    else:
        sys.exit(f"unknown LIBRARY {library}")
    token = dict(token)
    out = {
        "token": token,
        "jwt": check_jwt(token["access_token"], secret, issuer, "default"),
        "calls": [call(session, c) for c in calls],
    }
    print(json.dumps(out))


def code_pkce(library, base, ca, client_id, secret, redirect_uri, scope,
              provision_key, user, signing_key, issuer, audience):
    secret = None if secret == "-" else secret
    authorize_url = f"{base}/oauth2/authorize"
    token_url = f"{base}/oauth2/token"
    if library == "authlib":
        from authlib.common.security import generate_token
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(
            client_id,
            secret,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        )
        session.verify = ca
        verifier = generate_token(48)
        url, state = session.create_authorization_url(authorize_url, code_verifier=verifier)
    elif library == "requests-oauthlib":
        from requests_oauthlib import OAuth2Session

        session = OAuth2Session(
            client_id, scope=scope.split(), redirect_uri=redirect_uri, pkce="S256"
        )
        session.verify = ca
        url, state = session.authorization_url(authorize_url)
    else:
        sys.exit(f"unknown LIBRARY {library}")

    # The resource owner's application (Kong's "authorization page") has
    # authenticated `user`: it POSTs the client's request, as the library
    # built it, with the provision_key.
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    page = requests.post(
        authorize_url,
        data={**query, "provision_key": provision_key, "authenticated_userid": user},
        verify=ca,
    )
    if page.status_code != 200:
        raise RuntimeError(f"authorize answered {page.status_code}: {page.text}")
    redirect = page.json()["redirect_uri"]

    # The browser lands on `redirect`; the library takes the code from it
    # (checking the state) and exchanges it with the verifier.
    if library == "authlib":
        token = session.fetch_token(
            token_url, authorization_response=redirect, code_verifier=verifier
        )
    else:
        if redirect.startswith("http://localhost:"):
            # oauthlib refuses any authorization response that did not
            # land on https, also a native app's loopback redirect URI
            # (RFC 8252 §7.3), which is the client's own listener, not the
            # gateway: allowed for that URI alone (Warden's are https).
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        kwargs = {} if secret is None else {"client_secret": secret}
        token = session.fetch_token(
            token_url,
            authorization_response=redirect,
            include_client_id=True if secret is None else None,
            **kwargs,
        )
    token = dict(token)
    first = call(session, f"{base}/orders")
    first_access = token["access_token"]
    jwt_first = check_jwt(first_access, signing_key, issuer, audience)

    if library == "authlib":
        refreshed = dict(session.refresh_token(token_url))
    else:
        kwargs = {} if secret is None else {"auth": requests.auth.HTTPBasicAuth(client_id, secret)}
        refreshed = dict(
            session.refresh_token(
                token_url,
                client_id=client_id if secret is None else None,
                **kwargs,
            )
        )
    after = call(session, f"{base}/orders")
    stale = requests.get(
        f"{base}/orders",
        headers={"Authorization": f"Bearer {first_access}"},
        verify=ca,
    )
    out = {
        "authorize_url": url,
        "state": state,
        "redirect": redirect,
        "token": token,
        "jwt": jwt_first,
        "call": first,
        "refreshed": refreshed,
        "after_refresh": after,
        "old_token_status": stale.status_code,
        "old_token_www_authenticate": stale.headers.get("www-authenticate"),
    }
    print(json.dumps(out))


def trust(ca):
    """Trust `ca` alone. A requests Session's `verify` loses to the
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE environment variables (requests
    merges the environment's over the session's), so those point at it too."""
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    os.environ["CURL_CA_BUNDLE"] = ca


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd in ("client-credentials", "code-pkce"):
        trust(args[3] if cmd == "client-credentials" else args[2])
    if cmd == "client-credentials":
        client_credentials(*args)
    elif cmd == "code-pkce":
        code_pkce(*args)
    elif cmd == "verify":
        print(json.dumps(check_jwt(*args)))
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
