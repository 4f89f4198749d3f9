"""One description of a service's configuration: a pydantic-settings model whose fields give the
command-line flags, the environment variables and their validation.

A field ``resume_grace_s: float = Field(30.0, description="…, s")`` of a model with
``service = "recorder"`` becomes the flag ``--resume-grace-s`` and the variable
``RTVOICE_RECORDER_RESUME_GRACE_S``. :class:`Opt` (in ``Annotated``) renames the flag, gives the
variable names already in use instead, or keeps a field off the command line. A flag on the command line
beats a variable, a variable beats the default; an empty variable counts as unset (a chart may render
empty values). Errors name the flag or the variable the bad value came from::

    class RecorderSettings(ServerSettings):
        service: ClassVar[str] = "recorder"
        mongo_uri: Annotated[str | None, Opt(env=("RTVOICE_MONGO_URI",), own_env=False)] = Field(
            None, description="mongodb:// URI")

    RecorderSettings.add_arguments(parser)           # in register()
    cfg = RecorderSettings.from_args(args)           # in main(); raises ConfigError

The flags every server shares (``--host``, ``--port``, ``--log-level``, metrics, the internal token) are
models too, in :mod:`rtvoice.core.server_settings`.
"""

from __future__ import annotations

import argparse
import json
import os
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin

from pydantic import ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

#: Namespace attribute holding the ``dest`` of every flag given on the command line.
GIVEN = "_rtvoice_given_flags"


class ConfigError(ValueError):
    """A configuration value that cannot be used; each part names the flag or variable and the problem."""


@dataclass(frozen=True, slots=True)
class Opt:
    """How one field appears outside Python.

    ``flag``: the long option (default ``--<field-name-in-kebab-case>``); ``short``: e.g. ``-f``;
    ``aliases``: older option names still accepted (``--chat-url`` for ``--llm-url``);
    ``env``: further variable names, read after the field's own ``RTVOICE_<SERVICE>_<FIELD>`` (or instead
    of it with ``own_env=False``); ``cli=False``: read from the environment only (secrets);
    ``parse``: turns a flag's or variable's text into the value (default: by the field's type, JSON for
    mappings); ``switch=True``: a bool field is one flag that turns it on (``--no-auth``), not a
    ``--x/--no-x`` pair; ``choices``: the values a text field accepts (a ``Literal`` field has them
    already); ``default_text``: the default as ``--help`` shows it; ``metavar``; ``group``:
    the ``--help`` section.
    """

    flag: str | None = None
    short: str | None = None
    aliases: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    own_env: bool = True
    cli: bool = True
    parse: Callable[[str], Any] | None = None
    switch: bool = False
    choices: tuple[str, ...] = ()
    default_text: str | None = None
    metavar: str | None = None
    group: str | None = None


_NO_OPT = Opt()


def option_of(field: FieldInfo) -> Opt:
    """The :class:`Opt` attached to ``field`` (defaults when none)."""
    return next((m for m in field.metadata if isinstance(m, Opt)), _NO_OPT)


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (a variable or flag holding a list)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if get_origin(annotation) is Annotated:
        return _strip_optional(get_args(annotation)[0])
    return annotation


def _is_complex(annotation: Any) -> bool:
    base = _strip_optional(annotation)
    return get_origin(base) in (dict, list, tuple, set) or base in (dict, list)


def _mark_given(namespace: argparse.Namespace, dest: str) -> None:
    given = set(getattr(namespace, GIVEN, ()))
    given.add(dest)
    setattr(namespace, GIVEN, given)


class _Store(argparse.Action):
    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        _mark_given(namespace, self.dest)


class _Append(argparse.Action):
    """Repeatable flag: the values given replace the default list (they are not added to it)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        before = getattr(namespace, self.dest, None) if self.dest in getattr(namespace, GIVEN, ()) else None
        setattr(namespace, self.dest, [*(before or []), values])
        _mark_given(namespace, self.dest)


class _Switch(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("type", None)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, True)
        _mark_given(namespace, self.dest)


class _Bool(argparse.BooleanOptionalAction):
    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        super().__call__(parser, namespace, values, option)
        _mark_given(namespace, self.dest)


class _Environment(PydanticBaseSettingsSource):
    """Values of the fields' variables in ``environ`` (``os.environ`` by default)."""

    def __init__(self, settings_cls: type[ServiceSettings], environ: Mapping[str, str] | None = None) -> None:
        super().__init__(settings_cls)
        self.model = settings_cls
        self.environ = os.environ if environ is None else environ
        self.origin: dict[str, str] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for name in self.model.env_names(field_name):
            raw = self.environ.get(name)
            if raw:
                return raw, name, _is_complex(field.annotation)
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.model.model_fields.items():
            raw, name, complex_ = self.get_field_value(field, field_name)
            if raw is None:
                continue
            parse = option_of(field).parse
            try:
                values[field_name] = parse(raw) if parse else (json.loads(raw) if complex_ else raw)
            except ValueError as err:
                raise self.model.config_error(f"${name}: cannot parse {raw!r}: {err}") from None
            self.origin[field_name] = f"${name}"
        return values


