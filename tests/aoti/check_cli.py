"""`braid check` against AOTInductor packages, as users run it: tests/aoti/aoti.graph checks clean
against its packages (the batched model without a `_batch` warning: a package batches along its
own first dimension), and declarations that do not match the packages' call specs are errors at
their `def`, with file:line:col: a method the package lacks, a parameter that is not a tensor, a
parameter too many, a record field the package's dict does not have.

usage: check_cli.py BRAID_BINARY PACKAGES_DIR DEVICE
"""
import os
import re
import subprocess
import sys
import tempfile

braid, packages, device = sys.argv[1:4]
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def run_check(path):
    return subprocess.run([braid, "check", "--require-models", "--color", "never", "--model-path", packages, path],
                          capture_output=True, text=True)


with open("tests/aoti/aoti.graph") as f:
    good = f.read().replace('.cpu.pt2" on cpu', f'.{device}.pt2" on {device}')

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "aoti.graph")
    with open(path, "w") as f:
        f.write(good)
    r = run_check(path)
    check(r.returncode == 0 and "3 with model files checked" in r.stderr, f"the suite's graph checks clean: {r.stderr!r}")
    check("warning" not in r.stderr, f"no warning (a package needs no `_batch`): {r.stderr!r}")

    bad = f"""model mlp = torch "mlp.{device}.pt2" on {device} {{
  def classify(x: tensor) -> tensor
}}
model pair = torch "pair.{device}.pt2" on {device} {{
  def embed(x: tensor) -> {{mean: tensor, norms: tensor}}
  def score(a: str, b: tensor) -> list<tensor>
}}
model extra = torch "pair.{device}.pt2" on {device} {{
  def score(a: tensor, b: tensor, c: tensor) -> list<tensor>
}}
endpoint a(x: tensor) -> tensor {{ return mlp.classify(x) }}
endpoint b(x: tensor) -> {{mean: tensor, norms: tensor}} {{ return pair.embed(x) }}
endpoint c(x: tensor) -> list<tensor> {{ return pair.score("s", x) }}
endpoint d(x: tensor) -> list<tensor> {{ return extra.score(x, x, x) }}
"""
    path = os.path.join(tmp, "bad.graph")
    with open(path, "w") as f:
        f.write(bad)
    r = run_check(path)
    check(r.returncode == 1, f"mismatches fail the check: exit {r.returncode}")
    expected = [
        r"bad\.graph:2:7: error: model file `mlp\.\w+\.pt2` has no method `classify`; it has `forward`",
        r"bad\.graph:5:7: error: `pair\.embed` is declared `\(x: tensor\) -> \{mean: tensor, norms: tensor\}`, "
        r"but the model file has `\(tensor\) -> \{mean: tensor, norm: tensor\}`",
        r"bad\.graph:6:7: error: `pair\.score` is declared `\(a: str, b: tensor\) -> list<tensor>`, "
        r"but the model file has `\(tensor, tensor\) -> list<tensor>`",
        r"bad\.graph:9:7: error: `extra\.score` is declared `\(a: tensor, b: tensor, c: tensor\) -> list<tensor>`, "
        r"but the model file has `\(tensor, tensor\) -> list<tensor>`",
    ]
    for e in expected:
        check(re.search(e, r.stderr) is not None, f"diagnostic /{e}/ in {r.stderr!r}")
    check(len(re.findall(r": error: ", r.stderr)) == len(expected), f"exactly {len(expected)} errors: {r.stderr!r}")

    # A package runs only on the device it was compiled for: placed elsewhere, an error at the
    # model (the check reads the package's metadata; nothing is loaded on the device).
    other = "cuda" if device == "cpu" else "cpu"
    path = os.path.join(tmp, "placed.graph")
    with open(path, "w") as f:
        f.write(f"""model mlp = torch "mlp.{device}.pt2" on {other} {{
  def forward(x: tensor) -> tensor
}}
endpoint a(x: tensor) -> tensor {{ return mlp.forward(x) }}
""")
    r = run_check(path)
    check(r.returncode == 1 and re.search(rf"placed\.graph:1:7: error: model `mlp` is placed `on {other}`, but "
                                          rf"`mlp\.forward` in model file `mlp\.{device}\.pt2` was compiled for `{device}` "
                                          r"and runs only there", r.stderr) is not None,
          f"a package placed on another device: {r.stderr!r}")

if failures:
    sys.exit(1)
print("check_cli: ok")
