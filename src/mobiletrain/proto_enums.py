"""The proto enum naming rule, in one place for the gRPC adapter and the SDK.

A proto enum ``TaskType`` names its values ``TASK_TYPE_<MEMBER>`` (the buf style rule), with
``TASK_TYPE_UNSPECIFIED = 0`` meaning "not set". From that rule follow, without hand-written
tables:

- the domain member for a value: ``TaskType.IMAGE_CLASSIFICATION`` <->
  ``TASK_TYPE_IMAGE_CLASSIFICATION`` (:func:`domain_table`, checked complete when built);
- the command-line / REST spelling: ``image-classification`` (:func:`cli_names`, :func:`cli_name`).

Only the generated protobuf modules and the standard library are needed, so both
``api/grpc`` and ``client`` can import it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

E = TypeVar("E", bound=enum.Enum)
V = TypeVar("V", bound=int)
"""A generated enum class (``common_pb2.TaskType``: an ``int`` subclass whose metaclass is
protobuf's ``EnumTypeWrapper``); its values are typed as the class itself."""


def _wrapper(proto_enum: type[int]) -> Any:
    # The generated class's metaclass (EnumTypeWrapper) carries DESCRIPTOR, items(), Name().
    return cast(Any, proto_enum)


def prefix(proto_enum: type[int]) -> str:
    """``TaskType`` -> ``TASK_TYPE_``: the prefix every value name of the enum carries."""
    name: str = _wrapper(proto_enum).DESCRIPTOR.name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper() + "_"


def members(proto_enum: type[V]) -> dict[str, V]:
    """``{"IMAGE_CLASSIFICATION": 1}``: value names without the prefix, UNSPECIFIED left out."""
    head = prefix(proto_enum)
    out: dict[str, V] = {}
    for name, number in _wrapper(proto_enum).items():
        if not name.startswith(head):
            raise ValueError(f"{name} does not start with {head} (the proto naming rule)")
        if number != 0:
            out[name.removeprefix(head)] = number
    return out


def cli_names(proto_enum: type[V]) -> dict[str, V]:
    """``{"image-classification": 1}``: the spelling of the CLI, REST and the domain values."""
    return {m.lower().replace("_", "-"): n for m, n in members(proto_enum).items()}


def cli_name(proto_enum: type[int], number: int) -> str:
    """``1`` -> ``image-classification``; an unknown number (a newer server) -> its digits."""
    for name, n in cli_names(proto_enum).items():
        if n == number:
            return name
    return str(number)


def domain_table(domain: type[E], proto_enum: type[V]) -> Mapping[E, V]:
    """Each member of the domain enum -> the proto number of the same name.

    Raises ``ValueError`` when a member has no proto value (a wire that cannot carry a domain
    value is a bug to catch at import, not at the first request that needs it).
    """
    numbers = members(proto_enum)
    missing = [m.name for m in domain if m.name not in numbers]
    if missing:
        raise ValueError(f"{prefix(proto_enum)}{{{', '.join(missing)}}} missing in the proto")
    return {m: numbers[m.name] for m in domain}
