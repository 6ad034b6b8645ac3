"""Config: validation messages name path, value and what is allowed; overrides; canonical hash."""

import pickle

import pytest
from pydantic import ValidationError

from phenolab.config import (
    MISSING,
    ConfigError,
    ExperimentSpec,
    MLPSpec,
    Problem,
    RunSpec,
    TrainSpec,
    canonical_json,
    config_hash,
    load_yaml,
    merge,
    parse_overrides,
    validate,
)


def resolve(*items: str) -> ExperimentSpec:
    return validate(ExperimentSpec, merge({"experiment": "x"}, parse_overrides(list(items))))


def problem(*items: str) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(*items)
    return str(info.value)


def test_overrides_build_nested_typed_values():
    cfg = resolve("model.width=200", "train.lr=1e-3", "model.activation=relu", "seeds=[0, 1]", "model.bias=false")
    assert cfg.model.width == 200 and cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.activation == "relu" and cfg.seeds == [0, 1] and cfg.model.bias is False


def test_negative_width_names_path_bound_and_value():
    assert problem("model.width=-3") == "model.width: must be > 0, got -3"


def test_unknown_key_is_rejected_with_a_suggestion():
    msg = problem("model.widht=3")
    assert msg.startswith("model.widht: unknown key; did you mean 'width'?")
    assert "activation" in msg  # lists what is allowed


def test_wrong_type_and_literal_choices():
    assert problem("train.lr=abc").startswith("train.lr:")
    assert "'abc'" in problem("train.lr=abc")
    msg = problem("model.activation=gelu2")
    assert msg.startswith("model.activation: must be one of") and "'relu'" in msg and "'gelu2'" in msg


def test_unknown_data_kind_lists_kinds():
    msg = problem("data.kind=foo")
    assert msg.startswith("data.kind: must be one of") and "digits" in msg and "'foo'" in msg


def test_per_layer_init_must_match_depth():
    assert "init.std has 3 values" in problem("model.init.std=[1, 2, 3]")
    with pytest.raises(ConfigError, match="either std or gamma"):
        resolve("model.init.std=0.1", "model.init.gamma=1")


def test_malformed_override_and_plus_keys():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["model.width"])
    with pytest.raises(ConfigError, match="'\\+'"):
        parse_overrides(["+model.new=1"])


def test_changing_data_kind_drops_the_old_kinds_keys():
    base = {"experiment": "x", "data": {"kind": "sines", "frequencies": [1.0], "amplitudes": [1.0]}}
    cfg = validate(ExperimentSpec, merge(base, {"data": {"kind": "digits"}}))
    assert cfg.data.kind == "digits"


def test_hash_is_stable_and_sensitive():
    a, b = resolve("model.width=200"), resolve("model.width=200")
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 16
    assert config_hash(a) != config_hash(resolve("model.width=201"))
    # an int written as a float is the same config
    assert config_hash(resolve("train.lr=1")) == config_hash(resolve("train.lr=1.0"))
    assert canonical_json(a) == canonical_json(validate(ExperimentSpec, a.model_dump(mode="json")))


def test_specs_are_frozen():
    with pytest.raises(ValidationError):  # pydantic: instance is frozen
        MLPSpec().width = 3  # type: ignore[misc]


def test_run_spec_applies_dotted_changes():
    cfg = resolve("model.width=7")
    run = cfg.run_spec(3, **{"model.init.gamma": 1.0})
    assert isinstance(run, RunSpec) and run.seed == 3 and run.model.width == 7 and run.model.init.gamma == 1.0


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  width: 5\n")
    assert load_yaml(good) == {"model": {"width": 5}}


def test_committee_model_fields_are_validated_and_left_out_of_the_hash_at_their_defaults():
    plain = canonical_json(MLPSpec())
    assert all(key not in plain for key in ("activation_param", "fixed_readout", "centered"))
    spec = validate(MLPSpec, {"activation": "quadratic", "activation_param": 0.2, "fixed_readout": 1.0,
                                "centered": True})
    assert (spec.activation_param, spec.fixed_readout, spec.centered) == (0.2, 1.0, True)
    with pytest.raises(ConfigError, match=r"^model: activation_param is only used by a parametrized activation"):
        validate(RunSpec, {"model": {"activation": "tanh", "activation_param": 0.2}})
    with pytest.raises(ConfigError, match=r"model.activation_param: input should be a finite number, got inf"):
        validate(RunSpec, {"model": {"activation": "quadratic", "activation_param": float("inf")}})
    with pytest.raises(ConfigError, match=r"model.fixed_readout: input should be a finite number"):
        validate(RunSpec, {"model": {"fixed_readout": float("nan")}})
    with pytest.raises(ConfigError, match=r"^model: fixed_readout .* init.antisymmetric"):
        validate(RunSpec, {"model": {"width": 4, "fixed_readout": 1.0, "init": {"antisymmetric": True}}})
    with pytest.raises(ConfigError, match=r"model.centered: input should be a valid boolean"):
        validate(RunSpec, {"model": {"centered": "maybe"}})


