#!/usr/bin/env python3
"""Writes template.yaml from the route table (shared/src/http/routes.rs): one function per route.

Run it after adding a route (after functions/gen-bins.sh). The test `template` checks that the
template and the route table agree, so a forgotten run fails the build.
"""
import pathlib, re

root = pathlib.Path(__file__).resolve().parent.parent
routes_rs = (root / "shared/src/http/routes.rs").read_text()
rows = re.findall(r'^\s+[A-Z0-9_]+ = "([a-z0-9-]+)",\s*([A-Z]+),\s*"([^"]+)",\s*[\w:]+,\s*[\w:]+,\s*(Read|Write)\s*;', routes_rs, re.M)
if not rows:
    raise SystemExit("no routes found")

def logical_id(name):
    return "".join(p.capitalize() for p in name.split("-")) + "Function"

# Direct uploads: S3CrudPolicy does not cover aborting or listing a multipart upload's parts.
MULTIPART = """      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: [s3:AbortMultipartUpload, s3:ListMultipartUploadParts]
            Resource: !Sub "${Bucket.Arn}/*\""""

HEADER = (root / "scripts/template-base.yaml").read_text()
out = [HEADER.rstrip("\n"), ""]
for name, method, path, access in rows:
    policies = (
        ["      - DynamoDBReadPolicy:\n          TableName: !Ref Table",
         "      - S3ReadPolicy:\n          BucketName: !Ref Bucket"]
        if access == "Read" else
        ["      - DynamoDBCrudPolicy:\n          TableName: !Ref Table",
         "      - S3CrudPolicy:\n          BucketName: !Ref Bucket",
         MULTIPART]
    )
    out.append(f"""  {logical_id(name)}:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: {name}
    Properties:
      Description: {method} {path} ({access.lower()})
      CodeUri: .
      Handler: bootstrap
      Policies:
{chr(10).join(policies)}
      Events:
        Api:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: {method}
            Path: {path}
""")
out.append((root / "scripts/template-outputs.yaml").read_text().rstrip("\n"))
(root / "template.yaml").write_text("\n".join(out) + "\n")
print(f"template.yaml: {len(rows)} functions")
