#!/usr/bin/python3
"""Starts a real exportd, runs one client command against it, stops it.

    run_example_test.py --exportd build/bin/exportd --plugin-dir build/plugins \\
        --work-dir /tmp/x --expect-destination jsonl [--python-gen client/python/generate.sh] \\
        [--node-modules client/node/node_modules] [--tls tls|mtls] \\
        [--sandbox build/bin/iterable-sandbox] [--http] -- COMMAND ARGS...

exportd listens on 127.0.0.1:0 with a fresh data directory and a tokens file
(an admin, a viewer and a contributor). The port is parsed from its stderr line
"exportd listening on 127.0.0.1:PORT"; readiness is polled (TCP, then the gRPC
health check when the Python stubs are there), never slept for.

The command gets, in its environment and as {placeholders} in its arguments:
  EXPORTD_SERVER and EXPORTD_ADDRESS {address}, EXPORTD_TOKEN {token} (admin), EXPORTD_TOKEN_FILE,
  EXPORTD_VIEWER_TOKEN {viewer_token}, EXPORTD_CONTRIBUTOR_TOKEN, EXPORTD_TEST_DIR {tmp} (a scratch
  directory, e.g. for the jsonl destination), and with --python-gen the
  generated stubs in EXPORTD_PYTHON_GEN {gen} and PYTHONPATH.

With --sandbox, the Iterable sandbox runs on 127.0.0.1:0 too, and the command
gets ITERABLE_SANDBOX_URL {sandbox_url} and ITERABLE_SANDBOX_API_KEY
{sandbox_api_key}. With --http, exportd also serves the HTTP/JSON API and the
console (--http-listen 127.0.0.1:0); the command gets EXPORTD_HTTP_URL
{http_url}.

With --tls, openssl makes a CA and a server certificate for 127.0.0.1 and
exportd serves TLS; the command gets EXPORTD_TLS_CA {tls_ca}. With --tls mtls
exportd also requires a client certificate of that CA, and the command gets
EXPORTD_TLS_CERT {tls_cert} and EXPORTD_TLS_KEY {tls_key}.

The test passes when the command exits 0 and exportd then shuts down cleanly
on SIGTERM with exit status 0. Exit status: 0 pass, 1 fail.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LISTENING = re.compile(r"exportd listening on ([0-9.]+):(\d+)")
# exportd's line for --http-listen: "console and HTTP API: http://127.0.0.1:PORT/ (...)".
HTTP_LISTENING = re.compile(r"HTTP API: https?://([0-9.]+):(\d+)/")
SANDBOX_LISTENING = re.compile(r"^listening on ([0-9.]+):(\d+)$")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    return 1


class Exportd:
    """A child process (exportd, or the sandbox with stream="stdout") whose stderr (or stdout)
    is collected by a thread."""

    def __init__(self, argv, stream="stderr"):
        self.argv = argv
        self.lines = []
        self._cond = threading.Condition()
        pipes = ({"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE} if stream == "stderr"
                 else {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL})
        self.proc = subprocess.Popen(argv, text=True, errors="replace", **pipes)
        self._stream = self.proc.stderr if stream == "stderr" else self.proc.stdout
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self._stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)  # EOF
            self._cond.notify_all()

    def log(self):
        with self._cond:
            return "\n".join(l for l in self.lines if l is not None)

    def wait_for_line(self, pattern, timeout):
        """The first match of `pattern` in stderr, or None on EOF or timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line is None:
                        return None
                    match = pattern.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def stop(self, timeout=20):
        """SIGTERM, then the exit status (None when it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self._reader.join(5)
        return self.proc.returncode


def wait_tcp(host, port, proc, timeout):
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    return False


def make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with
    openssl in `directory`: {"ca", "server_cert", "server_key", "client_cert", "client_key"}."""
    def openssl(*argv):
        run = subprocess.run(["openssl", *argv], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(argv)} failed:\n{run.stdout}{run.stderr}")

    p = lambda name: os.path.join(directory, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
            "-subj", "/CN=polyglot test CA")
    for name, subject, extensions in (
            ("server", "/CN=exportd",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "/CN=polyglot-client", "extendedKeyUsage=clientAuth\n")):
        with open(p(f"{name}.ext"), "w", encoding="utf-8") as f:
            f.write(extensions)
        openssl("req", "-new", *ec, "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"),
                "-subj", subject)
        openssl("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.pem"), "-CAkey",
                p("ca.key"), "-set_serial", str(secrets.randbits(62)), "-days", "2",
                "-extfile", p(f"{name}.ext"), "-out", p(f"{name}.pem"))
    return {"ca": p("ca.pem"), "server_cert": p("server.pem"), "server_key": p("server.key"),
            "client_cert": p("client.pem"), "client_key": p("client.key")}


