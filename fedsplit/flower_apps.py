"""The apps of `flwr run .` (pyproject [tool.flwr.app.components]): the same apps as `fedsplit run`.

`fedsplit run` builds its apps from a Config in the calling process (fedsplit.federated.run_federated).
Under `flwr run .` Flower imports `serverapp` and `clientapp` from here in other processes, so the
config comes from the run config instead (pyproject [tool.flwr.app.config], or `--run-config`/`-c`):

  config  path to a YAML config; "" means the built-in defaults. A relative path that does not exist
          in the working directory is looked up in the app (the installed FAB carries configs/).
  set     overrides, `key.sub=value` separated by semicolons, e.g. "partition.clients=2;train.clients_per_round=2".

Both apps resolve it with `resolve_config`, build the app of `fedsplit run` for it (make_server_app,
make_client_app) once per process and config, and hand every call to it. The federation's
num-supernodes must equal partition.clients (the server waits for exactly that many supernodes and
stops with an error naming both numbers otherwise).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsplit.config import Config, ConfigError, load_config
from fedsplit.federated import CLIENT_MESSAGE_TYPES, _quiet_flower, make_client_app, make_server_app

# As in `fedsplit run`: Ray warns that it will stop overriding accelerator variables; we rely on neither.
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

# The app directory: the project checkout, or the installed FAB under $FLWR_HOME/apps/ under `flwr run`.
APP_DIR = Path(__file__).resolve().parent.parent

_CONFIGS: dict[tuple[str, str], Config] = {}
_CLIENT_APPS: dict[tuple[str, str], ClientApp] = {}


def _key(run_config: Any) -> tuple[str, str]:
    return str(run_config.get("config", "") or "").strip(), str(run_config.get("set", "") or "")


def _config_path(path: str) -> Path | None:
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (APP_DIR / p).exists():
        return APP_DIR / p
    return p


def resolve_config(run_config: Any) -> Config:
    """The fedsplit Config of a Flower run config ({"config": YAML path or "", "set": "k=v;k=v"}).

    A wrong key or value raises ConfigError naming it (as `fedsplit run --set` does).
    """
    key = _key(run_config)
    if key not in _CONFIGS:
        path, sets = key
        overrides = [item.strip() for item in sets.split(";") if item.strip()]
        try:
            _CONFIGS[key] = load_config(_config_path(path), overrides)
        except ConfigError as err:
            raise ConfigError(f"flwr run config (config={path!r}, set={sets!r}): {err}") from None
    return _CONFIGS[key]


serverapp = ServerApp()


@serverapp.main()
def server_main(grid: Grid, context: Context) -> None:
    """The ServerApp main of `fedsplit run`, for the config of this run; it writes runs/<name>/ itself."""
    cfg = resolve_config(context.run_config)
    _quiet_flower()  # as in `fedsplit run`: no per-round INFO chatter from Flower, warnings kept

    def log(line: str) -> None:
        print(line, flush=True)

    log(f"[{cfg.name}] flwr run: outputs go to {cfg.run_dir().resolve()}")
    make_server_app(cfg, {"start": time.time(), "keep_messages": False}, log)(grid, context)


clientapp = ClientApp()


def _client_app(context: Context) -> ClientApp:
    """The ClientApp of `fedsplit run` for this run's config, built once per (actor) process."""
    key = _key(context.run_config)
    if key not in _CLIENT_APPS:
        _CLIENT_APPS[key] = make_client_app(resolve_config(context.run_config))
    return _CLIENT_APPS[key]


def _delegate(msg: Message, context: Context) -> Message:
    return _client_app(context)(msg, context)


for _type in CLIENT_MESSAGE_TYPES:
    _category, _, _action = _type.partition(".")
    getattr(clientapp, _category)(_action or "default")(_delegate)
