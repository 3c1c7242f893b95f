// Verify a JWT with npm's `jose`, knowing nothing but the issuer's JWKS URL.
//
//     node verify_jwt.mjs JWKS_URL TOKEN ALG ISSUER
//
// Prints the claims as JSON and exits 0 when jose accepts the token (key by
// `kid` from the remote JWKS, the one algorithm ALG, `typ` at+jwt, `iss`
// ISSUER, `aud` "default", times checked); prints the error and exits 1
// otherwise.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, token, alg, issuer] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: [alg],
    issuer,
    audience: 'default',
    typ: 'application/at+jwt',
    requiredClaims: ['exp', 'iat', 'sub', 'jti'],
  });
  console.log(JSON.stringify(payload));
} catch (e) {
  console.log(`refused: ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
