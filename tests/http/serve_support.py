"""What the tests of `braid serve` as a process share: failures collected (each printed as it
happens), requests with the Python standard library's HTTP client, and waiting for the server's
own state, read over HTTP; and, for the tests that drive braid with a client library, running
again with the Python that has it (or reporting the test skipped)."""
import http.client
import json
import os
import re
import subprocess
import sys
import time

failures = []


def reexec_or_skip(missing):
    """For a test whose client library did not import: runs the script again with the first Python
    that may have it (BRAID_CLIENT_PYTHON, else the .test-venv meson names in
    BRAID_TEST_VENV_PYTHON), once; else reports the test skipped (exit 77), saying what is
    `missing` and how to install it."""
    pythons = [os.environ.get("BRAID_CLIENT_PYTHON"), os.environ.get("BRAID_TEST_VENV_PYTHON")]
    other = next((p for p in pythons if p and os.path.exists(p)), None)
    if other and not os.environ.get("BRAID_CLIENT_REEXEC"):
        os.environ["BRAID_CLIENT_REEXEC"] = "1"
        os.execv(other, [other] + sys.argv)
    print(f"SKIP: {missing} is not installed (scripts/bootstrap.sh --tests; or pip install it and "
          "BRAID_CLIENT_PYTHON=venv/bin/python3)")
    sys.exit(77)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def request(port, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def wait_until(pred, seconds=60):
    """Polls a condition (the server's own state, read over HTTP) until it holds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def serve(braid, *args, stderr=subprocess.PIPE):
    """Starts `braid serve ARGS --port 0`; returns the process and the port it printed (its first
    line is the curl command for the first endpoint). Exits failing when it printed none.
    STDERR: where its stderr goes (a file for a server that writes much there, such as an access
    log: a pipe nobody reads until the end would fill and stall it)."""
    proc = subprocess.Popen([braid, "serve", *args, "--port", "0"], stdout=subprocess.PIPE, stderr=stderr,
                            text=True, errors="backslashreplace")
    m = re.match(r"curl -sN? -X POST http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    if m is None:
        proc.kill()
        print("FAIL: no curl line from braid serve", proc.stderr.read() if proc.stderr else "")
        sys.exit(1)
    return proc, int(m.group(1))
