package after_resolution

import rego.v1

deny contains x if {
	x := input.groups[_].id ==
}
