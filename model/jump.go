package model

import (
	"fmt"
	"strconv"
	"strings"
)

// SSHHop is one jump host (bastion) on the way to an SSH target: the
// connection to the next hop, or to the target, is tunnelled through it.
type SSHHop struct {
	Host    string // name or IP address
	Port    int    // 0 means DefaultSSHPort
	User    string // "" means the transport's default login
	KeyPath string // "" means the transport's configured keys and agent
}

// String returns the hop in ProxyJump syntax.
func (h SSHHop) String() string {
	s := h.Host
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if h.User != "" {
		s = h.User + "@" + s
	}
	if h.Port != 0 {
		s += ":" + strconv.Itoa(h.Port)
	}
	return s
}

// MaxJumpHops bounds a ProxyJump chain.
const MaxJumpHops = 8

// ProxyJumpNone is the ProxyJump value that means "no jump host", as in
// OpenSSH: on a host it overrides a jump chain its group would get.
const ProxyJumpNone = "none"

// ParseProxyJump parses OpenSSH's ProxyJump syntax,
// "[user@]host[:port][,[user@]host[:port]...]" (IPv6 addresses in
// brackets), first hop first. "" and "none" give no hops. Anything else
// than that plain syntax is refused: whitespace, shell metacharacters,
// "%" tokens, a leading '-' (an option), ssh:// URIs.
func ParseProxyJump(s string) ([]SSHHop, error) {
	if s == "" || s == ProxyJumpNone {
		return nil, nil
	}
	if len(s) > 1024 {
		return nil, fmt.Errorf("proxy jump is %d bytes; at most 1024", len(s))
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@:[],", r)) {
			return nil, fmt.Errorf("proxy jump %q: character %q at byte %d is not allowed (want [user@]host[:port][,...])", s, r, i)
		}
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxJumpHops {
		return nil, fmt.Errorf("proxy jump %q: %d hops; at most %d", s, len(parts), MaxJumpHops)
	}
	hops := make([]SSHHop, 0, len(parts))
	for _, part := range parts {
		if part == "" {
			return nil, fmt.Errorf("proxy jump %q: empty hop", s)
		}
		if part[0] == '-' {
			return nil, fmt.Errorf("proxy jump %q: hop %q must not start with '-'", s, part)
		}
		user, host, port, err := ParseHostSpec(part)
		if err != nil {
			return nil, fmt.Errorf("proxy jump %q: %w", s, err)
		}
		hops = append(hops, SSHHop{Host: host, Port: port, User: user})
	}
	return hops, nil
}

// FormatProxyJump returns hops in ProxyJump syntax (key paths are not part
// of it).
func FormatProxyJump(hops []SSHHop) string {
	s := make([]string, len(hops))
	for i, h := range hops {
		s[i] = h.String()
	}
	return strings.Join(s, ",")
}
