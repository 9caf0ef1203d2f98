#!/usr/bin/python3
"""exportd from Python: the whole flow of a data team's service.

Connects to exportd, creates a connection (any destination type), a segment
with a schema, uploads members (header, chunks, trailer), creates an export
that maps profile fields to destination fields, then runs it and follows the
run with WatchRun. Everything it creates is read back and checked; a failed
check or call exits 1 with a message that says which step failed.

The stubs are generated from proto/ (nothing generated is committed):

    client/python/generate.sh /tmp/exportd-py
    PYTHONPATH=/tmp/exportd-py /usr/bin/python3 client/python/exportd_example.py \\
        --server 127.0.0.1:50051 --token-file exportd-data/admin.token \\
        --destination-type jsonl --setting directory=/tmp/out

    # Iterable (or the iterable-sandbox):
    ... --destination-type iterable --setting base_url=http://127.0.0.1:8080 \\
        --secret api_key=$ITERABLE_API_KEY

Address and token also come from EXPORTD_SERVER (or EXPORTD_ADDRESS),
EXPORTD_TOKEN and EXPORTD_TOKEN_FILE, as for exportctl. --gen-dir (or EXPORTD_PYTHON_GEN) may point at the
generated code instead of PYTHONPATH.

TLS, as for exportctl: --tls-ca FILE (EXPORTD_TLS_CA) trusts the CA that
signed exportd's certificate; --tls-cert/--tls-key (EXPORTD_TLS_CERT,
EXPORTD_TLS_KEY) add a client certificate for mutual TLS, which, when the
server's tokens file maps it, stands in for the token; --tls-server-name
(EXPORTD_TLS_SERVER_NAME) is the name checked instead of the --server host:

    ... --server exportd.example.com:50051 --tls-ca ca.pem \\
        --tls-cert client.pem --tls-key client.key

Run step: RunExport + WatchRun. A server without the run engine answers
UNIMPLEMENTED; the example then says so and still exits 0, unless
--require-run. --no-run skips the step.
"""

import sys

# grpcio and protobuf first, before anything else can fail: on Debian they are
# packages of the system's python3 (/usr/bin/python3), which another python3
# earlier on PATH (pyenv, a virtualenv) does not see.
try:
    import grpc  # noqa: F401
    import google.protobuf  # noqa: F401
