"""Where the pack's shipped files live (weights, body model, example inputs)."""
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = PACK_ROOT / "models"          # shipped defaults: models/{motion,body}/...
EXAMPLES = PACK_ROOT / "examples"
