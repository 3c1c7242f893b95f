# Encode request seeds in arbitrary 1.5's layout (<=256 bytes: 1-byte lengths read from the end).
# Run from fuzz/: python3 make_request_seeds.py
import os
def enc(method, https, authority, path, query, headers, route=None, service=None, peer=None, body=b''):
    ops=[]
    S=lambda s: ops.append(('s', s.encode() if isinstance(s,str) else s))
    B=lambda b: ops.append(('b', bytes([1 if b else 0])))
    S(method); B(https); S(authority); S(path); S(query)
    for k,v in headers:
        B(True); S(k); S(v)
    B(False)
    for o in (route, service, peer):
        if o is None: B(False)
        else: B(True); S(o)
    ops.append(('b', b'\0\0\0\0'))  # now_offset = 0
    front=b''.join(x for _,x in ops)+b''.join(bytes([1,c]) for c in body)  # take_rest Vec<u8>: (continue, byte) pairs
    k=sum(1 for t,_ in ops if t=='s')
    N=len(front)+k
    assert N<=256, N
    cf=cb=0; back=[]
    for t,x in ops:
        if t=='s':
            R=N-cf-cb; assert len(x)<R; back.append(len(x)); cb+=1
        cf+=len(x)
    return front+bytes(reversed(back))
D='seeds/request/'
c1='12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx'
seeds={
 'get-a-no-token': enc('GET',False,'gw.example.org','/a','',[('accept','application/json')]),
 'get-a-bogus-bearer': enc('GET',True,'gw.example.org','/a','x=1',[('authorization','Bearer a.b.c'),('host','gw.example.org')]),
 'domain-example-com': enc('GET',True,'api.example.com:8443','/x','',[('Authorization','Bearer none')],peer='203.0.113.7'),
 'token-endpoint-get': enc('GET',False,'test.com','/oauth2/token','grant_type=client_credentials&client_id='+c1+'&client_secret=abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx',[]),
 'token-endpoint-post': enc('POST',True,'gw','/b/oauth2/token','',[('content-type','application/x-www-form-urlencoded')],body=b'grant_type=client_credentials&client_id=x&client_secret=y'),
 'route-service': enc('DELETE',False,'','/b/c','',[('x-mse-consumer','consumer1'),('authorization','Basic eDp5')],route='route-b',service='echo'),
}
for n,b in seeds.items(): open(D+n,'wb').write(b)