except ImportError as missing:
    sys.stderr.write(
        f"exportd_example: {missing} in {sys.executable or 'this python'} "
        f"(Python {sys.version.split()[0]}).\n"
        "It needs grpcio and protobuf. On Debian, run it with /usr/bin/python3 after\n"
        "  apt install python3-grpcio python3-protobuf\n"
        "(another python3 first on PATH, such as pyenv's or a virtualenv's, does not see them;\n"
        "with that one, pip install grpcio protobuf instead).\n")
    sys.exit(2)

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import string  # noqa: E402
import time  # noqa: E402


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Create a connection, a segment, upload members, create and run an export.")
    p.add_argument("--server", "--address", dest="address",
                   default=os.environ.get("EXPORTD_SERVER") or os.environ.get("EXPORTD_ADDRESS")
                   or "127.0.0.1:50051",
                   help="exportd's HOST:PORT (env EXPORTD_SERVER, as for exportctl, or "
                        "EXPORTD_ADDRESS; default %(default)s)")
    p.add_argument("--token", default=os.environ.get("EXPORTD_TOKEN"),
                   help="bearer token (env EXPORTD_TOKEN)")
    p.add_argument("--token-file", default=os.environ.get("EXPORTD_TOKEN_FILE"),
                   help="file whose first word is the token, e.g. DATA_DIR/admin.token "
                        "(env EXPORTD_TOKEN_FILE)")
    p.add_argument("--tls-ca", default=os.environ.get("EXPORTD_TLS_CA"),
                   help="use TLS, trusting this CA certificate (env EXPORTD_TLS_CA)")
    p.add_argument("--tls-cert", default=os.environ.get("EXPORTD_TLS_CERT"),
                   help="client certificate for mutual TLS (env EXPORTD_TLS_CERT)")
    p.add_argument("--tls-key", default=os.environ.get("EXPORTD_TLS_KEY"),
                   help="private key of --tls-cert (env EXPORTD_TLS_KEY)")
    p.add_argument("--tls-server-name", default=os.environ.get("EXPORTD_TLS_SERVER_NAME"),
                   help="name to check in exportd's certificate instead of the --server host "
                        "(env EXPORTD_TLS_SERVER_NAME)")
    p.add_argument("--gen-dir", default=os.environ.get("EXPORTD_PYTHON_GEN"),
                   help="where generate.sh wrote the stubs (env EXPORTD_PYTHON_GEN)")
    p.add_argument("--destination-type", default="jsonl",
                   help="a loaded destination, e.g. jsonl or iterable (default %(default)s)")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a connection setting, e.g. directory=/tmp/out or base_url=http://...")
    p.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                   help="a secret connection setting, e.g. api_key=...; never read back")
    p.add_argument("--mapping", action="append", default=[], metavar="DEST=PROFILE",
                   help="destination field <- profile field (default: email=email, "
                        "firstName=first_name, score=score)")
    p.add_argument("--name", default=None,
                   help="base name of the connection, segment and export "
                        "(default: example-<random>)")
    p.add_argument("--members", type=int, default=250, help="members to upload (default %(default)s)")
    p.add_argument("--chunk-size", type=int, default=100,
                   help="rows per upload chunk (default %(default)s)")
    p.add_argument("--no-run", action="store_true", help="stop after creating the export")
    p.add_argument("--require-run", action="store_true",
                   help="fail when the server cannot run exports (UNIMPLEMENTED)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the run to end (default %(default)s)")
    args = p.parse_args(argv)
    if args.members < 1 or args.chunk_size < 1:
        p.error("--members and --chunk-size must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.tls_server_name and not (args.tls_ca or args.tls_cert):
        p.error("--tls-server-name needs TLS: pass --tls-ca FILE")
    return args


def key_values(items, what):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"exportd_example: {what} '{item}' is not KEY=VALUE")
        out[key] = value
    return out


def read_token(args):
    if args.token:
        return args.token
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                words = f.read().split()
        except OSError as e:
            raise SystemExit(f"exportd_example: cannot read --token-file: {e}")
        if not words:
            raise SystemExit(f"exportd_example: --token-file '{args.token_file}' is empty")
        return words[0]
    if args.tls_cert:
        return None  # the client certificate may identify the caller
    raise SystemExit("exportd_example: no token; pass --token, --token-file, EXPORTD_TOKEN "
                     "or EXPORTD_TOKEN_FILE")


def open_channel(grpc, args):
    """Plaintext without --tls-ca and --tls-cert; TLS (mutual with a certificate) otherwise."""
    if not (args.tls_ca or args.tls_cert):
        return grpc.insecure_channel(args.address)

    def read(flag, path):
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise SystemExit(f"exportd_example: cannot read {flag}: {e}")

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("--tls-ca", args.tls_ca),  # None: the system's roots
        private_key=read("--tls-key", args.tls_key),
        certificate_chain=read("--tls-cert", args.tls_cert))
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.secure_channel(args.address, credentials, options=options)


def import_stubs(gen_dir):
    if gen_dir:
        sys.path.insert(0, gen_dir)
    try:
        from exportd.v1 import segment_pb2  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"exportd_example: generated stubs not found ({e}); run "
                         "client/python/generate.sh DIR and pass --gen-dir DIR or PYTHONPATH=DIR")


