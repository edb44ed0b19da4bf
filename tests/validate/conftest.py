"""Fixtures of the validate area: a small `shop` registry of our own, independent of the mesh schema."""

from __future__ import annotations

import pytest

from knhk_otel.schema.model import (
    Attribute,
    Deprecated,
    EnumMember,
    EnumType,
    Group,
    Manifest,
    ResolvedRegistry,
)


def _enum(*values: str | int, value_type: str = "string") -> EnumType:
    return EnumType(
        members=tuple(EnumMember(id=str(v), value=v) for v in values),
        value_type=value_type,  # type: ignore[arg-type]
    )


ORDER_ID = Attribute("shop.order.id", "string", stability="stable")
ITEM_COUNT = Attribute("shop.item.count", "int", stability="stable")
PAYMENT = Attribute("shop.payment.method", _enum("card", "cash", "voucher"), stability="stable")
PRIORITY = Attribute("shop.priority", _enum(1, 2, 3, value_type="int"), stability="stable")
TAGS = Attribute("shop.tags", "string[]", stability="stable")
DISCOUNT = Attribute("shop.discount", "double", stability="stable")
LEGACY = Attribute(
    "shop.legacy.code",
    "string",
    stability="stable",
    deprecated=Deprecated("renamed", renamed_to="shop.order.id"),
)
EXPERIMENT = Attribute("shop.experiment.flag", "boolean", stability="development")
HEADER = Attribute("shop.header", "template[string]", stability="stable")
PEER = Attribute("network.peer.address", "string", stability="stable")
INSTANCE = Attribute("service.instance.id", "string", stability="stable")


def _use(attr: Attribute, level: str) -> Attribute:
    return Attribute(
        attr.name,
        attr.type,
        requirement_level=level,  # type: ignore[arg-type]
        stability=attr.stability,
        deprecated=attr.deprecated,
    )


def shop_registry() -> ResolvedRegistry:
    """The registry every validate test runs against (also written as YAML in tests/validate/shop)."""
    groups = (
        Group(
            "registry.shop",
            "attribute_group",
            attributes=(ORDER_ID, ITEM_COUNT, PAYMENT, PRIORITY, TAGS, DISCOUNT, LEGACY, EXPERIMENT, HEADER),
        ),
        Group("registry.network", "attribute_group", attributes=(PEER,)),
        Group("registry.service", "attribute_group", attributes=(INSTANCE,)),
        Group(
            "span.shop.checkout",
            "span",
            span_kind="server",
            stability="stable",
            attributes=(
                _use(ORDER_ID, "required"),
                _use(PAYMENT, "recommended"),
                _use(ITEM_COUNT, "opt_in"),
                _use(PRIORITY, "opt_in"),
                _use(TAGS, "opt_in"),
                _use(DISCOUNT, "opt_in"),
                _use(LEGACY, "opt_in"),
                _use(EXPERIMENT, "opt_in"),
                _use(HEADER, "opt_in"),
                _use(PEER, "opt_in"),
            ),
        ),
        Group("span.shop.refund", "span", span_kind="internal", attributes=(_use(ORDER_ID, "required"),)),
        Group(
            "metric.shop.orders",
            "metric",
            metric_name="shop.orders",
            instrument="counter",
            unit="{order}",
            attributes=(_use(PAYMENT, "required"),),
        ),
        Group(
            "metric.shop.order.duration",
            "metric",
            metric_name="shop.order.duration",
            instrument="histogram",
            unit="s",
            annotations={"knhk": {"explicit_bucket_boundaries": [0.1, 0.5, 1.0, 5.0]}},
        ),
        Group(
            "metric.shop.queue.depth",
            "metric",
            metric_name="shop.queue.depth",
            instrument="updowncounter",
            unit="{order}",
        ),
        Group(
            "metric.shop.stock",
            "metric",
            metric_name="shop.stock",
            instrument="gauge",
            unit="{item}",
            attributes=(_use(ORDER_ID, "opt_in"),),
        ),
        Group(
            "event.shop.order.placed",
            "event",
            name="shop.order.placed",
            attributes=(_use(ORDER_ID, "required"), _use(ITEM_COUNT, "recommended")),
        ),
    )
    return ResolvedRegistry(groups=groups, manifest=Manifest(name="shop", namespace="shop"))


@pytest.fixture(scope="session")
def shop() -> ResolvedRegistry:
    return shop_registry()
