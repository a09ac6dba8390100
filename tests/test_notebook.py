"""notebooks/quickstart.ipynb, executed end to end by a real Jupyter kernel (nbclient) on the tiny fixture, so it
never rots; and stored without outputs."""

import json

import pytest

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


def test_the_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.slow
def test_the_notebook_runs_end_to_end(tiny_data, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the dev extra (nbclient, ipykernel) is not installed")
    from nbclient import NotebookClient

    monkeypatch.setenv("TINYIMAGENET_PATH", str(tiny_data))
    monkeypatch.setenv("TIR_WORKDIR", str(tmp_path / "work"))
    tiny = "data.train_subset=null data.val_subset=null model.widths=[16,16,16] data.batch_size=16 data.num_workers=0"
    monkeypatch.setenv("TIR_QUICKSTART_ARGS", tiny)
    monkeypatch.setenv("TIR_QUICKSTART_BUDGET", "0.25")  # the CPU recipe's time budget, in minutes
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        # after a disconnect the student runs the cells again: training and grid cells continue, not start over
        again = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and ("resume=true" in c.source or "sweep_name=" in c.source)
        ]
        assert len(again) == 2
        for index in again:
            client.execute_cell(nb.cells[index], index)
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "best val top-1:" in text and "stopped TensorBoard on port" in text
    assert "recipe: experiment=cpu trainer.budget_minutes=0.25" in text  # what this CPU gets
    html = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs if o.output_type in ("execute_result",))
    assert "best_val_top1" in html  # the grid's summary table, shown by pandas
    rerun = "\n".join(o.get("text", "") for i in again for o in nb.cells[i].outputs if o.output_type == "stream")
    assert "this run has already finished" in rerun
    work = tmp_path / "work"
    assert len(list((work / "multirun").glob("*/summary.csv"))) == 1  # multirun/quickstart_lr
    assert sorted(p.name for p in (work / "multirun" / "quickstart_lr").iterdir() if p.name.isdigit()) == ["0", "1"]
    assert (work / "report" / "REPORT.md").is_file()
    assert len([p for p in (work / "outputs").glob("*/*") if p.is_dir()]) == 3  # inspect, train, evaluate
