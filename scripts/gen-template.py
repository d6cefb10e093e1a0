#!/usr/bin/env python3
"""Writes, from the route table (shared/src/http/routes.rs) and the capabilities of
shared/src/access.rs:

- template.yaml: one function per route (plus the finalize function), each with an IAM policy
  that grants exactly what its route needs;
- Makefile: what `sam build` runs for each function (one cargo invocation builds them all);
- the `cargo lambda watch` router in Cargo.toml ([workspace.metadata.lambda.watch.router]), so
  the functions answer on the API's real paths.

Run it after adding a route or changing what one needs (after functions/gen-bins.sh). The
`template` test checks all three against the route table, so a forgotten run fails the build.
"""
import pathlib, re

root = pathlib.Path(__file__).resolve().parent.parent


def rows(pattern, text, what):
    found = re.findall(pattern, text, re.M)
    if not found:
        raise SystemExit(f"no {what} found")
    return found


routes_rs = (root / "shared/src/http/routes.rs").read_text()
access_rs = (root / "shared/src/access.rs").read_text()
routes = [
    (name, method, path, [n.strip() for n in needs.split(",") if n.strip()])
    for name, method, path, needs in rows(
        r'^\s+[A-Z0-9_]+ = "([a-z0-9-]+)",\s*([A-Z]+),\s*"([^"]+)",\s*[\w:]+,\s*[\w:]+,\s*\[([\w, ]*)\]\s*;',
        routes_rs, "routes")
]
resources = {
    konst: (function, argument)
    for konst, function, argument in rows(r'^\s+([A-Z_]+) = "(\w+)", "([^"]+)";', access_rs, "resources")
}
grants = {
    cap: (resource, re.findall(r'"([^"]+)"', actions))
    for cap, resource, actions in rows(r'^\s+(\w+) = ([A-Z_]+): ((?:"[^"]+",?\s*)+);', access_rs, "grants")
}
finalize_needs = [n.strip() for n in rows(r'^pub const FINALIZE: &\[Capability\] = &\[([\w, ]+)\];', access_rs, "FINALIZE")[0].split(",")]


def logical_id(name):
    return "".join(p.capitalize() for p in name.split("-")) + "Function"


def policy(needs, indent):
    """One inline policy: a statement per resource, its actions in the rows' order."""
    by_resource = {}
    for need in needs:
        if need not in grants:
            raise SystemExit(f"unknown capability {need}")
        resource, actions = grants[need]
        by_resource.setdefault(resource, []).extend(a for a in actions if a not in by_resource.get(resource, []))
    pad = " " * indent
    out = [f'{pad}- Version: "2012-10-17"', f"{pad}  Statement:"]
    for resource in resources:  # the order of the resource rows
        if resource not in by_resource:
            continue
        function, argument = resources[resource]
        arn = f"!{function} {argument}" if function == "GetAtt" else f'!{function} "{argument}"'
        out += [f"{pad}    - Effect: Allow",
                f"{pad}      Action:"]
        out += [f"{pad}        - {a}" for a in by_resource[resource]]
        out += [f"{pad}      Resource: {arn}"]
    return "\n".join(out)


def alarm(logical, function_logical, metric, threshold, description):
    """An alarm on one of a function's own Lambda metrics, over 5 minutes."""
    return f"""  {logical}:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: {description}
      Namespace: AWS/Lambda
      MetricName: {metric}
      Dimensions:
        - Name: FunctionName
          Value: !Ref {function_logical}
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: !Ref {threshold}
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]
      OKActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]
"""


def function(logical, name, description, policy_text, events, extra="", errors_threshold="FunctionErrorsThreshold"):
    """A function, its log group (named after the stack and the function, kept LogRetentionDays),
    and its alarms on errors and throttles."""
    return f"""  {logical}:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      Description: {description}
      CodeUri: .
      Handler: bootstrap
      LoggingConfig:
        LogGroup: !Ref {logical}Logs
{extra}      Policies:
{policy_text}
      Events:
{events}

  {logical}Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}/{name}"
      RetentionInDays: !Ref LogRetentionDays

""" + alarm(f"{logical}ErrorsAlarm", logical, "Errors", errors_threshold,
            f"{name} failed at least {errors_threshold} invocations in 5 minutes.") + "\n" + alarm(
        f"{logical}ThrottlesAlarm", logical, "Throttles", "FunctionThrottlesThreshold",
        f"{name} was throttled at least FunctionThrottlesThreshold times in 5 minutes.")


FINALIZE_EVENTS = """        ObjectCreated:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail:
                bucket:
                  name: [!Ref Bucket]
                # Only direct uploads land under staging/: the copies a verification makes, and
                # every file stored through the API, are no event for it.
                object:
                  key: [{prefix: staging/}]
        Sweep:
          Type: Schedule
          Properties:
            Schedule: rate(1 hour)"""

