"""The shipped workflows, as pytest parameters."""
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
