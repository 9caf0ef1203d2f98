#!/usr/bin/python3
"""A small grpcurl for machines without grpcurl (Debian 12 does not package it).

It knows nothing about exportd: it asks the server for its services and proto
files with gRPC server reflection and calls methods with JSON, like grpcurl.

    client/python/generate.sh /tmp/exportd-py     # only the health/reflection stubs are used
    export PYTHONPATH=/tmp/exportd-py
    grpc_reflect.py 127.0.0.1:50051 list
    grpc_reflect.py 127.0.0.1:50051 describe exportd.v1.SegmentService
    grpc_reflect.py 127.0.0.1:50051 describe exportd.v1.Segment
    grpc_reflect.py 127.0.0.1:50051 health              # or: health exportd.v1.SegmentService
    grpc_reflect.py 127.0.0.1:50051 -H "authorization: Bearer $TOKEN" \\
        call exportd.v1.DestinationService/ListDestinations '{}'

The token also comes from EXPORTD_TOKEN (sent as `authorization: Bearer ...`).
TLS as for exportctl: --tls-ca FILE (or EXPORTD_TLS_CA), for mutual TLS also
--tls-cert and --tls-key (EXPORTD_TLS_CERT, EXPORTD_TLS_KEY), and
--tls-server-name (EXPORTD_TLS_SERVER_NAME):

    grpc_reflect.py --tls-ca ca.pem exportd.example.com:50051 health
Only unary methods can be called. Exit status: 0 ok, 1 an RPC or lookup
failed, 2 usage.
"""

import sys

# grpcio and protobuf first: on Debian they are packages of the system's
# python3 (/usr/bin/python3), which another python3 earlier on PATH (pyenv, a
# virtualenv) does not see.
try:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
except ImportError as missing:
    sys.stderr.write(
        f"grpc_reflect: {missing} in {sys.executable or 'this python'} "
        f"(Python {sys.version.split()[0]}).\n"
        "It needs grpcio and protobuf. On Debian, run it with /usr/bin/python3 after\n"
        "  apt install python3-grpcio python3-protobuf\n"
        "(another python3 first on PATH, such as pyenv's or a virtualenv's, does not see them;\n"
        "with that one, pip install grpcio protobuf instead).\n")
    sys.exit(2)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

try:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
except ImportError as e:  # pragma: no cover - a set-up error
    raise SystemExit(f"grpc_reflect: health/reflection stubs not found ({e}); run "
                     "client/python/generate.sh DIR and set PYTHONPATH=DIR")


def open_channel(address, ca=None, cert=None, key=None, server_name=None):
    """Plaintext unless a CA or a client certificate file is given; then TLS (mutual with a
    certificate), checking the server's certificate for `server_name` if set."""
    if not (ca or cert):
        return grpc.insecure_channel(address)

    def read(path):
        if not path:
            return None  # no CA: the system's roots; no certificate: plain TLS
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def message_class(descriptor):
    """The Python class of a message descriptor, on old and new protobuf."""
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class Reflection:
    """Server reflection client that builds a descriptor pool on demand."""

    def __init__(self, channel, metadata=()):
        self._stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self._metadata = metadata
        self._files = {}  # name -> FileDescriptorProto
        self.pool = descriptor_pool.DescriptorPool()

    def _ask(self, **request):
        responses = self._stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(**request)]),
            metadata=self._metadata, timeout=10)
        for response in responses:
            if response.HasField("error_response"):
                err = response.error_response
                code = grpc.StatusCode.UNKNOWN
                for c in grpc.StatusCode:
                    if c.value[0] == err.error_code:
                        code = c
                raise LookupError(f"{code.name}: {err.error_message}")
            return response
        raise LookupError("the server sent no reflection response")

    def list_services(self):
        response = self._ask(list_services="")
        return sorted(s.name for s in response.list_services_response.service)

    def _add_files(self, response):
        for blob in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            self._files.setdefault(proto.name, proto)

    def _load(self, name):
        """Adds file `name` and, first, its dependencies to the pool."""
        try:
            return self.pool.FindFileByName(name)
        except KeyError:
            pass
        if name not in self._files:
            self._add_files(self._ask(file_by_filename=name))
        proto = self._files[name]
        for dependency in proto.dependency:
            self._load(dependency)
        return self.pool.Add(proto)

    def find(self, symbol):
        """The descriptor of a service, method or message, fetching its file."""
        for lookup in (self.pool.FindServiceByName, self.pool.FindMessageTypeByName,
                       self.pool.FindEnumTypeByName, self.pool.FindMethodByName):
            try:
                return lookup(symbol)
            except KeyError:
                pass
        response = self._ask(file_containing_symbol=symbol)
        self._add_files(response)
        for blob in response.file_descriptor_response.file_descriptor_proto:
            self._load(descriptor_pb2.FileDescriptorProto.FromString(blob).name)
        for lookup in (self.pool.FindServiceByName, self.pool.FindMessageTypeByName,
                       self.pool.FindEnumTypeByName, self.pool.FindMethodByName):
            try:
                return lookup(symbol)
            except KeyError:
                pass
        raise LookupError(f"symbol '{symbol}' not found")

    def method(self, full_method):
        """(MethodDescriptor, request class, response class) for 'pkg.Service/Method'."""
        service_name, sep, method_name = full_method.lstrip("/").rpartition("/")
        if not sep:
            service_name, _, method_name = full_method.rpartition(".")
        service = self.find(service_name)
        method = service.methods_by_name.get(method_name)
        if method is None:
            raise LookupError(f"service '{service_name}' has no method '{method_name}' "
                              f"(it has: {', '.join(service.methods_by_name)})")
        return method, message_class(method.input_type), message_class(method.output_type)

    def call_unary(self, channel, full_method, request_json, metadata=(), timeout=30):
        method, request_cls, response_cls = self.method(full_method)
        if method.client_streaming or method.server_streaming:
            raise LookupError(f"{method.full_name} is a streaming method; only unary calls "
                              "are supported")
        request = json_format.Parse(request_json or "{}", request_cls())
        callable_ = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString)
        return callable_(request, metadata=metadata, timeout=timeout)


