#!/usr/bin/env python3
"""Runs every event fixture in events/ through the built function binaries behind a Lambda
Runtime API, as `sam local invoke <Function> -e events/<route>/<case>.json` would with
samconfig.toml's `--env-vars events/env.json`, and compares each answer with its .expect.json
(a finalize event it must fail: its error, as Lambda hands it to the on-failure destination).
Each invocation's output must hold exactly one request line with its ids, route, status,
latency, bytes and tenant, no key the event presented (X-API-KEY, Bearer, accessTokenId), and
only valid embedded metric format lines, among them those .expect.json names.

What `sam local invoke` does, and what this does in its place (there is no Docker here):
- the function's environment: SAM CLI's own code (from .tools/venv) resolves it from
  template.yaml and events/env.json, as for `sam local invoke` from a shell without any of the
  template's variables set; the process gets that environment and nothing else;
- every invocation a new container, whose /tmp starts empty and whose working folder (/var/task,
  the code) is read-only: every invocation here starts the binary anew in its own mount
  namespace, with an empty /tmp and an empty read-only working folder (unshare, util-linux);
- the Runtime API (Lambda's, in the container): a small one here, on loopback, that hands the
  event to the function's first "next" call and takes its response or error.

usage: scripts/lambda-fixtures.py [--bin-dir target/debug] [ROUTE ...]
The binaries are built beforehand: cargo build -p functions --bins.
"""
import argparse, base64, http.server, json, os, pathlib, queue, shutil, subprocess, sys, tempfile, threading, time, urllib.parse, uuid

root = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 30


def logical_id(name):
    """The function's logical id in template.yaml (as scripts/gen-template.py makes it)."""
    return "".join(p.capitalize() for p in name.split("-")) + "Function"


def sam_environments(logical_ids, every):
    """Each function's environment as SAM CLI resolves it for `sam local invoke` with
    `--env-vars events/env.json`, in a shell without the template's variables and without AWS
    credentials (SAM then gives the function its placeholder ones). With `every`, every function
    of the template must have events."""
    clean = {k: v for k, v in os.environ.items()
             if k in ("PATH", "HOME", "LANG", "TMPDIR", "SAM_CLI_TELEMETRY")}
    clean.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean)
    try:
        from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
        from samcli.lib.providers.sam_function_provider import SamFunctionProvider
        from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

        stacks, _ = SamLocalStackProvider.get_stacks(str(root / "template.yaml"))
        runner = LocalLambdaRunner(
            local_runtime=None,
            function_provider=SamFunctionProvider(stacks),
            cwd=str(root),
            real_path=str(root),
            env_vars_values=json.loads((root / "events/env.json").read_text()),
        )
        functions = {f.name for f in runner.provider.get_all()}
        without = sorted(functions - set(logical_ids))
        if every and without:
            raise SystemExit(f"lambda-fixtures: no events in events/ for {', '.join(without)}")
        return {
            lid: runner.get_invoke_config(runner.get_function(lid)).env_vars.resolve()
            for lid in logical_ids
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)


class RuntimeApi:
    """Lambda's Runtime API for one invocation: the first `next` call gets the event, later ones
    wait (as Lambda's do) until the process is stopped."""

    def __init__(self, event: bytes):
        self.events = queue.Queue()
        self.events.put(event)
        self.outcome = queue.Queue()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404)
                event = api.events.get()
                if event is None:  # the invocation is over and its process stopped
                    return
                self.reply(200, event, [
                    ("Lambda-Runtime-Aws-Request-Id", api.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(int((time.time() + TIMEOUT_S) * 1000))),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     "arn:aws:lambda:us-east-1:123456789012:function:fixture"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
                    ("Content-Type", "application/json"),
                ])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                prefix = f"/2018-06-01/runtime/invocation/{api.request_id}/"
                if self.path == prefix + "response":
                    api.outcome.put(("response", body))
                elif self.path == prefix + "error":
                    api.outcome.put(("error", body))
                elif self.path == "/2018-06-01/runtime/init/error":
                    api.outcome.put(("init error", body))
                else:
                    return self.reply(404)
                self.reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # The function is stopped after its answer, in the middle of its next call.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.request_id = str(uuid.uuid4())
        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: closing the server waits for the loop to notice.
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.events.put(None)