out = [(root / "scripts/template-base.yaml").read_text().rstrip("\n"), ""]
out.append("""  # Verifies direct uploads when S3 reports a created object (through EventBridge, so the bucket
  # does not depend on the function), and sweeps expired uploads every hour. Its policy is
  # FINALIZE in shared/src/access.rs. An event it fails on is retried twice, then goes to its
  # dead-letter queue (SAM grants it sqs:SendMessage on the queue).""")
out.append(function(
    "FinalizeFunction",
    "finalize",
    "Verifies direct uploads on S3 object-created events; sweeps expired uploads",
    policy(finalize_needs, 8),
    FINALIZE_EVENTS,
    # A whole vCPU (1769 MB), so that reading S3, not hashing, bounds how large an upload it
    # verifies in its 900 s (ATTACHMENTS_DIRECT_MAX_BYTES).
    extra="""      Timeout: 900
      MemorySize: 1769
      EventInvokeConfig:
        MaximumRetryAttempts: 2
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt FinalizeDeadLetterQueue.Arn
""",
    errors_threshold="FinalizeErrorsThreshold",
))
for name, method, path, needs in routes:
    out.append(function(
        logical_id(name),
        name,
        f"{method} {path}",
        policy(needs, 8),
        f"""        Api:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: {method}
            Path: {path}""",
    ))
out.append((root / "scripts/template-outputs.yaml").read_text().rstrip("\n"))
(root / "template.yaml").write_text("\n".join(out) + "\n")

# The Makefile `sam build` runs (BuildMethod: makefile, with build_in_source in samconfig.toml):
# one `make build-<LogicalId>` per function, one after the other, in this folder.
functions = [("FinalizeFunction", "attachments-finalize")] + [(logical_id(n), n) for n, *_ in routes]
bins = " \\\n  ".join(b for _, b in functions)
targets = "\n".join(
    f"build-{logical}: $(STAMP)\n\tcp $(call binary,{binary}) $(ARTIFACTS_DIR)/bootstrap\n"
    for logical, binary in functions
)
(root / "Makefile").write_text(f"""# GENERATED by scripts/gen-template.py from the route table: what `sam build` runs.
#
# SAM runs `make build-<LogicalId>` once per function (in this folder: build_in_source in
# samconfig.toml), with ARTIFACTS_DIR set to .aws-sam/build/<LogicalId>. The first run builds
# every function with one cargo invocation and leaves a stamp beside the functions' folders;
# the others find it and only copy their binary. `sam build` empties .aws-sam/build first, so
# every `sam build` compiles once.
#
# CARGO_BUILD and BINARY may be overridden from the environment: scripts/sam-build-check.sh
# points them at a debug build to check quickly that `sam build` invokes cargo once.

CARGO_BUILD ?= cargo lambda build --release --arm64 --locked -p functions
# Where CARGO_BUILD leaves a function's binary; % stands for its name.
BINARY ?= target/lambda/%/bootstrap

ifeq ($(ARTIFACTS_DIR),)
$(error ARTIFACTS_DIR is not set: `sam build` runs this Makefile, one function at a time)
endif
STAMP := $(ARTIFACTS_DIR)/../.cargo-build-done
BINS := \\
  {bins}

binary = $(subst %,$(1),$(BINARY))

$(STAMP):
\t@echo "==> building every function with one cargo invocation"
\t$(CARGO_BUILD) $(addprefix --bin ,$(BINS))
\ttouch $@

{targets}
.PHONY: $(addprefix build-,{' '.join(l for l, _ in functions)})
""")

# The `cargo lambda watch` router: every route on its real path, by method.
by_path = {}
for name, method, path, _ in routes:
    by_path.setdefault(path, []).append((method, name))
router = ["[workspace.metadata.lambda.watch.router]"]
for path, entries in by_path.items():
    router.append(f'"{path}" = [')
    router += [f'  {{ method = "{m}", function = "{n}" }},' for m, n in entries]
    router.append("]")
BEGIN = "# BEGIN router: generated by scripts/gen-template.py from the route table; do not edit."
END = "# END router"
cargo = (root / "Cargo.toml").read_text()
block = "\n".join([BEGIN,
                   "# `cargo lambda watch` serves each route on its real path (matchit syntax, as API Gateway's).",
                   *router, END])
if BEGIN in cargo:
    start, end = cargo.index(BEGIN), cargo.index(END) + len(END)
    cargo = cargo[:start] + block + cargo[end:]
else:
    cargo = cargo.rstrip("\n") + "\n\n" + block + "\n"
(root / "Cargo.toml").write_text(cargo)

print(f"template.yaml, Makefile, Cargo.toml router: {len(routes)} routes")
