"""TrainConfig validation, YAML loading and the precedence defaults < recipe < file < flags."""

from __future__ import annotations

import pytest
import torch.nn as nn

from convtrain.base.errors import ConfigError
from convtrain.cli import build_parser, main
from convtrain.cli.train_commands import config_from_args
from convtrain.config.train_config import TrainConfig, field_docs, field_names, read_yaml
from convtrain.models import model_names, registered_model


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": -1.0}, "lr must be a number >= 0"),
        ({"epochs": 0}, "epochs must be a number >= 1"),
        ({"batch_size": "big"}, "batch_size must be a positive whole number or 'auto'"),
        ({"batch_size": 0}, "batch_size must be a positive whole number"),
        ({"val_split": 1.5}, "val_split must be a fraction"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
        ({"ema": 1.0}, "ema must be a decay"),
        ({"lookahead": True}, "lookahead goes on from the weights' average: it needs --ema"),
        ({"schedule": "triangles"}, "schedule must be one of"),
        ({"channels": 2}, "channels must be 1 (gray) or 3 (RGB)"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"augment": "flip,zoom:3"}, "zoom"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(changes, fragment):
    with pytest.raises(
        ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        TrainConfig(**changes)


def test_every_field_renders_in_the_train_help(capsys):
    """A field's docstring is argparse help text: a bare % in it breaks `convtrain train --help`."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["train", "--help"])
    assert stopped.value.code == 0
    assert "--lookahead" in capsys.readouterr().out


def test_valid_values_are_kept():
    config = TrainConfig(batch_size="auto", val_split=5000, augment="flip,crop:4")
    assert config.batch_size == "auto" and config.val_split == 5000
    assert TrainConfig(batch_size="64").batch_size == 64


def test_every_field_has_a_docstring():
    docs = field_docs()
    assert set(docs) == field_names()
    assert all(text.strip() for text in docs.values())


def test_unknown_keys_in_a_file_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict(read_yaml(path), source=str(path))


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: 2\nlr: [0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        read_yaml(path)


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 0.2\nmodel: lenet5\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--lr", "0.01", "--no-nesterov"])
    config = config_from_args(args)
    assert (config.epochs, config.lr, config.model, config.nesterov) == (7, 0.01, "lenet5", False)
    assert config.batch_size == TrainConfig().batch_size


def test_compile_auto_from_a_config_file_and_the_flags_that_override_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("compile: auto\n")
    assert config_from_args(build_parser().parse_args(["train", "--config", str(path)])).compile == "auto"
    for flag, value in (("--compile", True), ("--no-compile", False)):
        args = build_parser().parse_args(["train", "--config", str(path), flag])
        assert config_from_args(args).compile is value


def test_cli_bad_value_exits_2_with_one_line(capsys):
    assert main(["train", "--optimizer", "rmsprop"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: optimizer must be one of") and "\n" not in err


def test_cli_missing_config_file_exits_2(capsys, tmp_path):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_precision_auto_resolves_to_fp32_on_the_cpu():
    import torch

    from convtrain.system.runtime import choose_precision

    assert choose_precision("auto", torch.device("cpu"))[0] == "fp32"
    assert choose_precision("bf16", torch.device("cpu"))[0] == "bf16"
    assert TrainConfig(precision="auto").precision == "auto"


# ----- the model's own training options: defaults < model's own < recipe < file < flags -----


def test_unset_options_take_the_models_own_and_the_generic_ones_elsewhere():
    from convtrain.config.train_config import GENERIC_TRAINING, with_model_defaults
    from convtrain.models import own_training

    assert all(getattr(TrainConfig(), name) is None for name in GENERIC_TRAINING)
    tiny = with_model_defaults(TrainConfig())
    assert tiny.model == "fastnet-tiny" and own_training("fastnet-tiny")
    assert {name: getattr(tiny, name) for name in GENERIC_TRAINING} == {
        **GENERIC_TRAINING,
        **own_training("fastnet-tiny"),
    }
    assert tiny.lr != GENERIC_TRAINING["lr"] and tiny.batch_size != GENERIC_TRAINING["batch_size"]
    # the model chosen later (replace, as convtrain.train(model=...) does) still brings its own
    lenet = with_model_defaults(TrainConfig().replace(model="lenet5"))
    assert {name: getattr(lenet, name) for name in GENERIC_TRAINING} == GENERIC_TRAINING
    assert with_model_defaults(TrainConfig(model="timm:resnet10t", lr=0.2)).lr == 0.2  # given values win
    assert with_model_defaults(tiny) is tiny  # nothing left to fill


def test_a_recipe_and_flags_override_the_models_own_options():
    from convtrain.config.train_config import with_model_defaults

    args = build_parser().parse_args(
        ["train", "--recipe", "lenet5-mnist", "--model", "fastnet-tiny", "--momentum", "0.5"]
    )
    config = with_model_defaults(config_from_args(args))
    assert config.lr == 0.001 and config.batch_size == 64  # the recipe's, not fastnet-tiny's 0.375 and 256
    assert config.momentum == 0.5 and config.label_smoothing == 0.2  # the flag's; the model's (recipe silent)


def test_a_model_may_only_set_the_options_models_own():
    with (
        pytest.raises(ValueError, match="epochs"),
        registered_model("odd", nn.Identity, training={"epochs": 5}),
    ):
        pass
    assert "odd" not in model_names()  # refused, so never registered


def test_models_lists_what_each_model_trains_with(capsys):
    assert main(["models", "--image-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "fastnet-tiny: batch_size 256, lr 0.375" in out
    assert "every other model: batch_size 128, lr 0.05, momentum 0.9" in out


@pytest.mark.cpu_precision
def test_a_run_records_the_options_its_model_brought(tmp_path):
    import convtrain

    small = {"limit_train": 512, "epochs": 1, "plots": False, "quiet": True}
    tiny = convtrain.train(out=str(tmp_path / "tiny"), **small)
    lenet = convtrain.train(model="lenet5", out=str(tmp_path / "lenet"), **small)
    assert (tiny.config.model, tiny.config.lr, tiny.config.batch_size) == ("fastnet-tiny", 0.375, 256)
    assert (lenet.config.lr, lenet.config.batch_size, lenet.config.label_smoothing) == (0.05, 128, 0.0)
    assert convtrain.load_run(lenet.path).config == lenet.config  # config.yaml holds the filled values


def test_adam_takes_its_own_lr_not_the_models_sgd_one():
    from convtrain.config.train_config import ADAM_TRAINING, with_model_defaults

    for optimizer in ("adam", "adamw"):
        config = with_model_defaults(TrainConfig(optimizer=optimizer))
        assert (config.lr, config.momentum) == (ADAM_TRAINING["lr"], ADAM_TRAINING["momentum"])
        assert config.batch_size == 256  # the rest stays fastnet-tiny's
    assert with_model_defaults(TrainConfig(optimizer="adam", lr=0.01)).lr == 0.01
