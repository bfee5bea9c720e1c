"""What a run takes for the settings the user leaves unset: an image size that suits the model, and
for a small dataset enough epochs and some augmentation (the small-data rule). Pure rules first, then
the calls training/setup.py and training/resolve.py make.

Image size (no --image-size): a timm/torchvision model trains at the library's own input size (224
for most); the zoo's small-image nets keep small images (MNIST, CIFAR) at their size and read photos
at 64 px (the folder reader's rule, data/formats/image_folder.py); images under 16 px (UPSCALE_BELOW)
are upscaled to 32 (UPSCALE_TO), and images smaller than the model takes to its minimum, with a note.
Epochs (no --epochs): enough passes to see SEEN training images and to take MIN_STEPS optimizer
steps, at least DEFAULT_EPOCHS and at most MAX_EPOCHS. Augmentation (no --augment): translate:2, and
flip for RGB images, for up to SMALL_DATA_MAX training images; none above. The small-data figures
behind these (SVC, logistic regression and a random forest side by side, on validation splits of
MNIST, Fashion-MNIST and CIFAR-10 subsets): BENCHMARKS.md, benchmarks/small_data.py.

    python -c "from convtrain.training.epochs_and_size import epochs_for; print(epochs_for(180, 256, True))"
    python -c "from convtrain.training.epochs_and_size import augment_for; print(augment_for(500, 3))"
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
MIN_STEPS = 40  # a small one gets at least this many optimizer steps...
SEEN = 48000  # ...and sees at least this many training images: 240 epochs of 200 (BENCHMARKS.md)
MAX_EPOCHS = 250  # but never more than this many passes (sets under 192 images)
SMALL_DATA_MAX = 2000  # training sets up to this size are augmented when --augment is unset
UPSCALE_BELOW, UPSCALE_TO = 16, 32  # images under 16 px train at 32 px (the small-data rule)


# ----- the rules -----


def epochs_for(train_images: int, batch_size: int, drop_last: bool) -> int:
    """Epochs for a run that leaves them unset: DEFAULT_EPOCHS, or more so that the run takes at
    least MIN_STEPS steps and sees at least SEEN images, capped at MAX_EPOCHS."""
    full, short = divmod(train_images, batch_size)
    steps = max(
        1, full if drop_last and full else full + (short > 0)
    )  # the loader keeps a short batch when no full one
    seen = math.ceil(SEEN / max(1, train_images))
    return min(MAX_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / steps), seen))


def augment_for(train_images: int, channels: int) -> str:
    """Augmentation for a run that leaves it unset: translate:2 (a digit may shift, not mirror) and
    flip for RGB photos, up to SMALL_DATA_MAX training images; none for a larger set."""
    if train_images > SMALL_DATA_MAX:
        return "none"
    return "flip,translate:2" if channels == 3 else "translate:2"


def smallest_side(model_min: int, image_size: int) -> int:
    """The smallest side a run trains images of image_size at: the model's minimum, never under
    SIZE_BOUNDS[0], and UPSCALE_TO for images under UPSCALE_BELOW px."""
    return max(model_min, SIZE_BOUNDS[0], UPSCALE_TO if image_size < UPSCALE_BELOW else 0)


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
    """After loading: images smaller than the model takes (or than 16 px) upscaled (smallest_side),
    in a new ImageData (the loaded one may be kept for other runs). A configured size is left alone:
    build_model refuses one that is too small."""
    if config.image_size is not None:
        return data, ""
    external = split_name(config.model)
    model_min = default_input_size(config.model)[1] if external else model_min_size(config.model)
    side = smallest_side(model_min, data.image_size)
    if data.image_size >= side:
        return data, ""
    model_side = max(model_min, SIZE_BOUNDS[0])
    why = (
        f"the smallest {config.model} takes"
        if side == model_side
        else f"images under {UPSCALE_BELOW} px train at {UPSCALE_TO}"
    )
    note = f"images are {data.image_size}x{data.image_size}: upscaled to {side}x{side}, {why} (pass --image-size to choose)"

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


def resolve_augment(config: TrainConfig, train_images: int, channels: int) -> tuple[TrainConfig, str]:
    """Unset augment filled by augment_for; the words for the run's first line ('' when set or none)."""
    if config.augment is not None:
        return config, ""
    augment = augment_for(train_images, channels)
    words = (
        ""
        if augment == "none"
        else f"augment {augment} (auto: {train_images} images, up to {SMALL_DATA_MAX}; --augment none to turn off)"
    )
    return config.replace(augment=augment), words
