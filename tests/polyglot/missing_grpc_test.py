#!/usr/bin/python3
"""The Python clients under a python3 without grpc say so, and how to fix it.

Debian's grpcio and protobuf are packages of /usr/bin/python3; another python3
first on PATH (pyenv, a virtualenv) does not see them and used to fail with a
bare "No module named 'grpc'". This runs each script with this interpreter's
-S -I (no site-packages: no grpc, as for such a python3) and checks that it
exits 2 naming the interpreter, the missing module and the Debian packages.

    /usr/bin/python3 tests/polyglot/missing_grpc_test.py

Exit status: 0 pass, 1 fail.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = [os.path.join(HERE, "..", "..", "client", "python", name)
           for name in ("exportd_example.py", "grpc_reflect.py")]


def main():
    failures = 0
    for script in SCRIPTS:
        name = os.path.basename(script)
        # No site-packages, no PYTHON* variables: a python3 without grpc.
        done = subprocess.run([sys.executable, "-S", "-I", script, "--help"],
                              capture_output=True, text=True, timeout=60)
        expected = ["No module named 'grpc'", f"in {sys.executable} ",
                    "run it with /usr/bin/python3",
                    "apt install python3-grpcio python3-protobuf"]
        problems = []
        if done.returncode != 2:
            problems.append(f"exit status {done.returncode}, not 2")
        problems += [f"no '{text}' in stderr" for text in expected if text not in done.stderr]
        if "Traceback" in done.stderr:
            problems.append("a traceback instead of a message")
        if done.stdout:
            problems.append(f"stdout is not empty: {done.stdout!r}")
        for problem in problems:
            print(f"FAIL: {name}: {problem}", flush=True)
        if problems:
            print(f"stderr was:\n{done.stderr}", flush=True)
            failures += 1
        else:
            print(f"ok:   {name} exits 2 and says how to get grpc", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
