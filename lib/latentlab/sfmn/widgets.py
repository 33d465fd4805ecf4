"""Interactive explorers (ipywidgets + altair).

``GateExplorer`` lets a user pick a cell line (seen in training or unseen),
see its generated gate, edit single gate entries or keep only the top
fraction (the sparsity level), and watch that cell line's predictions and
AUPR change. All the logic is in ``GateExplorer.update`` — a pure function of
(cell line, edited gate, sparsity) — so it is tested without a browser; the
widget only wires sliders to it.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, roc_auc_score


class GateExplorer:
    """Predictions of a gated model for one cell line under a user-edited gate."""

    def __init__(self, model: torch.nn.Module, inputs: Any, rows: dict[str, np.ndarray], roles: dict[str, str],
                 dimension_names: list[str], cell_index: dict[str, int]) -> None:
        if getattr(model, "gates", None) is None or not hasattr(model, "gate"):
            raise TypeError(f"GateExplorer needs a gated model (SFMN); got {type(model).__name__}")
        self.model, self.inputs, self.rows, self.roles = model, inputs, rows, roles
        self.names, self.cell_index = dimension_names, cell_index

    @property
    def cell_lines(self) -> list[str]:
        return list(self.rows)

    @torch.no_grad()
    def model_gate(self, cell_line: str) -> np.ndarray:
        self.model.eval()
        return self.model.gates(torch.tensor([self.cell_index[cell_line]]))[0].numpy().copy()

    @staticmethod
    def apply_sparsity(gate: np.ndarray, keep: float) -> np.ndarray:
        """Keep the ``keep`` fraction of largest gate entries (at least one), zero the rest."""
        if not 0 < keep <= 1:
            raise ValueError(f"sparsity level (fraction kept) must be in (0, 1], got {keep}")
        k = max(1, int(round(keep * len(gate))))
        out = np.zeros_like(gate)
        top = np.argsort(-gate, kind="stable")[:k]
        out[top] = gate[top]
        return out

    @torch.no_grad()
    def update(self, cell_line: str, *, gate: np.ndarray | None = None, keep: float = 1.0) -> dict[str, Any]:
        """Predictions and AUPR/AUROC for ``cell_line`` with ``gate`` (default: the model's), top-``keep`` kept."""
        if cell_line not in self.rows:
            raise KeyError(f"unknown cell line {cell_line!r}; choose from {self.cell_lines}")
        g = self.model_gate(cell_line) if gate is None else np.asarray(gate, dtype=np.float32)
        if g.shape != (len(self.names),):
            raise ValueError(f"gate must have {len(self.names)} entries, got shape {g.shape}")
        g = np.clip(self.apply_sparsity(g, keep), 0.0, 1.0)
        rows = self.rows[cell_line]
        batch = self.inputs.batch(rows)
        self.model.eval()
        p = torch.sigmoid(self.model(batch, gate_override=torch.from_numpy(g))).numpy()
        y = batch["y"].numpy()
        both = 0 < y.sum() < len(y)
        return {
            "cell_line": cell_line, "role": self.roles[cell_line], "gate": g,
            "aupr": float(average_precision_score(y, p)) if both else float("nan"),
            "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
            "base_rate": float(y.mean()),
            "predictions": pd.DataFrame({"p": p, "label": y.astype(int)}),
        }

    def chart(self, result: dict[str, Any]) -> alt.HConcatChart:
        gates = pd.DataFrame({"dimension": self.names, "gate": result["gate"]})
        bars = alt.Chart(gates).mark_bar().encode(
            x=alt.X("dimension:N", sort=None, title=None), y=alt.Y("gate:Q", scale=alt.Scale(domain=[0, 1])),
        ).properties(width=420, height=150, title=f"{result['cell_line']} ({result['role']}): gate")
        preds = result["predictions"]
        hist = alt.Chart(preds).mark_bar(opacity=0.6).encode(
            x=alt.X("p:Q", bin=alt.Bin(maxbins=30), title="predicted probability"),
            y=alt.Y("count():Q", stack=None, scale=alt.Scale(type="symlog")), color="label:N",
        ).properties(width=260, height=150,
                     title=f"AUPR {result['aupr']:.3f} (base rate {result['base_rate']:.3f}), AUROC {result['auroc']:.3f}")
        return alt.hconcat(bars, hist)

    def widget(self):
        """Dropdown (cell line), sparsity slider and one slider per gate dimension; redraws on change."""
        import ipywidgets as w
        from IPython.display import display

        cell = w.Dropdown(options=[(f"{c} ({self.roles[c]})", c) for c in self.cell_lines], description="cell line")
        keep = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="keep top", continuous_update=False)
        sliders = [w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, description=n, continuous_update=False,
                                 layout=w.Layout(width="300px")) for n in self.names]
        out = w.Output()
        state = {"loading": False}

        def load_gate(*_, draw: bool = True):
            state["loading"] = True
            for s, v in zip(sliders, self.model_gate(cell.value), strict=True):
                s.value = float(v)
            state["loading"] = False
            if draw:
                redraw()

        def redraw(*_):
            if state["loading"]:
                return
            result = self.update(cell.value, gate=np.array([s.value for s in sliders]), keep=keep.value)
            out.clear_output(wait=True)
            with out:
                display(self.chart(result))

        cell.observe(load_gate, names="value")
        keep.observe(redraw, names="value")
        for s in sliders:
            s.observe(redraw, names="value")
        # no drawing while the widget is built: rendering into an Output widget before a frontend has
        # attached can block a headless kernel (papermill); the first change of any control draws
        load_gate(draw=False)
        grid = w.GridBox(sliders, layout=w.Layout(grid_template_columns="repeat(3, 310px)"))
        return w.VBox([w.HBox([cell, keep]), grid, out])


def gate_explorer(trained: Any, data: Any, inputs: Any, split: Any) -> GateExplorer:
    """Explorer for a trained SFMN on one fold: seen cell lines on their validation rows, the unseen one on its test rows."""
    names = [m.name for m in data.motifs]
    dims = [f"E:{n}" for n in names] + [f"P:{n}" for n in names]
    cell = data.pairs.cell.to_numpy()
    rows, roles = {}, {}
    test = data.cell_lines[split.test]
    rows[test], roles[test] = split.test_rows, "unseen"
    for c in split.val + split.train:
        name = data.cell_lines[c]
        rows[name] = np.intersect1d(np.nonzero(cell == c)[0], np.concatenate([split.train_rows, split.val_rows]))
        roles[name] = "seen (validation)" if c in split.val else "seen (training)"
    return GateExplorer(trained.model, inputs, rows, roles, dims[: trained.model.d],
                        {c: i for i, c in enumerate(data.cell_lines)})
