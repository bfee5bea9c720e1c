"""What a run takes for the settings the user leaves unset: an image size that suits the model, and
enough epochs for a small dataset. Pure rules first, then the three calls training/setup.py makes.

Image size (no --image-size): a timm/torchvision model trains at the library's own input size (224
for most); the zoo's small-image nets keep small images (MNIST, CIFAR) at their size and read photos
at 64 px (the folder reader's rule, data/formats/image_folder.py); images smaller than the model takes,
or than 8 px, are upscaled with a note. Epochs (no --epochs): enough passes for MIN_STEPS optimizer
steps, at least DEFAULT_EPOCHS and at most MAX_EPOCHS.

    python -c "from convtrain.training.epochs_and_size import epochs_for; print(epochs_for(180, 256, True))"
"""

from __future__ import annotations

import dataclasses
import math

from convtrain.config.train_config import TrainConfig
from convtrain.data.dataset import ImageData, Split
from convtrain.data.formats.image_folder import resize_images
from convtrain.data.info import channel_stats
from convtrain.models import model_min_size
from convtrain.models.external import default_input_size, split_name

SIZE_BOUNDS = (8, 1024)  # the same bounds TrainConfig puts on a configured image_size
DEFAULT_EPOCHS = 2  # a large dataset (MNIST: 211 steps an epoch at batch 256) trains 2 epochs
MIN_STEPS = (
    40  # a small one gets at least this many optimizer steps (chosen on validation splits: BENCHMARKS.md)
)
MAX_EPOCHS = 40  # ...but never more than this many passes


# ----- the rules -----


def epochs_for(train_images: int, batch_size: int, drop_last: bool) -> int:
    """Epochs for a run that leaves them unset: DEFAULT_EPOCHS, or more so that the run takes at
    least MIN_STEPS steps, capped at MAX_EPOCHS."""
    full, short = divmod(train_images, batch_size)
    steps = max(
        1, full if drop_last and full else full + (short > 0)
    )  # the loader keeps a short batch when no full one
    return min(MAX_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / steps)))


def smallest_side(model_min: int) -> int:
    """The smallest side a run trains at: the model's minimum, and never under SIZE_BOUNDS[0]."""
    return max(model_min, SIZE_BOUNDS[0])


# ----- applied to a run -----


def library_size(config: TrainConfig) -> tuple[TrainConfig, str]:
    """Before loading: a timm/torchvision model without --image-size gets the library's input size."""
    if config.image_size is not None or split_name(config.model) is None:
        return config, ""
    side, _ = default_input_size(config.model)
    side = min(max(side, SIZE_BOUNDS[0]), SIZE_BOUNDS[1])
    note = f"image size {side}: {config.model}'s default input size (pass --image-size to choose)"
    return config.replace(image_size=side), note


def fit_to_model(data: ImageData, config: TrainConfig) -> tuple[ImageData, str]:
    """After loading: images smaller than the model takes (or than 8 px) upscaled to its minimum, in
    a new ImageData (the loaded one may be kept for other runs). A configured size is left alone:
    build_model refuses one that is too small."""
    if config.image_size is not None:
        return data, ""
    external = split_name(config.model)
    side = smallest_side(default_input_size(config.model)[1] if external else model_min_size(config.model))
    if data.image_size >= side:
        return data, ""
    note = (
        f"images are {data.image_size}x{data.image_size}: upscaled to {side}x{side}, the smallest "
        f"{config.model} takes (pass --image-size to choose)"
    )

    def grown(split: Split | None) -> Split | None:
        if split is None or split.images is None:  # streamed files decode at data.image_size
            return split
        return dataclasses.replace(split, images=resize_images(split.images, side))

    train = grown(data.train)
    mean, std = channel_stats(train.images) if train.images is not None else (data.mean, data.std)
    fitted = dataclasses.replace(
        data, image_size=side, train=train, val=grown(data.val), test=grown(data.test), mean=mean, std=std
    )
    return fitted, note


def resolve_epochs(config: TrainConfig, train_images: int, batch_size: int) -> tuple[TrainConfig, str]:
    """Unset epochs filled by epochs_for; the words for the run's first line ('' when set)."""
    if config.epochs is not None:
        return config, ""
    epochs = max(epochs_for(train_images, batch_size, config.drop_last), config.freeze_epochs + 1)
    words = f"{epochs} epochs (auto: {train_images} images at batch {batch_size}; --epochs to choose)"
    return config.replace(epochs=epochs), words