def wait_healthy(address, gen_dir, timeout, tls=None, mutual=False):
    """Polls grpc.health.v1 Check until SERVING; returns an error text or None."""
    sys.path.insert(0, gen_dir)
    try:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ImportError as e:
        return (f"cannot import grpc or the health stubs ({e}); on Debian: apt-get install "
                "python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc, and "
                "run with /usr/bin/python3")
    deadline = time.monotonic() + timeout
    last = "no answer"
    if tls:
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        credentials = grpc.ssl_channel_credentials(
            read(tls["ca"]), read(tls["client_key"]) if mutual else None,
            read(tls["client_cert"]) if mutual else None)
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        delay = 0.01
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return None
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    return f"exportd did not report SERVING within {timeout} s (last: {last})"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exportd", required=True, help="the exportd binary")
    p.add_argument("--plugin-dir", help="passed to exportd --plugin-dir")
    p.add_argument("--work-dir", help="parent of the temporary directory (default: $TMPDIR)")
    p.add_argument("--expect-destination", action="append", default=[],
                   help="fail unless exportd's start-up log lists this destination")
    p.add_argument("--python-gen", metavar="GENERATE_SH",
                   help="run this generate.sh into the scratch dir and export the stubs")
    p.add_argument("--node-modules", metavar="DIR",
                   help="fail clearly unless DIR holds the --node-module modules")
    p.add_argument("--node-module", action="append", metavar="NAME",
                   help="a module --node-modules must hold (default: @grpc/grpc-js and "
                        "@grpc/proto-loader); repeatable")
    p.add_argument("--node-setup", default="scripts/setup-node-client.sh (npm ci in client/node)",
                   help="what installs --node-modules, for the failure message")
    p.add_argument("--require-file", action="append", default=[], metavar="PATH:HINT",
                   help="fail unless PATH exists, saying HINT (e.g. a browser and how to "
                        "install it); repeatable")
    p.add_argument("--sandbox", metavar="BIN", help="also run this iterable-sandbox")
    p.add_argument("--http", action="store_true",
                   help="exportd also serves HTTP (--http-listen 127.0.0.1:0)")
    p.add_argument("--tls", choices=["tls", "mtls"],
                   help="serve TLS (mtls: and require a client certificate); see above")
    p.add_argument("--timeout", type=float, default=120, help="seconds for the command")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command after --")

    # Set-up problems fail with a message that says how to fix them.
    if not os.access(args.exportd, os.X_OK):
        return fail(f"exportd binary '{args.exportd}' is missing; build it (ninja exportd)")
    if args.node_modules:
        if shutil.which(command[0]) is None and not os.access(command[0], os.X_OK):
            return fail(f"'{command[0]}' is not installed; the Node client needs node 20 and npm")
        for module in args.node_module or ("@grpc/grpc-js", "@grpc/proto-loader"):
            if not os.path.isfile(os.path.join(args.node_modules, module, "package.json")):
                return fail(f"the Node module {module} is missing from {args.node_modules}; "
                            f"run {args.node_setup} first")
    for required in args.require_file:
        path, _, hint = required.partition(":")
        if not os.path.exists(path):
            return fail(f"{path} is missing; {hint or 'install it'}")
    if args.sandbox and not os.access(args.sandbox, os.X_OK):
        return fail(f"iterable-sandbox binary '{args.sandbox}' is missing; build it "
                    "(ninja iterable_sandbox)")
    if args.plugin_dir:
        for name in args.expect_destination:
            library = os.path.join(args.plugin_dir, f"libexportd_{name}.so")
            if not os.path.isfile(library):
                return fail(f"plugin {library} is missing; build the '{name}' target")

    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="exportd-poly-", dir=args.work_dir)
    data_dir = os.path.join(tmp, "data")
    scratch = os.path.join(tmp, "scratch")
    os.makedirs(data_dir)
    os.makedirs(scratch)
    admin_token = "poly-admin-" + secrets.token_hex(16)
    viewer_token = "poly-viewer-" + secrets.token_hex(16)
    contributor_token = "poly-contributor-" + secrets.token_hex(16)
    tokens_file = os.path.join(tmp, "tokens")
    with open(tokens_file, "w", encoding="utf-8") as f:
        f.write("# <token> <principal> <role>\n"
                f"{admin_token} alice admin\n"
                f"{viewer_token} victor viewer\n"
                f"{contributor_token} carol contributor\n")
    os.chmod(tokens_file, 0o600)
    admin_token_file = os.path.join(tmp, "admin.token")
    with open(admin_token_file, "w", encoding="utf-8") as f:
        f.write(admin_token + "\n")
    os.chmod(admin_token_file, 0o600)

    env = dict(os.environ)
    gen_dir = None
    if args.python_gen:
        gen_dir = os.path.join(tmp, "gen")
        started = time.monotonic()
        gen = subprocess.run(["sh", args.python_gen, gen_dir], capture_output=True, text=True)
        if gen.returncode != 0:
            return fail(f"{args.python_gen} failed:\n{gen.stdout}{gen.stderr}")
        print(f"generated Python stubs in {time.monotonic() - started:.1f} s", flush=True)
        env["EXPORTD_PYTHON_GEN"] = gen_dir
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [gen_dir, env.get("PYTHONPATH")]))

    exportd_argv = [args.exportd, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                    "--tokens-file", tokens_file]
    tls = None
    if args.tls:
        tls_dir = os.path.join(tmp, "tls")
        os.makedirs(tls_dir)
        try:
            tls = make_certificates(tls_dir)
        except (OSError, RuntimeError) as e:
            return fail(f"cannot make test certificates (apt-get install openssl): {e}")
        exportd_argv += ["--tls-cert", tls["server_cert"], "--tls-key", tls["server_key"]]
        if args.tls == "mtls":
            exportd_argv += ["--tls-client-ca", tls["ca"]]
    if args.plugin_dir:
        exportd_argv += ["--plugin-dir", args.plugin_dir]
    if args.http:
        exportd_argv += ["--http-listen", "127.0.0.1:0"]
    sandbox = None
    sandbox_values = {"sandbox_url": "", "sandbox_api_key": ""}
    if args.sandbox:
        sandbox_key = "sandbox-" + secrets.token_hex(16)
        sandbox = Exportd([args.sandbox, "--listen", "127.0.0.1:0", "--api-key", sandbox_key],
                          stream="stdout")
        match = sandbox.wait_for_line(SANDBOX_LISTENING, 30)
        if match is None:
            sandbox.stop()
            return fail(f"iterable-sandbox did not print 'listening on HOST:PORT' (exit status "
                        f"{sandbox.proc.returncode})")
        sandbox_values = {"sandbox_url": f"http://{match.group(1)}:{match.group(2)}",
                          "sandbox_api_key": sandbox_key}
        print(f"iterable-sandbox on {sandbox_values['sandbox_url']}", flush=True)
    print("starting:", " ".join(exportd_argv), flush=True)
    started = time.monotonic()
    server = Exportd(exportd_argv)
    result = 1
    try:
        match = server.wait_for_line(LISTENING, 30)
        if match is None:
            server.stop()
            return fail(f"exportd did not print 'exportd listening on HOST:PORT' "
                        f"(exit status {server.proc.returncode}); its log:\n{server.log()}")
        host, port = match.group(1), int(match.group(2))
        address = f"{host}:{port}"
        if not wait_tcp(host, port, server.proc, 30):
            return fail(f"nothing accepts connections on {address}; log:\n{server.log()}")
        http_url = ""
        if args.http:
            match = server.wait_for_line(HTTP_LISTENING, 30)
            if match is None:
                return fail(f"exportd did not print its 'console and HTTP API: URL' line; "
                            f"log:\n{server.log()}")
            if not wait_tcp(match.group(1), int(match.group(2)), server.proc, 30):
                return fail(f"nothing accepts HTTP connections on {match.group(1)}:"
                            f"{match.group(2)}; log:\n{server.log()}")
            http_url = f"http://{match.group(1)}:{match.group(2)}"
        if args.expect_destination:
            line = server.wait_for_line(re.compile(r"^destinations: (.*)$"), 10)
            loaded = [d.split()[0] for d in line.group(1).split(", ")] if line else []
            for name in args.expect_destination:
                if name not in loaded:
                    return fail(f"exportd did not load destination '{name}' "
                                f"(destinations: {', '.join(loaded) or 'none'}); log:\n"
                                f"{server.log()}")
        if gen_dir:
            error = wait_healthy(address, gen_dir, 30, tls, args.tls == "mtls")
            if error:
                return fail(f"{error}; log:\n{server.log()}")
        print(f"exportd ready on {address} after {time.monotonic() - started:.2f} s", flush=True)

        env.update({
            "EXPORTD_ADDRESS": address,
            "EXPORTD_SERVER": address,
            "EXPORTD_TOKEN": admin_token,
            "EXPORTD_TOKEN_FILE": admin_token_file,
            "EXPORTD_VIEWER_TOKEN": viewer_token,
            "EXPORTD_CONTRIBUTOR_TOKEN": contributor_token,
            "EXPORTD_TEST_DIR": scratch,
            "EXPORTD_HTTP_URL": http_url,
            "ITERABLE_SANDBOX_URL": sandbox_values["sandbox_url"],
            "ITERABLE_SANDBOX_API_KEY": sandbox_values["sandbox_api_key"],
        })
        values = {"address": address, "token": admin_token, "viewer_token": viewer_token,
                  "tmp": scratch, "gen": gen_dir or "", "tls_ca": "", "tls_cert": "",
                  "tls_key": "", "http_url": http_url, **sandbox_values}
        for name in ("EXPORTD_TLS_CA", "EXPORTD_TLS_CERT", "EXPORTD_TLS_KEY",
                     "EXPORTD_TLS_SERVER_NAME"):
            env.pop(name, None)  # only what this test sets
        if tls:
            env["EXPORTD_TLS_CA"] = values["tls_ca"] = tls["ca"]
        if args.tls == "mtls":
            env["EXPORTD_TLS_CERT"] = values["tls_cert"] = tls["client_cert"]
            env["EXPORTD_TLS_KEY"] = values["tls_key"] = tls["client_key"]
        argv_cmd = [a.format(**values) for a in command]
        print("running:", " ".join(argv_cmd).replace(admin_token, "<token>"), flush=True)
        started = time.monotonic()
        try:
            run = subprocess.run(argv_cmd, env=env, timeout=args.timeout)
        except FileNotFoundError:
            return fail(f"'{argv_cmd[0]}' is not installed")
        except subprocess.TimeoutExpired:
            return fail(f"the command did not finish within {args.timeout} s; exportd log:\n"
                        f"{server.log()}")
        print(f"command exited {run.returncode} after {time.monotonic() - started:.2f} s",
              flush=True)
        if run.returncode != 0:
            return fail(f"the command exited {run.returncode}; exportd log:\n{server.log()}")
        result = 0
    finally:
        status = server.stop()
        if sandbox:
            sandbox.stop()
        if result == 0 and status != 0:
            result = fail(f"exportd did not shut down cleanly on SIGTERM (status {status}); "
                          f"log:\n{server.log()}")
        if result == 0 and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", flush=True)
    if result != 0:
        return result
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
