package model

import "fmt"

// Roles of an API token, each allowed what the ones before it are:
// RoleRead looks (GET), RoleOperator also runs jobs (exec, files, fetch,
// packages, cancel, rerun), RoleAdmin also decides on keys, hosts, tokens
// and bootstraps, and reads the audit log.
const (
	RoleRead     = "read"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// Roles lists the roles, least allowed first.
var Roles = []string{RoleRead, RoleOperator, RoleAdmin}

// RoleRank orders roles by what they allow: 1 read, 2 operator, 3 admin;
// 0 for an unknown role, which allows nothing.
func RoleRank(role string) int {
	for i, r := range Roles {
		if r == role {
			return i + 1
		}
	}
	return 0
}

// ValidRole reports why role is not one of Roles, or nil.
func ValidRole(role string) error {
	if RoleRank(role) == 0 {
		return fmt.Errorf("role %q: want read, operator or admin", role)
	}
	return nil
}
