"""Progress and cancellation: callback(done, total) from every generator; False stops with Cancelled."""
import numpy as np
import pytest

from edgegen import cli
from edgegen.errors import Cancelled
from edgegen.runtimes.api import open_pipeline


def test_plan_run_reports_progress_and_cancels(tiny_bundle):
    pipe = open_pipeline(tiny_bundle, "onnxruntime")
    seen = []
    x = pipe.sample(5, seed=1, steps=4, batch_size=2, callback=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 12) for d in range(1, 13)]  # 3 batches x 4 steps
    with pytest.raises(Cancelled, match="after 3 of 12 steps"):
        pipe.sample(5, seed=1, steps=4, batch_size=2, callback=lambda d, t: d < 3)
    assert np.array_equal(x, pipe.sample(5, seed=1, steps=4, batch_size=2))  # nothing left behind


def test_token_run_reports_progress_and_cancels(vq_bundle):
    pipe = open_pipeline(vq_bundle, "onnxruntime")
    n_tok = pipe.manifest.generator["image_tokens"]
    seen = []
    pipe.sample(3, seed=2, labels=1, batch_size=2, callback=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2 * n_tok, 2 * n_tok) and len(seen) == 2 * n_tok
    with pytest.raises(Cancelled):
        pipe.sample(3, seed=2, labels=1, callback=lambda d, t: d < 5)


def test_cancelled_cli_sample_writes_nothing(tiny_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "progress_callback", lambda quiet: (lambda d, t: d < 2))
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(tiny_bundle), "--n", "4", "--steps", "5", "--out", str(out)]) == 2
    assert "cancelled by the callback" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
