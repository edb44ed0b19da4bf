package after_resolution

import rego.v1

test_count_suffix_is_denied if {
	count(deny) == 1 with input as {"registry": {"metrics": [{"name": "a.count"}]}, "groups": []}
}

test_other_metric_names_pass if {
	count(deny) == 0 with input as {"registry": {"metrics": [{"name": "a.total"}]}, "groups": []}
}
