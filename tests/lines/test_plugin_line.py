"""Adding a research line is adding one folder: a minimal line written into a temporary
plugin package (config + experiment + cli + a declared page) is picked up by the command
line, ``train``, the Runs launch form and the app's navigation, with no other edit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINE = "tinyline"

FILES = {
    "__init__.py": '''
        """A minimal research line (test-only)."""
        TITLE = "Tiny line"
        PAGES = ("tiny_page.py",)
    ''',
    "config.py": '''
        from dataclasses import dataclass, field

        from workbench.config import RunConfig, TrainConfig, option


        @dataclass
        class TinyData:
            n: int = option(64, "samples", unit="samples", ge=1)


        @dataclass
        class TinyConfig(RunConfig):
            kind: str = "tiny"
            data: TinyData = field(default_factory=TinyData)
            train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=2, batch_size=16,
                                                                           device="cpu"))
    ''',
    "experiment.py": '''
        import torch
        from torch.utils.data import TensorDataset

        from workbench.experiments import EXPERIMENTS, Experiment
        from tinyline.config import TinyConfig


        @EXPERIMENTS.register("tiny")
        class Tiny(Experiment):
            config_cls = TinyConfig
            description = "y = 2x"

            def build_datasets(self):
                x = torch.linspace(-1, 1, self.cfg.data.n).unsqueeze(1)
                return TensorDataset(x, 2 * x), TensorDataset(x, 2 * x)

            def build_model(self):
                return torch.nn.Linear(1, 1)

            def training_step(self, model, batch):
                x, y = batch
                return {"loss": torch.nn.functional.mse_loss(model(x), y)}
    ''',
    "cli.py": '''
        from workbench.cli import command


        @command("tiny", "say hello from the tiny line")
        def _parser(sub):
            p = sub.add_parser("tiny", help=_parser.help)
            p.add_argument("who")
            p.set_defaults(func=lambda args: print(f"tiny says hello to {args.who}") or 0)
            return p
    ''',
    "tiny_page.py": '''
        import streamlit as st

        st.title("Tiny page")
    ''',
    "configs/tiny-quick.yaml": '''
        kind: tiny
        name: quick
        data:
          n: 32
    ''',
}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = tmp_path / "plugins"
    for rel, text in FILES.items():
        path = root / LINE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("WORKBENCH_PLUGINS", f"{os.environ.get('WORKBENCH_PLUGINS', '')},{LINE}".strip(","))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr("workbench.experiments._loaded", False)  # import the plugin's kind in-process too
    forget = lambda: [sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] == LINE]  # noqa: E731
    forget()  # each test's package lives in its own tmp_path
    yield root / LINE
    forget()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_cli_lists_and_runs_the_plugin_command(plugin, tmp_path):
    out = cli("--help", cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert "tiny" in out.stdout and "say hello from the tiny line" in out.stdout
    out = cli("tiny", "you", cwd=REPO_ROOT)
    assert (out.returncode, out.stdout.strip()) == (0, "tiny says hello to you")
    out = cli("train", "--help", cwd=REPO_ROOT)
    assert "tiny-quick" in out.stdout  # its preset is listed with the built-in ones
    assert "geolocator-demo" in out.stdout


def test_train_runs_the_plugin_kind_by_preset_name(plugin, tmp_path):
    runs = tmp_path / "runs"
    out = cli("train", "tiny-quick", "train.max_epochs=3", "--runs", str(runs), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["state"] == "done"
    run = runs / result["run"]
    assert "kind: tiny" in (run / "config.yaml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 3 * 32 // 16  # the preset's 32 samples, the override's 3 epochs


def test_the_runs_launch_form_offers_the_plugin_kind(plugin, runs_dir):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "1_Runs.py"), default_timeout=60).run()
    assert not at.exception
    kinds = at.selectbox(key="launch_kind").options
    assert "tiny" in kinds and "geolocator" in kinds and "softprompt" in kinds
    at.selectbox(key="launch_kind").set_value("tiny").run()
    assert not at.exception
    assert at.selectbox(key="launch_preset::tiny").options[1:] == ["tiny-quick"]


def test_the_app_navigation_has_a_section_for_the_plugin_line(plugin):
    from workbench.ui import home

    sections, error = home.page_sections()
    assert error is None
    assert list(sections)[0] == home.CORE_SECTION
    assert [p.name for p in sections["Tiny line"]] == ["tiny_page.py"]
    assert [p.name for p in sections["Geolocator"]] == ["4_Geolocate.py", "5_Errors.py"]
    assert [p.name for p in sections["Soft prompts"]] == ["3_Soft_Prompt_Explorer.py"]
    assert [p.name for p in sections[home.CORE_SECTION]] == ["1_Runs.py", "2_Data.py", "8_Embeddings.py", "9_Tuning.py"]
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    at.switch_page(str(plugin / "tiny_page.py")).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Tiny page"]


def test_a_broken_plugin_line_is_an_error_box_not_a_crash(monkeypatch):
    monkeypatch.setenv("WORKBENCH_PLUGINS", "tests.toy_experiment,no_such_line_pkg")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("no_such_line_pkg" in e.value for e in at.error)
