"""Where the peers find braid's models: the same TorchScript files `braid serve` loads."""
import os

MODELS = os.environ.get("BRAID_MODELS", os.path.join(os.path.dirname(__file__), "..", "..", "build-bench", "graphs", "models"))


def model_path(name: str) -> str:
    return os.path.join(MODELS, name)