def private_tmp_prefix():
    """A command prefix that runs a program with its own, empty /tmp, as a new container has;
    None where this machine does not allow it (no unshare, or no user namespaces)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    # An empty /tmp, and as the working folder an empty read-only one, as /var/task is in Lambda
    # (the code's folder: nothing can be written there).
    script = ("mount -t tmpfs tmpfs /tmp && mkdir /tmp/.task && mount -t tmpfs -o ro tmpfs /tmp/.task"
              ' && cd /tmp/.task && exec "$@"')
    prefix = [unshare, "--mount", "--map-root-user", "--propagation", "private", "--",
              "sh", "-c", script, "sh"]
    probe = subprocess.run(prefix + ["true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def invoke(binary, env, event: bytes, prefix):
    """Starts the function, hands it the event, returns (kind, body, log, the invocation's
    request id). Without `prefix`, the
    process gets a new empty working folder and, in place of /tmp, a new empty folder of its own
    (ATTACHMENTS_DATA_DIR moved into it): the one difference from the environment SAM gives."""
    api = RuntimeApi(event)
    env = {**env, "AWS_LAMBDA_RUNTIME_API": api.address}
    with tempfile.TemporaryDirectory() as scratch:
        cwd = None
        if prefix is None:
            cwd = os.path.join(scratch, "task")
            os.mkdir(cwd)
            data = env.get("ATTACHMENTS_DATA_DIR", "")
            if data.startswith("/tmp/"):
                env["ATTACHMENTS_DATA_DIR"] = os.path.join(scratch, "tmp", data[len("/tmp/"):])
        return (*run(binary, env, cwd, prefix or [], api), api.request_id)


def run(binary, env, cwd, prefix, api):
    """Runs the function until it answers, fails, exits or times out; then stops it."""
    process = subprocess.Popen(
        prefix + [str(binary)], env=env, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    kind, body = "timeout", b""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                kind, body = api.outcome.get(timeout=0.05)
                break
            except queue.Empty:
                if process.poll() is not None:  # it stopped, perhaps right after a report
                    try:
                        kind, body = api.outcome.get(timeout=0.2)
                    except queue.Empty:
                        kind = f"exit {process.returncode}"
                    break
    finally:
        process.terminate()
        try:
            log, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            log, _ = process.communicate()
        api.close()
    return kind, body, log.decode(errors="replace")


def subset(expected, actual, path="$"):
    """The matching rules of shared/tests/fixtures.rs: objects by key, arrays element-wise with
    equal length, "*" for any present value."""
    if expected == "*":
        if actual is None:
            raise AssertionError(f"{path}: expected a value, got null")
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k, v in expected.items():
            if k not in actual:
                raise AssertionError(f"{path}.{k}: missing")
            subset(v, actual[k], f"{path}.{k}")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            raise AssertionError(f"{path}: expected {len(expected)} items, got {len(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual)):
            subset(e, a, f"{path}[{i}]")
        return
    if type(expected) is not type(actual) or expected != actual:
        raise AssertionError(f"{path}: expected {json.dumps(expected)}, got {json.dumps(actual)}")


def check(route, kind, body, expect):
    """Why the answer differs from .expect.json, or None. An `error` there is a failure the
    function must report (the result Lambda hands to its on-failure destination)."""
    if "error" in expect:
        if kind != "error":
            return f"expected the function to fail, it answered ({kind}): {body.decode(errors='replace')}"
        try:
            subset(expect["error"], json.loads(body))
        except (ValueError, AssertionError) as e:
            return f"{e}; error {body.decode(errors='replace')}"
        return None
    if kind != "response":
        return f"the function did not answer ({kind}): {body.decode(errors='replace')}"
    answer = json.loads(body)
    if route == "finalize":
        # A storage event's answer is the function's own JSON; success is status 200.
        status, headers, text = 200, {}, body.decode()
    else:
        status = answer.get("statusCode")
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        for k, vs in (answer.get("multiValueHeaders") or {}).items():
            headers.setdefault(k.lower(), vs[0] if vs else None)
        text = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode(errors="replace")
    if status != expect["status"]:
        return f"status {status}, expected {expect['status']}; body {text}"
    if "json" in expect:
        try:
            subset(expect["json"], json.loads(text))
        except (ValueError, AssertionError) as e:
            return f"{e}; body {text}"
    for k, v in (expect.get("headers") or {}).items():
        got = headers.get(k.lower())
        if got is None or (v != "*" and got != v):
            return f"header {k} is {got!r}, expected {v!r}"
    return None


FIXTURE_KEY = "fixture-key-0123456789abcdef"
# One event per place a key travels, run again with RUST_LOG=trace.
TRACE_CASES = [("native-upload", "ok.json"), ("native-get-attachment", "ok.json"),
               ("crafter-list", "ok.json")]
UNITS = {"Count", "Bytes", "Seconds", "Milliseconds", "None"}


def presented_keys(event):
    """Every key an API Gateway event presents, by where: X-API-KEY, Authorization: Bearer, and
    Crafter's accessTokenId in the query string."""
    found = []
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if headers.get("x-api-key"):
        found.append(("x-api-key", headers["x-api-key"]))
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        found.append(("bearer", auth[7:].strip()))
    params = dict(event.get("queryStringParameters") or {})
    for pair in (event.get("rawQueryString") or "").split("&"):
        k, _, v = pair.partition("=")
        if k == "accessTokenId" and v:
            params.setdefault("accessTokenId", urllib.parse.unquote_plus(v))
    if params.get("accessTokenId"):
        found.append(("accessTokenId", params["accessTokenId"]))
    return found


