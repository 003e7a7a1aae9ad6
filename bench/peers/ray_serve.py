"""Ray Serve, the four compositions of BentoML's model-composition guide, written the way Ray
Serve's model-composition guide writes them: one deployment per model, called from an ingress
deployment through DeploymentHandles (`.remote()` starts a call; awaiting two started calls runs
them at the same time), HTTP through a FastAPI ingress. Same TorchScript files, endpoint paths
(`/{graph}/{endpoint}`), input names and defaults as graphs/*.graph, so braid-bench drives both
servers with the same command.

    python ray_serve.py PORT [--quiet] [--max-ongoing=N]
                                  serves all four applications on 127.0.0.1:PORT until SIGTERM

Ray's and Serve's defaults are kept (one replica a deployment), except:
- Ray is told the machine has 16 CPUs: a replica reserves one CPU by default, and the ten
  replicas would not all be placed on a 2-CPU machine. That count is only Ray's bookkeeping;
  the processes share the real cores.
- --quiet (what run.sh uses): Serve writes no line per request and the replicas' logs stay in
  their files rather than being sent to this process. On a 2-CPU machine that took about a
  third off a request's latency.
- --max-ongoing=N (run.sh: 100) sets every deployment's max_ongoing_requests, 5 by default.
  With 5, Serve's throughput on the ensemble fell from about 60 requests/s at 4 to 8 clients
  to 9 at 64 clients (wrk, 5 s a level); with 100 it held 78 at 64.
"""
import os
import signal
import sys
import threading
import typing as t

import ray
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

from common import model_path

LABELS = ["positive", "negative", "neutral"]


def ranked(scores: torch.Tensor, labels: t.List[str]) -> t.List[t.Dict[str, t.Any]]:
    order = sorted(range(len(labels)), key=lambda i: -float(scores[i]))
    return [{"label": labels[i], "score": float(scores[i])} for i in order]


class TextIn(BaseModel):
    input_data: str


class TextLabelsIn(BaseModel):
    input_data: str
    labels: t.List[str] = LABELS


class SentenceIn(BaseModel):
    original_sentence: str = "I have an idea!"


# --- multi_model: two models in one deployment, three routes --------------------------------
multi_app = FastAPI()


@serve.deployment
@serve.ingress(multi_app)
class MultiModel:
    def __init__(self) -> None:
        self.summarizer = torch.jit.load(model_path("summarizer.pt"))
        self.zero_shot = torch.jit.load(model_path("zero_shot.pt"))

    @multi_app.post("/process_a")
    def process_a(self, body: TextIn) -> str:
        return self.summarizer.generate(body.input_data)

    @multi_app.post("/process_b")
    def process_b(self, body: TextLabelsIn) -> t.List[t.Dict[str, t.Any]]:
        return ranked(self.zero_shot.classify(body.input_data, body.labels), body.labels)

    @multi_app.post("/combined_process")
    def combined_process(self, body: TextLabelsIn) -> t.Dict[str, t.Any]:
        return {"summary": self.summarizer.generate(body.input_data),
                "classification": ranked(self.zero_shot.classify(body.input_data, body.labels), body.labels)}


# --- one model a deployment, for the compositions that call across deployments ---------------
@serve.deployment
class TorchMethod:
    """A TorchScript file and the one method of it this deployment serves."""

    def __init__(self, file: str, method: str) -> None:
        self.fn = getattr(torch.jit.load(model_path(file)), method)

    def __call__(self, text: str) -> t.Any:
        return self.fn(text)


# --- sequential: preprocessor deployment, then the classifier in the ingress -----------------
sequential_app = FastAPI()


@serve.deployment
@serve.ingress(sequential_app)
class Sequential:
    def __init__(self, preprocessor: DeploymentHandle) -> None:
        self.preprocessor = preprocessor
        self.classifier = torch.jit.load(model_path("zero_shot.pt"))

    @sequential_app.post("/predict")
    async def predict(self, body: TextLabelsIn) -> t.List[t.Dict[str, t.Any]]:
        cleaned = await self.preprocessor.remote(body.input_data)
        return ranked(self.classifier.classify(cleaned, body.labels), body.labels)[:1]


# --- ensemble: two model deployments at the same time, joined --------------------------------
ensemble_app = FastAPI()


@serve.deployment
@serve.ingress(ensemble_app)
class Ensemble:
    def __init__(self, model_a: DeploymentHandle, model_b: DeploymentHandle) -> None:
        self.model_a, self.model_b = model_a, model_b

    @ensemble_app.post("/ensemble_predict")
    async def ensemble_predict(self, body: TextIn) -> t.Dict[str, float]:
        a_call, b_call = self.model_a.remote(body.input_data), self.model_b.remote(body.input_data)
        a, b = await a_call, await b_call
        return {"result_a": a, "result_b": b, "combined": (a + b) / 2}


# --- inference graph: two generators at the same time, then each text scored ----------------
inference_app = FastAPI()


@serve.deployment
@serve.ingress(inference_app)
class InferenceGraph:
    def __init__(self, gpt2: DeploymentHandle, distilgpt2: DeploymentHandle, bert: DeploymentHandle) -> None:
        self.gpt2, self.distilgpt2, self.bert = gpt2, distilgpt2, bert

    @inference_app.post("/generate_score")
    async def generate_score(self, body: SentenceIn) -> t.List[t.Dict[str, t.Any]]:
        calls = [self.gpt2.remote(body.original_sentence), self.distilgpt2.remote(body.original_sentence)]
        generated = [await c for c in calls]
        results = []
        for sentence in generated:
            results.append({"generated": sentence, "score": await self.bert.remote(sentence)})
        return results


def applications(max_ongoing: t.Optional[int]) -> t.Dict[str, serve.Application]:
    extra = {"max_ongoing_requests": max_ongoing} if max_ongoing else {}
    model = lambda name: TorchMethod.options(name=name, **extra)  # noqa: E731
    return {
        "multi_model": MultiModel.options(**extra).bind(),
        "sequential": Sequential.options(**extra).bind(model("Preprocessor").bind("preprocessor.pt", "preprocess")),
        "ensemble": Ensemble.options(**extra).bind(model("ModelA").bind("sentiment_a.pt", "predict"),
                                                   model("ModelB").bind("sentiment_b.pt", "predict")),
        "inference_graph": InferenceGraph.options(**extra).bind(model("GPT2").bind("gpt2.pt", "generate"),
                                                                model("DistilGPT2").bind("distilgpt2.pt", "generate"),
                                                                model("Bert").bind("bert.pt", "classify")),
    }


def main() -> None:
    port = int(sys.argv[1])
    quiet = "--quiet" in sys.argv[2:]
    max_ongoing = next((int(a.split("=", 1)[1]) for a in sys.argv[2:] if a.startswith("--max-ongoing=")), None)
    ray.init(num_cpus=16, include_dashboard=False, logging_level="WARNING", log_to_driver=not quiet,
             runtime_env={"env_vars": {"BRAID_MODELS": model_path(""),
                                       "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    for name, app in applications(max_ongoing).items():
        serve.run(app, name=name, route_prefix=f"/{name}",
                  logging_config={"enable_access_log": False, "log_level": "WARNING"} if quiet else None)
    print(f"ray serve: ready on http://127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
