"""Discord's published limits on what a bot sends: application commands and modals.

Validators raise ``InvalidField`` with the path of the offending field; the server answers it
as Discord does (400, code 50035, the field's error nested under its path). Where Discord
documents no error code for a rule, the code here is descriptive.

``modal_submission`` goes the other way: it fills a modal in as a user would and builds the
``components`` of the MODAL_SUBMIT interaction Discord then sends.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

FieldPath = tuple[str | int, ...]

# Application command types (Discord's numbering).
COMMAND_CHAT_INPUT = 1
COMMAND_USER = 2
COMMAND_MESSAGE = 3
# Commands of one type an application may have per scope (global, or one guild).
MAX_COMMANDS_BY_TYPE = {COMMAND_CHAT_INPUT: 100, COMMAND_USER: 15, COMMAND_MESSAGE: 15}
MAX_COMMAND_OPTIONS = 25

# Component types (Discord's numbering) that the stand-in models in modals.
COMPONENT_ACTION_ROW = 1
COMPONENT_STRING_SELECT = 3
COMPONENT_TEXT_INPUT = 4
COMPONENT_TEXT_DISPLAY = 10
COMPONENT_LABEL = 18
TEXT_INPUT_STYLES = (1, 2)  # short, paragraph

MAX_MODAL_COMPONENTS = 5
MAX_TEXT_INPUT_LENGTH = 4000
MAX_SELECT_OPTIONS = 25
MAX_COMPONENT_ID = 2**31 - 1  # a 32-bit integer

# The locales Discord accepts as localization keys.
LOCALES = frozenset(
    {
        "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu",
        "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru",
        "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
    }
)  # fmt: skip

_NAME_PUNCTUATION = frozenset("-_'")
# \p{sc=Deva} and \p{sc=Thai}: their combining marks are neither letters nor numbers.
_NAME_SCRIPT_RANGES = ((0x0900, 0x097F), (0xA8E0, 0xA8FF), (0x0E00, 0x0E7F))


class InvalidField(Exception):
    """A field of a request body that Discord refuses (400, code 50035)."""

    def __init__(self, path: FieldPath, code: str, message: str) -> None:
        super().__init__(f"{'.'.join(map(str, path))}: {code} {message}")
        self.path = path
        self.code = code
        self.message = message


# ------------------------------------------------------------------ typed fields


def _present(container: Mapping[str, Any], key: str) -> bool:
    # Discord treats an explicit null like an absent optional field.
    return container.get(key) is not None


def _required(container: Mapping[str, Any], key: str, path: FieldPath) -> Any:
    if not _present(container, key):
        raise InvalidField((*path, key), "BASE_TYPE_REQUIRED", "This field is required")
    return container[key]


def _length_error(path: FieldPath, minimum: int, maximum: int) -> InvalidField:
    if minimum == 0:
        return InvalidField(path, "BASE_TYPE_MAX_LENGTH", f"Must be {maximum} or fewer in length.")
    return InvalidField(
        path, "BASE_TYPE_BAD_LENGTH", f"Must be between {minimum} and {maximum} in length."
    )


def _string(
    container: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    min_length: int = 0,
    max_length: int,
    required: bool = False,
) -> str | None:
    if not _present(container, key):
        return _required(container, key, path) if required else None
    value = container[key]
    if not isinstance(value, str):
        raise InvalidField((*path, key), "BASE_TYPE_BAD_TYPE", "Must be a string.")
    if not min_length <= len(value) <= max_length:
        raise _length_error((*path, key), min_length, max_length)
    return value


def _integer(
    container: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    minimum: int,
    maximum: int,
) -> int | None:
    if not _present(container, key):
        return None
    value = container[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidField((*path, key), "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
    if value < minimum:
        raise InvalidField(
            (*path, key),
            "NUMBER_TYPE_MIN",
            f"int value should be greater than or equal to {minimum}.",
        )
    if value > maximum:
        raise InvalidField(
            (*path, key), "NUMBER_TYPE_MAX", f"int value should be less than or equal to {maximum}."
        )
    return value


def _boolean(container: Mapping[str, Any], key: str, path: FieldPath) -> bool | None:
    if not _present(container, key):
        return None
    value = container[key]
    if not isinstance(value, bool):
        raise InvalidField((*path, key), "BOOLEAN_TYPE_COERCE", f'Value "{value}" is not bool.')
    return value


def _array(
    container: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    min_items: int = 0,
    max_items: int,
    required: bool = False,
) -> list[Any]:
    if not _present(container, key):
        return _required(container, key, path) if required else []
    value = container[key]
    if not isinstance(value, list):
        raise InvalidField((*path, key), "BASE_TYPE_BAD_TYPE", "Must be an array.")
    if not min_items <= len(value) <= max_items:
        raise _length_error((*path, key), min_items, max_items)
    return value


def _object(value: Any, path: FieldPath) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidField(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    return value


def _choice(value: Any, path: FieldPath, choices: Sequence[int]) -> int:
    if value not in choices:
        listed = ", ".join(map(str, choices))
        raise InvalidField(path, "BASE_TYPE_CHOICES", f"Value must be one of {{{listed}}}.")
    return value


def _localizations(
    container: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    min_length: int,
    max_length: int,
) -> dict[str, str]:
    if not _present(container, key):
        return {}
    localized = _object(container[key], (*path, key))
    for locale in localized:
        if locale not in LOCALES:
            raise InvalidField(
                (*path, key, locale), "LOCALE_INVALID", f"Locale {locale!r} is not supported."
            )
        _string(localized, locale, (*path, key), min_length=min_length, max_length=max_length)
    return dict(localized)


# ------------------------------------------------------------------ application commands


def _chat_input_name_allowed(name: str) -> bool:
    """Discord's ``^[-_'\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$``, in lowercase where
    a letter has one."""

    def allowed(character: str) -> bool:
        code_point = ord(character)
        return (
            character in _NAME_PUNCTUATION
            or unicodedata.category(character)[0] in "LN"
            or any(low <= code_point <= high for low, high in _NAME_SCRIPT_RANGES)
        )

    return all(allowed(character) and character.lower() == character for character in name)


def _command_name(
    container: Mapping[str, Any], key: str, path: FieldPath, command_type: int
) -> str | None:
    name = _string(container, key, path, min_length=1, max_length=32, required=True)
    # USER and MESSAGE commands may be mixed case and contain spaces.
    if command_type == COMMAND_CHAT_INPUT and not _chat_input_name_allowed(name or ""):
        raise InvalidField((*path, key), "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
    return name


def validate_command_overwrite(commands: Any) -> None:
    """A bulk overwrite (``PUT .../commands``): every command, then the set as a whole."""
    if not isinstance(commands, list):
        raise InvalidField((), "BASE_TYPE_BAD_TYPE", "Must be an array.")
    seen: set[tuple[str, int]] = set()
    counts: dict[int, int] = {}
    for index, command in enumerate(commands):
        path: FieldPath = (index,)
        command_type, name = _validate_command(_object(command, path), path)
        if (name, command_type) in seen:
            raise InvalidField(
                (*path, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name!r}",
            )
        seen.add((name, command_type))
        counts[command_type] = counts.get(command_type, 0) + 1
        if counts[command_type] > MAX_COMMANDS_BY_TYPE[command_type]:
            limit = MAX_COMMANDS_BY_TYPE[command_type]
            raise InvalidField(
                path,
                "APPLICATION_COMMANDS_MAX_EXCEEDED",
                f"At most {limit} commands of type {command_type} are allowed",
            )


def _validate_command(command: Mapping[str, Any], path: FieldPath) -> tuple[int, str]:
    # PRIMARY_ENTRY_POINT (4) belongs to Activities, which this application is not.
    command_type = command.get("type")
    command_type = COMMAND_CHAT_INPUT if command_type is None else command_type
    _choice(command_type, (*path, "type"), tuple(MAX_COMMANDS_BY_TYPE))
    name = _command_name(command, "name", path, command_type)
    assert name is not None
    localized_names = _localizations(
        command, "name_localizations", path, min_length=1, max_length=32
    )
    for locale in localized_names:
        _command_name(localized_names, locale, (*path, "name_localizations"), command_type)
    if command_type == COMMAND_CHAT_INPUT:
        _string(command, "description", path, min_length=1, max_length=100, required=True)
        _localizations(command, "description_localizations", path, min_length=1, max_length=100)
        _array(command, "options", path, max_items=MAX_COMMAND_OPTIONS)
        return command_type, name
    # Context menus take no description (Discord answers "" when they are fetched) and no options.
    if command.get("description") or command.get("description_localizations"):
        raise InvalidField(
            (*path, "description"),
            "APPLICATION_COMMAND_DESCRIPTION_NOT_ALLOWED",
            "Context menu commands cannot have a description",
        )
    if command.get("options"):
        raise InvalidField(
            (*path, "options"),
            "APPLICATION_COMMAND_OPTIONS_NOT_ALLOWED",
            "Context menu commands cannot have options",
        )
    return command_type, name


# ------------------------------------------------------------------ modals


class _ModalIdentifiers:
    """The ``id``s and ``custom_id``s seen so far: each must be unique within the modal."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.custom_ids: set[str] = set()

    def add_id(self, component: Mapping[str, Any], path: FieldPath) -> None:
        component_id = _integer(component, "id", path, minimum=0, maximum=MAX_COMPONENT_ID)
        # An id of 0 counts as none: Discord assigns one.
        if not component_id:
            return
        if component_id in self.ids:
            raise InvalidField(
                (*path, "id"), "COMPONENT_ID_DUPLICATED", "Component id cannot be duplicated"
            )
        self.ids.add(component_id)

    def add_custom_id(self, component: Mapping[str, Any], path: FieldPath) -> str:
        custom_id = _string(
            component, "custom_id", path, min_length=1, max_length=100, required=True
        )
        assert custom_id is not None
        if custom_id in self.custom_ids:
            raise InvalidField(
                (*path, "custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        self.custom_ids.add(custom_id)
        return custom_id


def _component_type(component: Mapping[str, Any], path: FieldPath, allowed: Sequence[int]) -> int:
    kind = _required(component, "type", path)
    if kind not in allowed:
        listed = ", ".join(map(str, allowed))
        raise InvalidField(
            (*path, "type"),
            "UNION_TYPE_CHOICES",
            f'Value of field "type" must be one of ({listed}).',
        )
    return kind


def validate_modal(data: Any, path: FieldPath = ("data",)) -> None:
    """A MODAL callback's ``data``: 1 to 5 Action Rows (one Text Input each), Labels (a Text Input
    or a String Select) and Text Displays."""
    if data is None:
        raise InvalidField(path, "BASE_TYPE_REQUIRED", "This field is required")
    modal = _object(data, path)
    _string(modal, "custom_id", path, min_length=1, max_length=100, required=True)
    _string(modal, "title", path, min_length=1, max_length=45, required=True)
    components = _array(
        modal, "components", path, min_items=1, max_items=MAX_MODAL_COMPONENTS, required=True
    )
    identifiers = _ModalIdentifiers()
    for index, raw_component in enumerate(components):
        where: FieldPath = (*path, "components", index)
        component = _object(raw_component, where)
        allowed = (COMPONENT_ACTION_ROW, COMPONENT_LABEL, COMPONENT_TEXT_DISPLAY)
        kind = _component_type(component, where, allowed)
        identifiers.add_id(component, where)
        if kind == COMPONENT_ACTION_ROW:
            # The legacy shape: a row holding exactly one Text Input, which carries the label.
            [text_input] = _array(
                component, "components", where, min_items=1, max_items=1, required=True
            )
            inner: FieldPath = (*where, "components", 0)
            text_input = _object(text_input, inner)
            _component_type(text_input, inner, (COMPONENT_TEXT_INPUT,))
            _validate_text_input(text_input, inner, identifiers, label_required=True)
        elif kind == COMPONENT_LABEL:
            _validate_label(component, where, identifiers)
        else:
            _string(component, "content", where, min_length=1, max_length=4000, required=True)


def _validate_label(
    label: Mapping[str, Any], path: FieldPath, identifiers: _ModalIdentifiers
) -> None:
    _string(label, "label", path, min_length=1, max_length=45, required=True)
    _string(label, "description", path, min_length=1, max_length=100)
    inner: FieldPath = (*path, "component")
    child = _object(_required(label, "component", path), inner)
    # Discord also takes user/role/mentionable/channel selects, file uploads, radio groups and
    # checkboxes here; the stand-in models (and so accepts) only these two.
    kind = _component_type(child, inner, (COMPONENT_STRING_SELECT, COMPONENT_TEXT_INPUT))
    if kind == COMPONENT_TEXT_INPUT:
        _validate_text_input(child, inner, identifiers, label_required=False)
    else:
        _validate_string_select(child, inner, identifiers)


def _validate_text_input(
    text_input: Mapping[str, Any],
    path: FieldPath,
    identifiers: _ModalIdentifiers,
    *,
    label_required: bool,
) -> None:
    identifiers.add_id(text_input, path)
    identifiers.add_custom_id(text_input, path)
    _choice(_required(text_input, "style", path), (*path, "style"), TEXT_INPUT_STYLES)
    # In a Label the text is the Label's; the input's own label is deprecated but still taken.
    _string(text_input, "label", path, min_length=1, max_length=45, required=label_required)
    _string(text_input, "placeholder", path, max_length=100)
    _boolean(text_input, "required", path)
    min_length = _integer(text_input, "min_length", path, minimum=0, maximum=MAX_TEXT_INPUT_LENGTH)
    max_length = _integer(text_input, "max_length", path, minimum=1, maximum=MAX_TEXT_INPUT_LENGTH)
    if min_length is not None and max_length is not None and min_length > max_length:
        raise InvalidField(
            (*path, "min_length"),
            "TEXT_INPUT_MIN_LENGTH_ABOVE_MAX",
            "min_length must not be greater than max_length",
        )
    value = _string(text_input, "value", path, max_length=MAX_TEXT_INPUT_LENGTH) or ""
    if value and max_length is not None and len(value) > max_length:
        raise _length_error((*path, "value"), 0, max_length)
    if value and min_length is not None and len(value) < min_length:
        raise _length_error((*path, "value"), min_length, max_length or MAX_TEXT_INPUT_LENGTH)


def _validate_string_select(
    select: Mapping[str, Any], path: FieldPath, identifiers: _ModalIdentifiers
) -> None:
    identifiers.add_id(select, path)
    identifiers.add_custom_id(select, path)
    _string(select, "placeholder", path, max_length=150)
    options = _array(
        select, "options", path, min_items=1, max_items=MAX_SELECT_OPTIONS, required=True
    )
    values: set[str] = set()
    for index, raw_option in enumerate(options):
        where: FieldPath = (*path, "options", index)
        option = _object(raw_option, where)
        _string(option, "label", where, min_length=1, max_length=100, required=True)
        value = _string(option, "value", where, min_length=1, max_length=100, required=True)
        _string(option, "description", where, max_length=100)
        _boolean(option, "default", where)
        if value in values:
            raise InvalidField(
                (*where, "value"),
                "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                "Select option values must be unique",
            )
        values.add(value or "")
    min_values = _integer(select, "min_values", path, minimum=0, maximum=MAX_SELECT_OPTIONS)
    max_values = _integer(select, "max_values", path, minimum=1, maximum=MAX_SELECT_OPTIONS)
    required = _boolean(select, "required", path)
    if min_values is not None and max_values is not None and min_values > max_values:
        raise InvalidField(
            (*path, "min_values"),
            "SELECT_COMPONENT_MIN_VALUES_ABOVE_MAX",
            "min_values must not be greater than max_values",
        )
    # A required select (the default) must ask for at least one value.
    if min_values == 0 and required is not False:
        raise InvalidField(
            (*path, "min_values"),
            "SELECT_COMPONENT_REQUIRED_MIN_VALUES",
            "min_values must be at least 1 when the select is required",
        )
    if _boolean(select, "disabled", path):
        raise InvalidField(
            (*path, "disabled"),
            "COMPONENT_DISABLED_IN_MODAL",
            "Modals cannot have disabled components",
        )


# ------------------------------------------------------------------ modal submits


def with_component_ids(components: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of a modal's components with every ``id`` filled in as Discord does: those left
    empty (or 0) are numbered in order, depth first, skipping the ids already taken."""
    filled = copy.deepcopy([dict(component) for component in components])

    def walk(nodes: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for node in nodes:
            yield node
            yield from walk(node.get("components") or [])
            if isinstance(node.get("component"), dict):
                yield from walk([node["component"]])

    taken = {node["id"] for node in walk(filled) if node.get("id")}
    next_id = 1
    for node in walk(filled):
        if node.get("id"):
            continue
        while next_id in taken:
            next_id += 1
        node["id"] = next_id
        taken.add(next_id)
    return filled


def _text_input_answer(text_input: Mapping[str, Any], answer: str | Sequence[str] | None) -> str:
    custom_id = text_input["custom_id"]
    # An untouched input submits what it was pre-filled with.
    value = (text_input.get("value") or "") if answer is None else answer
    if not isinstance(value, str):
        raise ValueError(f"text input {custom_id!r} takes a string, not {value!r}")
    if not value:
        if text_input.get("required", True):
            raise ValueError(f"text input {custom_id!r} is required")
        return value
    min_length = text_input.get("min_length") or 0
    max_length = text_input.get("max_length") or MAX_TEXT_INPUT_LENGTH
    if not min_length <= len(value) <= max_length:
        raise ValueError(
            f"text input {custom_id!r} takes {min_length} to {max_length} characters, "
            f"not {len(value)}"
        )
    return value


def _select_answer(select: Mapping[str, Any], answer: str | Sequence[str] | None) -> list[str]:
    custom_id = select["custom_id"]
    options = [option["value"] for option in select["options"]]
    if answer is None:
        # An untouched select submits its default options.
        chosen = [option["value"] for option in select["options"] if option.get("default")]
    else:
        chosen = [answer] if isinstance(answer, str) else list(answer)
    unknown = [value for value in chosen if value not in options]
    if unknown or len(set(chosen)) != len(chosen):
        raise ValueError(f"select {custom_id!r} offers {options}, not {chosen}")
    if not chosen and select.get("required") is False:
        return chosen
    min_values = select.get("min_values")
    min_values = 1 if min_values is None else min_values
    max_values = select.get("max_values") or 1
    if not min_values <= len(chosen) <= max_values:
        raise ValueError(
            f"select {custom_id!r} takes {min_values} to {max_values} values, not {len(chosen)}"
        )
    return chosen


def _answered(component: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """A Text Input or String Select as the submit reports it."""
    answer = answers.get(component["custom_id"])
    echoed = {"type": component["type"], "id": component["id"], "custom_id": component["custom_id"]}
    if component["type"] == COMPONENT_TEXT_INPUT:
        return echoed | {"value": _text_input_answer(component, answer)}
    return echoed | {"values": _select_answer(component, answer)}


def modal_submission(
    modal: Mapping[str, Any], answers: Mapping[str, str | Sequence[str]]
) -> list[dict[str, Any]]:
    """The ``components`` of the MODAL_SUBMIT for ``modal`` filled in with ``answers`` (by
    custom_id: a string for a Text Input, a list of option values for a String Select).

    Unanswered inputs keep what they were pre-filled with. Raises ValueError for answers that
    Discord's client would not let a user submit.
    """
    components = with_component_ids(modal["components"])
    inputs = [
        child
        for component in components
        for child in [*component.get("components", []), component.get("component")]
        if child
    ]
    unknown = set(answers) - {child["custom_id"] for child in inputs}
    if unknown:
        raise ValueError(f"the modal has no inputs {sorted(unknown)}")
    submitted: list[dict[str, Any]] = []
    for component in components:
        kind, component_id = component["type"], component["id"]
        if kind == COMPONENT_ACTION_ROW:
            rows = [_answered(child, answers) for child in component["components"]]
            submitted.append({"type": kind, "id": component_id, "components": rows})
        elif kind == COMPONENT_LABEL:
            answered = _answered(component["component"], answers)
            submitted.append({"type": kind, "id": component_id, "component": answered})
        else:
            # A Text Display comes back as its type and id only.
            submitted.append({"type": kind, "id": component_id})
    return submitted
