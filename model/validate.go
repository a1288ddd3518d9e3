package model

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidID reports why id cannot name a minion, or nil. Ids are host-name
// like: 1–253 bytes of letters, digits, '.', '-' and '_', starting with a
// letter or digit, with no "..": safe as a file name and a shell word.
func ValidID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("id is empty")
	case len(id) > 253:
		return fmt.Errorf("id is %d bytes; at most 253", len(id))
	case !utf8.ValidString(id):
		return fmt.Errorf("id is not valid UTF-8")
	case strings.Contains(id, ".."):
		return fmt.Errorf("id %q contains \"..\"", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && strings.ContainsRune(".-_", r))
		if !ok {
			return fmt.Errorf("id %q: character %q at byte %d is not allowed (letters, digits, '.', '-', '_')", id, r, i)
		}
	}
	return nil
}

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

// ValidEnvName reports whether k can name an environment variable passed
// to a command: a shell variable name.
func ValidEnvName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// CheckPath reports why p cannot name a file on a host, or nil: it must
// be absolute and clean (no "..", "." or doubled and trailing slashes),
// without NUL, and not the root. Every transport and the API check paths
// with it.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (it has .., . or extra slashes)", p)
	case p == "/":
		return errors.New("path / names no file")
	}
	return nil
}

// CheckEntryPath reports why rel cannot name an entry below a push's
// destination: "." or a clean relative path that never leaves it.
func CheckEntryPath(rel string) error {
	switch {
	case rel == ".":
		return nil
	case rel == "" || strings.ContainsRune(rel, 0):
		return fmt.Errorf("entry path %q is empty or contains NUL", rel)
	case strings.HasPrefix(rel, "/") || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../"):
		return fmt.Errorf("entry path %q: want a clean relative path inside the destination", rel)
	}
	return nil
}

// ParseMode reads permission bits written in octal ("0644", "644",
// "4755"); "" is 0, meaning "keep".
func ParseMode(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q: want octal permission bits such as 0644", s)
	}
	return uint32(v), nil
}

// FormatMode writes permission bits as ParseMode reads them.
func FormatMode(m uint32) string {
	if m == 0 {
		return ""
	}
	return fmt.Sprintf("%04o", m)
}

// ParseBatch checks a batch value: a positive count, or a percentage of the
// hosts from 1% to 100%.
func ParseBatch(b string) error {
	if b == "" {
		return nil
	}
	if p, ok := strings.CutSuffix(b, "%"); ok {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 100 {
			return fmt.Errorf("batch %q: a percentage must be 1%% to 100%%", b)
		}
		return nil
	}
	if n, err := strconv.Atoi(b); err != nil || n < 1 {
		return fmt.Errorf("batch %q: want a positive number of hosts or a percentage such as 10%%", b)
	}
	return nil
}

// CheckFileName reports why name cannot name a file inside a directory, or
// nil: 1–255 bytes of UTF-8, not "." or "..", without '/' or NUL.
func CheckFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case name == "." || name == "..":
		return fmt.Errorf("file name %q is a directory", name)
	case len(name) > 255:
		return fmt.Errorf("file name of %d bytes is longer than 255", len(name))
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q is not a plain base name", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not UTF-8", name)
	}
	return nil
}

// CheckText reports why v, the value of field, is not printable UTF-8 text
// of at most max bytes, or nil.
func CheckText(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes; at most %d", field, len(v), max)
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s must be printable UTF-8 text", field)
	}
	return nil
}

// MaxRemoteTmp bounds a remote_tmp directory's length.
const MaxRemoteTmp = 200

// ValidRemoteTmp reports why d cannot be the directory where script and
// file commands are staged on an SSH host (remote_tmp), or nil: an
// absolute, clean path (no "." or ".." element, no trailing or doubled
// "/") of letters, digits and "/._-+@,:=%", or the same below the login
// user's home written "~/DIR", at most MaxRemoteTmp bytes. "" means the
// default.
func ValidRemoteTmp(d string) error {
	if d == "" {
		return nil
	}
	if len(d) > MaxRemoteTmp {
		return fmt.Errorf("remote_tmp is %d bytes; at most %d", len(d), MaxRemoteTmp)
	}
	for i, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+@,:=%", r) || r == '~' && i == 0) {
			return fmt.Errorf("remote_tmp %q: character %q at byte %d is not allowed (letters, digits and /._-+@,:=%%; a leading ~/ for the home directory)", d, r, i)
		}
	}
	rel, home := strings.CutPrefix(d, "~/")
	switch {
	case d[0] == '~' && !home:
		return fmt.Errorf("remote_tmp %q: ~ only as a leading ~/ (the login user's home)", d)
	case home && rel == "":
		return fmt.Errorf("remote_tmp %q: want a directory below the home directory, ~/DIR", d)
	case !home && d[0] != '/':
		return fmt.Errorf("remote_tmp %q: want an absolute path (or ~/DIR below the login user's home)", d)
	}
	for _, e := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
		if e == ".." {
			return fmt.Errorf("remote_tmp %q: a .. element is not allowed", d)
		}
	}
	if want := path.Clean("/" + strings.TrimPrefix(rel, "/")); want != "/"+strings.TrimPrefix(rel, "/") {
		return fmt.Errorf("remote_tmp %q: want a clean path (no ./, trailing or doubled /)", d)
	}
	return nil
}
