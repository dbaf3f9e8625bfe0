"""Imported-only families (diffusers) are refused by `edgegen train` and `edgegen demo` in one line
that points to `edgegen import`, and their help lists do not offer them."""
from __future__ import annotations

import pytest

from edgegen.cli import main
from edgegen.train.families import FAMILIES, NOT_TRAINABLE, trainable


@pytest.mark.parametrize("argv", [["train", "diffusers"], ["train", "diffusers", "--preset", "small", "--x"],
                                  ["demo", "--model", "diffusers"]])
def test_imported_family_refused(argv, capsys):
    try:
        rc = main(argv)  # `train`: the hidden sub-command's one-line error
    except SystemExit as e:  # `demo --model`: argparse's one-line error (Parser.error, exit 2)
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgegen: error:")
    assert "edgegen import" in err[0] and "diffusers" in err[0]


def test_help_lists_leave_imported_families_out(capsys):
    assert "diffusers" in FAMILIES and "diffusers" in NOT_TRAINABLE
    assert "diffusers" not in trainable() and "ddpm" in trainable()
    for argv in (["train", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "ddpm" in out and "diffusers" not in out
    with pytest.raises(SystemExit):  # an unknown model's "choose from" list leaves it out too
        main(["train", "vae"])
    err = capsys.readouterr().err
    assert "'ddpm'" in err and "diffusers" not in err
