"""Sweep specs: axis syntax, the Cartesian product, validation before anything runs, ids, YAML files."""

from pathlib import Path

import pytest

from phenolab.config import ConfigError, ExperimentSpec, config_hash
from phenolab.experiments import get_experiment
from phenolab.sweep import (
    Axis,
    SweepSpec,
    config_paths,
    expand,
    group_points,
    load_sweep,
    parse_axis,
    sweep_from_cli,
    sweep_id,
)

EXP = "f-principle"


def values(text: str) -> tuple:
    return parse_axis(text).values


def axis_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_axis(text)
    return str(info.value)


def sweep(*axes: str, **kw) -> SweepSpec:
    return sweep_from_cli(EXP, list(axes), **kw)


def expand_error(*axes: str, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        expand(sweep(*axes, **kw))
    return str(info.value)


# ------------------------------------------------------------------------------- axis syntax
def test_linear_range_is_inclusive_and_free_of_float_noise():
    assert values("model.init.gamma=0.5:4:8") == (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    assert values("x=0:1:11") == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert values("x=2:7:1") == (2,)
    assert values("x=1:-1:3") == (1, 0, -1)


def test_range_points_stay_integers_only_when_ends_and_points_are_integral():
    ints = values("model.width=100:1000:4")
    assert ints == (100, 400, 700, 1000) and all(type(v) is int for v in ints)
    assert all(type(v) is float for v in values("x=1:2:3"))  # 1.5 in the middle
    assert all(type(v) is float for v in values("x=1.0:3.0:3"))  # float ends


def test_log_range_is_geometric():
    assert values("train.lr=1e-3:1e-1:3:log") == (0.001, 0.01, 0.1)
    ints = values("model.width=1:1000:4:LOG")
    assert ints == (1, 10, 100, 1000) and all(type(v) is int for v in ints)
    assert values("x=2:8:2:log") == (2, 8)


def test_lists_parse_each_item_like_an_override():
    ints = values("model.width=125,250,500,1000")
    assert ints == (125, 250, 500, 1000) and all(type(v) is int for v in ints)
    assert values("model.activation=relu, tanh") == ("relu", "tanh")
    assert values("model.bias=true,false") == (True, False)
    assert values("train.lr=1e-3,1e-2") == (0.001, 0.01)  # not YAML 1.1's strings


def test_a_bracketed_list_stays_one_value():
    assert values("model.widths=[100,100],[200,200]") == ([100, 100], [200, 200])
    assert values("model.widths=[100,100]") == ([100, 100],)
    assert values("x={a: 1, b: 2},'c,d'") == ({"a": 1, "b": 2}, "c,d")


def test_axis_keeps_path_and_compares_by_value():
    axis = parse_axis(" model.init.gamma = 1,2")
    assert axis == Axis("model.init.gamma", (1, 2)) and axis.label == "--axis  model.init.gamma = 1,2"


@pytest.mark.parametrize("text, message", [
    ("model.width=", "--axis model.width=: empty list of values"),
    ("model.width=  ", "--axis model.width=  : empty list of values"),
    ("model.init.gamma=0.5:4", "--axis model.init.gamma=0.5:4: a range is a:b:n or a:b:n:log"),
    ("x=1:2:3:lin", "--axis x=1:2:3:lin: a range is a:b:n or a:b:n:log"),
    ("train.lr=0:1:5:log", "--axis train.lr=0:1:5:log: a log range needs a, b > 0, got a=0, b=1"),
    ("x=1:2:0", "--axis x=1:2:0: n must be a positive integer, got '0'"),
    ("x=1:2:2.5", "--axis x=1:2:2.5: n must be a positive integer, got '2.5'"),
    ("x=a:2:3", "--axis x=a:2:3: a range is a:b:n or a:b:n:log with numbers a and b, got a='a', b='2'"),
    ("x=1,2:3:4", "--axis x=1,2:3:4: give either a list a,b,c or a range"),
    ("x=1,,2", "--axis x=1,,2: empty value in the list"),
    ("x=[1,2", "--axis x=[1,2: unbalanced brackets or quotes"),
    ("x=1,1.0", "--axis x=1,1.0: value 1.0 appears more than once"),
    ("model.width", "--axis model.width: an axis is PATH=VALUES"),
    ("model..width=1", "--axis model..width=1: an axis is PATH=VALUES"),
])
def test_bad_axis_syntax_names_the_axis(text, message):
    assert axis_error(text).startswith(message)


# ------------------------------------------------------------------------------ expansion
def test_product_order_first_axis_slowest():
    points = expand(sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2,1e-1"))
    assert len(points) == 6 and [p.index for p in points] == list(range(6))
    assert [(p.values["model.init.gamma"], p.values["train.lr"]) for p in points] == [
        (0.5, 0.001), (0.5, 0.01), (0.5, 0.1), (1.0, 0.001), (1.0, 0.01), (1.0, 0.1)]
    assert [(p.config.model.init.gamma, p.config.train.lr) for p in points] == [
        (p.values["model.init.gamma"], p.values["train.lr"]) for p in points]
    assert points[4].label == "model.init.gamma=1.0, train.lr=0.01"


def test_points_carry_base_seeds_overrides_and_hash():
    points = expand(sweep("train.lr=1e-3,1e-2", seeds=2, base_overrides=["train.steps=200", "model.init.gamma=1"]))
    first = points[0]
    assert first.overrides == {"train": {"steps": 200, "lr": 0.001}, "model": {"init": {"gamma": 1}},
                               "seeds": [0, 1]}
    for p in points:
        assert p.config.train.steps == 200 and p.config.model.init.gamma == 1 and p.config.seeds == [0, 1]
        assert p.config.preset == "quick" and p.config.model.widths == [200, 200, 200, 100]
        assert p.config_hash == config_hash(p.config)
    assert points[0].config_hash != points[1].config_hash


def test_seeds_list_replaces_and_none_keeps_the_experiments_seeds():
    assert expand(sweep("train.lr=1e-3", seeds=[4, 7]))[0].config.seeds == [4, 7]
    assert expand(sweep("train.lr=1e-3", seeds="0,5"))[0].config.seeds == [0, 5]
    assert expand(sweep("train.lr=1e-3"))[0].config.seeds == get_experiment(EXP).resolve("quick").seeds


def test_points_do_not_share_mutable_state_with_the_spec():
    spec = sweep("model.widths=[10,10],[20]", base_overrides=["train.steps=100"])
    points = expand(spec)
    points[0].overrides["train"]["steps"] = 1
    points[0].values["model.widths"].append(5)
    assert spec.base == {"train": {"steps": 100}} and spec.parsed_axes()[0].values == ([10, 10], [20])


def test_width_axis_in_f_principle_conflicts_with_widths_and_says_how_to_fix_it():
    msg = expand_error("model.width=100,200")
    assert msg.startswith("--axis model.width=100,200: model: give either widths (now [200, 200, 200, 100]) "
                          "or width/depth, not both")
    assert "clear it in the sweep's base: model.widths=null" in msg
    assert "'kind'" not in msg  # no dump of the whole rejected group
    points = expand(sweep("model.width=100,200", base_overrides=["model.widths=null"]))
    assert [p.config.model.hidden_widths for p in points] == [[100], [200]]


def test_a_value_the_field_rejects_names_the_axis():
    msg = expand_error("model.width=-5,10", base_overrides=["model.widths=null"])
    assert msg == "--axis model.width=-5,10: model.width: must be > 0, got -5"
    msg = expand_error("model.activation=relu,tanh2")
    assert msg.startswith("--axis model.activation=relu,tanh2: model.activation: must be one of") and "'tanh2'" in msg


def test_a_problem_of_two_axes_names_both():
    msg = expand_error("model.init.std=1,2", "model.init.gamma=1,2")
    assert msg == ("--axis model.init.std=1,2 and --axis model.init.gamma=1,2: "
                   "model.init: give either std or gamma, not both")


def test_unknown_path_suggests_the_closest():
    msg = expand_error("model.init.gama=1,2")
    assert msg.startswith("--axis model.init.gama=1,2: model.init.gama is not a path of the f-principle config; "
                          "did you mean model.init.gamma")


def test_axis_into_a_list_is_refused():
    msg = expand_error("probes.0.every=1,2")
    assert msg.startswith("--axis probes.0.every=1,2: probes is a list; an axis cannot reach into a list")


@pytest.mark.parametrize("axes, kw, message", [
    (["train.lr=1,2", "train.lr=3"], {}, "--axis train.lr=3: train.lr is swept twice"),
    (["model.init={std: 1}", "model.init.gamma=3"], {}, "--axis model.init.gamma=3: overlaps --axis model.init="),
    (["preset=quick,full"], {}, "--axis preset=quick,full: preset cannot be swept"),
    (["seeds=[0],[1]"], {"seeds": 2}, "--axis seeds=[0],[1]: seeds are swept and also set by the sweep's seeds"),
    ([], {}, "axes: a sweep needs at least one axis"),
    (["train.lr=1"], {"preset": "medium"}, "preset: must be one of quick, full, smoke, got 'medium'"),
    (["train.lr=1"], {"base_overrides": ["train.steps=-1"]}, "sweep base: train.steps: must be >= 0, got -1"),
])
def test_sweep_level_mistakes_are_config_errors(axes, kw, message):
    assert expand_error(*axes, **kw).startswith(message)


def test_unknown_experiment_is_the_registry_error():
    with pytest.raises(ConfigError, match="experiment: unknown experiment 'f-principel'; did you mean 'f-principle'"):
        expand(sweep_from_cli("f-principel", ["train.lr=1"]))


def test_max_points_guard():
    spec = sweep("train.lr=0.1:1:30", "model.init.gamma=0:1:40")
    with pytest.raises(ConfigError, match=r"the sweep has 1200 points \(30 x 40\), more than max_points=1000"):
        expand(spec, max_points=1000)
    assert len(expand(spec, max_points=1200)) == 1200


def test_seeds_axis_and_check_axis_are_paths():
    points = expand(sweep("seeds=[0],[1,2]", "check.min_ratio=2,4"))
    assert [(p.config.seeds, p.config.check.min_ratio) for p in points] == [
        ([0], 2), ([0], 4), ([1, 2], 2), ([1, 2], 4)]


def test_config_paths_walk_classes_including_unset_and_free_mappings():
    paths = config_paths(get_experiment(EXP).config)
    assert paths["model.width"] == "value" and paths["model.init"] == "group"
    assert paths["probes"] == "list" and paths["check.min_ratio"] == "value"
    assert config_paths(ExperimentSpec)["check"] == "mapping"


# --------------------------------------------------------------------------- spec fields
@pytest.mark.parametrize("change, message", [
    ({"seeds": 0}, "seeds: a number of seeds must be > 0, got 0"),
    ({"seeds": [1, 1]}, "seeds: a list of seeds must be non-empty, each seed once"),
    ({"seeds": True}, "seeds: give a number n of seeds"),
    ({"axes": 5}, "axes: give a list of PATH=VALUES strings or a mapping"),
    ({"name": "a b"}, "name: use letters, digits"),
    ({"base": {"preset": "full"}}, "base.preset: set the sweep's preset instead"),
    ({"seeds": 2, "base": {"seeds": [1]}}, "seeds: given both as the sweep's seeds (2) and in base"),
    ({"bogus": 1}, "bogus: unknown key"),
])
def test_spec_fields_are_checked(change, message, tmp_path):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"experiment": EXP, "axes": ["train.lr=1"], **change}))
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert str(info.value).startswith(f"sweep file {path}: {message}")


