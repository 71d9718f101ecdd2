"""examples/quickstart.ipynb runs top to bottom through the Python API alone (AT-SFT, GRPO, predict_harm,
evaluation, inline plot), executed with nbclient in a fresh kernel."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_notebook_uses_no_recipe():
    import json

    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "import videosafety_r1" in code and "run_evaluation(" in code and "predict_harm(" in code
    assert "recipes" not in code and "subprocess" not in code and "runpy" not in code


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="needs the dev extra: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the dev extra: pip install -e '.[dev]'")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "AT-SFT checkpoint:" in text and "reward per step:" in text and "visual harm probability" in text
    assert "DSR" in text or "dsr" in text.lower()
    assert any("image/png" in o.get("data", {}) for o in outputs), "the plot must render inline"
