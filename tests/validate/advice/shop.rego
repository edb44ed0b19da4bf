package live_check_advice

import rego.v1

# Our own advice policy for the tests: no attribute key may say "legacy", in Weaver's advice form.
deny contains {
	"type": "advice",
	"advice_type": "legacy_key",
	"advice_level": "improvement",
	"advice_context": {"attribute_key": input.sample.attribute.name},
	"message": sprintf("Attribute '%s' should not say legacy.", [input.sample.attribute.name]),
} if {
	contains(input.sample.attribute.name, "legacy")
}

# ... and, in the finding form, a checkout span must be of kind server (reads the registry group).
deny contains {
	"id": "checkout_kind",
	"level": "violation",
	"message": sprintf("Span '%s' is %s; the registry says %s.", [input.sample.span.name, input.sample.span.kind, input.registry_group.span_kind]),
} if {
	input.sample.span.name == "shop.checkout"
	input.sample.span.kind != input.registry_group.span_kind
}
