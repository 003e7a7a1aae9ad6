"""BentoML model composition, "sequential": a preprocessing service's output feeds an inference
service (bentoml.depends). Same models and input names as graphs/sequential.graph."""
import typing as t

import bentoml
import torch

from common import model_path

LABELS = ["positive", "negative", "neutral"]


@bentoml.service(workers=1)
class Preprocessor:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("preprocessor.pt"))

    @bentoml.api
    def preprocess(self, input_data: str) -> str:
        return self.model.preprocess(input_data)


@bentoml.service(workers=1)
class SequentialService:
    preprocessor = bentoml.depends(Preprocessor)

    def __init__(self) -> None:
        self.classifier = torch.jit.load(model_path("zero_shot.pt"))

    @bentoml.api
    async def predict(self, input_data: str, labels: t.List[str] = LABELS) -> t.List[t.Dict[str, t.Any]]:
        cleaned = await self.preprocessor.to_async.preprocess(input_data)
        scores = self.classifier.classify(cleaned, labels)
        best = max(range(len(labels)), key=lambda i: float(scores[i]))
        return [{"label": labels[best], "score": float(scores[best])}]
