"""BentoML model composition, "run multiple models in one service": separate and combined APIs.
Same models (TorchScript files written by braid-make-models) and input names as
graphs/multi_model.graph."""
import typing as t

import bentoml
import torch

from common import model_path

LABELS = ["positive", "negative", "neutral"]


@bentoml.service(workers=1)
class MultiModelService:
    def __init__(self) -> None:
        self.summarizer = torch.jit.load(model_path("summarizer.pt"))
        self.zero_shot = torch.jit.load(model_path("zero_shot.pt"))

    def _classify(self, text: str, labels: t.List[str]) -> t.List[t.Dict[str, t.Any]]:
        scores = self.zero_shot.classify(text, labels)
        order = sorted(range(len(labels)), key=lambda i: -float(scores[i]))
        return [{"label": labels[i], "score": float(scores[i])} for i in order]

    @bentoml.api
    def process_a(self, input_data: str) -> str:
        return self.summarizer.generate(input_data)

    @bentoml.api
    def process_b(self, input_data: str, labels: t.List[str] = LABELS) -> t.List[t.Dict[str, t.Any]]:
        return self._classify(input_data, labels)

    @bentoml.api
    def combined_process(self, input_data: str, labels: t.List[str] = LABELS) -> t.Dict[str, t.Any]:
        return {"summary": self.summarizer.generate(input_data), "classification": self._classify(input_data, labels)}
