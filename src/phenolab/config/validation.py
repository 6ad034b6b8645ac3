"""`validate`: pydantic's errors turned into one-line `Problem`s naming the path, value and allowed keys."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from phenolab.config.errors import ConfigError, Problem
from phenolab.config.families import Spec, family_of


def validate(cls: type[Spec], data: dict[str, Any]) -> Any:
    """Validate `data` against `cls`, turning pydantic's errors into a one-line-each ConfigError."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(cls, data, err)) from None



def _explain(cls: type[Spec], data: dict[str, Any], err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        loc = [p for p in loc if not p.startswith(("function-", "union["))]
        path = ".".join(loc) if loc else "(config)"
        kind, msg = e["type"], e["msg"]
        got = e.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(cls, data, loc[:-1])
            hint = difflib.get_close_matches(loc[-1], allowed, n=1)
            reason = "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
            problems.append(Problem(path, reason, allowed=tuple(sorted(allowed)) or None))
            continue
        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                  "less_than_equal": "<="}[kind]
            bound = next(iter(e.get("ctx", {}).values()), "?")
            problems.append(Problem(path, f"must be {op} {bound}", got))
            continue
        if kind == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            problems.append(Problem(path, f"must be one of {expected}", got))
            continue
        if kind == "value_error":
            msg = msg.removeprefix("Value error, ")
            if loc and msg.startswith("kind: "):  # a family's kind check (`SpecFamily`)
                problems.append(Problem(f"{path}.kind", msg.removeprefix("kind: ")))
                continue
            named = _named_field(loc, msg)
            if named is not None:  # a model-level check whose message starts with the dotted field
                problems.append(named)
                continue
            if "got" in msg or isinstance(got, dict):  # the message says it, or the input is a whole block
                problems.append(Problem(path, msg))
                continue
        elif kind == "missing":
            problems.append(Problem(path, "required but missing"))
            continue
        problems.append(Problem(path, msg[0].lower() + msg[1:], got))
    return problems


def _named_field(loc: list[str], msg: str) -> Problem | None:
    """The problem of a model-level check whose message starts with the field it blames, written
    from the block's owner: ``train.batch_size: ...`` (a validator of `TrainSpec`). At the top
    (empty `loc`) the path is the message's; in a nested block (``loc`` = ``["train"]``, or
    ``["toy", "train"]``) the message's first part names that block, so the path is `loc` and
    the rest of the message's path (never ``train.train.batch_size``)."""
    match = re.match(r"^([a-z_][a-z_.0-9]*): (.*)$", msg, re.DOTALL)
    if match is None:
        return None
    head = match.group(1).split(".")
    if not loc:
        return Problem(".".join(head), match.group(2))
    if len(head) > 1 and head[0] == loc[-1]:
        return Problem(".".join(loc + head[1:]), match.group(2))
    return None



def _allowed_keys(cls: type[BaseModel], data: dict[str, Any], loc: list[str]) -> list[str]:
    """The field names allowed at dotted location `loc` under `cls` (best effort)."""
    model: Any = cls
    node: Any = data
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        if part.isdigit() or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation, node, field.metadata)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any, node: Any, metadata: Any = ()) -> Any:
    import typing

    family = family_of(annotation, metadata)
    if family is not None:
        kind = node.get("kind", family.default) if isinstance(node, dict) else family.default
        try:
            return family.get(kind) if isinstance(kind, str) else None
        except ConfigError:
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    models = []
    for a in args:
        sub = _model_of(a, node)
        if sub is not None:
            models.append(sub)
    if len(models) > 1 and isinstance(node, dict):  # discriminated union: pick by kind
        for m in models:
            kind_field = m.model_fields.get("kind")
            if kind_field is not None and kind_field.default == node.get("kind"):
                return m
    return models[0] if models else None
