"""Verify a JWT with PyJWT, knowing nothing but the issuer's JWKS URL.

    python verify_jwt.py JWKS_URL TOKEN ALG ISSUER

Prints the claims as JSON and exits 0 when PyJWT accepts the token (the
key found by `kid` in the JWKS, the one algorithm ALG, `iss` ISSUER, `aud`
"default", `exp` and `iat` checked); prints the error and exits 1 otherwise.
"""
import json
import sys

import jwt

jwks_url, token, alg, issuer = sys.argv[1:5]
try:
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key,
        algorithms=[alg],
        issuer=issuer,
        audience="default",
        options={"require": ["exp", "iat", "iss", "sub", "jti"]},
    )
except Exception as e:  # every failure is a refusal
    print(f"refused: {type(e).__name__}: {e}")
    sys.exit(1)
print(json.dumps(claims))
