"""Processor objects to canonical records: :func:`normalizer_for` picks the processor's reader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from contracts.events import Processor
from contracts.records import CanonicalRecord
from pydantic import ValidationError

from importer.domain import chargebee_objects, stripe_objects
from importer.domain.raw import MalformedObject, OutOfRange
from importer.domain.source import NormalizationContext, Normalizer, RawObject

__all__ = ["MalformedObject", "ProcessorNormalizer", "normalizer_for"]

Handler = Callable[[RawObject, NormalizationContext], list[CanonicalRecord]]


class ProcessorNormalizer:
    """One processor's :class:`~importer.domain.source.Normalizer`.

    ``normalize`` returns no record for resources without a canonical shape (Stripe products,
    Chargebee items), raises :class:`MalformedObject` for an object missing what its record needs
    or carrying a number no record can hold,
    and ``ValueError`` for a resource it does not know.
    """

    def __init__(self, processor: Processor, handlers: Mapping[str, Handler]) -> None:
        self.processor = processor
        self._handlers = handlers

    def normalize(
        self, resource: str, raw: RawObject, context: NormalizationContext
    ) -> list[CanonicalRecord]:
        handler = self._handlers.get(resource)
        if handler is None:
            raise ValueError(f"{self.processor.value} has no resource {resource!r}")
        try:
            return handler(raw, context)
        except ValidationError as error:
            raise MalformedObject(resource, raw.get("id"), _first_error(error)) from error
        except OutOfRange as error:
            raise MalformedObject(resource, raw.get("id"), str(error)) from error


_NORMALIZERS: Final[Mapping[Processor, ProcessorNormalizer]] = {
    Processor.STRIPE: ProcessorNormalizer(Processor.STRIPE, stripe_objects.HANDLERS),
    Processor.CHARGEBEE: ProcessorNormalizer(Processor.CHARGEBEE, chargebee_objects.HANDLERS),
}


def normalizer_for(processor: Processor) -> Normalizer:
    return _NORMALIZERS[processor]


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}"
