package comparison_after_resolution

import rego.v1

# Our own test policy: a metric of the baseline must still exist.
deny contains finding if {
	some old in data.registry.metrics
	not new_metric(old.name)
	finding := {
		"id": "metric_removed",
		"message": sprintf("Metric '%s' was removed.", [old.name]),
		"level": "violation",
		"context": {},
	}
}

new_metric(name) if {
	some m in input.registry.metrics
	m.name == name
}
