# Writes seeds/kong_endpoints/ (the layout is in fuzz_targets/kong_endpoints.rs:
# requests separated by 0xFE; each a selector byte, then query, content-type
# field, body and Authorization header separated by 0xFF).
# Run from fuzz/: python3 seeds/make_kong_seeds.py
import json, os

AUTHORIZE, TOKEN, ACCESS, OPEN = 0, 1, 2, 3
HTTP, HEAD_FIRST, LATER, OTHER = 4, 8, 0x40, 0x80
JSON, FORM, MULTIPART, RAW = 0x00, 0x10, 0x20, 0x30

def req(sel, query='', ct='', body='', auth=None):
    out = bytes([sel]) + b'\xff'.join(x.encode() for x in [query, ct, body])
    if auth is not None:
        out += b'\xff' + auth.encode()
    return out

def js(**kw):
    return json.dumps(kw)

def multipart(boundary, **kw):
    parts = ''.join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in kw.items())
    return parts + f'--{boundary}--\r\n'

authorize_code = req(AUTHORIZE | JSON, body=js(provision_key='provision123', authenticated_userid='user-1',
                     client_id='webapp-client', response_type='code', scope='email', state='st'))
exchange_form = req(TOKEN | FORM, body='grant_type=authorization_code&code=$code&client_id=webapp-client&client_secret=webapp-secret')
refresh_json = req(TOKEN | JSON, body=js(grant_type='refresh_token', refresh_token='$refresh',
                   client_id='webapp-client', client_secret='webapp-secret'))
bearer = req(ACCESS, auth='Bearer $access')

seeds = {
    'authorize-code-json': authorize_code,
    'code-exchange-refresh-access': b'\xfe'.join([authorize_code, exchange_form, bearer, refresh_json, bearer,
                                                  refresh_json, req(ACCESS | LATER, query='access_token=$access'),
                                                  req(ACCESS | LATER | LATER, auth='token $access')]),
    'code-replayed': b'\xfe'.join([authorize_code, exchange_form, exchange_form]),
    'client-credentials-multipart': req(TOKEN | MULTIPART, ct='XyZ', body=multipart('XyZ', grant_type='client_credentials',
                                        client_id='webapp-client', client_secret='webapp-secret', scope='email profile')),
    'client-credentials-then-access-query': b'\xfe'.join([
        req(TOKEN | JSON, body=js(grant_type='client_credentials', client_id='webapp-client', client_secret='webapp-secret', scope='email')),
        req(ACCESS, query='a=1&access_token=$access')]),
    'password-basic-form': req(TOKEN | FORM, body='grant_type=password&provision_key=provision123&authenticated_userid=u1&scope=email',
                               auth='Basic $basic'),
    'pkce-public': b'\xfe'.join([
        req(AUTHORIZE | FORM, body='provision_key=provision123&authenticated_userid=u2&client_id=mobile-client&response_type=code'
            '&scope=profile&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256'),
        req(TOKEN | JSON, body=js(grant_type='authorization_code', code='$code', client_id='mobile-client', code_verifier='$verifier'))]),
    'implicit-then-open': b'\xfe'.join([
        req(AUTHORIZE | MULTIPART, ct='"b-1"', body=multipart('b-1', provision_key='provision123', authenticated_userid='u3',
            client_id='webapp-client', response_type='token', scope='email', redirect_uri='http://abc.com/cb?x=1')),
        req(OPEN, query='access_token=$access'),
        req(OPEN | OTHER | HEAD_FIRST | JSON, body=js(access_token='$access', a=1))]),
    'query-params-head-first': req(TOKEN | HEAD_FIRST | RAW, query='grant_type=client_credentials&client_id=webapp-client&client_secret=webapp-secret&scope=email',
                                   ct='text/plain', body='ignored'),
    'token-json-head-first': req(TOKEN | HEAD_FIRST | JSON, body=js(grant_type='client_credentials', client_id='webapp-client',
                                 client_secret='webapp-secret', scope=['email'])),
    'authorize-over-http': req(AUTHORIZE | HTTP | JSON, body=js(provision_key='provision123', authenticated_userid='u', client_id='webapp-client',
                               response_type='code', scope='email')),
    'put-token': req(TOKEN | OTHER, body='{}'),
    'token-expires': b'\xfe'.join([
        req(TOKEN | FORM, body='grant_type=client_credentials&client_id=webapp-client&client_secret=webapp-secret&scope=email')]
        + [req(ACCESS | LATER, auth='Bearer $access')] * 5),
    'open-anonymous': req(OPEN, auth='Bearer a.b.c'),
}
os.makedirs('seeds/kong_endpoints', exist_ok=True)
for name, data in seeds.items():
    with open(f'seeds/kong_endpoints/{name}', 'wb') as f:
        f.write(data)
