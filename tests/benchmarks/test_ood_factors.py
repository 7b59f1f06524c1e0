"""benchmarks.ood_factors: what it scores and at which size (model and evaluation stubbed)."""

import json
import types

import pytest

from benchmarks import ood_factors
from model.configs import ShapesConfig
from model.evaluate import Evaluation

STATS = {k: 0.5 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}


def test_each_factor_is_scored_at_the_eval_size_and_bad_sizes_are_refused(tmp_path, capsys, monkeypatch):
    scored = []

    def fake_evaluate(model, dataset, progress=True):
        scored.append((len(dataset.image_ids), model.config.IMAGE_MAX_DIM, model.config.DETECTION_MIN_CONFIDENCE))
        return Evaluation(len(dataset.image_ids), STATS, STATS, 0.5)

    monkeypatch.setattr(ood_factors, "load_model", lambda path: (types.SimpleNamespace(config=ShapesConfig()), None))
    monkeypatch.setattr(ood_factors, "evaluate", fake_evaluate)
    common = ["--count", "2", "--sets", str(tmp_path / "sets"), "--output", str(tmp_path / "r")]
    assert ood_factors.main(common + ["--factors", "texture"]) == 0
    assert scored == [(2, 192, 0.0)] * 2
    assert "IMAGE_MAX_DIM 192" in capsys.readouterr().out
    assert set(json.loads((tmp_path / "r.json").read_text())["scores"]) == {"(none)", "texture"}
    assert ood_factors.main(common + ["--factors", "--eval-max-dim", "128"]) == 0
    assert scored[-1] == (2, 128, 0.0)
    with pytest.raises(SystemExit):
        ood_factors.main(common + ["--eval-max-dim", "100"])
    assert "IMAGE_MAX_DIM must be a multiple of 64" in capsys.readouterr().err
