"""Where a sweep's study lives: Optuna's storages (SQLite, a database server, a journal file), the
study opened with its sampler and pruner, and the lock that keeps workers from over-asking.

    convtrain sweep space.yaml                                          # sqlite:///<folder>/study.db
    convtrain sweep space.yaml --storage postgresql+psycopg2://user@db/sweeps --study lenet
    convtrain sweep space.yaml --storage journal:/shared/lenet.journal --study lenet

A study remembers the space it was made for (a fingerprint in its user attributes), so a worker
started with another sweep file under the same study name is refused before it trains anything.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from convtrain.base.errors import ConfigError, ConvtrainError, reason
from convtrain.sweep.space import SweepSpec

SPACE_ATTR = "convtrain_space"  # the study's user attribute that holds SweepSpec.fingerprint()


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConvtrainError("sweeps need Optuna: pip install 'convtrain[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here instead
    return optuna


def open_storage(url: str):
    """An Optuna storage for a database URL or journal:PATH; an unreachable one is a ConfigError naming it."""
    optuna = require_optuna()
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :]).expanduser()
        if not path.parent.is_dir():
            raise ConfigError(f"storage {url}: folder {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(
            f"storage {url!r} is neither a database URL (sqlite:///x.db, postgresql://...) nor journal:PATH"
        )
    shown = hide_password(url)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as error:
        raise ConfigError(
            f"storage {shown}: its database driver is not installed ({reason(error)})"
        ) from None
    except Exception as error:  # SQLAlchemy's OperationalError and friends: the server is not there
        raise ConfigError(f"cannot reach storage {shown}: {reason(error)[:200]}") from None


def hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_study(spec: SweepSpec, storage, name: str):
    """Create the study, or join it: an existing study with another space or objective is refused."""
    optuna = require_optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=spec.direction,
        load_if_exists=True,
        sampler=_sampler(spec, optuna),
        pruner=_pruner(spec, optuna),
    )
    saved = study.user_attrs.get(SPACE_ATTR)
    if saved is None and not study.trials:
        study.set_user_attr(SPACE_ATTR, spec.fingerprint())
    elif saved != spec.fingerprint() or study.direction.name.lower() != spec.direction:
        raise ConfigError(f"study {name!r} already exists with another search space; pick another --study")
    return study


def _sampler(spec: SweepSpec, optuna):
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid_space(), seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed + os.getpid())  # workers must not draw alike
    return optuna.samplers.TPESampler(seed=spec.seed + os.getpid())


def _pruner(spec: SweepSpec, optuna):
    p = spec.pruner
    if p["name"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.get("startup_trials", 5), n_warmup_steps=p.get("warmup_epochs", 0)
        )
    if p["name"] == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.get("min_epochs", 1), reduction_factor=p.get("reduction_factor", 3)
        )
    return optuna.pruners.NopPruner()


@contextmanager
def ask_lock(storage_url: str):
    """An exclusive flock beside an SQLite or journal file; a no-op for database servers."""
    path = None
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url[len("sqlite:///") :])
    elif storage_url.startswith("journal:"):
        path = Path(storage_url[len("journal:") :]).expanduser()
    if path is None or str(path) in ("", ":memory:"):
        yield
        return
    with open(f"{path}.asklock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield
