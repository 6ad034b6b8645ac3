"""A safe evaluator for 1-D target expressions such as ``sin(x) + 0.5*abs(x)``.

The expression is parsed with `ast` and walked node by node on torch tensors; nothing is
passed to `eval`. Allowed: the names x, pi, e; numbers; + - * / // % ** and unary -, +;
comparisons (< <= > >= == !=, giving 0/1 floats); calls of the functions in `FUNCTIONS`.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, cast

import torch
from torch import Tensor

from phenolab.config import ConfigError, Problem


def _where(cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(cond != 0, a, b)


def _clip(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return torch.minimum(torch.maximum(x, low), high)


FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "tanh": torch.tanh,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "arctan": torch.atan,
    "sign": torch.sign,
    "floor": torch.floor,
    "where": _where,
    "minimum": torch.minimum,
    "maximum": torch.maximum,
    "clip": _clip,
}
CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE = {
    ast.Lt: torch.lt,
    ast.LtE: torch.le,
    ast.Gt: torch.gt,
    ast.GtE: torch.ge,
    ast.Eq: torch.eq,
    ast.NotEq: torch.ne,
}


class ExpressionError(Exception):
    """Why an expression is not allowed (turned into a ConfigError by `compile_expression`)."""


def compile_expression(expr: str) -> Callable[[Tensor], Tensor]:
    """y = expr(x), checked for allowed syntax now; a ConfigError names data.expr otherwise.

    The returned function maps a tensor x to a tensor of x's shape and dtype.
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise _config_error(f"not a valid expression ({err.msg})", expr) from None
    except (RecursionError, MemoryError):
        raise _config_error("too deeply nested", expr) from None
    try:
        _check(tree.body)
    except RecursionError:
        raise _config_error("too deeply nested", expr) from None
    except ExpressionError as err:
        raise _config_error(str(err), expr) from None

    def target(x: Tensor) -> Tensor:
        try:
            y = _eval(tree.body, x)
        except (TypeError, RuntimeError, ValueError, OverflowError) as err:
            raise _config_error(f"cannot be evaluated ({err})", expr) from None
        try:
            return torch.broadcast_to(y.to(x.dtype), x.shape).clone()
        except RuntimeError:
            raise _config_error(f"gives shape {tuple(y.shape)}, not the shape of x {tuple(x.shape)}", expr) from None

    return target


def _config_error(reason: str, expr: str) -> ConfigError:
    return ConfigError([Problem("data.expr", f"{reason}, got {expr!r}")])  # the whole expression, never shortened


def _check(node: ast.AST) -> None:
    """Raise ExpressionError at the first node outside the allowed grammar."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants, not {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id != "x" and node.id not in CONSTANTS:
            what = "a function, call it" if node.id in FUNCTIONS else "not allowed"
            raise ExpressionError(f"name {node.id!r} is {what} (names: x, {', '.join(CONSTANTS)})")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ExpressionError(f"comparison {type(op).__name__} is not allowed")
        for child in (node.left, *node.comparators):
            _check(child)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"function {name!r} is not allowed (functions: {', '.join(FUNCTIONS)})")
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed in {node.func.id}()")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError("starred arguments are not allowed")
            _check(arg)
    else:
        raise ExpressionError(f"{type(node).__name__} is not allowed")


def _eval(node: ast.AST, x: Tensor) -> Tensor:
    """Value of an already checked node, as a tensor of x's dtype."""
    if isinstance(node, ast.Constant):
        return torch.tensor(float(cast(float, node.value)), dtype=x.dtype)
    if isinstance(node, ast.Name):
        return x if node.id == "x" else torch.tensor(CONSTANTS[node.id], dtype=x.dtype)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, x), _eval(node.right, x))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, x))
    if isinstance(node, ast.Compare):
        # a < b < c means (a < b) and (b < c), as in Python and numpy's chained logic
        left = _eval(node.left, x)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, x)
            step = _COMPARE[type(op)](left, right)
            result = step if result is None else result & step
            left = right
        assert result is not None  # a comparison has at least one operator
        return result.to(x.dtype)
    assert isinstance(node, ast.Call)
    return FUNCTIONS[cast(ast.Name, node.func).id](*(_eval(arg, x) for arg in node.args))
