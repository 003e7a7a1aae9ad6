"""BentoML model composition, "concurrent": two model services run at the same time on the same
input (asyncio.gather) and their results are joined. Same models and input names as
graphs/ensemble.graph."""
import asyncio
import typing as t

import bentoml
import torch

from common import model_path


@bentoml.service(workers=1)
class ModelA:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("sentiment_a.pt"))

    @bentoml.api
    def predict(self, input_data: str) -> float:
        return self.model.predict(input_data)


@bentoml.service(workers=1)
class ModelB:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("sentiment_b.pt"))

    @bentoml.api
    def predict(self, input_data: str) -> float:
        return self.model.predict(input_data)


@bentoml.service(workers=1)
class EnsembleService:
    model_a = bentoml.depends(ModelA)
    model_b = bentoml.depends(ModelB)

    @bentoml.api
    async def ensemble_predict(self, input_data: str) -> t.Dict[str, float]:
        a, b = await asyncio.gather(self.model_a.to_async.predict(input_data), self.model_b.to_async.predict(input_data))
        return {"result_a": a, "result_b": b, "combined": (a + b) / 2}
