"""What the tests of `braid serve` as a process share: failures collected (each printed as it
happens), requests with the Python standard library's HTTP client, and waiting for the server's
own state, read over HTTP."""
import http.client
import json
import time

failures = []


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
