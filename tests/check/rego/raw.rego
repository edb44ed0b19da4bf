package before_resolution

import rego.v1

# Our own test policy over the files as written: a registry group must define, not refer.
deny contains {"id": "registry_with_ref", "type": "semconv_attribute", "group": group.id, "attr": attr.ref} if {
	some group in input.groups
	startswith(group.id, "registry.")
	some attr in group.attributes
	attr.ref
}
