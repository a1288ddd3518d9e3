package cli

import "github.com/felix-ops/felix/internal/hostset"

// hostSet returns hosts in compact form (web[01-03,07],db[1-2],bastion):
// see hostset.Compact, which the web dashboard shares.
func hostSet(hosts []string) string { return hostset.Compact(hosts) }
