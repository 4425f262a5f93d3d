"""Run one ``s2ssl`` command and record the library code it loaded and the params it read.

Usage (what the pipeline test puts in place of ``s2ssl`` in each dvc.yaml command)::

    python stage_probe.py RECORD_DIR <s2ssl arguments ...>

On exit — success or failure — it writes ``RECORD_DIR/<sha1 of the arguments>.json``:

- ``argv``: the ``s2ssl`` arguments;
- ``modules``: every ``s2ssl`` module in ``sys.modules``, with its file relative to ``src/``;
- ``params``: the dotted ``params.yaml`` keys the command read. A key is recorded when a field of
  a :class:`s2ssl.config.Params` tree is read and its value is not itself a section, or when a
  section is serialised whole (``model_dump`` / ``model_dump_json``): then the section's key is
  recorded. Reading ``params.pretrain.seco.lr`` records ``pretrain.seco.lr`` only. Reads while
  a model is being validated (cross-section checks of ``load_params``) are not the command's
  reads and are not recorded, nor is the copy that ``override_params`` makes of the whole tree to
  apply overrides; a ``model_copy`` of a recorded section keeps its key.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pydantic


class ParamsRecorder:
    """Records which fields of a ``Params`` tree are read, by dotted path."""

    def __init__(self, root_type: type[pydantic.BaseModel]) -> None:
        self.root_type = root_type
        self.read: set[str] = set()
        self._paths: dict[int, str] = {}
        self._alive: list[pydantic.BaseModel] = []  # ids stay unique while recorded
        self.validating = 0

    def path_of(self, model: pydantic.BaseModel) -> str | None:
        path = self._paths.get(id(model))
        if path is None and type(model) is self.root_type:
            path = self._remember(model, "")
        return path

    def _remember(self, model: pydantic.BaseModel, path: str) -> str:
        self._paths[id(model)] = path
        self._alive.append(model)
        return path

    def field_read(self, model: pydantic.BaseModel, name: str, value: Any) -> None:
        if self.validating:
            return
        path = self.path_of(model)
        field = type(model).model_fields.get(name)
        if path is None or field is None:
            return
        yaml_name = field.alias or name
        key = f"{path}.{yaml_name}" if path else yaml_name
        if isinstance(value, pydantic.BaseModel):
            self._remember(value, key)
        else:
            self.read.add(key)

    def copied(self, model: pydantic.BaseModel, copy: pydantic.BaseModel) -> None:
        path = self.path_of(model)
        if path is not None:
            self._remember(copy, path)

    def dumped(self, model: pydantic.BaseModel) -> None:
        if self.validating:
            return
        path = self.path_of(model)
        if path:
            self.read.add(path)
        elif path == "":
            self.read.update(f.alias or n for n, f in type(model).model_fields.items())

    def not_reading(self, function: Any) -> Any:
        """``function`` with recording suspended while it runs."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.validating += 1
            try:
                return function(*args, **kwargs)
            finally:
                self.validating -= 1

        return wrapper

    def install(self) -> None:
        recorder = self
        base = pydantic.BaseModel
        get = base.__getattribute__
        dump, dump_json = base.model_dump, base.model_dump_json
        init, validate, copy = base.__init__, base.model_validate.__func__, base.model_copy

        def model_copy(self: pydantic.BaseModel, *args: Any, **kwargs: Any) -> Any:
            out = copy(self, *args, **kwargs)
            recorder.copied(self, out)
            return out

        def getattribute(self: pydantic.BaseModel, name: str) -> Any:
            value = get(self, name)
            if not name.startswith("_"):
                recorder.field_read(self, name, value)
            return value

        def model_dump(self: pydantic.BaseModel, *args: Any, **kwargs: Any) -> Any:
            recorder.dumped(self)
            return dump(self, *args, **kwargs)

        def model_dump_json(self: pydantic.BaseModel, *args: Any, **kwargs: Any) -> Any:
            recorder.dumped(self)
            return dump_json(self, *args, **kwargs)

        base.__init__ = recorder.not_reading(init)  # type: ignore[method-assign]
        base.model_validate = classmethod(recorder.not_reading(validate))  # type: ignore[method-assign, assignment]
        base.model_copy = model_copy  # type: ignore[method-assign]
        base.__getattribute__ = getattribute  # type: ignore[method-assign]
        base.model_dump = model_dump  # type: ignore[method-assign]
        base.model_dump_json = model_dump_json  # type: ignore[method-assign]


def loaded_s2ssl_modules() -> dict[str, str]:
    """``{module name: file relative to src/}`` of every loaded ``s2ssl`` module."""
    out: dict[str, str] = {}
    for name, module in sorted(sys.modules.items()):
        if name != "s2ssl" and not name.startswith("s2ssl."):
            continue
        file = getattr(module, "__file__", None)
        if file is None:
            continue
        parts = Path(file).resolve().parts
        out[name] = "/".join(parts[len(parts) - 1 - parts[::-1].index("s2ssl") :])
    return out


def main() -> None:
    record_dir = Path(sys.argv[1])
    args = sys.argv[2:]
    import s2ssl.config as config

    recorder = ParamsRecorder(config.Params)
    recorder.install()
    override = recorder.not_reading(config.override_params)
    for module in {config, sys.modules[config.override_params.__module__]}:
        module.override_params = override

    def write_record() -> None:
        record_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(json.dumps(args).encode()).hexdigest()
        record = {
            "argv": args,
            "modules": loaded_s2ssl_modules(),
            "params": sorted(recorder.read),
        }
        (record_dir / f"{name}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

    atexit.register(write_record)
    from s2ssl.cli import app

    sys.argv = ["s2ssl", *args]
    app()


if __name__ == "__main__":
    main()