def flag_of(field_name: str, field: FieldInfo) -> str:
    """The long option of a field: ``Opt.flag`` or ``--kebab-case-name``."""
    return option_of(field).flag or "--" + field_name.replace("_", "-")


#: Units by field-name suffix: the ``--help`` placeholder of a number field says its unit.
_UNIT_METAVARS = (
    ("_per_s", "PER_SECOND"),
    ("_ms", "MS"),
    ("_s", "SECONDS"),
    ("_bytes", "BYTES"),
    ("_mib", "MIB"),
    ("_port", "PORT"),
)
_PATH_METAVARS = (("_dir", "DIR"), ("_file", "FILE"))


def _argument_kwargs(name: str, field: FieldInfo) -> dict[str, Any]:
    base = _strip_optional(field.annotation)
    opt = option_of(field)
    if field.is_required():  # a required field is a required flag (no variable can stand in for it)
        kwargs: dict[str, Any] = {"required": True, "action": _Store}
    else:
        kwargs = {"default": field.get_default(call_default_factory=True), "action": _Store}
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    elif base in (int, float, Path):
        units = _PATH_METAVARS if base is Path else _UNIT_METAVARS
        unit = next((u for suffix, u in units if name.endswith(suffix)), None)
        if unit:
            kwargs["metavar"] = unit
    if opt.parse:
        kwargs["type"] = str  # parsed by from_args, so that an error names the flag in one line
    elif base is bool:
        kwargs["action"] = _Switch if opt.switch else _Bool
    elif get_origin(base) is Literal:
        kwargs["choices"] = [str(c) for c in get_args(base)]
    elif opt.choices:
        kwargs["choices"] = list(opt.choices)
    elif get_origin(base) is list and get_args(base) and get_args(base)[0] in (str, Path):
        kwargs["action"] = _Append
        kwargs["type"] = get_args(base)[0]
    elif _is_complex(base):
        kwargs["type"] = json.loads
        kwargs.setdefault("metavar", "JSON")
    elif base in (int, float, str, Path):
        kwargs["type"] = base
    return kwargs


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


