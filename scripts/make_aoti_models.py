#!/usr/bin/env python3
"""AOTInductor packages (.pt2) for braid's tests and benchmarks, and what eager PyTorch answers.

    make_aoti_models.py OUTDIR [--device cpu|cuda ...]

For each device it writes, into OUTDIR:
  mlp.<device>.pt2    one model (the name `model` that aoti_compile_and_package gives, which braid
                      runs as the method `forward`): x [batch, 8] -> softmax probabilities [batch, 4]
  pair.<device>.pt2   two models in one package (the methods `embed` and `score`):
                      embed(x [batch, 8]) -> {"mean": [batch], "norm": [batch]}   (a record)
                      score(a [batch, 4], b [batch, 4]) -> (dot [batch], diff [batch, 4])  (a list)
  mlp.<device>.ts.pt  the same MLP, same weights, as TorchScript (torch.jit.trace), for
                      bench/aoti.graph: one model through both of the torch backend's formats
  expected.<device>.json  fixed inputs and eager PyTorch's outputs for each method, which the
                      `aoti` suite compares braid's answers with.
Weights are seeded: the same PyTorch writes the same packages. The batch dimension is dynamic.
Tooling around the engine (braid itself never runs Python): torch.export and AOTInductor have no
C++ front end.
"""
import argparse
import warnings
import json
import os
import sys

import torch
import torch.fx.experimental._config as fx_config
from torch._inductor.package import package_aoti


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


class Embed(torch.nn.Module):
    def forward(self, x):
        return {"mean": x.mean(dim=-1), "norm": torch.linalg.vector_norm(x, dim=-1)}


class Score(torch.nn.Module):
    def forward(self, a, b):
        return (a * b).sum(dim=-1), a - b


def export(module, args, names):
    """torch.export with a dynamic first (batch) dimension on every input."""
    return torch.export.export(module, args, dynamic_shapes={n: {0: torch.export.Dim.DYNAMIC} for n in names})


def main():
    warnings.simplefilter("ignore")  # PyTorch's notes on its own internals, in every build log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--device", action="append", choices=["cpu", "cuda"])
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    torch.manual_seed(0)
    mlp, embed, score = Mlp().eval(), Embed().eval(), Score().eval()
    x = torch.linspace(-1.0, 1.0, 3 * 8).reshape(3, 8)
    pa = torch.linspace(0.0, 1.0, 2 * 4).reshape(2, 4)
    pb = torch.linspace(1.0, -1.0, 2 * 4).reshape(2, 4)
    for device in a.device or ["cpu"]:
        if device == "cuda" and not torch.cuda.is_available():
            sys.exit("make_aoti_models: --device cuda needs a CUDA device")
        mods = [m.to(device) for m in (mlp, embed, score)]
        on = lambda t: t.to(device)
        # Size-oblivious, export and compile alike: else both assume a dynamic dimension is at
        # least 2, and the package's input checks (which braid turns on) refuse a batch of one.
        with fx_config.patch(backed_size_oblivious=True):
            ep = export(mods[0], (on(x),), ["x"])
            torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(a.outdir, f"mlp.{device}.pt2"))
            # Several models in one package: each compiled alone, then packaged under its name.
            files = {
                "embed": torch._inductor.aot_compile(export(mods[1], (on(x),), ["x"]).module(), (on(x),),
                                                     options={"aot_inductor.package": True}),
                "score": torch._inductor.aot_compile(export(mods[2], (on(pa), on(pb)), ["a", "b"]).module(), (on(pa), on(pb)),
                                                     options={"aot_inductor.package": True}),
            }
            package_aoti(os.path.join(a.outdir, f"pair.{device}.pt2"), files)
        with torch.no_grad():
            torch.jit.trace(mods[0], (on(x),)).save(os.path.join(a.outdir, f"mlp.{device}.ts.pt"))
            expected = {
                "forward": {"args": [x.tolist()], "result": mods[0](on(x)).cpu().tolist()},
                "embed": {"args": [x.tolist()], "result": {k: v.cpu().tolist() for k, v in mods[1](on(x)).items()}},
                "score": {"args": [pa.tolist(), pb.tolist()], "result": [t.cpu().tolist() for t in mods[2](on(pa), on(pb))]},
            }
        with open(os.path.join(a.outdir, f"expected.{device}.json"), "w") as f:
            json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
