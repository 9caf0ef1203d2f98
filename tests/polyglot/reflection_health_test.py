#!/usr/bin/python3
"""Proves, from Python, that generic gRPC tools work against exportd.

Run by run_example_test.py against a fresh exportd (EXPORTD_ADDRESS,
EXPORTD_TOKEN, EXPORTD_VIEWER_TOKEN, and EXPORTD_TLS_* under --tls; the
health/reflection stubs on PYTHONPATH). It uses only client/python/grpc_reflect.py — server reflection to
discover the API, descriptors built at run time, JSON requests — and no stub
generated from proto/exportd, the way grpcurl would.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "..", "client", "python")
sys.path.insert(0, CLIENT)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import grpc_reflect  # noqa: E402

failures = []


def expect(condition, message):
    print(("ok:   " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        failures.append(message)


def expect_code(fn, code, message):
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"{message} -> {e.code().name} ({e.details()})")
        return
    except LookupError as e:
        expect(code is None, f"{message} -> lookup error {e}")
        return
    expect(False, f"{message} -> succeeded, want {code.name}")


def main():
    address = os.environ["EXPORTD_ADDRESS"]
    admin = (("authorization", "Bearer " + os.environ["EXPORTD_TOKEN"]),)
    viewer = (("authorization", "Bearer " + os.environ["EXPORTD_VIEWER_TOKEN"]),)

    # Plaintext, or TLS when run_example_test.py --tls set EXPORTD_TLS_*.
    with grpc_reflect.open_channel(address, os.environ.get("EXPORTD_TLS_CA"),
                                   os.environ.get("EXPORTD_TLS_CERT"),
                                   os.environ.get("EXPORTD_TLS_KEY")) as channel:
        # Health: the server as a whole and each exportd service by name; any
        # other name is unknown to the health service.
        expect(grpc_reflect.health_check(channel) == "SERVING", "health: server SERVING")
        expect(grpc_reflect.health_check(channel, "exportd.v1.RunService") == "SERVING",
               "health: exportd.v1.RunService SERVING")
        expect_code(lambda: grpc_reflect.health_check(channel, "no.such.Service"),
                    grpc.StatusCode.NOT_FOUND, "health: unknown service")

        # Reflection: the service list, without a token.
        reflection = grpc_reflect.Reflection(channel)
        services = reflection.list_services()
        print("services:", ", ".join(services))
        for service in ("exportd.v1.ConnectionService", "exportd.v1.SegmentService",
                        "exportd.v1.ExportService", "exportd.v1.DestinationService",
                        "exportd.v1.AuditService", "exportd.v1.RunService",
                        "exportd.v1.ServerService", "grpc.health.v1.Health",
                        "grpc.reflection.v1alpha.ServerReflection"):
            expect(service in services, f"reflection lists {service}")

        # Descriptors: services, streaming shapes, messages, enums, imports.
        segment_service = reflection.find("exportd.v1.SegmentService")
        upload = segment_service.methods_by_name.get("UploadMembers")
        expect(upload is not None and upload.client_streaming and not upload.server_streaming,
               "UploadMembers is client-streaming")
        request = reflection.find("exportd.v1.UploadMembersRequest")
        expect(sorted(o.name for o in request.oneofs) == ["part"] and
               sorted(request.oneofs_by_name["part"].fields, key=lambda f: f.number)[-1].name ==
               "trailer", "UploadMembersRequest has the oneof part {header, chunk, trailer}")
        value = reflection.find("exportd.v1.Value")  # from common.proto, an import
        expect("timestamp_micros" in value.fields_by_name, "Value (imported file) resolves")
        role = reflection.find("exportd.v1.Role")
        expect("ROLE_ADMIN" in role.values_by_name, "enum Role resolves")
        print(grpc_reflect.describe(segment_service))
        expect_code(lambda: reflection.find("exportd.v1.NoSuchThing"), None,
                    "an unknown symbol is a lookup error")

        # Dynamic calls with JSON, like grpcurl -d.
        who = reflection.call_unary(channel, "exportd.v1.AuditService/WhoAmI", "{}", admin)
        who_json = json.loads(json_format.MessageToJson(who))
        expect(who_json == {"principal": "alice", "role": "ROLE_ADMIN"},
               f"WhoAmI as admin -> {who_json}")
        expect_code(lambda: reflection.call_unary(channel, "exportd.v1.AuditService/WhoAmI", "{}"),
                    grpc.StatusCode.UNAUTHENTICATED, "WhoAmI without a token")
        listed = reflection.call_unary(
            channel, "exportd.v1.DestinationService/ListDestinations", "{}", admin)
        names = [d.name for d in listed.destinations]
        expect("jsonl" in names, f"ListDestinations -> {names}")
        created = reflection.call_unary(
            channel, "exportd.v1.SegmentService/CreateSegment",
            json.dumps({"name": "reflected",
                        "schema": [{"name": "email", "type": "FIELD_TYPE_STRING"}]}), admin)
        got = reflection.call_unary(channel, "/exportd.v1.SegmentService/GetSegment",
                                    json.dumps({"segment": "reflected"}), viewer)
        expect(got.id == created.id and got.member_count == 0 and
               [f.name for f in got.schema] == ["email"],
               f"CreateSegment then GetSegment by name (as viewer) -> id {got.id}")
        expect_code(lambda: reflection.call_unary(
            channel, "exportd.v1.SegmentService/CreateSegment", '{"name": "nope"}', viewer),
            grpc.StatusCode.PERMISSION_DENIED, "CreateSegment as viewer")
        expect_code(lambda: reflection.call_unary(
            channel, "exportd.v1.SegmentService/UploadMembers", "{}", admin),
            None, "a streaming method is refused by the unary caller")

    # The command line, as documented in docs/clients/python.md.
    tool = [sys.executable, os.path.join(CLIENT, "grpc_reflect.py"), address]
    out = subprocess.run(tool + ["list"], capture_output=True, text=True)
    expect(out.returncode == 0 and "exportd.v1.ExportService" in out.stdout.split(),
           "grpc_reflect.py list")
    out = subprocess.run(tool + ["health"], capture_output=True, text=True)
    expect(out.returncode == 0 and out.stdout.strip() == "SERVING", "grpc_reflect.py health")
    out = subprocess.run(tool + ["describe", "exportd.v1.Segment"], capture_output=True, text=True)
    expect(out.returncode == 0 and "int64 member_count = 4;" in out.stdout,
           "grpc_reflect.py describe exportd.v1.Segment")
    out = subprocess.run(tool + ["call", "exportd.v1.SegmentService/ListSegments", "{}"],
                         capture_output=True, text=True)  # token from EXPORTD_TOKEN
    expect(out.returncode == 0 and json.loads(out.stdout)["segments"][0]["name"] == "reflected",
           "grpc_reflect.py call ListSegments with EXPORTD_TOKEN")
    env = dict(os.environ)
    env.pop("EXPORTD_TOKEN")
    out = subprocess.run(tool + ["call", "exportd.v1.SegmentService/ListSegments"],
                         capture_output=True, text=True, env=env)
    expect(out.returncode == 1 and "UNAUTHENTICATED" in out.stderr,
           "grpc_reflect.py call without a token fails UNAUTHENTICATED")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("reflection and health OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
