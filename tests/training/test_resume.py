"""Safe resume: weights_only loading, changed settings refused (or forced), corrupt / truncated
/ code-running checkpoints refused with a one-line error (exit code 2 from the CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from s2dloc.cli import main as cli_main
from s2dloc.training.checkpoint import CheckpointError, read_resume_checkpoint
from s2dloc.training.config import load_config
from s2dloc.training.trainer import Trainer
from s2dloc.utils.config import ConfigError

from .test_trainer import TINY


def _conf(out, *extra: str) -> dict:
    return load_config(None, [*TINY, "train.steps=2", f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run stopped after 1 step with a checkpoint."""
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(_conf(out))
    trainer.train_step()
    trainer.save()
    return out, trainer


def test_checkpoint_is_plain_data(trained):
    out, trainer = trained
    ckpt = torch.load(out / "last.pt", weights_only=True)  # raises if anything is not plain
    assert ckpt["step"] == 1 and ckpt["train_config"] == trainer.conf
    assert read_resume_checkpoint(out / "last.pt")["scheduler"]["last_epoch"] == 1


def test_changed_settings_refused_unless_forced(trained, tmp_path, caplog):
    out, _ = trained
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "last.pt").write_bytes((out / "last.pt").read_bytes())
    with pytest.raises(
        ConfigError,
        match=r"last.pt was written with other settings "
        r"\(changed: loss.margin_neg, optim.lr\).*--force",
    ):
        Trainer(_conf(copy, "optim.lr=0.5", "loss.margin_neg=2.0"))
    forced = Trainer(_conf(copy, "optim.lr=0.5"), force=True)
    assert forced.step == 1
    assert "going on with changed settings (forced): optim.lr" in caplog.text
    assert Trainer(_conf(copy, "train.steps=5", "train.log_every=3")).step == 1  # allowed


def test_forced_resume_into_another_model_is_refused_by_name(trained, tmp_path, caplog):
    """``--force`` lets ``model.channels`` change, but the saved weights cannot fit the new
    heads: one line naming the checkpoint and the part, exit 2 from the CLI."""
    out, _ = trained
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "last.pt").write_bytes((out / "last.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"last.pt: cannot resume: its state_dict does not"):
        Trainer(_conf(copy, "model.channels=16"), force=True)
    caplog.clear()
    argv = ["train", "--out", str(copy), "--force", *TINY, "train.steps=2", "model.channels=16"]
    assert cli_main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "state_dict does not fit" in errors[0]


class _RunsCode:
    """Unpickling this calls ``os.system``: what ``weights_only=False`` would execute."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    torch.save(
        {"model": "gnnet", "config": {}, "state_dict": {}, "step": _RunsCode(marker)},
        out / "last.pt",
    )
    with pytest.raises(CheckpointError, match=r"last.pt: cannot resume: .*unsafe"):
        Trainer(_conf(out))
    assert not marker.exists()


def test_corrupt_and_truncated_checkpoints(trained, tmp_path, caplog):
    out, _ = trained
    data = (out / "last.pt").read_bytes()
    cases = {"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint at all"}
    for name, payload in cases.items():
        run = tmp_path / name
        run.mkdir()
        (run / "last.pt").write_bytes(payload)
        with pytest.raises(CheckpointError, match=rf"{name}/last.pt: cannot resume"):
            read_resume_checkpoint(run / "last.pt")
        caplog.clear()
        code = cli_main(["train", "--out", str(run), *TINY, "train.steps=2"])
        assert code == 2
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and "\n" not in errors[0] and f"{name}/last.pt" in errors[0]
    run = tmp_path / "model_only"
    run.mkdir()
    torch.save({"model": "gnnet", "config": {}, "state_dict": {}}, run / "last.pt")
    with pytest.raises(CheckpointError, match=r"not a training checkpoint.*optimizer"):
        read_resume_checkpoint(run / "last.pt")


def test_cli_reports_config_errors_in_one_line(tmp_path, caplog):
    code = cli_main(["train", "--out", str(tmp_path), "optim.lrr=1"])
    assert code == 2 and "optim.lrr" in caplog.text


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.lr=-1", "'optim.lr' = -1.0 must be > 0"),
        ("loss.margin_neg=-5", "'loss.margin_neg' = -5.0 must be > 0"),
        ("data.worlds=abc", "data.worlds must be null or a list of \\[scene, seed\\] pairs"),
        ("data.worlds=5", "data.worlds must be null"),
        ("data.worlds=[[moon, 1]]", "scene one of \\['room', 'street', 'toy'\\]"),
        ("model.channels=0", "'model.channels' = 0 must be >= 1"),
        ("model.widths=[8, 0, 16, 16]", "'model.widths' = \\[8, 0, 16, 16\\] must be >= 1"),
        ("data.val_conditions=[foo]", "'data.val_conditions' = \\['foo'\\] entries must be in"),
        ("distill.long_sides=[-5]", "'distill.long_sides' = \\[-5\\] must be >= 8"),
    ],
)
def test_training_values_out_of_range_are_refused(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, [override])


def test_shipped_training_configs_resolve():
    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        assert load_config(path, [])["train"]["steps"] >= 1
    assert load_config(None, ["data.worlds=[[street, 7]]"])["data"]["worlds"] == [["street", 7]]


def test_cli_conf_takes_a_yaml_file_and_overrides_like_the_other_commands(tmp_path, caplog):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("train:\n  steps: 5\noptim:\n  lr: 0.01\n")
    out = tmp_path / "run"
    conf = ["--conf", str(recipe), *TINY, "train.steps=1"]
    assert cli_main(["train", "--out", str(out), *conf]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["steps"] == 1 and saved["optim"]["lr"] == 0.01  # file, then overrides
    code = cli_main(["train", "--out", str(tmp_path / "x"), "--conf", "optim.lrr=1"])
    assert code == 2 and "optim.lrr" in caplog.text
    caplog.clear()
    code = cli_main(["train", "--out", str(tmp_path / "y"), "--conf", str(recipe), str(recipe)])
    assert code == 2 and "--conf takes at most one YAML file" in caplog.text