def log_lines(log):
    """The JSON objects of the function's output, one per line (other lines skipped)."""
    out = []
    for line in log.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def check_emf(doc, namespace):
    """Why an embedded metric format document is not valid for CloudWatch, or None."""
    meta = doc.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("Timestamp"), int):
        return "no _aws.Timestamp (milliseconds)"
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return "no _aws.CloudWatchMetrics directives"
    for d in directives:
        if d.get("Namespace") != namespace:
            return f"namespace {d.get('Namespace')!r}, expected {namespace!r}"
        dims = d.get("Dimensions")
        if not isinstance(dims, list) or not all(isinstance(s, list) for s in dims):
            return "Dimensions is not a list of dimension sets"
        for name in (n for ds in dims for n in ds):
            if not isinstance(doc.get(name), str):
                return f"dimension {name} has no string value at the root"
        metrics = d.get("Metrics")
        if not isinstance(metrics, list) or not metrics:
            return "no Metrics"
        for m in metrics:
            if m.get("Unit") not in UNITS:
                return f"metric {m.get('Name')}: unit {m.get('Unit')!r}"
            if not isinstance(doc.get(m.get("Name")), (int, float)):
                return f"metric {m.get('Name')} has no number at the root"
    return None


def check_telemetry(route, event, kind, body, log, request_id, namespace, seen):
    """Why the invocation's log breaks the rules, or None: exactly one request line, with the
    ids, route, status, latency, bytes and tenant; no key the event presented anywhere in the
    output; every metric line valid EMF, and those the .expect.json names present."""
    keys = presented_keys(event) if route != "finalize" else []
    for where, key in keys:
        seen.add(where)
        if len(key) >= 6 and key in log:
            return f"the key from {where} appears in the function's output"
    if FIXTURE_KEY in log:
        return "the fixtures' API key appears in the function's output"
    lines = log_lines(log)
    requests = [l for l in lines if l.get("message") == "request"]
    if len(requests) != 1:
        return f"{len(requests)} request lines, expected 1"
    line = requests[0]
    want = {
        "route": route,
        "lambda_request_id": request_id,
        "trace_id": "1-00000000-000000000000000000000000",
    }
    if route == "finalize":
        want["status"] = 500 if kind == "error" else 200
    else:
        answer = json.loads(body)
        raw = event.get("body") or ""
        sent = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        want.update(
            method=event["requestContext"]["http"]["method"],
            path=event["rawPath"],
            status=answer.get("statusCode"),
            api_request_id=event["requestContext"]["requestId"],
            bytes_in=len(sent),
        )
        authenticated = any(k == FIXTURE_KEY for _, k in keys) and want["status"] != 401
        if authenticated and line.get("tenant") != "fixtures":
            return f"tenant {line.get('tenant')!r}, expected 'fixtures': {line}"
        if not authenticated and "tenant" in line:
            return f"a tenant on a request that did not authenticate: {line}"
        if not isinstance(line.get("bytes_out"), int):
            return f"no bytes_out: {line}"
    for k, v in want.items():
        if line.get(k) != v:
            return f"request line: {k} is {line.get(k)!r}, expected {v!r}: {line}"
    if not isinstance(line.get("latency_ms"), (int, float)) or line["latency_ms"] < 0:
        return f"request line: no latency_ms: {line}"
    emf = [l for l in lines if "_aws" in l]
    for doc in emf:
        why = check_emf(doc, namespace)
        if why:
            return f"metric line {doc}: {why}"
    return None