def health_check(channel, service="", timeout=10):
    """The serving status name of `service` ('' = the whole server)."""
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def describe(descriptor):
    lines = []
    if hasattr(descriptor, "methods"):  # a service
        lines.append(f"service {descriptor.full_name} {{")
        for m in descriptor.methods:
            cs = "stream " if m.client_streaming else ""
            ss = "stream " if m.server_streaming else ""
            lines.append(f"  rpc {m.name}({cs}.{m.input_type.full_name}) returns "
                         f"({ss}.{m.output_type.full_name});")
        lines.append("}")
    elif hasattr(descriptor, "fields"):  # a message
        lines.append(f"message {descriptor.full_name} {{")
        for f in descriptor.fields:
            label = "repeated " if f.label == f.LABEL_REPEATED else ""
            kind = (f.message_type.full_name if f.message_type else
                    f.enum_type.full_name if f.enum_type else
                    descriptor_pb2.FieldDescriptorProto.Type.Name(f.type)[5:].lower())
            oneof = f"  // oneof {f.containing_oneof.name}" if f.containing_oneof else ""
            lines.append(f"  {label}{kind} {f.name} = {f.number};{oneof}")
        lines.append("}")
    elif hasattr(descriptor, "values"):  # an enum
        lines.append(f"enum {descriptor.full_name} {{")
        for v in descriptor.values:
            lines.append(f"  {v.name} = {v.number};")
        lines.append("}")
    else:  # a method
        lines.append(f"rpc {descriptor.full_name}(.{descriptor.input_type.full_name}) returns "
                     f"(.{descriptor.output_type.full_name})")
    return "\n".join(lines)


def main(argv):
    p = argparse.ArgumentParser(description="grpcurl-like calls through server reflection.")
    p.add_argument("address", help="HOST:PORT")
    p.add_argument("-H", dest="headers", action="append", default=[],
                   metavar="'NAME: VALUE'", help="metadata to send, e.g. 'authorization: Bearer T'")
    for flag, variable, text in (
            ("--tls-ca", "EXPORTD_TLS_CA", "use TLS, trusting this CA certificate"),
            ("--tls-cert", "EXPORTD_TLS_CERT", "client certificate for mutual TLS"),
            ("--tls-key", "EXPORTD_TLS_KEY", "private key of --tls-cert"),
            ("--tls-server-name", "EXPORTD_TLS_SERVER_NAME",
             "name to check in the server's certificate instead of the address's host")):
        p.add_argument(flag, default=os.environ.get(variable), help=f"{text} (env {variable})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the services")
    d = sub.add_parser("describe", help="show a service, method, message or enum")
    d.add_argument("symbol")
    h = sub.add_parser("health", help="gRPC health check")
    h.add_argument("service", nargs="?", default="")
    c = sub.add_parser("call", help="call a unary method with a JSON request")
    c.add_argument("method", help="pkg.Service/Method")
    c.add_argument("request", nargs="?", default="{}", help="JSON (default {})")
    args = p.parse_args(argv)

    metadata = []
    for header in args.headers:
        name, sep, value = header.partition(":")
        if not sep:
            p.error(f"-H '{header}' is not 'NAME: VALUE'")
        metadata.append((name.strip().lower(), value.strip()))
    if os.environ.get("EXPORTD_TOKEN") and not any(k == "authorization" for k, _ in metadata):
        metadata.append(("authorization", f"Bearer {os.environ['EXPORTD_TOKEN']}"))
    metadata = tuple(metadata)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")

    try:
        channel = open_channel(args.address, args.tls_ca, args.tls_cert, args.tls_key,
                               args.tls_server_name)
    except OSError as e:
        print(f"grpc_reflect: cannot read a TLS file: {e}", file=sys.stderr)
        return 2
    with channel:
        try:
            if args.command == "health":
                print(health_check(channel, args.service))
                return 0
            reflection = Reflection(channel, metadata)
            if args.command == "list":
                print("\n".join(reflection.list_services()))
            elif args.command == "describe":
                print(describe(reflection.find(args.symbol)))
            else:
                response = reflection.call_unary(channel, args.method, args.request, metadata)
                print(json_format.MessageToJson(response, preserving_proto_field_name=True,
                                                indent=2))
            return 0
        except grpc.RpcError as e:
            print(f"grpc_reflect: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        except (LookupError, json_format.ParseError) as e:
            print(f"grpc_reflect: {e}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
