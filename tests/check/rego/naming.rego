package after_resolution

import rego.v1

# Our own test policy (v2 view): every metric name ends in a unit-free noun, never `.count`.
deny contains finding if {
	some metric in input.registry.metrics
	endswith(metric.name, ".count")
	finding := {
		"id": "metric_count_suffix",
		"message": sprintf("Metric '%s' must not end in '.count'.", [metric.name]),
		"level": "violation",
		"context": {},
		"signal_type": "metric",
		"signal_name": metric.name,
	}
}

# v1 view: an attribute group without a brief is worth a warning.
deny contains finding if {
	some group in input.groups
	group.type == "attribute_group"
	not group.brief
	finding := {
		"id": "group_brief",
		"message": sprintf("Group '%s' has no brief.", [group.id]),
		"level": "improvement",
		"context": {"group_id": group.id},
	}
}