def check_metrics(route, expect, log):
    """Why the invocation's metric lines (those naming its route: loading the fixtures' data at
    start writes some too) lack one that .expect.json names, or None."""
    emf = [l for l in log_lines(log) if "_aws" in l and l.get("route") == route]
    for wanted in expect.get("metrics") or []:
        if not any(_matches(wanted, doc) for doc in emf):
            return f"no metric line with {wanted}; lines: {emf}"
    return None


def _matches(expected, actual):
    try:
        subset(expected, actual)
        return True
    except AssertionError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", default=str(root / "target/debug"))
    p.add_argument("routes", nargs="*")
    a = p.parse_args()
    bin_dir = pathlib.Path(a.bin_dir)
    routes = sorted(d.name for d in (root / "events").iterdir() if d.is_dir())
    if a.routes:
        routes = [r for r in routes if r in a.routes]
    binaries = {r: bin_dir / ("attachments-finalize" if r == "finalize" else r) for r in routes}
    missing = [str(b) for b in binaries.values() if not b.is_file()]
    if missing:
        raise SystemExit(f"lambda-fixtures: not built: {', '.join(missing)} (cargo build -p functions --bins)")
    envs = sam_environments({logical_id(r) for r in routes}, every=not a.routes)
    prefix = private_tmp_prefix()
    if prefix is None:
        print("lambda-fixtures: this machine gives a process no /tmp of its own (unshare): each "
              "invocation gets a new folder in place of /tmp (ATTACHMENTS_DATA_DIR moved there) "
              "and a new empty working folder", file=sys.stderr)
    failures, count, started, placements = [], 0, time.monotonic(), set()
    for route in routes:
        env = envs[logical_id(route)]
        for case in sorted((root / "events" / route).glob("*.json")):
            if case.name.endswith(".expect.json"):
                continue
            expect = json.loads(case.with_name(case.name[:-len(".json")] + ".expect.json").read_text())
            kind, body, log, request_id = invoke(binaries[route], env, case.read_bytes(), prefix)
            count += 1
            event = json.loads(case.read_text())
            why = (check(route, kind, body, expect)
                   or check_telemetry(route, event, kind, body, log, request_id,
                                      env.get("ATTACHMENTS_METRICS_NAMESPACE"), placements)
                   or check_metrics(route, expect, log))
            label = f"{route}/{case.name}"
            if why:
                failures.append(f"{label}: {why}\n    function log:\n" + "".join(f"      {l}\n" for l in log.splitlines()[-20:]))
    # Whatever RUST_LOG asks for, no key reaches the log (the Lambda runtime logs whole events
    # at debug and trace): one event per key placement, again, with everything on.
    if not a.routes:
        for route, case in TRACE_CASES:
            env = {**envs[logical_id(route)], "RUST_LOG": "trace"}
            path = root / "events" / route / case
            kind, body, log, request_id = invoke(binaries[route], env, path.read_bytes(), prefix)
            count += 1
            why = check_telemetry(route, json.loads(path.read_text()), kind, body, log, request_id,
                                  env.get("ATTACHMENTS_METRICS_NAMESPACE"), set())
            if why:
                failures.append(f"{route}/{case} with RUST_LOG=trace: {why}")
    took = time.monotonic() - started
    if not a.routes and placements != {"x-api-key", "bearer", "accessTokenId"}:
        failures.append(f"the fixtures present keys only in {sorted(placements)}: each placement "
                        "(x-api-key, bearer, accessTokenId) must be checked against the logs")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        raise SystemExit(f"lambda-fixtures: {len(failures)} of {count} events did not answer as expected")
    tmp = "its own /tmp" if prefix else "its own folder for /tmp"
    print(f"lambda-fixtures: {count} events through {len(routes)} function binaries "
          f"(each a fresh process with {tmp}, SAM's environment from events/env.json): "
          f"every answer as expected, one request line each with its ids and no key, "
          f"valid metric lines ({took:.1f} s)")


if __name__ == "__main__":
    main()
