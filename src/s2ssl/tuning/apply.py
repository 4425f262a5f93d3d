"""``s2ssl tune apply``: write a sweep's best values into ``params.yaml``, deliberately.

Only the value tokens of the changed keys are replaced in the file's text: every comment, blank
line, key order, flow mapping and indentation stays as it was. ruamel.yaml's round-trip composer
locates each value (its exact character span); the new values are written as YAML 1.1-safe
scalars (``1.0e-05``, not ``1e-05``, which PyYAML and DVC would read as a string), comments after
a changed value keep their column where the line has room. The result is checked before the
atomic write: it must load to exactly the old mapping with the new values, and validate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from s2ssl.config import parse_params, set_dotted
from s2ssl.io import write_text_atomic

__all__ = ["Change", "apply_best_params", "read_best_params", "yaml_flow", "yaml_scalar"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-./]*$")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


@dataclass(frozen=True)
class Change:
    """One key whose value ``apply`` changes."""

    key: str
    old: Any
    new: Any


def yaml_scalar(value: Any) -> str:
    """``value`` as a YAML scalar token that PyYAML (YAML 1.1) and ruamel (1.2) read back alike."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite value {value!r} into params.yaml")
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e:
            mantissa = mantissa if "." in mantissa else mantissa + ".0"
            exponent = exponent if exponent[0] in "+-" else "+" + exponent
            text = f"{mantissa}e{exponent}"
        return text
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _YAML11_WORDS:
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write a {type(value).__name__} into params.yaml: {value!r}")


def yaml_flow(value: Any) -> str:
    """``value`` as one YAML token: a scalar (:func:`yaml_scalar`), a one-line ``[a, b]`` list
    or a one-line ``{key: value}`` mapping (keys are plain names; values nest)."""
    if isinstance(value, list):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _PLAIN.match(key):
                raise ValueError(f"cannot write the mapping key {key!r} into params.yaml")
        return "{" + ", ".join(f"{k}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    return yaml_scalar(value)


def read_best_params(path: str | Path) -> dict[str, Any]:
    """The ``best_params.yaml`` of a sweep; its ``params`` maps full dotted keys to values.

    Raises:
        ValueError: the file is missing or malformed.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"{p} not found: run the sweep first (`dvc repro tune/dvc.yaml` or `s2ssl tune`), or "
            "pass --best with the file's path"
        )
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is not valid YAML: {e}") from None
    values = doc.get("params") if isinstance(doc, dict) else None
    if not isinstance(values, dict) or not values:
        raise ValueError(f"{p} has no `params` mapping of dotted keys to values")
    for key, value in values.items():
        scalars = isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)
        if not isinstance(key, str) or (isinstance(value, list) and not scalars):
            raise ValueError(
                f"{p}: `params` must map dotted keys to single values, lists of them, or (for a "
                f"section that is null in params.yaml) a mapping; got {key!r}"
            )
    return doc


def _value_node(root: Any, key: str, source: Path, *, mapping_over_null: bool = False) -> Any:
    """The ruamel node of ``key``'s value (a ScalarNode), or ValueError naming what is missing.

    ``mapping_over_null``: the new value is a mapping, which may only replace a ``null`` (an
    optional section that is off)."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    node = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, MappingNode):
            where = ".".join(parts[:i]) or "the top level"
            raise ValueError(f"{key}: {where} in {source} is not a mapping")
        found = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
        if not found:
            missing = ".".join(parts[: i + 1])
            raise ValueError(
                f"{key} does not exist in {source} ({missing} is missing); apply only changes "
                "existing keys: add it to params.yaml first, or re-run the sweep if the file "
                "changed since"
            )
        node = found[0]
    if mapping_over_null:
        if not (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
            raise ValueError(
                f"{key}: a mapping replaces only a section that is null in {source} (an "
                "optional section that is off); set its keys one by one instead"
            )
        return node
    if isinstance(node, SequenceNode) and node.flow_style:
        return node  # a one-line list, e.g. fractions: [0.01, 1.0]
    if not isinstance(node, ScalarNode):
        raise ValueError(
            f"{key} in {source} is a mapping or a multi-line list, not a single value or a "
            "one-line [a, b] list"
        )
    return node


def _splice(text: str, start: int, end: int, token: str) -> str:
    """Replace ``text[start:end]`` by ``token``; keep a following ``# comment`` in its column."""
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[end:line_end]
    stripped = rest.lstrip(" ")
    if stripped.startswith("#"):
        gap = len(rest) - len(stripped)
        gap = max(1, gap - (len(token) - (end - start)))
        return text[:start] + token + " " * gap + stripped + text[line_end:]
    return text[:start] + token + text[end:]


def apply_best_params(
    best_path: str | Path, params_path: str | Path = "params.yaml", *, dry_run: bool = False
) -> list[Change]:
    """Write the best values of ``best_path`` into ``params_path``; returns what changed.

    Keys whose value is already the best one are left alone (and not returned). With
    ``dry_run`` nothing is written.

    Raises:
        ValueError: ``best_path`` missing or malformed, a key missing from ``params_path``.
        ConfigError: the new values do not validate (nothing is written).
    """
    from ruamel.yaml import YAML

    target = Path(params_path)
    if not target.is_file():
        raise ValueError(f"params file not found: {target} (pass --params)")
    best: Mapping[str, Any] = read_best_params(best_path)["params"]
    text = target.read_text(encoding="utf-8")
    root = YAML(typ="rt").compose(text)
    if root is None:
        raise ValueError(f"{target} is empty")
    old_raw = yaml.safe_load(text)
    expected = yaml.safe_load(text)
    edits: list[tuple[int, int, str]] = []
    changes: list[Change] = []
    for key, new in best.items():
        node = _value_node(root, key, target, mapping_over_null=isinstance(new, dict))
        current: Any = old_raw
        for part in key.split("."):
            current = current[part]
        set_dotted(expected, key, new)
        if type(current) is type(new) and current == new:
            continue
        token = yaml_flow(new)
        edits.append((node.start_mark.index, node.end_mark.index, token))
        changes.append(Change(key, current, new))
    for start, end, token in sorted(edits, reverse=True):
        text = _splice(text, start, end, token)
    if yaml.safe_load(text) != expected:  # pragma: no cover - a bug in the splicing, not input
        raise RuntimeError(f"editing {target} did not give the intended values; nothing written")
    parse_params(expected, source=str(target))
    if changes and not dry_run:
        write_text_atomic(target, text)
    return changes
