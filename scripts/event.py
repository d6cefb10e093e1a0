#!/usr/bin/env python3
"""Writes an API Gateway HTTP API (payload v2) event for `sam local invoke -e` and the fixture test.

usage: scripts/event.py OUT.json METHOD ROUTE_PATTERN PATH [--query Q] [--header k=v ...]
                        [--json BODY] [--multipart field=@file | field=value ...]

ROUTE_PATTERN is the route table's path (e.g. /v1/attachments/{id}); PATH the concrete path.
"""
import argparse, base64, json, re, sys, uuid

p = argparse.ArgumentParser()
p.add_argument("out"); p.add_argument("method"); p.add_argument("pattern"); p.add_argument("path")
p.add_argument("--query", default="")
p.add_argument("--header", action="append", default=[])
p.add_argument("--json")
p.add_argument("--raw", help="raw text body")
p.add_argument("--multipart", action="append", default=[])
a = p.parse_args()

headers = {"host": "api.example.com", "user-agent": "curl/8.5.0", "accept": "*/*"}
for h in a.header:
    k, v = h.split("=", 1)
    headers[k.lower()] = v
body, b64 = None, False
if a.json is not None:
    body = a.json
    headers.setdefault("content-type", "application/json")
elif a.raw is not None:
    body = a.raw
elif a.multipart:
    boundary = "------------------------fixture7MA4YWxkTrZu0gW"
    out = b""
    for part in a.multipart:
        field, val = part.split("=", 1)
        out += f"--{boundary}\r\n".encode()
        if val.startswith("@"):
            spec = val[1:]
            path, _, name = spec.partition(";filename=")
            data = open(path, "rb").read() if path else b""
            fname = name or path.rsplit("/", 1)[-1]
            out += f'Content-Disposition: form-data; name="{field}"; filename="{fname}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            out += data
        else:
            out += f'Content-Disposition: form-data; name="{field}"\r\n\r\n'.encode() + val.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    body, b64 = base64.b64encode(out).decode(), True
    headers["content-type"] = f"multipart/form-data; boundary={boundary}"
if body is not None:
    headers["content-length"] = str(len(base64.b64decode(body)) if b64 else len(body.encode()))

names = re.findall(r"{(\w+)}", a.pattern)
regex = "^" + re.sub(r"{\w+}", "([^/]+)", a.pattern) + "/?$"
m = re.match(regex, a.path)
if not m:
    sys.exit(f"{a.path} does not match {a.pattern}")
params = dict(zip(names, m.groups()))
qs = {}
for pair in filter(None, a.query.split("&")):
    k, _, v = pair.partition("=")
    qs[k] = v if k not in qs else qs[k] + "," + v
event = {
    "version": "2.0",
    "routeKey": f"{a.method} {a.pattern}",
    "rawPath": a.path,
    "rawQueryString": a.query,
    "headers": headers,
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api-id",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {"method": a.method, "path": a.path, "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
        "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, a.out)),
        "routeKey": f"{a.method} {a.pattern}",
        "stage": "$default",
        "time": "23/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1795435200000,
    },
    "isBase64Encoded": b64,
}
if qs:
    event["queryStringParameters"] = qs
if params:
    event["pathParameters"] = params
if body is not None:
    event["body"] = body
with open(a.out, "w") as f:
    json.dump(event, f, indent=2)
    f.write("\n")
