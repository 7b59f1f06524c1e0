"""The notebooks execute (small settings: a tiny untrained model, a few steps), so they
never fall behind the code they show."""

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_executes(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MRCNN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MRCNN_REPO", str(NOTEBOOKS.parent))
    monkeypatch.setenv("MRCNN_NOTEBOOK_OUT", str(tmp_path))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("stream", "display_data") for o in outputs)  # it showed something
    assert os.listdir(tmp_path)


def test_every_notebook_the_issue_names_exists():
    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert {"demo", "train_shapes", "inspect_data", "inspect_model", "inspect_weights", "deploy"} <= names
