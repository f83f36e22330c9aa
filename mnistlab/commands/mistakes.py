"""A mistake on the command line that Hydra finds while composing (a misspelt key or option, a value of the wrong type,
an override it cannot parse), said in one line that names the fix, never suggesting ``+`` for a key nothing reads."""

from __future__ import annotations

import difflib
import re

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from mnistlab.config.schema import MOVED
from mnistlab.config.targets import NAMED_GROUPS

COMPOSING = (ConfigCompositionException, MissingConfigException, OverrideParseException)  # what :func:`one_line` says
GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def _close(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown_key(override: str, err: ConfigAttributeError | ConfigKeyError) -> str:
    """``regularization.dropuot is not a setting (did you mean regularization.dropout?)``."""
    key, _, value = override.partition("=")
    key = key.lstrip("+~")
    if key in MOVED:
        return f"{key} has moved: use {MOVED[key]}{'=' + value if value else ''}"
    missing = str(getattr(err, "key", "") or key.rsplit(".", 1)[-1])
    parent = getattr(err, "parent_node", None)
    known = [str(k) for k in parent if k != "hydra"] if isinstance(parent, DictConfig) else []
    full = str(getattr(err, "full_key", "") or key)
    prefix = full.rsplit(".", 1)[0] + "." if "." in full else ""
    if "." not in key and key in NAMED_GROUPS:  # a group with no option of ours (metric): yours come from --config-dir
        return f"{key}={value}: the {key} group has no option {value!r} here; add yours as {key}/{value}.yaml in a folder given with --config-dir"
    close = _close(missing, known)
    if close is not None:
        return f"{key} is not a setting (did you mean {key.replace(prefix + missing, prefix + close, 1)}?)"
    where = f"{prefix.rstrip('.')} has" if prefix else "the settings are"
    return f"{key} is not a setting; {where}: {', '.join(known[:20])}" if known else f"{key} is not a setting"


def one_line(err: Exception) -> str:
    """One line for a mistake Hydra found while composing (:data:`COMPOSING`)."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, MissingConfigException):
        found = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
        if found and err.options is not None:
            group, option = found.groups()
            close = _close(option, list(err.options))
            hint = f" (did you mean {group}={close}?)" if close else ""
            return f"{group}={option}: no such option{hint}; {group} has: {', '.join(err.options) or 'no options here'}"
        return first
    if isinstance(err, OverrideParseException):
        return f"cannot read an override: {first} (the grammar: {GRAMMAR})"
    cause = err.__cause__
    override = re.search(r"override '([^']+)'", first)
    if isinstance(cause, ValidationError):
        message = str(getattr(cause, "msg", "") or cause).splitlines()[0]
        return f"{getattr(cause, 'full_key', '') or 'a value'}: {message}"
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and override:
        given = next((arg for arg in _arguments() if arg.lstrip("+~").partition("=")[0] == override.group(1)), override.group(1))
        return _unknown_key(given, cause)
    return first


def _arguments() -> list[str]:
    import sys

    return [arg for arg in sys.argv[1:] if not arg.startswith("-")]
