"""A gRPC server and client made of grpcio, for Warden's tests. No .proto:
methods take and return raw bytes (generic handlers), so nothing is generated.

    python grpc_peer.py server                 # prints the port, serves until killed
    python grpc_peer.py unary TARGET [--token T] [--ca PEM]
    python grpc_peer.py chat TARGET N [--token T] [--ca PEM]

The server's /echo.Echo/Unary answers JSON {"echo", "consumer", "authorization"}
(what reached it: the request, x-mse-consumer, whether a token was forwarded)
and sets trailing metadata `served-by: grpc-peer`; /echo.Echo/Chat is
bidirectional: each message is answered as it arrives ("re:" + message), so
the client sends message k+1 only after reading answer k (both ways stream).
The client prints one JSON line: {"code", "details", "reply"|"replies",
"trailers"}. TARGET is host:port; with --ca, TLS (the name is `localhost`).
"""
import json
import sys
from concurrent import futures

import grpc


def metadata_of(context):
    return {k: v for k, v in context.invocation_metadata()}


def unary(request, context):
    md = metadata_of(context)
    context.set_trailing_metadata((("served-by", "grpc-peer"),))
    return json.dumps({
        "echo": request.decode(),
        "consumer": md.get("x-mse-consumer"),
        "authorization": "authorization" in md,
    }).encode()


def chat(requests, context):
    for message in requests:
        yield b"re:" + message


def server():
    handler = grpc.method_handlers_generic_handler("echo.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    s.add_generic_rpc_handlers((handler,))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print(port, flush=True)
    s.wait_for_termination()


def channel(target, ca):
    if ca is None:
        return grpc.insecure_channel(target)
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(target, creds)


def client(mode, target, args):
    token = ca = None
    n = 0
    rest = list(args)
    if mode == "chat":
        n = int(rest.pop(0))
    while rest:
        flag, value = rest.pop(0), rest.pop(0)
        if flag == "--token":
            token = value
        elif flag == "--ca":
            ca = value
    md = (("authorization", f"Bearer {token}"),) if token else ()
    out = {}
    with channel(target, ca) as ch:
        try:
            if mode == "unary":
                call = ch.unary_unary("/echo.Echo/Unary")
                reply, c = call.with_call(b"hello", metadata=md, timeout=10)
                out["reply"] = json.loads(reply)
                out["trailers"] = dict(c.trailing_metadata() or ())
                out["code"], out["details"] = c.code().name, c.details()
            else:
                import queue
                sent = queue.Queue()
                sent.put(b"m0")

                def requests():
                    for k in range(n):
                        m = sent.get(timeout=10)
                        yield m

                call = ch.stream_stream("/echo.Echo/Chat")
                responses = call(requests(), metadata=md, timeout=20)
                replies = []
                for r in responses:
                    replies.append(r.decode())
                    if len(replies) < n:
                        sent.put(f"m{len(replies)}".encode())
                out["replies"] = replies
                out["code"], out["details"] = responses.code().name, responses.details()
        except grpc.RpcError as e:
            out["code"], out["details"] = e.code().name, e.details()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server()
    else:
        client(sys.argv[1], sys.argv[2], sys.argv[3:])
