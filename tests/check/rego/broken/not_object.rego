package after_resolution

import rego.v1

deny contains group.id if {
	some group in input.groups
}
