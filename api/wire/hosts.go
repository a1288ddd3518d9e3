package wire

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultSSHPort is the port of a host that names none.
const DefaultSSHPort = 22

// The checks below keep SSH settings plain data. They are stricter than SSH
// needs: nothing that a shell, ssh's own option parser or a terminal could
// read as more than a word passes — no shell metacharacters, no spaces, no
// leading '-' (an option), no control characters.

// ValidHost reports why h cannot name an SSH host, or nil: h must be an IP
// address or a DNS name (letters, digits, '-', '_' in dot-separated labels
// of at most 63 bytes), at most 253 bytes, not starting with '-'.
func ValidHost(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("host is empty")
	case len(h) > 253:
		return fmt.Errorf("host is %d bytes; at most 253", len(h))
	case !utf8.ValidString(h):
		return fmt.Errorf("host is not valid UTF-8")
	case h[0] == '-':
		return fmt.Errorf("host %q must not start with '-'", h)
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	for i, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("host %q: character %q at byte %d is not allowed (want a DNS name or an IP address)", h, r, i)
		}
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Errorf("host %q: empty label (want a DNS name or an IP address)", h)
		case len(l) > 63:
			return fmt.Errorf("host %q: label %q is over 63 bytes", h, l)
		case l[0] == '-':
			return fmt.Errorf("host %q: label %q starts with '-'", h, l)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("host %q is not a valid IP address", h)
	}
	return nil
}

// ValidUser reports why u cannot be an SSH login, or nil: POSIX-like user
// names, [a-z_][a-z0-9_.-]*, at most 32 bytes. "" means the default login.
func ValidUser(u string) error {
	if u == "" {
		return nil
	}
	if len(u) > 32 {
		return fmt.Errorf("user is %d bytes; at most 32", len(u))
	}
	if u[0] == '-' {
		return fmt.Errorf("user %q must not start with '-'", u)
	}
	for i, r := range u {
		ok := r >= 'a' && r <= 'z' || r == '_' || (i > 0 && (r >= '0' && r <= '9' || r == '.' || r == '-'))
		if !ok {
			return fmt.Errorf("user %q: character %q at byte %d is not allowed (want [a-z_][a-z0-9_.-]*)", u, r, i)
		}
	}
	return nil
}

// ValidPort reports why p cannot be an SSH port, or nil: 1-65535.
func ValidPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d: want 1-65535", p)
	}
	return nil
}

// ValidKeyPath reports why p cannot name a private key file on the master,
// or nil: an absolute path (no ~: nothing expands it) of letters, digits
// and "/._-+@,:=%", at most 4096 bytes. "" means the configured keys.
func ValidKeyPath(p string) error {
	switch {
	case p == "":
		return nil
	case len(p) > 4096:
		return fmt.Errorf("key is %d bytes; at most 4096", len(p))
	case p[0] == '-':
		return fmt.Errorf("key %q must not start with '-'", p)
	case p[0] == '~':
		return fmt.Errorf("key %q: want an absolute path; ~ is not expanded", p)
	case p[0] != '/':
		return fmt.Errorf("key %q: want an absolute path on the master", p)
	}
	for i, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+@,:=%", r)) {
			return fmt.Errorf("key %q: character %q at byte %d is not allowed (letters, digits and /._-+@,:=%%)", p, r, i)
		}
	}
	return nil
}

// ParseHostSpec splits "[user@]host[:port]" (an IPv6 address with a port
// in brackets: [fd00::1]:2222) and checks each part. A missing port is 0.
func ParseHostSpec(s string) (user, host string, port int, err error) {
	if u, rest, ok := strings.Cut(s, "@"); ok {
		if u == "" {
			return "", "", 0, fmt.Errorf("%q: empty user before '@'", s)
		}
		user, s = u, rest
	}
	host = s
	switch {
	case strings.HasPrefix(s, "["):
		h, p, splitErr := net.SplitHostPort(s)
		if splitErr != nil {
			if strings.HasSuffix(s, "]") { // [fd00::1] without a port
				h, p = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
			} else {
				return "", "", 0, fmt.Errorf("%q: want host, host:port or [ipv6]:port", s)
			}
		}
		host = h
		if p != "" {
			if port, err = parsePort(p); err != nil {
				return "", "", 0, err
			}
		}
	case strings.Count(s, ":") == 1:
		h, p, _ := strings.Cut(s, ":")
		host = h
		if port, err = parsePort(p); err != nil {
			return "", "", 0, err
		}
	}
	if err := ValidUser(user); err != nil {
		return "", "", 0, err
	}
	if err := ValidHost(host); err != nil {
		return "", "", 0, err
	}
	return user, host, port, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("port %q: want 1-65535", p)
	}
	return n, ValidPort(n)
}

// ValidFingerprint checks an SSH host key fingerprint as OpenSSH prints it,
// SHA256: and 43 characters of unpadded base64, and returns it in that form
// (a "sha256:" prefix and '=' padding are accepted).
func ValidFingerprint(fp string) (string, error) {
	prefix, b64, ok := strings.Cut(fp, ":")
	if !ok || !strings.EqualFold(prefix, "SHA256") {
		return "", fmt.Errorf("fingerprint %q: want SHA256:... as ssh-keygen -lf prints it", fp)
	}
	b64 = strings.TrimRight(b64, "=")
	if len(b64) != 43 {
		return "", fmt.Errorf("fingerprint %q: want SHA256: and 43 base64 characters", fp)
	}
	for _, r := range b64 {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '/') {
			return "", fmt.Errorf("fingerprint %q: %q is not base64", fp, r)
		}
	}
	return "SHA256:" + b64, nil
}

// HostRequest is the body of POST /api/v1/hosts: an agentless host.
type HostRequest struct {
	ID     string            `json:"id,omitempty"`   // default: host
	Host   string            `json:"host"`           // DNS name or IP address
	Port   int               `json:"port,omitempty"` // default 22
	User   string            `json:"user,omitempty"` // default: the master's [ssh] user
	Key    string            `json:"key,omitempty"`  // private key file on the master; default: the configured keys
	Become bool              `json:"become,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Host is an agentless host as the API shows it.
type Host struct {
	ID     string            `json:"id"`
	Host   string            `json:"host"`
	Port   int               `json:"port"`
	User   string            `json:"user,omitempty"`
	Key    string            `json:"key,omitempty"`
	Become bool              `json:"become"`
	Labels map[string]string `json:"labels,omitempty"`
	// Minion is the state of a minion with the same id ("" when none): the
	// machine has both, and auto mode prefers the minion.
	Minion    string    `json:"minion,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// HostList is the body of GET /api/v1/hosts.
type HostList struct {
	Hosts []Host `json:"hosts"`
}

// ImportError is one bad line of an inventory import.
type ImportError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportResult answers POST /api/v1/hosts/import. On a 400, Error says
// what went wrong and Errors lists every bad line; nothing was stored.
type ImportResult struct {
	Added   int           `json:"added"`
	Updated int           `json:"updated"`
	Errors  []ImportError `json:"errors"`
	Error   string        `json:"error,omitempty"`
}

// TrustRequest is the body of POST /api/v1/hosts/{id}/trust.
type TrustRequest struct {
	// Fingerprint is the host key's SHA256 fingerprint as the operator
	// checked it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).
	Fingerprint string `json:"fingerprint"`
	// Port overrides the host's port (or 22 for an address that is not in
	// the inventory).
	Port int `json:"port,omitempty"`
}

// Trusted answers a trust request.
type Trusted struct {
	ID          string `json:"id"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Fingerprint string `json:"fingerprint"`
}
