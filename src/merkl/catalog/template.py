"""Variables in recipes: Meteor's `{{ .name }}` and environment `${VAR}`.

Meteor renders a recipe file as a Go template before parsing the YAML; its data are the
`METEOR_<NAME>` environment variables (key `<name>` lower-cased) and the `--var` YAML file (nested
keys joined with `_`, lower-cased; the file wins). Only plain `{{ .name }}` actions are supported,
which is what recipes use them for. After parsing, `${VAR}` (or `${VAR:-default}`) in string
values is replaced from the environment; `$${` writes a literal `${`. Every missing variable is
reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from merkl.errors import RecipeError

_ACTION = re.compile(r"(\s*)\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}(\s*)", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def template_variables(environ: Mapping[str, str], var_file: Path | None = None) -> dict[str, str]:
    """Meteor's template data: `METEOR_*` environment variables, then the `--var` file's keys."""
    variables = {
        key[len("METEOR_") :].lower(): value
        for key, value in environ.items()
        if key.startswith("METEOR_") and len(key) > len("METEOR_")
    }
    if var_file is not None:
        variables.update(_read_var_file(var_file))
    return variables


def _read_var_file(path: Path) -> dict[str, str]:
    import yaml  # type: ignore[import-untyped]

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"cannot read variables file {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"variables file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"variables file {str(path)!r} must hold a mapping of names to values; "
            f"got a {type(data).__name__}"
        )
    flat: dict[str, str] = {}
    _flatten(data, "", flat)
    return flat


def _flatten(data: Mapping[Any, Any], prefix: str, out: dict[str, str]) -> None:
    for key, value in data.items():
        name = f"{prefix}{str(key).lower()}"
        if isinstance(value, Mapping):
            _flatten(value, f"{name}_", out)
        else:
            out[name] = _go_print(value)


def _go_print(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render_template(text: str, variables: Mapping[str, str], source: str) -> str:
    """Replace every `{{ .name }}` in `text`; `{{-` / `-}}` trim the whitespace beside them.

    Raises:
        RecipeError: an action other than `.name`, or names with no value (all listed).
    """
    if "{{" not in text:
        return text
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        before, trim_left, action, trim_right, after = match.groups()
        line = text.count("\n", 0, match.start(3)) + 1
        field = _FIELD.fullmatch(action)
        if field is None:
            raise RecipeError(
                f"{source}:{line}: unsupported template action {{{{ {action} }}}}: recipes "
                "may only use variables, written {{ .name }}"
            )
        name = field.group(1)
        if name not in variables:
            missing.append(f"{name} (line {line})")
            return match.group(0)
        return ("" if trim_left else before) + variables[name] + ("" if trim_right else after)

    rendered = _ACTION.sub(substitute, text)
    if missing:
        raise RecipeError(
            f"{source}: no value for template variables {', '.join(missing)}; set "
            "METEOR_<NAME> in the environment or pass them in a file with --var"
        )
    return rendered


def expand_env(
    data: Any,
    environ: Mapping[str, str],
    line_of: Any,
    source: str,
    problems: list[str] | None = None,
) -> Any:
    """Return `data` with `${VAR}` replaced in every string value (keys are left alone).

    `line_of(path)` gives the recipe line of a value for the error message. With a `problems`
    list (`merkl catalog lint`), missing variables are added to it and left unexpanded, so
    the rest of the recipe can still be checked.

    Raises:
        RecipeError: listing every variable that is not set and has no default.
    """
    missing: dict[str, int | None] = {}

    def expand_string(value: str, path: tuple[Any, ...]) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            missing.setdefault(name, line_of(path))
            return match.group(0)

        return _ENV_REF.sub(substitute, value) if "$" in value else value

    def walk(value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            return expand_string(value, path)
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        return value

    expanded = walk(data, ())
    if missing:
        names = ", ".join(
            name if line is None else f"{name} (line {line})" for name, line in missing.items()
        )
        message = (
            f"{source}: environment variables not set: {names}; export them, or write "
            "${NAME:-default} to give a default"
        )
        if problems is None:
            raise RecipeError(message)
        problems.append(message)
    return expanded