class ServiceSettings(BaseSettings):
    """Base of every service's configuration model (see the module docstring).

    Class variables: ``service`` names the ``RTVOICE_<SERVICE>_…`` variables; ``shared_env = True`` on a
    model makes the fields it declares ``RTVOICE_<FIELD>`` in every service that uses it;
    ``config_error`` is the exception :meth:`from_args` raises. Constructing the model directly
    (``RecorderSettings()``) reads the process environment too, unless ``env_on_init = False`` (then it
    takes the given values only); :meth:`from_args` adds parsed flags.
    """

    service: ClassVar[str] = ""
    shared_env: ClassVar[bool] = False
    config_error: ClassVar[type[ConfigError]] = ConfigError
    env_on_init: ClassVar[bool] = True
    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="after")
    def _in_choices(self) -> Self:
        for name, field in type(self).model_fields.items():
            choices, value = option_of(field).choices, getattr(self, name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{flag_of(name, field)}: {value!r} is not one of {', '.join(choices)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(cls)) if cls.env_on_init else (init_settings,)

    @classmethod
    def env_names(cls, field_name: str) -> list[str]:
        """The variables ``field_name`` is read from, in order; the first one set wins."""
        opt = option_of(cls.model_fields[field_name])
        declaring = next((k for k in cls.__mro__ if field_name in vars(k).get("__annotations__", {})), cls)
        own: list[str] = []
        if opt.own_env and getattr(declaring, "shared_env", False):
            own = [f"RTVOICE_{field_name.upper()}"]
        elif opt.own_env and cls.service:
            own = [f"RTVOICE_{cls.service.upper().replace('-', '_')}_{field_name.upper()}"]
        return own + list(opt.env)

    @classmethod
    def all_env_names(cls) -> set[str]:
        """Every variable this configuration reads."""
        return {name for field in cls.model_fields for name in cls.env_names(field)}

    @classmethod
    def cli_fields(cls) -> Iterator[tuple[str, FieldInfo]]:
        """(field name, field) of every field that has a flag: the model's own first, then those of its
        bases in method resolution order (``--help`` lists them so)."""
        seen: set[str] = set()
        for klass in cls.__mro__:
            for name in vars(klass).get("__annotations__", {}):
                field = cls.model_fields.get(name)
                if field is not None and name not in seen and option_of(field).cli:
                    seen.add(name)
                    yield name, field

    @classmethod
    def flags(cls) -> set[str]:
        """Every long and short option of this configuration (``--no-x`` included for switches)."""
        out: set[str] = set()
        for name, field in cls.cli_fields():
            flag, opt = flag_of(name, field), option_of(field)
            out |= {flag, *opt.aliases} | ({opt.short} if opt.short else set())
            if _strip_optional(field.annotation) is bool and not (opt.parse or opt.switch):
                out.add("--no-" + flag[2:])
        return out

    @classmethod
    def _help(cls, field_name: str, field: FieldInfo) -> str:
        opt = option_of(field)
        text = field.description or ""
        default = field.get_default(call_default_factory=True)
        if opt.default_text is not None:
            text += f" (default {opt.default_text})"
        elif isinstance(default, bool):
            text += f" (default {'on' if default else 'off'})"
        elif default not in (None, PydanticUndefined, "", [], {}):
            text += f" (default {default})"
        names = cls.env_names(field_name)
        if names:
            text += f" [env {' or '.join('$' + n for n in names)}]"
        return text.replace("%", "%%")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, skip: Sequence[str] = ()) -> None:
        """Declare one flag per field on ``parser`` (fields with ``Opt.group`` go in that section);
        ``skip``: field names declared elsewhere.

        The namespace gets every field's default, and the names of the flags actually given (so that
        :meth:`from_args` lets a variable beat a default but never a given flag).
        """
        groups: dict[str, Any] = {}
        for name, field in cls.cli_fields():
            if name in skip:
                continue
            opt = option_of(field)
            target: Any = parser
            if opt.group:
                if opt.group not in groups:
                    groups[opt.group] = parser.add_argument_group(opt.group)
                target = groups[opt.group]
            flags = [*([opt.short] if opt.short else []), flag_of(name, field), *opt.aliases]
            target.add_argument(
                *flags, dest=name, help=cls._help(name, field), **_argument_kwargs(name, field)
            )

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace | None = None,
        environ: Mapping[str, str] | None = None,
        **given: Any,
    ) -> Self:
        """The configuration from the flags given in ``args``, then the variables of ``environ`` (default
        ``os.environ``), then the defaults; ``given`` (field values, ``None`` = not given) beats all.

        Raises :attr:`config_error` (a :class:`ConfigError`) naming the flag or variable of each bad value.
        """
        env = _Environment(cls, environ)
        values = env()
        origin = dict(env.origin)
        flags_given: set[str] = getattr(args, GIVEN, set()) if args is not None else set()
        for name, field in cls.cli_fields():
            if name in flags_given:
                values[name] = cls._flag_value(name, field, getattr(args, name))
                origin[name] = flag_of(name, field)
        for name, value in given.items():
            if value is not None:
                values[name] = value
                origin[name] = name
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise cls.config_error("; ".join(cls._describe(e, origin) for e in err.errors())) from None

    @classmethod
    def _flag_value(cls, name: str, field: FieldInfo, value: Any) -> Any:
        parse = option_of(field).parse
        if parse is None or not isinstance(value, str):
            return value
        try:
            return parse(value)
        except ValueError as err:
            raise cls.config_error(f"{flag_of(name, field)}: {err}") from None

    @classmethod
    def _describe(cls, error: Any, origin: dict[str, str]) -> str:
        head = str(error["loc"][0]) if error["loc"] else ""
        if not head:
            return _message(error["msg"])
        where = origin.get(head) or (
            flag_of(head, cls.model_fields[head]) if head in cls.model_fields else head
        )
        return f"{where}: {_message(error['msg'])}"
