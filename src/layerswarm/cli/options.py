"""Click options generated from config dataclasses, so help text lives in one place."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import click

from ..config_utils import leaf_fields, set_dotted


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return tp, False


class FieldOption(click.Option):
    """An option generated from a dataclass field: ``config_field`` is (class, dotted key of the
    field in it, e.g. ``optim.lr``), so that its default can be checked against the field's
    (tests/test_cli_defaults.py)."""

    def __init__(self, *args: Any, config_field: tuple[type, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config_field = config_field


class CommaList(click.ParamType):
    """A list field as one option: ``0,0.3,1,3``."""

    name = "list"

    def __init__(self, item: type) -> None:
        self.item = item

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list:
        if isinstance(value, list):
            return value
        try:
            return [self.item(x) for x in str(value).replace(" ", "").split(",") if x]
        except ValueError:
            kind = "numbers" if self.item in (int, float) else f"{self.item.__name__} values"
            self.fail(f"{value!r} is not a list of {kind}: give them comma-separated, e.g. 0,0.3,1,3", param, ctx)


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def dataclass_options(
    cls: type,
    include: Iterable[str] | None = None,
    prefix: str = "",
    rename: dict[str, str] | None = None,
    choices: dict[str, Iterable[str]] | None = None,
    minimum: dict[str, float] | None = None,
    maximum: dict[str, float] | None = None,
    exclude: Iterable[str] = (),
    help_prefix: str = "",
) -> Callable:
    """A decorator adding one ``--option`` per setting in ``include`` (default: every setting
    but those in ``exclude``), with the field's default and help text.

    A setting inside a group (``TrainConfig.optim.lr``) is named as before the groups, by its
    flat key (``lr``: :func:`~layerswarm.config_utils.leaf_fields`), which the arguments below
    use too. The option's value arrives as keyword ``{prefix}{name}``; use :func:`pop_config` to
    build the dataclass back from the keywords. ``rename[name]``: the option's name if not the
    setting's; ``choices[name]``: the values allowed (shown in ``--help``, checked before the
    command runs); ``minimum[name]`` and ``maximum[name]``: the range of numbers allowed;
    ``help_prefix``: put before every help text.
    """
    choices = {k: tuple(v) for k, v in (choices or {}).items()}
    minimum, maximum = minimum or {}, maximum or {}
    fields = {name: (path, owner, f) for name, path, owner, f in leaf_fields(cls)}
    names = [n for n in (fields if include is None else include) if n not in set(exclude)]
    rename = rename or {}

    def decorate(func: Callable) -> Callable:
        for name in reversed(names):
            path, owner, f = fields[name]
            flag = "--" + rename.get(name, name).replace("_", "-")
            dest = f"{prefix}{name}"
            tp, optional = _base_type(typing.get_type_hints(owner)[f.name])
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = help_prefix + f.metadata.get("help", "")
            common = {"cls": FieldOption, "config_field": (cls, path), "help": help_text}
            if tp is bool:
                negative = "--no-" + flag[2:]
                option = click.option(f"{flag}/{negative}", dest, default=default, show_default=True, **common)
            else:
                if typing.get_origin(tp) is list:  # "0,0.3,1,3"
                    tp = CommaList((typing.get_args(tp) or (str,))[0])
                elif name in choices:
                    tp = click.Choice(choices[name])
                elif name in minimum or name in maximum:
                    low, high = minimum.get(name), maximum.get(name)
                    if tp is int:
                        tp = click.IntRange(_whole(low), _whole(high))
                    else:
                        tp = click.FloatRange(low, high)
                option = click.option(flag, dest, type=tp, default=default, show_default=default is not None, **common)
            func = option(func)
        return func

    return decorate


def pop_config(cls: type, kwargs: dict[str, Any], prefix: str = "", **overrides: Any) -> Any:
    """Build ``cls`` from the keywords a :func:`dataclass_options` decorator produced, and
    ``overrides`` (by field or flat name: ``seed=``, ``epochs=``).

    A class with a ``for_recipe`` constructor (``TrainConfig``) and a ``recipe`` keyword is built
    from that recipe: options left at their default take the recipe's value, options the user
    gave (on the command line or from a config file) override it."""
    ctx = click.get_current_context(silent=True)
    recipe_aware = hasattr(cls, "for_recipe") and f"{prefix}recipe" in kwargs

    def given(key: str) -> bool:
        source = ctx.get_parameter_source(key) if ctx is not None else None
        return source is not None and source != click.core.ParameterSource.DEFAULT

    values = {}
    for name, path, _owner, _field in leaf_fields(cls):
        key = f"{prefix}{name}"
        if key in kwargs:
            value = kwargs.pop(key)
            if not recipe_aware or name == "recipe" or given(key):
                values[path] = value
    values.update({cls.current_key(k): v for k, v in overrides.items()})  # type: ignore[attr-defined]
    if recipe_aware:
        recipe = values.pop("recipe")
        return cls.for_recipe(recipe, **values)  # type: ignore[attr-defined]  # recipe_aware
    settings = cls().to_dict()
    for path, value in values.items():
        set_dotted(settings, path, value)
    return cls.from_dict(settings)  # type: ignore[attr-defined]  # a JsonConfig


def default_recipe_for_model(kw: dict[str, Any], model_name: str, key: str = "train_recipe") -> None:
    """A text model run without ``--recipe`` trains with the ``bert`` recipe, the one BERT users
    recognise: on the text benchmark it beats the paper's SGD on full fine-tuning (+3.1 points)
    and loses on the linear probe (-3.1) and last-k (-1.1, within noise; docs/results/text.md).
    Image models keep ``default``; a recipe given on the command line, a preset or a file wins."""
    from ..models.config import is_text_model

    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(key) if ctx is not None else None
    chosen = source is not None and source != click.core.ParameterSource.DEFAULT
    if kw.get(key) == "default" and not chosen and is_text_model(model_name):
        kw[key] = "bert"