def test_quadratic_teacher_data_kind():
    spec = validate(RunSpec, {"data": {"kind": "quadratic_teacher", "input_dim": 10, "n_train": 30, "n_test": 5}})
    data = spec.data
    assert (data.kind, data.input_dim, data.n_train, data.n_test) == ("quadratic_teacher", 10, 30, 5)
    with pytest.raises(ConfigError, match=r"data.input_dim: must be > 0, got 0"):
        validate(RunSpec, {"data": {"kind": "quadratic_teacher", "input_dim": 0}})
    with pytest.raises(ConfigError, match=r"data.kind: must be one of .*quadratic_teacher"):
        validate(RunSpec, {"data": {"kind": "cubic_teacher"}})


def test_probe_start_is_validated_and_left_out_of_the_hash_at_its_default():
    from phenolab.config import ProbeSpec, RunSpec, config_hash

    base = RunSpec(probes=[ProbeSpec(name="loss")])
    assert config_hash(RunSpec(probes=[ProbeSpec(name="loss", start=0)])) == config_hash(base)
    assert config_hash(RunSpec(probes=[ProbeSpec(name="loss", start=1)])) != config_hash(base)
    with pytest.raises(ConfigError, match=r"probes\.0\.start|probes\[0\]\.start"):
        validate(RunSpec, {"probes": [{"name": "loss", "start": -1}]})


def test_config_error_items_carry_path_value_and_allowed():
    with pytest.raises(ConfigError) as info:
        resolve("model.width=-3", "model.widht=3", "model.activation=gelu2")
    items = {item.path: item for item in info.value.items}
    assert info.value.problems == [str(item) for item in info.value.items]
    width = items["model.width"]
    assert (width.reason, width.value, width.allowed) == ("must be > 0", -3, None)
    assert items["model.activation"].value == "gelu2"
    typo = items["model.widht"]
    assert typo.value is MISSING and "width" in typo.allowed and typo.reason == "unknown key; did you mean 'width'?"


def test_problem_text_and_older_string_problems():
    assert str(Problem("train.lr", "must be > 0", -1.0)) == "train.lr: must be > 0, got -1.0"
    assert str(Problem("a.b", "unknown key", allowed=("x", "y"))) == "a.b: unknown key (allowed: x, y)"
    assert str(Problem("a", "bad", {"k": "v" * 80})).endswith("...")  # a long value is shortened
    err = ConfigError(["model.width: must be > 0, got -3", "config file x.yaml: not found"])
    assert [(i.path, i.reason) for i in err.items] == [("model.width", "must be > 0, got -3"),
                                                        ("", "config file x.yaml: not found")]
    assert str(err) == "model.width: must be > 0, got -3; config file x.yaml: not found"
    again = pickle.loads(pickle.dumps(ConfigError([Problem("model.width", "must be > 0", -3)])))
    assert again.items == [Problem("model.width", "must be > 0", -3)] and again.items[0].value == -3


GD_BATCH = "train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for minibatches, got batch_size=32"
ADAM_MOMENTUM = "train.momentum: only used by optimizer=sgd or gd, got momentum=0.9 with optimizer='adam'"


@pytest.mark.parametrize("cls, data", [
    (RunSpec, {}), (ExperimentSpec, {"experiment": "x"}), (TrainSpec, None)])
def test_train_combinations_are_rejected_with_the_field_path(cls, data):
    for train, expected in (({"optimizer": "gd", "batch_size": 32}, GD_BATCH),
                            ({"optimizer": "adam", "momentum": 0.9}, ADAM_MOMENTUM)):
        with pytest.raises(ConfigError) as info:
            validate(cls, train if data is None else {**data, "train": train})
        assert str(info.value) == expected
        assert [i.path for i in info.value.items] == [expected.split(":")[0]]


def test_train_combinations_that_stay_valid():
    assert validate(TrainSpec, {"optimizer": "sgd", "batch_size": 32, "momentum": 0.9}).momentum == 0.9
    assert validate(TrainSpec, {"optimizer": "gd", "momentum": 0.9}).batch_size is None
    assert validate(TrainSpec, {"optimizer": "adam", "batch_size": 32, "momentum": 0}).batch_size == 32
