"""Stopping ``mammocad model train`` (Ctrl-C, or SIGTERM from a scheduler) says how to go on, and that works.

state.pt is written whole every ``checkpoint_every`` steps (a temporary file, then a rename), so a
stopped run can continue; before, SIGTERM ended the process without a word and Ctrl-C printed
a traceback, and neither said that state.pt existed nor which command continues from it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from mammocad.model.train import read_losses
from tests.model.test_train import tiny_config
from tests.processes import spawn
from tests.services import torch_threads

ENV = {**os.environ, "OMP_NUM_THREADS": torch_threads()}


@pytest.mark.slow
def test_a_terminated_run_names_its_last_checkpoint_and_the_command_that_continues_it(
        tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(tomlkit.dumps(tiny_config(tiny_data, steps=400, checkpoint_every=2)))
    out = tmp_path / "run"
    proc = spawn([sys.executable, "-m", "mammocad", "model", "train", "--config", str(config), "--out", str(out),
                  "--device", "cpu", "--no-progress"], name="mammocad-train", stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the log line that follows each state.pt written
        seen.append(line)
        if "event=train_checkpoint" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + err
    assert "Traceback" not in err
    assert f"interrupted; the last checkpoint is {out / 'state.pt'}" in err
    command = shlex.split(err.split("continue with: ", 1)[1].splitlines()[0])
    assert command[:2] == ["mammocad", "model"] and command[-4:] == ["--out", str(out), "--resume",
                                                                    str(out / "state.pt")]
    resumed = subprocess.run([sys.executable, "-m", "mammocad", *command[1:], "--steps", "4"], capture_output=True, text=True,
                             env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "event=train_resumed" in resumed.stderr and (out / "model.pt").is_file()
    assert read_losses(out / "train.csv")[-1]["step"] >= 4