def main(argv):
    args = parse_args(argv)
    settings = key_values(args.setting, "--setting")
    secrets = key_values(args.secret, "--secret")
    mappings = key_values(args.mapping, "--mapping") or {
        "email": "email", "firstName": "first_name", "score": "score"}
    token = read_token(args)
    import_stubs(args.gen_dir)

    import grpc
    from exportd.v1 import (audit_pb2, audit_pb2_grpc, common_pb2, connection_pb2,
                            connection_pb2_grpc, destination_pb2, destination_pb2_grpc,
                            export_pb2, export_pb2_grpc, run_pb2, run_pb2_grpc, segment_pb2,
                            segment_pb2_grpc)

    base = args.name or "example-" + "".join(
        random.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    step = "connect"

    # Every call carries `authorization: Bearer <token>`. Per-call metadata
    # works on plaintext and TLS channels alike (call credentials need TLS).
    # Without a token, a mapped client certificate identifies the caller.
    auth = (("authorization", f"Bearer {token}"),) if token else ()
    channel = open_channel(grpc, args)
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
    except grpc.FutureTimeoutError:
        print(f"exportd_example: cannot reach exportd at {args.address} within 10 s",
              file=sys.stderr)
        return 1

    audit = audit_pb2_grpc.AuditServiceStub(channel)
    destinations = destination_pb2_grpc.DestinationServiceStub(channel)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    segments = segment_pb2_grpc.SegmentServiceStub(channel)
    exports = export_pb2_grpc.ExportServiceStub(channel)
    runs = run_pb2_grpc.RunServiceStub(channel)

    try:
        step = "WhoAmI"
        me = audit.WhoAmI(audit_pb2.WhoAmIRequest(), metadata=auth, timeout=10)
        print(f"whoami: {me.principal} ({common_pb2.Role.Name(me.role)})")

        step = "ListDestinations"
        listed = destinations.ListDestinations(destination_pb2.ListDestinationsRequest(),
                                               metadata=auth, timeout=10)
        names = [d.name for d in listed.destinations]
        print(f"destinations: {', '.join(names) or 'none'} (host ABI {listed.host_abi_version})")
        check(args.destination_type in names,
              f"destination '{args.destination_type}' is not loaded by the server "
              f"(loaded: {', '.join(names) or 'none'}); check exportd's --plugin-dir")
        manifest = next(d for d in listed.destinations if d.name == args.destination_type)
        for field in manifest.mapping_fields:
            if field.required:
                check(field.name in mappings,
                      f"destination '{manifest.name}' requires mapping field '{field.name}'; "
                      f"pass --mapping {field.name}=PROFILE_FIELD")

        step = "CreateConnection"
        conn = connections.CreateConnection(connection_pb2.CreateConnectionRequest(
            display_name=f"{base}-connection",
            destination_type=args.destination_type,
            settings=settings,
            secrets=secrets,
            accept_privacy_terms=True,
            add_self_as_export_user=True), metadata=auth, timeout=10)
        print(f"connection: id={conn.id} name={conn.display_name} type={conn.destination_type} "
              f"settings={dict(conn.settings)} secrets={list(conn.secret_names)}")
        step = "GetConnection"
        got = connections.GetConnection(
            connection_pb2.GetConnectionRequest(connection=conn.display_name),
            metadata=auth, timeout=10)
        check(got.id == conn.id, f"GetConnection by name returned id {got.id}, want {conn.id}")
        check(sorted(got.secret_names) == sorted(secrets),
              f"secret names read back {sorted(got.secret_names)}, want {sorted(secrets)}")
        for name, value in settings.items():
            check(got.settings.get(name) == value,
                  f"setting '{name}' read back as {got.settings.get(name)!r}, want {value!r}")
        for name, value in secrets.items():
            check(value not in str(got), f"secret '{name}' was returned by GetConnection")
        check(got.consent_accepted_by == me.principal,
              f"consent accepted by {got.consent_accepted_by!r}, want {me.principal!r}")

        step = "CreateSegment"
        schema = [
            segment_pb2.SchemaField(name="email", type=common_pb2.FIELD_TYPE_STRING),
            segment_pb2.SchemaField(name="first_name", type=common_pb2.FIELD_TYPE_STRING),
            segment_pb2.SchemaField(name="score", type=common_pb2.FIELD_TYPE_INT),
            segment_pb2.SchemaField(name="vip", type=common_pb2.FIELD_TYPE_BOOL),
            segment_pb2.SchemaField(name="joined_at", type=common_pb2.FIELD_TYPE_TIMESTAMP),
        ]
        seg = segments.CreateSegment(
            segment_pb2.CreateSegmentRequest(name=f"{base}-segment", schema=schema),
            metadata=auth, timeout=10)
        print(f"segment: id={seg.id} name={seg.name} fields="
              f"{[f.name for f in seg.schema]} members={seg.member_count}")

        step = "UploadMembers"
        n = args.members
        joined = 1_700_000_000_000_000

        def upload_requests():
            # First the header, then chunks of rows, and LAST the trailer: without
            # it the server commits nothing.
            yield segment_pb2.UploadMembersRequest(
                header=segment_pb2.UploadMembersRequest.Header(segment=seg.name))
            for start in range(0, n, args.chunk_size):
                rows = []
                for i in range(start, min(n, start + args.chunk_size)):
                    first_name = common_pb2.Value() if i % 10 == 9 else common_pb2.Value(
                        string_value=f"Member {i}")  # every tenth first name is null
                    rows.append(segment_pb2.MemberRow(profile_id=f"p{i:06d}", values=[
                        common_pb2.Value(string_value=f"member{i}@example.com"),
                        first_name,
                        common_pb2.Value(int_value=i),
                        common_pb2.Value(bool_value=i % 3 == 0),
                        common_pb2.Value(timestamp_micros=joined + i * 1_000_000),
                    ]))
                yield segment_pb2.UploadMembersRequest(
                    chunk=segment_pb2.UploadMembersRequest.Chunk(rows=rows))
            yield segment_pb2.UploadMembersRequest(
                trailer=segment_pb2.UploadMembersRequest.Trailer(row_count=n))

        uploaded = segments.UploadMembers(upload_requests(), metadata=auth, timeout=60)
        print(f"uploaded: rows_received={uploaded.rows_received} "
              f"member_count={uploaded.segment.member_count} "
              f"snapshot_version={uploaded.segment.snapshot_version}")
        check(uploaded.rows_received == n, f"rows_received {uploaded.rows_received}, want {n}")
        check(uploaded.segment.member_count == n,
              f"member_count after upload {uploaded.segment.member_count}, want {n}")

        step = "GetSegment"
        seg = segments.GetSegment(segment_pb2.GetSegmentRequest(segment=seg.id),
                                  metadata=auth, timeout=10)
        print(f"segment read back: member_count={seg.member_count} "
              f"snapshot_version={seg.snapshot_version} upload_in_progress={seg.upload_in_progress}")
        check(seg.member_count == n, f"GetSegment member_count {seg.member_count}, want {n}")
        check(seg.snapshot_version >= 1, f"snapshot_version {seg.snapshot_version}, want >= 1")
        check([f.name for f in seg.schema] == [f.name for f in schema],
              f"schema read back {[f.name for f in seg.schema]}")

        step = "ListMembers"
        seen, token_page, first, tenth = 0, "", None, None
        while True:
            page = segments.ListMembers(segment_pb2.ListMembersRequest(
                segment=seg.name, page_size=100, page_token=token_page), metadata=auth, timeout=10)
            if first is None and page.rows:
                first = page.rows[0]
            tenth = tenth or next((r for r in page.rows if r.profile_id == "p000009"), None)
            seen += len(page.rows)
            token_page = page.next_page_token
            if not token_page:
                break
        print(f"members listed: {seen}; first: {first.profile_id if first else None} "
              f"{first.values[0].string_value if first else ''}")
        check(seen == n, f"ListMembers returned {seen} rows, want {n}")
        check(first is not None and first.values[0].string_value.endswith("@example.com"),
              "the first member's email did not come back")

        if tenth is not None:
            # A null comes back as a Value with no kind set.
            check(tenth.values[1].WhichOneof("kind") is None,
                  f"p000009's first_name read back as {tenth.values[1]}, want null")
            check(tenth.values[2].int_value == 9, f"p000009's score read back as {tenth.values[2]}")

        step = "CreateExport"
        exp = exports.CreateExport(export_pb2.CreateExportRequest(
            name=f"{base}-export",
            connection=conn.display_name,
            segments=[seg.name],
            mappings=[export_pb2.FieldMapping(destination_field=d, profile_field=p)
                      for d, p in mappings.items()],
            mode=export_pb2.EXPORT_MODE_MIRROR), metadata=auth, timeout=10)
        step = "GetExport"
        exp = exports.GetExport(export_pb2.GetExportRequest(export=exp.name),
                                metadata=auth, timeout=10)
        got_mappings = {m.destination_field: m.profile_field for m in exp.mappings}
        print(f"export: id={exp.id} name={exp.name} connection={exp.connection_name} "
              f"segments={list(exp.segment_names)} mappings={got_mappings} "
              f"mode={export_pb2.ExportMode.Name(exp.mode)} active={exp.active}")
        check(got_mappings == mappings, f"mappings read back {got_mappings}, want {mappings}")
        check(list(exp.segment_names) == [seg.name],
              f"segment names read back {list(exp.segment_names)}, want {[seg.name]}")
        check(exp.connection_id == conn.id,
              f"connection_id read back {exp.connection_id}, want {conn.id}")
        check(exp.active, "the new export is not active")

        if args.no_run:
            print("run: skipped (--no-run)")
            print("OK")
            return 0

        step = "RunExport"
        try:
            run = runs.RunExport(run_pb2.RunExportRequest(export=exp.name),
                                 metadata=auth, timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                print(f"run: this exportd cannot run exports yet (UNIMPLEMENTED: {e.details()})")
                if args.require_run:
                    return 1
                print("OK (without a run)")
                return 0
            raise
        print(f"run: id={run.id} state={run_pb2.RunState.Name(run.state)}")

        step = "WatchRun"
        final = run
        deadline = time.monotonic() + args.timeout
        try:
            for update in runs.WatchRun(run_pb2.WatchRunRequest(run_id=run.id),
                                        metadata=auth, timeout=args.timeout):
                final = update
                progress = ", ".join(
                    f"{s.segment_name}: +{s.added} ~{s.updated} -{s.removed} "
                    f"rejected {s.rejected} of {s.total_members}" for s in update.segments)
                print(f"  {run_pb2.RunState.Name(update.state)} {progress}")
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                print(f"run: WatchRun is not implemented here ({e.details()}); polling GetRun")
                while final.state in (run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING,
                                      run_pb2.RUN_STATE_UNSPECIFIED):
                    check(time.monotonic() < deadline,
                          f"the run did not end within {args.timeout} s")
                    time.sleep(0.2)
                    final = runs.GetRun(run_pb2.GetRunRequest(run_id=run.id),
                                        metadata=auth, timeout=10)
            else:
                raise
        state = run_pb2.RunState.Name(final.state)
        print(f"run ended: {state} {final.message}".rstrip())
        check(final.state in (run_pb2.RUN_STATE_SUCCEEDED,
                              run_pb2.RUN_STATE_SUCCEEDED_WITH_REJECTIONS),
              f"the run ended {state}: {final.message}")
        total_added = sum(s.added + s.updated for s in final.segments)
        check(total_added + sum(s.rejected for s in final.segments) == n,
              f"the run delivered {total_added} members, want {n} (less rejections)")

        if args.destination_type == "jsonl" and "directory" in settings:
            path = os.path.join(settings["directory"], f"{seg.name}.jsonl")
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            print(f"jsonl file: {path}: {len(lines)} lines; first: {lines[0] if lines else ''}")
            check(len(lines) == n, f"{path} has {len(lines)} lines, want {n}")
        print("OK")
        return 0
    except grpc.RpcError as e:
        print(f"exportd_example: {step} failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except CheckFailed as e:
        print(f"exportd_example: check failed after {step}: {e}", file=sys.stderr)
        return 1
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