# ------------------------------------------------------------------------------ YAML files
MAPPING_FORM = """
experiment: f-principle
name: gamma-lr
base:
  train.steps: 200
  model: {init: {bias_std: 0.1}}
axes:
  model.init.gamma: 0.5:2:4
  train.lr: [1e-4, 1.0e-3]
seeds: 2
"""

LIST_FORM = """
experiment: f-principle
name: gamma-lr
base: [train.steps=200, model.init.bias_std=0.1]
axes: [model.init.gamma=0.5:2:4, "train.lr=1e-4,1e-3"]
seeds: [0, 1]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_mapping_and_list_forms_are_the_same_sweep(tmp_path):
    a = load_sweep(write(tmp_path, "a.yaml", MAPPING_FORM))
    b = load_sweep(write(tmp_path, "b.yaml", LIST_FORM))
    assert a.parsed_axes() == b.parsed_axes() == [Axis("model.init.gamma", (0.5, 1.0, 1.5, 2.0)),
                                                  Axis("train.lr", (1e-4, 1e-3))]
    assert a.base == b.base == {"train": {"steps": 200}, "model": {"init": {"bias_std": 0.1}}}
    assert sweep_id(a) == sweep_id(b) and sweep_id(a).startswith("gamma-lr-")
    points = expand(a)
    assert [p.config_hash for p in points] == [p.config_hash for p in expand(b)]
    assert len(points) == 8 and points[0].config.seeds == [0, 1] and points[0].config.model.init.bias_std == 0.1


def test_yaml_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"config file {missing}: not found"):
        load_sweep(missing)
    bad_yaml = write(tmp_path, "bad.yaml", "experiment: [\n")
    with pytest.raises(ConfigError, match=f"config file {bad_yaml}: not valid YAML"):
        load_sweep(bad_yaml)
    bad_axis = write(tmp_path, "axis.yaml", "experiment: f-principle\naxes: {train.lr: '0:1:5:log'}\n")
    with pytest.raises(ConfigError) as info:
        load_sweep(bad_axis)
    assert str(info.value) == f"sweep file {bad_axis}: axis train.lr: a log range needs a, b > 0, got a=0, b=1"
    empty_axis = write(tmp_path, "empty.yaml", "experiment: f-principle\naxes: {train.lr: []}\n")
    with pytest.raises(ConfigError, match=f"sweep file {empty_axis}: axis train.lr: empty list of values"):
        load_sweep(empty_axis)


# -------------------------------------------------------------------------------- ids, groups
def test_sweep_id_is_stable_and_sensitive_to_what_decides_the_points():
    ref = sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2", seeds=2)
    assert sweep_id(ref) == sweep_id(ref) == sweep_id(sweep("model.init.gamma=0.5,1.0", "train.lr=0.001,0.01",
                                                          seeds=[0, 1]))
    assert len(sweep_id(ref)) == 12
    different = [
        sweep("model.init.gamma=0.5:1:3", "train.lr=1e-3,1e-2", seeds=2),
        sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-1", seeds=2),
        sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2", seeds=3),
        sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2", seeds=2, base_overrides=["train.steps=9"]),
        sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2", seeds=2, preset="full"),
    ]
    ids = {sweep_id(s) for s in different}
    assert len(ids) == len(different) and sweep_id(ref) not in ids
    named = sweep("model.init.gamma=0.5:1:2", "train.lr=1e-3,1e-2", seeds=2, name="phase")
    assert sweep_id(named) == f"phase-{sweep_id(ref)}"


def test_group_points_preserves_order():
    points = expand(sweep("model.widths=[10],[20,20]", "train.lr=1e-3,1e-2,1e-1"))
    groups = group_points(points, key=lambda p: p.values["train.lr"])
    assert [[p.index for p in g] for g in groups] == [[0, 3], [1, 4], [2, 5]]
    groups = group_points(points, key=lambda p: tuple(p.config.model.hidden_widths))
    assert [[p.index for p in g] for g in groups] == [[0, 1, 2], [3, 4, 5]]
    assert group_points([], key=lambda p: 0) == []


def test_problems_are_blamed_through_their_structured_path():
    msg = expand_error("train.momentum=0,0.9")
    assert msg == ("--axis train.momentum=0,0.9: train.momentum: only used by optimizer=sgd or gd, "
                   "got momentum=0.9 with optimizer='adam'")
    msg = expand_error("train={optimizer: gd, batch_size: 8},{optimizer: sgd, batch_size: 8}")
    assert msg.startswith("--axis train={optimizer: gd, batch_size: 8},{optimizer: sgd, batch_size: 8}: "
                          "train.batch_size: gd is full-batch gradient descent")
    msg = expand_error("probes=[{name: frequency, options: {peak: 3}}, {name: outputs}]")
    assert msg.startswith("--axis probes=[{name: frequency, options: {peak: 3}}, {name: outputs}]: "
                          "probes[0].options.peak: unknown option of probe frequency; did you mean 'peaks'?")


def test_a_problem_no_axis_touches_names_the_point():
    msg = expand_error("train.optimizer=sgd,adam", base_overrides=["train.optimizer=sgd", "train.momentum=0.5"])
    assert msg == ("sweep point 1 (train.optimizer='adam'): train.momentum: only used by optimizer=sgd or gd, "
                   "got momentum=0.5 with optimizer='adam'")
