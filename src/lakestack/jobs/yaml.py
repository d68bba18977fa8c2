"""Load YAML into pydantic models with errors that point at the file, line and column.

Nothing here knows about jobs: the job spec uses it today and the bundle loader will reuse it.
The flow is `read_source` (a path or YAML text) -> `parse_yaml` (safe loading into plain
dicts, lists and scalars, with a line/column mark for every node) -> `validate_document`
(pydantic validation; every error mapped back to the line it came from). A problem reads like
a compiler message, one per line:

    jobs/train.yml:17:9: tasks[1].depends_on[0].task_key: no task 'trian' in this job (tasks: ingest, train)

The mark is the key of the offending entry (a list item: the item itself). When a required key
is missing, it is the mapping that should hold it.

Loading is safe only: no Python tags, no custom tags, and only the plain YAML scalar types (str,
int, float, bool, null). Dates are left as strings: a spec holds no dates, and `2024-01-01`
written as a default must come back as the same text. Duplicate keys in a mapping are an error
(YAML says they are; PyYAML would silently keep the last one). Keys are read as text: `on:` is
the key 'on', not the boolean YAML 1.1 makes of it. Merge keys (`<<: *defaults`) work.

Model validators that check several fields together report problems at precise locations with
`raise_problems`, which raises one pydantic ValidationError holding a line error per problem;
pydantic nests their locations under the model's own, so they map to lines like any other error.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from lakestack.errors import LakestackError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
#: Builds the error to raise from the whole message and its problem lines (e.g. InvalidJobSpec).
ErrorFactory = Callable[[str, Sequence[str]], LakestackError]

#: A spec is small; more nodes than this means an alias bomb (`&a [*a, *a, ...]`), not a job.
MAX_NODES = 100_000
PROBLEM_TYPE = "spec_problem"

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "tuple", "set"}


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column in a YAML source."""

    line: int
    column: int


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (source, mark, field path) and what is wrong."""

    source: str
    mark: Mark | None
    loc: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.mark is None else f"{self.source}:{self.mark.line}:{self.mark.column}"
        return f"{where}: {self.loc}: {self.message}" if self.loc else f"{where}: {self.message}"


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML: plain data plus the mark of every node, keyed by its path in the data."""

    source: str
    data: Any
    marks: Mapping[Loc, Mark]

    def mark(self, loc: Loc) -> Mark:
        """The mark of `loc`, else of its nearest ancestor that exists (line 1 for the root)."""
        for end in range(len(loc), -1, -1):
            found = self.marks.get(loc[:end])
            if found is not None:
                return found
        return Mark(1, 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_source(path_or_text: str | Path, error: ErrorFactory) -> tuple[str, str]:
    """Return `(text, source name)`.

    A `Path`, or a one-line string ending in `.yml`/`.yaml`, is a file to read; any other
    string is YAML text, named `<string>` in messages.
    """
    if isinstance(path_or_text, str) and (
        "\n" in path_or_text or not path_or_text.strip().endswith((".yml", ".yaml"))
    ):
        return path_or_text, "<string>"
    path = Path(path_or_text)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        message = f"{path}: no such file. Check the path (relative paths start from {Path.cwd()})."
    except (OSError, UnicodeDecodeError) as exc:
        message = f"{path}: cannot read the file: {exc}"
    raise error(message, [message])


def parse_yaml(text: str, source: str, error: ErrorFactory) -> YamlDocument:
    """Safely parse one YAML document, keeping the mark of every node; raise `error` if malformed."""
    loader = _Loader(text)
    builder = _Builder(loader)
    try:
        root = loader.get_single_node()
        data = None if root is None else builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = None if mark is None else _mark(mark)
        what = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        _raise(error, [Problem(source, where, "", f"invalid YAML: {what}")])
    except yaml.YAMLError as exc:
        _raise(error, [Problem(source, None, "", f"invalid YAML: {exc}")])
    finally:
        loader.dispose()
    if root is None:
        _raise(error, [Problem(source, Mark(1, 1), "", "the file is empty: expected a mapping")])
    if builder.problems:
        _raise(error, [Problem(source, mark, "", message) for mark, message in sorted(builder.problems)])
    builder.marks[()] = _mark(root.start_mark)
    return YamlDocument(source, data, builder.marks)


def validate_document(model: type[M], document: YamlDocument, error: ErrorFactory) -> M:
    """Validate parsed YAML as `model`; on failure raise `error` with one line per problem."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        _raise(error, problems(exc, model, document))


def load_model(model: type[M], path_or_text: str | Path, error: ErrorFactory) -> M:
    """Read, parse and validate a YAML file or text as `model` (see `read_source`)."""
    text, source = read_source(path_or_text, error)
    return validate_document(model, parse_yaml(text, source, error), error)


def problems(exc: ValidationError, model: type[BaseModel], document: YamlDocument) -> list[Problem]:
    """The problems in `exc`, each with its line, sorted by position in the file."""
    found: dict[str, Problem] = {}
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), document.data)
        problem = Problem(document.source, document.mark(loc), format_loc(loc), _message(err, model, loc))
        found.setdefault(str(problem), problem)
    return sorted(found.values(), key=lambda p: (p.mark or Mark(0, 0), p.loc))


def raise_problems(title: str, found: Iterable[tuple[Loc, str, Any]]) -> None:
    """Raise a ValidationError with one error per `(loc, message, input)`; return if there are none.

    Use it inside model validators: pydantic prefixes each `loc` with the model's own location.
    """
    details = [
        InitErrorDetails(
            type=PydanticCustomError(PROBLEM_TYPE, "{message}", {"message": message}), loc=loc, input=value
        )
        for loc, message, value in found
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


def format_loc(loc: Loc) -> str:
    """`('tasks', 1, 'depends_on', 0, 'task_key')` -> `tasks[1].depends_on[0].task_key`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


# --- internals --------------------------------------------------------------------------


def _raise(error: ErrorFactory, found: Sequence[Problem]) -> typing.NoReturn:
    lines = [str(p) for p in found]
    raise error("\n".join(lines), lines)


def _mark(mark: Any) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns composed YAML nodes into plain data, recording marks and structural problems."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.marks: dict[Loc, Mark] = {}
        self.problems: list[tuple[Mark, str]] = []
        self.nodes = 0
        self.open: set[int] = set()

    def build(self, node: Any, path: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise yaml.MarkedYAMLError(
                problem=f"more than {MAX_NODES} values (are aliases expanding without end?)",
                problem_mark=node.start_mark,
            )
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                self._problem(node, f"unsupported YAML tag {node.tag!r}: use plain values")
                return None
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.open:
            self._problem(node, "an alias refers to a node that contains it (recursive data)")
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._mapping(node, path)
        finally:
            self.open.discard(id(node))

    def _sequence(self, node: Any, path: Loc) -> list[Any]:
        if node.tag != _SEQ_TAG:
            self._problem(node, f"unsupported YAML tag {node.tag!r}: use a plain list")
        out = []
        for index, item in enumerate(node.value):
            self.marks[(*path, index)] = _mark(item.start_mark)
            out.append(self.build(item, (*path, index)))
        return out

    def _mapping(self, node: Any, path: Loc) -> dict[Any, Any]:
        if node.tag != _MAP_TAG:
            self._problem(node, f"unsupported YAML tag {node.tag!r}: use a plain mapping")
        first: dict[Any, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            if key is _BAD_KEY:
                continue
            if key in first:
                self._problem(key_node, f"duplicate key {key!r} (first defined at line {first[key].line})")
            else:
                first[key] = _mark(key_node.start_mark)
        self.loader.flatten_mapping(node)  # resolves `<<` merge keys; explicit keys win
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, report=False)
            if key is _BAD_KEY:
                continue
            self.marks[(*path, key)] = _mark(key_node.start_mark)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _key(self, node: Any, report: bool = True) -> Any:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in _SCALAR_TAGS:
            if report:
                self._problem(node, "a mapping key must be a plain string")
            return _BAD_KEY
        # Keys are names: `on:` is the key 'on' (not True) and `1:` the key '1'.
        return str(node.value)

    def _problem(self, node: Any, message: str) -> None:
        self.problems.append((_mark(node.start_mark), message))


_BAD_KEY = object()


def _clean_loc(loc: Loc, data: Any) -> Loc:
    """The part of a pydantic `loc` that names places in the data, without union/type tags."""
    out: list[str | int] = []
    current, inside = data, True
    parts = [p for p in loc if p != "[key]"]
    for index, part in enumerate(parts):
        if inside and _has(current, part):
            current = current[part]
        elif isinstance(part, str) and index < len(parts) - 1 and ("[" in part or part in _TYPE_TAGS):
            continue  # a union member tag such as 'list' or 'function-after[...]'
        else:
            inside = False
        out.append(part)
    return tuple(out)


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, Mapping):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _message(err: Mapping[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    if kind == PROBLEM_TYPE:
        return str(err["msg"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        key = str(loc[-1]) if loc else ""
        if parent is None:
            return f"unknown field '{key}'"
        names = list(parent.model_fields)
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(names)}"
        return f"unknown field '{key}'; {hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        found = _model_at(model, loc)
        fields = f" ({', '.join(list(found.model_fields)[:4])}, ...)" if found is not None else ""
        return f"expected a mapping{fields}, got {_yaml_type(err.get('input'))}"
    if kind in ("value_error", "assertion_error") and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])
    message = str(err["msg"])
    value = err.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        message += f" (got {shown})"
    return message


def _yaml_type(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {value!r}" if isinstance(value, int | float) else f"the text {value!r}"


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at `loc`, if one does."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin, args = typing.get_origin(current), typing.get_args(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif origin in (list, tuple, Sequence) and isinstance(part, int) and args:
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`Annotated[T, ...]` -> T, `T | None` -> T."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents list items under their key and writes multi-line strings (SQL,
    descriptions) as literal `|` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """`data` (plain dicts, lists and scalars) as block-style YAML, keys in their given order."""
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text
