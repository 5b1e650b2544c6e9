"""Study specs: a valid spec with a conditional parameter, every kind of bad input refused
with a message naming the key, and suggest() sampling children only under their parent."""
import optuna
import pytest
import yaml

from workbench.errors import ConfigError, NotFoundError
from workbench.tuning.spec import load_spec, parse_spec, suggest

SPEC = """
name: heads
base: projection-demo
overrides: [train.max_epochs=2]
objective: {metric: val/r_mean, direction: maximize}
n_trials: 8
sampler: {type: tpe, seed: 0}
pruner: {type: median, n_startup_trials: 2}
space:
  model.num_heads: {type: int, low: 2, high: 8, step: 2, when: {model.type: attention}}
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.type: {type: categorical, choices: [mlp, attention]}
"""


def spec(**changes):
    data = yaml.safe_load(SPEC)
    for key, value in changes.items():
        node = data
        *path, last = key.split("/")
        for part in path:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return parse_spec(data)


def test_a_valid_spec_orders_parents_first(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text(SPEC)
    s = load_spec(file)
    assert [p.key for p in s.space] == ["train.lr", "model.type", "model.num_heads"]
    assert s.direction == "maximize" and s.overrides == ("train.max_epochs=2",) and s.n_trials == 8
    assert set(s.distributions()) == {"train.lr", "model.type", "model.num_heads"}


@pytest.mark.parametrize("changes, message", [
    ({"space/train.lrr": {"type": "float", "low": 0.1, "high": 1.0}}, r"space.train.lrr = 0.1: unknown key 'train.lrr'"),
    ({"space/train.lr": {"type": "float", "low": 0.1, "high": 0.01}}, r"space.train.lr: low \(0.1\) must be below"),
    ({"space/train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "a log scale needs low > 0"),
    ({"space/train.lr": {"type": "uniform", "low": 0.0, "high": 0.1}}, r"space.train.lr.type must be one of"),
    ({"space/train.lr": {"type": "float", "low": 0.001, "high": 0.1, "lg": True}}, r"unknown key \['lg'\] in space.train.lr"),
    ({"space/model.num_heads": {"type": "int", "low": 2, "high": 8, "when": {"model.type": "transformer"}}},
     r"\['transformer'\] not among space.model.type.choices"),
    ({"space/model.num_heads": {"type": "int", "low": 2, "high": 8, "when": {"model.kind": "attention"}}},
     "names 'model.kind', which is not in the space"),
    ({"space/model.num_heads": {"type": "int", "low": 2, "high": 8}}, r"space.model.num_heads = 2: .*applies only"),
    ({"objective/direction": "up"}, "objective.direction must be one of"),
    ({"sampler": {"type": "annealing"}}, "sampler.type must be one of"),
    ({"pruner": {"type": "median", "patience": 3}}, r"unknown key \['patience'\] in pruner"),
    ({"n_trials": 0}, "set n_trials or timeout"),
    ({"base": "no-such-preset"}, "neither a YAML file nor a preset"),
    ({"space": None}, "needs 'space'"),
    ({"colour": "red"}, r"unknown key \['colour'\]"),
])
def test_bad_specs_name_the_key(changes, message):
    with pytest.raises((ConfigError, NotFoundError), match=message):
        spec(**changes)


def test_a_malformed_yaml_file_is_one_line(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_spec(file)


def test_suggest_samples_a_child_only_under_its_parent():
    s = spec()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        overrides = dict(o.split("=", 1) for o in suggest(trial, s))
        seen.add(overrides["model.type"])
        assert ("model.num_heads" in overrides) == (overrides["model.type"] == "attention")
        if "model.num_heads" in overrides:
            assert int(overrides["model.num_heads"]) in (2, 4, 6, 8)
        assert 1e-4 <= float(overrides["train.lr"]) <= 1e-2
        study.tell(trial, 0.0)
    assert seen == {"mlp", "attention"}
