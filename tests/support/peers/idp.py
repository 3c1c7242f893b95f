"""A stand-in identity provider for Warden's tests, on PyJWT and cryptography:
it makes keys, publishes their public halves as a JWK Set, and mints JWTs.

    python idp.py keygen DIR KID ALG        # RS256 | ES256 | EdDSA; rewrites DIR/jwks.json
    python idp.py mint DIR KID ALG CLAIMS   # CLAIMS: JSON; prints the token
    python idp.py private-jwk PATH KID ALG  # a new private key, written as a JWK to PATH

DIR/jwks.json holds every key made so far (serve DIR with any static HTTP
server); DIR/KID.pem holds each private key.
"""
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def keygen(d, kid, alg):
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        sys.exit(f"unknown alg {alg}")
    os.makedirs(d, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(os.path.join(d, f"{kid}.pem"), "wb") as f:
        f.write(pem)
    algo = jwt.get_algorithm_by_name(alg)
    public = json.loads(algo.to_jwk(key.public_key()))
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    path = os.path.join(d, "jwks.json")
    keys = json.load(open(path))["keys"] if os.path.exists(path) else []
    keys.append(public)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"keys": keys}, f)
    os.replace(tmp, path)


def mint(d, kid, alg, claims):
    with open(os.path.join(d, f"{kid}.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    print(jwt.encode(json.loads(claims), key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"}))


def private_jwk(path, kid, alg):
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        sys.exit(f"unknown alg {alg}")
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key))
    jwk.update({"kid": kid, "alg": alg})
    with open(path, "w") as f:
        json.dump(jwk, f)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"keygen": keygen, "mint": mint, "private-jwk": private_jwk}[cmd](*args)
