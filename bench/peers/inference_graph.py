"""BentoML model composition, "inference graph": two generators run concurrently, then each
generated text is scored by a classifier. Same models, endpoint and input names (with the
default "I have an idea!") as graphs/inference_graph.graph."""
import asyncio
import typing as t

import bentoml
import torch

from common import model_path


@bentoml.service(workers=1)
class GPT2:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("gpt2.pt"))

    @bentoml.api
    def generate(self, sentence: str) -> str:
        return self.model.generate(sentence)


@bentoml.service(workers=1)
class DistilGPT2:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("distilgpt2.pt"))

    @bentoml.api
    def generate(self, sentence: str) -> str:
        return self.model.generate(sentence)


@bentoml.service(workers=1)
class BertBaseUncased:
    def __init__(self) -> None:
        self.model = torch.jit.load(model_path("bert.pt"))

    @bentoml.api
    def classify_generated_texts(self, sentence: str) -> float:
        return self.model.classify(sentence)


@bentoml.service(workers=1)
class InferenceGraph:
    gpt2_generator = bentoml.depends(GPT2)
    distilgpt2_generator = bentoml.depends(DistilGPT2)
    bert_classifier = bentoml.depends(BertBaseUncased)

    @bentoml.api
    async def generate_score(self, original_sentence: str = "I have an idea!") -> t.List[t.Dict[str, t.Any]]:
        generated = await asyncio.gather(
            self.gpt2_generator.to_async.generate(original_sentence),
            self.distilgpt2_generator.to_async.generate(original_sentence),
        )
        results = []
        for sentence in generated:
            score = await self.bert_classifier.to_async.classify_generated_texts(sentence)
            results.append({"generated": sentence, "score": score})
        return results
